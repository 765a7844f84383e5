#!/usr/bin/env bash
# VM isolation through the whole engine: cold start of
#   isola run --rm --isolation=vm --network none busybox true
# (CLI, container record and snapshot, monitor, QEMU boot, agent, guest
# runtime, exit code back, power off, removal) against the floor: a bare QEMU
# boot of the same kernel whose static init powers off at once (same
# accelerator, guest size and tb-size), for a booting VM; for a VM from its
# template, a bare QEMU restoring a saved VM of the same kernel, memory and
# devices (-incoming), whose init answers one byte on its virtio-serial port
# and powers off. Runs are interleaved. Then the host memory (PSS) of one
# idle VM container, QEMU plus its monitor, against a bare idle QEMU with the
# same memory settings (THP disabled under TCG, as isola's QEMU), after
# SETTLE seconds and again after a minute. Both ways a VM starts are
# measured: from the saved template VM (isola's default; the unmeasured
# first run makes the template) and booting the kernel
# (ISOLA_VM_TEMPLATE=0), without a network and on the default
# bridge network (--network bridge: the CNI chain, a tap and a NIC, whose VMs
# have templates of their own). Writes bench/results/vm-isola.md.
# (bench/vm.sh measures the vm library alone, through its vm-run example.)
#
#   bench/vm-isola.sh        # N=7
# Needs: the guest kernel (scripts/guest-kernel.sh), qemu-system-x86, gcc, cpio, python3; root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-7}
MEM=128
SETTLE=${SETTLE:-10}
out=bench/results/vm-isola.md
work=$(mktemp -d /tmp/isola-bench-vmi.XXXXXX)
root=$work/root
# The root's networks have bridges on the host: they go with it.
trap '"$ISOLA" --root "$root" rm -f $("$ISOLA" --root "$root" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
      for b in $(jq -r .Bridge "$root"/networks/*.json 2>/dev/null); do ip link delete "$b" 2>/dev/null || true; done
      rm -rf "$work"' EXIT

kernel=$(scripts/guest-kernel.sh)
echo "bench/vm-isola: building isola and the static agent (release)" >&2
cargo build -q --release -p isola
crates/agent/build-static.sh >/dev/null
ISOLA=$PWD/target/release/isola

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true sleep; do ln -sf busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -c . | "$ISOLA" --root "$root" import - busybox:latest >/dev/null

# shellcheck source=bench/vm-floor.sh
. bench/vm-floor.sh
make_floor_inits "$work"

TB=$(grep -o 'DEFAULT_TB_SIZE_MIB: u32 = [0-9]*' crates/vm/src/accel.rs | awk '{print $NF}')
accel=tcg,tb-size=$TB
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then [ -w /dev/kvm ] && accel=kvm; fi
bare() { bare_qemu "$accel" "$1"; }  # $1: initramfs
save_floor_vm "$accel"

# One unmeasured run of each: the initramfs cache, the VM template and the
# page cache are warm for all.
t=$(now); "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true; first_ms=$(( ($(now) - t) / 1000000 ))
ISOLA_VM_TEMPLATE=0 "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true
ISOLA_VM_ROOTFS=share "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true
echo "bench/vm-isola: cold start, $N interleaved runs each ($accel)" >&2
: > "$work/isola.ms"; : > "$work/boot.ms"; : > "$work/bare.ms"; : > "$work/restore.ms"; : > "$work/share.ms"
for i in $(seq "$N"); do
  t=$(now); "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true; echo $(( ($(now) - t) / 1000000 )) >> "$work/isola.ms"
  t=$(now); ISOLA_VM_TEMPLATE=0 "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true; echo $(( ($(now) - t) / 1000000 )) >> "$work/boot.ms"
  t=$(now); (bare "$work/off.cpio"); echo $(( ($(now) - t) / 1000000 )) >> "$work/bare.ms"
  t=$(now); restore_floor_vm "$accel"; echo $(( ($(now) - t) / 1000000 )) >> "$work/restore.ms"
  t=$(now); ISOLA_VM_ROOTFS=share "$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox true; echo $(( ($(now) - t) / 1000000 )) >> "$work/share.ms"
  echo "  run $i: isola $(tail -1 "$work/isola.ms") ms, booting $(tail -1 "$work/boot.ms") ms, bare $(tail -1 "$work/bare.ms") ms, bare restore $(tail -1 "$work/restore.ms") ms" >&2
done
isola_ms=$(median < "$work/isola.ms"); boot_ms=$(median < "$work/boot.ms"); bare_ms=$(median < "$work/bare.ms")
restore_ms=$(median < "$work/restore.ms"); share_ms=$(median < "$work/share.ms")

# On the bridge network: a VM with a NIC has its own template (the
# unmeasured first run makes it).
net=(--network bridge)
"$ISOLA" --root "$root" run --rm --isolation=vm "${net[@]}" busybox true
echo "bench/vm-isola: cold start on the bridge network, $N interleaved runs each" >&2
: > "$work/net.ms"; : > "$work/netboot.ms"
for i in $(seq "$N"); do
  t=$(now); "$ISOLA" --root "$root" run --rm --isolation=vm "${net[@]}" busybox true; echo $(( ($(now) - t) / 1000000 )) >> "$work/net.ms"
  t=$(now); ISOLA_VM_TEMPLATE=0 "$ISOLA" --root "$root" run --rm --isolation=vm "${net[@]}" busybox true; echo $(( ($(now) - t) / 1000000 )) >> "$work/netboot.ms"
  echo "  run $i: template $(tail -1 "$work/net.ms") ms, booting $(tail -1 "$work/netboot.ms") ms" >&2
done
net_ms=$(median < "$work/net.ms"); netboot_ms=$(median < "$work/netboot.ms")
net_ratio=$(awk -v a="$net_ms" -v b="$restore_ms" 'BEGIN {printf "%.2f", a/b}')
netboot_ratio=$(awk -v a="$netboot_ms" -v b="$bare_ms" 'BEGIN {printf "%.2f", a/b}')
ratio=$(awk -v a="$isola_ms" -v b="$restore_ms" 'BEGIN {printf "%.2f", a/b}')
share_ratio=$(awk -v a="$share_ms" -v b="$restore_ms" 'BEGIN {printf "%.2f", a/b}')
boot_ratio=$(awk -v a="$boot_ms" -v b="$bare_ms" 'BEGIN {printf "%.2f", a/b}')

pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
echo "bench/vm-isola: idle PSS after ${SETTLE}s" >&2
id=$("$ISOLA" --root "$root" run -d --isolation=vm busybox sleep 1000)
bid=$(ISOLA_VM_TEMPLATE=0 "$ISOLA" --root "$root" run -d --isolation=vm busybox sleep 1000)
bare "$work/idle.cpio" & barepid=$!
sleep "$SETTLE"
qpid=$("$ISOLA" --root "$root" inspect --format '{{.State.Pid}}' "$id")
mpid=$("$ISOLA" --root "$root" inspect --format '{{.State.MonitorPid}}' "$id")
bqpid=$("$ISOLA" --root "$root" inspect --format '{{.State.Pid}}' "$bid")
q_pss=$(pss_kib "$qpid"); m_pss=$(pss_kib "$mpid"); b_pss=$(pss_kib "$barepid"); bq_pss=$(pss_kib "$bqpid")
echo "bench/vm-isola: idle PSS again after 60s" >&2
sleep $((60 - SETTLE))
q60=$(pss_kib "$qpid"); m60=$(pss_kib "$mpid"); b60=$(pss_kib "$barepid")
kill "$barepid"; wait "$barepid" 2>/dev/null || true
"$ISOLA" --root "$root" rm -f "$id" "$bid" >/dev/null
mem_ratio=$(awk -v q="$q_pss" -v m="$m_pss" -v b="$b_pss" 'BEGIN {printf "%.2f", (q+m)/b}')
q_ratio=$(awk -v q="$q_pss" -v b="$b_pss" 'BEGIN {printf "%.2f", q/b}')
bq_ratio=$(awk -v q="$bq_pss" -v m="$m_pss" -v b="$b_pss" 'BEGIN {printf "%.2f", (q+m)/b}')
mem60_ratio=$(awk -v q="$q60" -v m="$m60" -v b="$b60" 'BEGIN {printf "%.2f", (q+m)/b}')

# A hand-written section at the end (a before/after measurement) is kept.
kept=$(sed -n '/^## Before and after/,$p' "$out" 2>/dev/null || true)
cat > "$out" <<MD
# VM isolation through the engine: \`isola run --isolation=vm\`

\`bench/vm-isola.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores shared with other work, load $(cut -d' ' -f1-3 /proc/loadavg),
accelerator **$accel**, guest ${MEM} MiB, 1 vCPU, release build.

## Cold start (N=$N, interleaved, medians)

| what | median ms | ratio to the floor |
|---|---|---|
| \`isola run --rm --isolation=vm --network none busybox true\` (default: the VM starts from its template): CLI, record and snapshot (its writable disk made), monitor, QEMU restoring the template, agent Init (entropy, clock, rootfs disks mounted), guest runtime, exit code, power off, removal | $isola_ms | **$ratio** to the restore floor (target ≤ 1.30) |
| the same with \`ISOLA_VM_ROOTFS=share\`: the rootfs over 9p instead of its two disks (no writable disk to make, nothing for the guest to mount but the share) | $share_ms | $share_ratio to the restore floor |
| the same with \`ISOLA_VM_TEMPLATE=0\`: QEMU boots the kernel | $boot_ms | **$boot_ratio** to the boot floor (target ≤ 1.30) |
| \`isola run --rm --isolation=vm --network bridge busybox true\`: as the first, plus the CNI chain, a tap and the guest's NIC (its own template; the agent sets the container's MAC and address) | $net_ms | $net_ratio to the restore floor |
| the same with \`ISOLA_VM_TEMPLATE=0\` | $netboot_ms | $netboot_ratio to the boot floor |
| restore floor: a bare QEMU restores a saved VM of the same kernel, memory, vCPUs, accelerator and devices (virtio-serial port, the two disks, rng, balloon; \`-incoming fd:\`), whose init reads one byte on the port, answers it and powers off; the host connects, sends the byte and waits for the answer and QEMU's exit. Unlike isola's QEMU: no jail, no seccomp sandbox, no NIC-less network namespace | $restore_ms | 1 |
| boot floor: bare QEMU boot of the same kernel, static init that powers off at once | $bare_ms | 1 |

Raw ms, isola: $(paste -sd' ' "$work/isola.ms"); booting: $(paste -sd' ' "$work/boot.ms"); bare: $(paste -sd' ' "$work/bare.ms"); bare restore: $(paste -sd' ' "$work/restore.ms"); 9p rootfs: $(paste -sd' ' "$work/share.ms");
bridge network, template: $(paste -sd' ' "$work/net.ms"); booting: $(paste -sd' ' "$work/netboot.ms").
The first VM of a shape makes its template (boots a template VM and saves it, once; about
a second or two under TCG here): the unmeasured first run, which made it if this host had
none for this shape yet, took $first_ms ms.

## Idle host memory of one VM container (PSS, \`sleep 1000\` inside)

Both QEMUs with the same memory settings: guest ${MEM} MiB, and under TCG transparent huge
pages disabled (PR_SET_THP_DISABLE, as isola runs its QEMU). The bare QEMU has no devices.

| process | MiB after ${SETTLE} s | MiB after 60 s |
|---|---|---|
| the container's QEMU (isola-vm-…), started from the template | $((q_pss / 1024)) | $((q60 / 1024)) |
| its monitor | $((m_pss / 1024)) | $((m60 / 1024)) |
| bare idle QEMU, same kernel, guest size, accelerator and THP setting | $((b_pss / 1024)) | $((b60 / 1024)) |
| ratio QEMU / bare | $q_ratio | |
| ratio QEMU + monitor / bare | **$mem_ratio** (target ≤ 1.05) | **$mem60_ratio** |
| a booted VM container's QEMU (\`ISOLA_VM_TEMPLATE=0\`), + monitor / bare | $((bq_pss / 1024)) MiB, $bq_ratio | |
MD
[ -z "$kept" ] || printf '\n%s\n' "$kept" >> "$out"
echo "bench/vm-isola: wrote $out" >&2
cat "$out"
