//! The reduction of rules and the generated program, checked against a
//! table of devices. The program is run by a small interpreter of the
//! instructions it uses, so the test checks the bytes the kernel gets.

use super::*;

fn rules(json: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(json).unwrap()
}

/// Runs `prog` on a bpf_cgroup_dev_ctx, returning r0 at exit.
fn run(prog: &[Insn], kind: u32, major: u32, minor: u32, access: u32) -> u64 {
    let ctx = [(access << 16) | kind, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..4096 {
        let i = prog[pc];
        pc += 1;
        let (d, s) = (i.dst(), i.src());
        let imm = i.imm as i64 as u64;
        let jump = |cond: bool, pc: &mut usize| {
            if cond {
                *pc = (*pc as i64 + i64::from(i.off)) as usize;
            }
        };
        match i.code {
            LDX_MEM_W => {
                assert_eq!(s, 1, "loads only from the context");
                r[d] = u64::from(ctx[(i.off / 4) as usize]);
            }
            ALU64_MOV_X => r[d] = r[s],
            ALU64_MOV_K => r[d] = imm,
            ALU64_AND_K => r[d] &= imm,
            ALU64_RSH_K => r[d] >>= imm,
            JMP_JEQ_K => jump(r[d] == imm, &mut pc),
            JMP_JNE_K => jump(r[d] != imm, &mut pc),
            JMP_EXIT => return r[0],
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    panic!("the program did not exit");
}

/// The state and its program must agree on every device of the table.
fn check(state: &DeviceAccess, table: &[(u32, u32, u32, u32, bool)]) {
    let prog = state.program();
    for &(kind, major, minor, access, want) in table {
        assert_eq!(
            state.allows(kind, major, minor, access),
            want,
            "state: type {kind} {major}:{minor} access {access} in {state:?}"
        );
        assert_eq!(
            run(&prog, kind, major, minor, access),
            u64::from(want),
            "program: type {kind} {major}:{minor} access {access} in {state:?}"
        );
    }
}

const R: u32 = ACC_READ;
const W: u32 = ACC_WRITE;
const M: u32 = ACC_MKNOD;
const B: u32 = DEV_BLOCK;
const C: u32 = DEV_CHAR;

#[test]
fn docker_default_rules_deny_all_but_the_standard_devices() {
    // What the engine writes: deny everything, then runc's allow list.
    let mut all = rules(serde_json::json!([{"allow": false, "access": "rwm"}]));
    all.extend(default_allowed_devices());
    let state = DeviceAccess::from_rules(&all).unwrap();
    assert!(!state.default_allow);
    check(
        &state,
        &[
            (C, 1, 3, R | W, true),    // /dev/null
            (C, 1, 5, R, true),        // /dev/zero
            (C, 1, 9, R, true),        // /dev/urandom
            (C, 5, 2, R | W, true),    // /dev/ptmx
            (C, 136, 7, R | W, true),  // /dev/pts/7
            (C, 1, 11, R, false),      // /dev/kmsg
            (C, 1, 1, R, false),       // /dev/mem
            (B, 8, 0, R, false),       // /dev/sda
            (B, 254, 0, R | W, false), // /dev/vda
            (B, 8, 0, M, true),        // mknod of any node is allowed...
            (C, 1, 11, M, true),
            (B, 8, 0, M | R, false),    // ...but not together with reading it
            (C, 10, 200, R | W, false), // /dev/net/tun
        ],
    );
}

#[test]
fn later_rules_win_and_a_resets() {
    let state = DeviceAccess::from_rules(&rules(serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "m"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
        {"allow": true, "type": "b", "major": 8, "access": "r"},
    ])))
    .unwrap();
    check(
        &state,
        &[
            (C, 1, 3, R, true),
            (C, 1, 3, M, true),
            (C, 1, 3, W, false),
            (C, 1, 3, R | W, false),
            (B, 8, 0, R, true),
            (B, 8, 17, R, true),
            (B, 8, 0, W, false),
            (C, 8, 0, R, false),
        ],
    );

    // An allow-all after everything clears the exceptions.
    let state = DeviceAccess::from_rules(&rules(serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3},
        {"allow": true, "type": "a"},
    ])))
    .unwrap();
    assert_eq!(state, DeviceAccess::allow_all());
    check(&state, &[(B, 8, 0, R | W | M, true), (C, 1, 11, R, true)]);
}

#[test]
fn a_deny_list_refuses_what_shares_an_access_bit() {
    let state = DeviceAccess::from_rules(&rules(serde_json::json!([
        {"allow": false, "type": "b", "access": "w"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"},
    ])))
    .unwrap();
    assert!(state.default_allow);
    check(
        &state,
        &[
            (B, 8, 0, R, true),
            (B, 8, 0, W, false),
            (B, 8, 0, R | W, false),
            (C, 1, 11, R, false),
            (C, 1, 11, W, true),
            (C, 1, 3, R | W, true),
        ],
    );
}

#[test]
fn no_rules_allow_everything_and_bad_access_is_named() {
    let state = DeviceAccess::from_rules(&[]).unwrap();
    check(&state, &[(B, 8, 0, R | W | M, true)]);
    let err = DeviceAccess::from_rules(&rules(serde_json::json!([
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rx"}
    ])))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid access \"rx\" (letters r, w and m)"
    );
}
