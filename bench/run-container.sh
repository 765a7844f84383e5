#!/usr/bin/env bash
# bench/run-container.sh: the time of `run --rm busybox true`, the whole
# user-visible cycle (create the container from the image, start it, wait
# for its exit, remove it), through
#   isola   isola run --rm busybox true            (release build)
#   podman  podman run --rm --runtime crun ...     (Debian's podman, same image)
#   crun    crun run of an equivalent bundle       (the floor: no image, no store;
#           isola's default seccomp profile, so both install the same filter)
# interleaved round-robin, N times each (default 30), after WARMUP runs.
# Writes medians, p90 and ratios to bench/results/run.md (OUT= to change).
# Needs root. The same busybox rootfs tar is imported into isola and podman.
set -euo pipefail

N=${N:-30}
WARMUP=${WARMUP:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$repo/bench/results/run.md}

[ "$(id -u)" = 0 ] || { echo "bench/run-container.sh: needs root" >&2; exit 1; }
for tool in podman crun jq /bin/busybox; do
  command -v "$tool" >/dev/null || { echo "bench/run-container.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
# Host quirks DESIGN.md lists (scripts/setup.sh does the same).
if [ -d /sys/fs/cgroup/cpu ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
if [ ! -f /etc/containers/containers.conf ] || ! grep -q '^default_ulimits' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n' >> /etc/containers/containers.conf
fi

echo "bench: building the release isola" >&2
(cd "$repo" && cargo build --release -q -p isola)
isola="$repo/target/release/isola"

work=$(mktemp -d /var/tmp/isola-bench-run.XXXXXX)
iroot="$work/isola-root"
image=localhost/isola-bench-busybox:latest
cleanup() {
  for id in $("$isola" --root "$iroot" ps -aq --no-trunc 2>/dev/null); do
    "$isola" --root "$iroot" rm -f "$id" >/dev/null 2>&1 || true
  done
  # The root's networks have bridges on the host: they go with it.
  for b in $(jq -r .Bridge "$iroot"/networks/*.json 2>/dev/null); do ip link delete "$b" 2>/dev/null || true; done
  podman rmi -f "$image" >/dev/null 2>&1 || true
  for id in $(crun --root "$work/crun-state" list -q 2>/dev/null); do
    crun --root "$work/crun-state" delete -f "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# One rootfs: busybox-static with its applet links.
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,var,home}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .

"$isola" --root "$iroot" import "$work/rootfs.tar" busybox:latest >/dev/null
podman import -q "$work/rootfs.tar" "$image" >/dev/null
# The floor: crun's default spec (namespaces, mounts, masked paths) running
# `true`, with the seccomp profile isola gives its containers (so both install
# the same filter; podman brings its own default profile).
cid=$("$isola" --root "$iroot" create busybox true)
jq '.linux.seccomp' "$iroot/containers/$cid/bundle/config.json" >"$work/seccomp.json"
"$isola" --root "$iroot" rm "$cid" >/dev/null
(cd "$work/bundle" && crun spec)
jq --slurpfile sc "$work/seccomp.json" '.process.terminal = false | .process.args = ["true"] | .linux.seccomp = $sc[0]' \
  "$work/bundle/config.json" >"$work/bundle/config.tmp"
mv "$work/bundle/config.tmp" "$work/bundle/config.json"

# Same network choice for the first three: none (crun's spec has a new netns
# and no interface). Then isola and podman each on their default bridge
# network (the CNI chain or netavark, an address, NAT rules, a veth).
run_isola()  { "$isola" --root "$iroot" run --rm --network none busybox true; }
run_podman() { podman run --rm --runtime crun --network none "$image" true; }
run_crun()   { crun --root "$work/crun-state" run --bundle "$work/bundle" "bench-$1"; }
run_isola_bridge()  { "$isola" --root "$iroot" run --rm busybox true; }
run_podman_bridge() { podman run --rm --runtime crun --network bridge "$image" true; }

# once TOOL I: prints the wall time in nanoseconds; fails if the run fails.
once() {
  local t0 t1
  t0=$(date +%s%N)
  if ! "run_$1" "$2" </dev/null >/dev/null 2>>"$work/$1.err"; then
    echo "bench: $1 failed:" >&2; tail -5 "$work/$1.err" >&2; return 1
  fi
  t1=$(date +%s%N)
  echo $(( t1 - t0 ))
}

tools=(isola podman crun isola_bridge podman_bridge)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$WARMUP"); do
  for t in "${tools[@]}"; do once "$t" "w$i" >/dev/null; done
done
for t in "${tools[@]}"; do : >"$work/$t.ns"; done
for i in $(seq 1 "$N"); do
  for t in "${tools[@]}"; do once "$t" "$i" >>"$work/$t.ns"; done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# pct FILE P: the P-th percentile (nearest rank) in milliseconds, 2 decimals.
pct() {
  sort -n "$1" | awk -v p="$2" '{v[NR]=$1} END {i=int((p/100)*NR+0.999999); if (i<1) i=1; printf "%.2f", v[i]/1e6}'
}
declare -A med p90
for t in "${tools[@]}"; do
  med[$t]=$(pct "$work/$t.ns" 50)
  p90[$t]=$(pct "$work/$t.ns" 90)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

mkdir -p "$(dirname "$OUT")"
{
  echo "# run --rm busybox true: isola vs podman vs bare crun"
  echo
  echo "Measured by \`bench/run-container.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r),"
  echo "$N interleaved runs each after $WARMUP warm-up runs; release build of isola;"
  echo "podman $(podman --version | awk '{print $3}') with crun $(crun --version | head -1 | awk '{print $3}'); the same busybox rootfs tar imported into both stores."
  echo "Each run is the whole cycle a user waits for: create from the image, start, wait for \`true\` to exit, remove."
  echo "\`crun run\` of a prepared bundle (no image store, no snapshot, no monitor) is the floor; it installs the seccomp profile isola gives its containers, podman its own default one."
  echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after. The machine is shared:"
  echo "isola's cycle hands off between more processes (CLI, monitor, runtime) than crun's, so it"
  echo "suffers more from a busy CPU; compare runs made at a similar load."
  echo
  echo "Without networking (\`--network none\` for isola and podman):"
  echo
  echo "| tool | median (ms) | p90 (ms) | median vs crun | median vs podman |"
  echo "|---|---:|---:|---:|---:|"
  for t in isola podman crun; do
    echo "| $t | ${med[$t]} | ${p90[$t]} | $(ratio "${med[$t]}" "${med[crun]}")x | $(ratio "${med[$t]}" "${med[podman]}")x |"
  done
  echo
  echo "On each one's default bridge network (isola: CNI bridge + host-local + portmap + firewall + tuning;"
  echo "podman: its $(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null) backend), the same cycle:"
  echo
  echo "| tool | median (ms) | p90 (ms) | median vs podman |"
  echo "|---|---:|---:|---:|"
  for t in isola_bridge podman_bridge; do
    echo "| ${t/_/ --network } | ${med[$t]} | ${p90[$t]} | $(ratio "${med[$t]}" "${med[podman_bridge]}")x |"
  done
} >"$OUT"
cat "$OUT"
