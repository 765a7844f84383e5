#!/usr/bin/env bash
# isola-runtime's VM mode, side by side with what does the same work:
#   - the runc cycle `isola-runtime-vm run` + `delete --force` (process `true`)
#     vs the same VM work without runc's contract, `isola run --rm
#     --isolation=vm --network none busybox true` (the engine: record,
#     snapshot, monitor, the same QEMU from its template, agent, exit code),
#     and vs the process-mode cycle of `isola-runtime` on the same bundle;
#   - `ctr run --rm` through containerd's runc shim, with isola-runtime-vm and
#     with isola-runtime (a private containerd, the same busybox image).
# Runs are interleaved; medians. Writes bench/results/runtime-vm.md.
#
#   bench/runtime-vm.sh        # N=7
# Needs: the guest kernel (scripts/guest-kernel.sh), qemu-system-x86,
# containerd (with ctr), jq; root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-7}
out=${OUT:-bench/results/runtime-vm.md}
[ "$(id -u)" = 0 ] || { echo "bench/runtime-vm.sh: needs root" >&2; exit 1; }
for tool in containerd ctr jq /bin/busybox qemu-system-x86_64; do
  command -v "$tool" >/dev/null || { echo "bench/runtime-vm.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
scripts/guest-kernel.sh >/dev/null
echo "bench/runtime-vm: building isola, isola-runtime and the static agent (release)" >&2
cargo build -q --release -p isola -p runtime-cli
crates/agent/build-static.sh >/dev/null
ISOLA=$PWD/target/release/isola
RT=$PWD/target/release/isola-runtime

work=$(mktemp -d /tmp/isola-bench-rtvm.XXXXXX)
ln -s "$RT" "$work/isola-runtime-vm"
RTVM=$work/isola-runtime-vm
ns=bench
ctd_pid=
cleanup() {
  for r in "$work/rt-vm" "$work/rt-proc"; do
    for id in $("$RT" --root "$r" list -q 2>/dev/null || true); do "$RT" --root "$r" delete --force "$id" >/dev/null 2>&1 || true; done
  done
  "$ISOLA" --root "$work/root" rm -f $("$ISOLA" --root "$work/root" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  if [ -n "$ctd_pid" ]; then kill "$ctd_pid" 2>/dev/null || true; wait "$ctd_pid" 2>/dev/null || true; fi
  for d in /sys/fs/cgroup/*/"$ns"; do rmdir "$d" 2>/dev/null || true; done
  rm -rf "/run/containerd/runc/$ns"
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$work" | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# One busybox rootfs: the runtime's bundle, and the engine's and containerd's image.
bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true sleep; do ln -sf busybox "$bundle/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$bundle/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$bundle/rootfs/etc/group"
(cd "$bundle" && "$RT" spec)
jq '.process.terminal = false | .process.args = ["true"]' "$bundle/config.json" >"$bundle/config.tmp"
mv "$bundle/config.tmp" "$bundle/config.json"
tar -C "$bundle/rootfs" -c . | "$ISOLA" --root "$work/root" import - busybox:latest >/dev/null
"$ISOLA" --root "$work/root" save -o "$work/busybox.tar" busybox:latest

# A containerd of our own (CRI off), on a private socket, root and state.
cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/ctd-root"
state = "$work/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
ctr() { command ctr --address "$work/containerd.sock" --namespace "$ns" "$@"; }
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr images import --base-name docker.io/library/busybox "$work/busybox.tar" >/dev/null
image=$(ctr images list -q | head -1)

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
n=0
# timed NAME COMMAND...: appends the command's wall time (ms) to NAME.ms.
timed() {
  local name=$1 t; shift
  t=$(now)
  "$@" </dev/null >/dev/null 2>>"$work/$name.err" || { echo "bench/runtime-vm: $name failed: $(tail -3 "$work/$name.err")" >&2; exit 1; }
  echo $(( ($(now) - t) / 1000000 )) >>"$work/$name.ms"
}
rtvm_cycle() { "$RTVM" --root "$work/rt-vm" run --bundle "$bundle" "vm-$n" && "$RTVM" --root "$work/rt-vm" delete --force "vm-$n"; }
rt_cycle() { "$RT" --root "$work/rt-proc" run --bundle "$bundle" "proc-$n" && "$RT" --root "$work/rt-proc" delete --force "proc-$n"; }
engine_vm() { "$ISOLA" --root "$work/root" run --rm --isolation=vm --network none busybox true; }
ctr_vm() { ctr run --rm --runc-binary "$RTVM" "$image" "cvm-$n" true; }
ctr_proc() { ctr run --rm --runc-binary "$RT" "$image" "cproc-$n" true; }
all=(rtvm_cycle rt_cycle engine_vm ctr_vm ctr_proc)

# One unmeasured round: templates, the initramfs cache and the page cache are warm for all.
for f in "${all[@]}"; do n=warm; "$f" </dev/null >/dev/null 2>&1 || { echo "bench/runtime-vm: warm-up $f failed" >&2; exit 1; }; done
echo "bench/runtime-vm: $N interleaved rounds" >&2
for i in $(seq "$N"); do
  n=$i
  for f in "${all[@]}"; do timed "$f" "$f"; done
  echo "  round $i: $(for f in "${all[@]}"; do printf '%s %s ms  ' "$f" "$(tail -1 "$work/$f.ms")"; done)" >&2
done
for f in "${all[@]}"; do declare "m_$f=$(median <"$work/$f.ms")"; done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
accel=tcg; { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; } && [ -w /dev/kvm ] && accel=kvm

cat >"$out" <<MD
# isola-runtime in VM mode (\`isola-runtime-vm\`), side by side

\`bench/runtime-vm.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores shared with other work, load $(cut -d' ' -f1-3 /proc/loadavg),
accelerator **$accel**, guest 128 MiB, 1 vCPU, release builds, $(containerd --version | awk '{print $3}'), N=$N interleaved rounds, medians.
Every VM starts from its template (the warm-up round made it where there was none).

| what | median ms | ratio |
|---|---:|---:|
| \`isola-runtime-vm run\` + \`delete --force\` (a busybox bundle, process \`true\`): keeper, VM from its template, guest runtime, stand-in, exit code, power off | $m_rtvm_cycle | **$(ratio "$m_rtvm_cycle" "$m_engine_vm")** vs the engine (target ≤ 1.10) |
| \`isola run --rm --isolation=vm --network none busybox true\`: the same VM work through the engine (record, snapshot, monitor), without runc's contract | $m_engine_vm | 1 |
| \`isola-runtime run\` + \`delete --force\`: the same bundle in process mode | $m_rt_cycle | $(ratio "$m_rtvm_cycle" "$m_rt_cycle") (VM / process) |
| \`ctr run --rm --runc-binary isola-runtime-vm busybox true\`: through containerd's runc shim (snapshot, shim, runtime create/start/delete) | $m_ctr_vm | $(ratio "$m_ctr_vm" "$m_ctr_proc") vs process |
| \`ctr run --rm --runc-binary isola-runtime busybox true\` | $m_ctr_proc | 1 |

Raw ms: $(for f in "${all[@]}"; do printf '%s: %s; ' "$f" "$(paste -sd' ' "$work/$f.ms")"; done)

How they differ: the engine's row also makes a container record and an overlay snapshot of
the image and starts a monitor; the runtime's rows take a ready bundle (containerd's rows
include containerd's snapshot and its shim). Both VM paths restore the same template shape
(128 MiB, 1 vCPU, no NIC).
MD
echo "bench/runtime-vm: wrote $out" >&2
cat "$out"
