#!/usr/bin/env bash
# bench/runtime.sh: times a full container cycle (create -> start -> the
# process `true` exits -> delete) through isola-runtime, crun and runc, on the
# same busybox bundle, N times each (default 50; N=200 bench/runtime.sh),
# interleaved round-robin so that all three share the machine's noise.
# Writes a markdown table of medians, p90 and ratios vs crun to
# bench/results/runtime.md (OUT=path to write elsewhere). Needs root.
#
# Each cycle is the same two commands for every runtime:
#   <rt> --root <dir> run --bundle <bundle> <id>   (create, start, wait for exit)
#   <rt> --root <dir> delete --force <id>          (a no-op error for runc/crun,
#                                                   whose `run` already deleted)
#
# The state roots (--root) are measured in two places (STATE_ON="tmpfs disk"):
# on a tmpfs, as in a normal deployment (/run is a tmpfs, and runc, crun and
# containerd keep state there), and on the disk (here /run and /tmp are ext4),
# where a runtime that fsyncs its state pays for it.
set -euo pipefail

N=${N:-50}
WARMUP=${WARMUP:-3}
read -r -a runtimes <<< "${RUNTIMES:-isola crun runc}"   # a subset, for trying the script out
read -r -a places <<< "${STATE_ON:-tmpfs disk}"
repo=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$repo/bench/results/runtime.md}

[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: needs root (containers, cgroups)" >&2; exit 1; }
for tool in crun runc jq /bin/busybox; do
  command -v "$tool" >/dev/null || { echo "bench/runtime.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

# crun refuses this hybrid cgroup layout until hugetlb has a v1 hierarchy (see DESIGN.md).
if [ -d /sys/fs/cgroup/cpu ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

isola="$repo/target/release/isola-runtime"
if [[ " ${runtimes[*]} " == *" isola "* ]]; then
  echo "bench: building the release isola-runtime" >&2
  (cd "$repo" && cargo build --release -q -p runtime-cli)
fi

binary() { case $1 in isola) echo "$isola" ;; *) echo "$1" ;; esac; }
work=$(mktemp -d /tmp/isola-bench.XXXXXX)
cleanup() {
  for place in "${places[@]}"; do
    for rt in "${runtimes[@]}"; do
      bin=$(binary "$rt")
      for id in $("$bin" --root "$work/$place/root-$rt" list -q 2>/dev/null || true); do
        "$bin" --root "$work/$place/root-$rt" delete --force "$id" >/dev/null 2>&1 || true
      done
    done
  done
  if mountpoint -q "$work/tmpfs"; then umount "$work/tmpfs"; fi
  rm -rf "$work"
}
trap cleanup EXIT
for place in "${places[@]}"; do
  mkdir -p "$work/$place"
  [ "$place" = tmpfs ] && mount -t tmpfs -o size=64m,mode=700 isola-bench "$work/tmpfs"
done

# One bundle: busybox-static with its applet links, config from `runc spec`.
bundle="$work/bundle"
mkdir -p "$bundle/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
(cd "$bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["true"]' "$bundle/config.json" > "$bundle/config.tmp"
mv "$bundle/config.tmp" "$bundle/config.json"

# cycle PLACE RT ID: prints the cycle's wall time in nanoseconds; fails if `run` does.
cycle() {
  local bin root t0 t1
  bin=$(binary "$2"); root="$work/$1/root-$2"
  t0=$(date +%s%N)
  if ! "$bin" --root "$root" run --bundle "$bundle" "$3" </dev/null >/dev/null 2>>"$work/$2.err"; then
    echo "bench: $2 run $3 failed:" >&2; tail -n 5 "$work/$2.err" >&2; return 1
  fi
  "$bin" --root "$root" delete --force "$3" >/dev/null 2>&1 || true
  t1=$(date +%s%N)
  echo $((t1 - t0))
}

for place in "${places[@]}"; do
  for ((i = 0; i < WARMUP; i++)); do
    for rt in "${runtimes[@]}"; do cycle "$place" "$rt" "warm-$rt-$i" >/dev/null; done
  done
  echo "bench: state on $place: $N cycles per runtime, interleaved" >&2
  for ((i = 0; i < N; i++)); do
    for rt in "${runtimes[@]}"; do cycle "$place" "$rt" "bench-$rt-$i" >> "$work/$place-$rt.ns"; done
  done
done

# stats FILE: "median p90 mean" in ms (nearest-rank percentiles).
stats() {
  sort -n "$1" | awk '{ v[NR] = $1; s += $1 }
    END { m = int((NR + 1) / 2); p = int(NR * 0.9 + 0.999999); if (p < 1) p = 1;
          printf "%.2f %.2f %.2f\n", v[m] / 1e6, v[p] / 1e6, s / NR / 1e6 }'
}

table() {
  local place=$1 crun_median= median p90 mean name ratio
  [ -s "$work/$place-crun.ns" ] && read -r crun_median _ _ < <(stats "$work/$place-crun.ns")
  echo "| runtime | median (ms) | p90 (ms) | mean (ms) | median vs crun |"
  echo "|---|---:|---:|---:|---:|"
  for rt in "${runtimes[@]}"; do
    read -r median p90 mean < <(stats "$work/$place-$rt.ns")
    name=$rt; [ "$rt" = isola ] && name=isola-runtime
    ratio=n/a
    [ -n "$crun_median" ] && ratio=$(awk -v a="$median" -v b="$crun_median" 'BEGIN { printf "%.2fx", a / b }')
    echo "| $name | $median | $p90 | $mean | $ratio |"
  done
}

{
  echo "# isola-runtime vs crun vs runc: full container cycle"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/Mem:/ { print $2 }') GiB, kernel $(uname -r), cgroups $( [ -d /sys/fs/cgroup/cpu ] && echo 'v1 (hybrid)' || echo v2), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- versions: isola-runtime $(git -C "$repo" rev-parse --short HEAD) (release build), $(crun --version | head -n1), $(runc --version | head -n1)"
  echo "- command: \`N=$N bench/runtime.sh\` ($N cycles per runtime after $WARMUP warm-up cycles, round-robin)"
  echo "- cycle: \`<rt> --root <dir> run --bundle <busybox bundle> <id>\` (process \`true\`, config from \`runc spec\` with terminal off) then \`<rt> delete --force <id>\`"
  echo "- note: on cgroup v1 a pid written to cgroup.procs waits for an RCU grace period (about 10 ms) unless another such write came within the last one; crun and runc pay it (and can share it when their cycles follow each other closely), isola-runtime's child moves itself (\"0\" to \`tasks\`) and never does"
  for place in "${places[@]}"; do
    echo
    case $place in
      tmpfs) echo "## State root on a tmpfs (as /run on a normal host)" ;;
      disk) echo "## State root on the disk (ext4, as /run and /tmp are on this machine)" ;;
    esac
    echo
    table "$place"
  done
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
