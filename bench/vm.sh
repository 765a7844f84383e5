#!/usr/bin/env bash
# VM isolation benchmark: cold start and idle host memory of a container in a
# utility VM (the vm library through its vm-run example: boot, create, start,
# exit, power off), against the floor: a bare QEMU boot of the same kernel with
# a minimal static init that powers off at once (same accelerator, same -m).
# The VM starts from its saved template (the default; an unmeasured first run
# makes it) and, in a second column, boots its kernel (--no-template).
# Runs are interleaved. Writes bench/results/vm.md.
#
#   bench/vm.sh            # N=7 start runs, PSS at tb-size 16/32/64/default
#   N=11 bench/vm.sh
# Needs: the guest kernel (scripts/guest-kernel.sh), qemu-system-x86, gcc (static libc), cpio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-7}
MEM=128
SETTLE=${SETTLE:-10}    # seconds an idle VM runs before its PSS is read
TB_SIZES=${TB_SIZES:-"8 16 32 default"}
out=bench/results/vm.md
work=$(mktemp -d /tmp/isola-bench-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

kernel=$(scripts/guest-kernel.sh)
echo "bench/vm: kernel $kernel" >&2

echo "bench/vm: building vm-run and the static agent (release)" >&2
cargo build -q --release -p vm --example vm-run
ISOLA_AGENT=$(crates/agent/build-static.sh)
export ISOLA_AGENT
echo "bench/vm: agent $ISOLA_AGENT ($(stat -c %s "$ISOLA_AGENT") bytes)" >&2
vmrun=target/release/examples/vm-run

# The floor's inits: power off at once, or sleep forever (for idle PSS).
# shellcheck source=bench/vm-floor.sh
. bench/vm-floor.sh
make_floor_inits "$work"

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true sleep; do ln -sf busybox "$rootfs/bin/$a"; done

DEFAULT_TB=$(grep -o 'DEFAULT_TB_SIZE_MIB: u32 = [0-9]*' crates/vm/src/accel.rs | awk '{print $NF}')
accel=tcg
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then [ -w /dev/kvm ] && accel=kvm; fi
accel_arg() {  # $1: tb size in MiB or "default"
  if [ "$accel" = kvm ]; then echo "kvm"; elif [ "$1" = default ]; then echo "tcg"; else echo "tcg,tb-size=$1"; fi
}
bare() { bare_qemu "$(accel_arg "$2")" "$1"; }  # $1: initramfs, $2: tb size

echo "bench/vm: cold start, $N interleaved runs each ($accel)" >&2
"$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$DEFAULT_TB" -- true   # makes the template
: > "$work/vm.ms"; : > "$work/boot.ms"; : > "$work/bare.ms"
for i in $(seq "$N"); do
  t=$(now); "$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$DEFAULT_TB" -- true; echo $(( ($(now) - t) / 1000000 )) >> "$work/vm.ms"
  t=$(now); "$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$DEFAULT_TB" --no-template -- true; echo $(( ($(now) - t) / 1000000 )) >> "$work/boot.ms"
  t=$(now); (bare "$work/off.cpio" "$DEFAULT_TB"); echo $(( ($(now) - t) / 1000000 )) >> "$work/bare.ms"
  echo "  run $i: vm $(tail -1 "$work/vm.ms") ms, booting $(tail -1 "$work/boot.ms") ms, bare $(tail -1 "$work/bare.ms") ms" >&2
done
vm_ms=$(median < "$work/vm.ms"); boot_ms=$(median < "$work/boot.ms"); bare_ms=$(median < "$work/bare.ms")
# One more run of each with phase timings (host side) and the agent's ready time (guest uptime).
timings=$("$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$DEFAULT_TB" --timings --run-dir "$work/phases" -- true 2>&1)
phases=$(sed -n 's/^vm-run: \(booted.*\)/\1/p' <<<"$timings")
boot_timings=$("$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$DEFAULT_TB" --timings --no-template --run-dir "$work/phases" -- true 2>&1)
boot_phases=$(sed -n 's/^vm-run: \(booted.*\)/\1/p' <<<"$boot_timings")
ready=$(sed -n 's/.* at \([0-9.]*\) s of guest uptime/\1/p' <<<"$boot_timings")
ratio=$(awk -v a="$vm_ms" -v b="$bare_ms" 'BEGIN {printf "%.2f", a/b}')
boot_ratio=$(awk -v a="$boot_ms" -v b="$bare_ms" 'BEGIN {printf "%.2f", a/b}')

pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
echo "bench/vm: idle PSS after ${SETTLE}s, guest ${MEM} MiB" >&2
rows=""
for tb in $TB_SIZES; do
  [ "$accel" = kvm ] && [ "$tb" != default ] && continue
  tbarg=$tb; [ "$tb" = default ] && tbarg=1024   # QEMU's own default for TCG is 1 GiB
  "$vmrun" --rootfs "$rootfs" --memory $MEM --accel $accel --tb-size "$tbarg" --idle $((SETTLE + 3)) -- sleep 1000 > "$work/vm.pid" &
  runner=$!
  bare "$work/idle.cpio" "$tb" & barepid=$!
  sleep "$SETTLE"
  qpid=$(cat "$work/vm.pid")
  vm_pss=$(pss_kib "$qpid"); mon_pss=$(pss_kib "$runner"); bare_pss=$(pss_kib "$barepid")
  kill "$barepid"; wait "$barepid" 2>/dev/null || true
  wait "$runner"
  r=$(awk -v a="$vm_pss" -v b="$bare_pss" 'BEGIN {printf "%.2f", a/b}')
  r2=$(awk -v a="$vm_pss" -v m="$mon_pss" -v b="$bare_pss" 'BEGIN {printf "%.2f", (a+m)/b}')
  rows+="| $tb | $((bare_pss / 1024)) | $((vm_pss / 1024)) | $r | $((mon_pss / 1024)) | $r2 |"$'\n'
  echo "  tb-size $tb: bare $((bare_pss / 1024)) MiB, VM $((vm_pss / 1024)) MiB (+ host process $((mon_pss / 1024)) MiB)" >&2
done

cat > "$out" <<MD
# VM isolation benchmark

\`bench/vm.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores shared with other work, accelerator **$accel**
(\`/dev/kvm\` here is kvm_pvm, which cannot boot a standard guest), guest ${MEM} MiB, 1 vCPU,
kernel \`$(basename "$(dirname "$kernel")" | cut -c1-12)\` from scripts/guest-kernel.sh, release builds.

## Cold start (N=$N, interleaved, medians)

| what | median ms | ratio to the floor |
|---|---|---|
| container in a VM started from its template: QEMU restores the saved machine, agent Init (entropy, clock, rootfs share), create + start \`true\` in the guest runtime, exit code back, power off (vm-run) | $vm_ms | **$ratio** (target ≤ 1.30) |
| the same, booting the kernel (vm-run --no-template) | $boot_ms | $boot_ratio |
| floor: bare QEMU boot of the same kernel, static init that powers off at once | $bare_ms | 1 |

Raw ms, from the template: $(paste -sd' ' "$work/vm.ms"); booting: $(paste -sd' ' "$work/boot.ms"); bare: $(paste -sd' ' "$work/bare.ms").

Where a VM container's start goes (one extra run of each, times since QEMU was spawned).
From the template: $phases. Booting: $boot_phases; the booting agent was serving at
$ready s of guest uptime. A template VM saves the boot (kernel, devices, agent start)
and what is left is the container's own work: the agent's Init, the in-guest runtime
creating and starting the container (namespaces, mounts, cgroup: forks and an exec,
all emulated by TCG, where code run for the first time is translated first), the round
trips over virtio-serial. Under TCG on two shared cores the noise is large (see the raw
figures).

## Idle host memory (PSS from /proc/<pid>/smaps_rollup, after ${SETTLE} s)

| tb-size MiB | bare idle QEMU MiB | VM container's QEMU MiB | ratio | host-side process (vm-run, the monitor's stand-in) MiB | ratio with it |
|---|---|---|---|---|---|
$rows
"default" is QEMU's own TCG default (1 GiB translation cache); isola uses $(grep -o 'DEFAULT_TB_SIZE_MIB: u32 = [0-9]*' crates/vm/src/accel.rs | awk '{print $NF}') MiB (vm::accel::DEFAULT_TB_SIZE_MIB).
Target: the VM container within 1.15x of the bare QEMU's PSS.

The VM containers here start from their templates (one per tb-size: it is part of a VM's
shape). Why they stay close to the floor: under TCG isola starts QEMU without transparent
huge pages (PR_SET_THP_DISABLE), so the host pays for the 4 KiB pages the guest touches,
not 2 MiB per touch, and restoring a template reads untouched pages as the zero page
instead of allocating them (TCG's soft TLB gains nothing from huge pages); the agent is built
size-optimized (crates/agent/build-static.sh; QEMU maps the initramfs and the guest
unpacks it, so every byte counts twice), the guest reports freed pages back (virtio-balloon
free page reporting), and the translation cache is capped (tb-size). The bare QEMU keeps
QEMU's defaults (anonymous RAM with THP). What remains is the agent and the container's
processes in guest memory, the initramfs mapping and the 9p/virtio-serial devices.
MD
echo "bench/vm: wrote $out" >&2
cat "$out"
