//! mempolicy: `linux.memoryPolicy` (runtime-spec 1.3), the NUMA memory
//! policy of the container's processes: checked when the bundle is read,
//! set with set_mempolicy(2) in the init (and each exec'd process) before
//! execve, which keeps it. Only the parsing and the call; when to call it
//! is init.rs's and exec.rs's business.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use crate::spec::{invalid, SpecError};
use crate::sys;

/// Node numbers above this are refused (the kernel's MAX_NUMNODES is at
/// most 1 << 10).
const MAX_NODES: usize = 1024;

const BITS: usize = libc::c_ulong::BITS as usize;

/// A policy ready for set_mempolicy: mode with its flags, and the nodemask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: i32,
    pub mask: Vec<libc::c_ulong>,
}

/// Checks `p` and turns it into what set_mempolicy takes; errors name
/// the field of linux.memoryPolicy.
pub fn parse(p: &LinuxMemoryPolicy) -> Result<Policy, SpecError> {
    use MemoryPolicyModeType as M;
    let nodes = parse_nodes(p.nodes().as_deref().unwrap_or(""))?;
    let has_nodes = nodes.iter().any(|w| *w != 0);
    let mode = p.mode();
    match mode {
        M::MpolDefault | M::MpolLocal if has_nodes => {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("must be empty with mode {mode}"),
            ))
        }
        M::MpolBind | M::MpolInterleave | M::MpolPreferredMany | M::MpolWeightedInterleave
            if !has_nodes =>
        {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("is empty but mode {mode} needs nodes"),
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err(invalid(
            "linux.memoryPolicy.flags",
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    let mode = match mode {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    Ok(Policy {
        mode: mode | flags,
        mask: nodes,
    })
}

/// "0-3,5" as a nodemask.
fn parse_nodes(text: &str) -> Result<Vec<libc::c_ulong>, SpecError> {
    let mut mask = vec![0 as libc::c_ulong; MAX_NODES / BITS];
    let bad = |why: String| invalid("linux.memoryPolicy.nodes", format!("{text:?}: {why}"));
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{s:?} is not a node number")))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(bad(format!("range {part:?} runs backwards")));
        }
        if hi >= MAX_NODES {
            return Err(bad(format!("node {hi} is above {}", MAX_NODES - 1)));
        }
        for n in lo..=hi {
            mask[n / BITS] |= 1 << (n % BITS);
        }
    }
    Ok(mask)
}

/// Sets the calling thread's policy (inherited by its children and kept
/// across execve).
pub fn apply(p: &Policy) -> Result<(), nix::errno::Errno> {
    sys::set_mempolicy(p.mode, &p.mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: serde_json::Value) -> Result<Policy, SpecError> {
        parse(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn nodes_and_flags_become_the_syscall_arguments() {
        let p = policy(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-2,5",
            "flags": ["MPOL_F_STATIC_NODES"]}))
        .unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.mask[0], 0b10_0111);
        assert_eq!(
            policy(serde_json::json!({"mode": "MPOL_LOCAL"}))
                .unwrap()
                .mode,
            4
        );
    }

    #[test]
    fn bad_policies_name_the_field() {
        for (v, field) in [
            (serde_json::json!({"mode": "MPOL_BIND"}), "nodes"),
            (
                serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "3-1"}),
                "nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "x"}),
                "nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "4096"}),
                "nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
                    "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
                "flags",
            ),
        ] {
            let err = policy(v.clone()).unwrap_err().to_string();
            assert!(
                err.contains(&format!("linux.memoryPolicy.{field}")),
                "{v}: {err}"
            );
        }
    }
}
