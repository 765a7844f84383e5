#!/usr/bin/env bash
# Foreign architectures under VM isolation: the same busybox, built for
# amd64 (the host's) and for arm64 (Debian's busybox-static:arm64, run by
# qemu-user-static inside the VM), both with --isolation=vm from their
# templates, side by side:
#   cold start   isola run --rm --isolation=vm busybox-<arch> true
#   CPU loop     the same running a shell loop of $LOOP iterations
# Runs are interleaved. Writes bench/results/vm-arch.md.
#
#   bench/vm-arch.sh        # N=5
# Needs: the guest kernel, qemu-user-static unpacked and the arm64 busybox
# (scripts/setup.sh does both); root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5}
LOOP=${LOOP:-20000}
out=bench/results/vm-arch.md
work=$(mktemp -d /tmp/isola-bench-arch.XXXXXX)
root=$work/root
trap '"$ISOLA" --root "$root" rm -f $("$ISOLA" --root "$root" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
      for b in $(jq -r .Bridge "$root"/networks/*.json 2>/dev/null); do ip link delete "$b" 2>/dev/null || true; done
      rm -rf "$work"' EXIT

arm64=/var/cache/isola/fixtures/busybox-arm64/bin/busybox
[ -x "$arm64" ] || { echo "bench/vm-arch: $arm64 is missing (scripts/setup.sh fetches it)" >&2; exit 1; }
echo "bench/vm-arch: building isola and the static agent (release)" >&2
cargo build -q --release -p isola
crates/agent/build-static.sh >/dev/null
ISOLA=$PWD/target/release/isola
. bench/vm-floor.sh

for arch in amd64 arm64; do
  rootfs=$work/rootfs-$arch
  mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
  if [ "$arch" = amd64 ]; then cp /bin/busybox "$rootfs/bin/busybox"; else cp "$arm64" "$rootfs/bin/busybox"; fi
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | "$ISOLA" --root "$root" import --platform "linux/$arch" - "busybox-$arch:latest" >/dev/null
done

loop="i=0; while [ \$i -lt $LOOP ]; do i=\$((i+1)); done"
run() { # arch, command...
  local arch=$1; shift
  "$ISOLA" --root "$root" run --rm --isolation=vm --network none "busybox-$arch" "$@" >/dev/null
}
# Unmeasured: each architecture's template, the caches.
for arch in amd64 arm64; do run "$arch" true; done
[ "$("$ISOLA" --root "$root" run --rm --isolation=vm --network none busybox-arm64 uname -m)" = aarch64 ]
echo "bench/vm-arch: $N interleaved runs each" >&2
for f in amd64.true arm64.true amd64.loop arm64.loop; do : > "$work/$f"; done
for i in $(seq "$N"); do
  for arch in amd64 arm64; do
    t=$(now); run "$arch" true; echo $(( ($(now) - t) / 1000000 )) >> "$work/$arch.true"
    t=$(now); run "$arch" sh -c "$loop"; echo $(( ($(now) - t) / 1000000 )) >> "$work/$arch.loop"
  done
  echo "  run $i: amd64 $(tail -1 "$work/amd64.true")/$(tail -1 "$work/amd64.loop") ms, arm64 $(tail -1 "$work/arm64.true")/$(tail -1 "$work/arm64.loop") ms" >&2
done
m() { median < "$work/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
at=$(m amd64.true); rt=$(m arm64.true); al=$(m amd64.loop); rl=$(m arm64.loop)
aloop=$((al - at)); rloop=$((rl - rt))
[ "$aloop" -gt 0 ] || aloop=1

cat > "$out" <<MD
# Foreign architectures under VM isolation

\`bench/vm-arch.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores shared with other work, load $(cut -d' ' -f1-3 /proc/loadavg),
TCG, guest 128 MiB, 1 vCPU, release build. The same busybox 1.35 from Debian,
for amd64 (native in the guest) and arm64 (Debian's qemu-user-static inside the
guest, registered with the guest's binfmt_misc); each from its own VM template.

| what (N=$N, interleaved, medians) | amd64 ms | arm64 ms | arm64 / amd64 |
|---|---|---|---|
| \`isola run --rm --isolation=vm busybox true\` (cold start) | $at | $rt | **$(ratio "$rt" "$at")** |
| the same running a $LOOP-iteration shell loop | $al | $rl | $(ratio "$rl" "$al") |
| the loop alone (difference of the two) | $aloop | $rloop | **$(ratio "$rloop" "$aloop")** |

Raw ms, amd64 true: $(paste -sd' ' "$work/amd64.true"); loop: $(paste -sd' ' "$work/amd64.loop");
arm64 true: $(paste -sd' ' "$work/arm64.true"); loop: $(paste -sd' ' "$work/arm64.loop").
Under KVM the guest runs amd64 code natively and only the arm64 one is
emulated, so the loop's ratio grows there; under TCG (here) both are
translated, the arm64 one twice.
MD
echo "bench/vm-arch: wrote $out" >&2
cat "$out"
