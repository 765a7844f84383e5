#!/usr/bin/env bash
# bench/api.sh: the Docker Engine API's cost. `docker run --rm --network none
# busybox true` (Debian's docker client, from scripts/setup.sh) timed through
#   isola-api   isola system service on a unix socket     (release build)
#   isola-cli   isola run --rm --network none busybox true (the same engine, no API)
#   podman-api  podman system service on a unix socket    (Debian's podman, crun)
# interleaved round-robin, N times each (default 10), after WARMUP runs.
# Writes medians, p90 and ratios to bench/results/api.md (OUT= to change).
# Needs root. Each service has its own root under a temp dir (podman: its
# own --root/--runroot, so nothing of the host's podman store is touched);
# the same busybox rootfs tar is imported into both stores.
set -euo pipefail

N=${N:-10}
WARMUP=${WARMUP:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$repo/bench/results/api.md}
docker=${DOCKER:-/var/cache/isola/docker-client/usr/bin/docker}

[ "$(id -u)" = 0 ] || { echo "bench/api.sh: needs root" >&2; exit 1; }
for tool in podman crun /bin/busybox "$docker"; do
  command -v "$tool" >/dev/null || { echo "bench/api.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
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

work=$(mktemp -d /var/tmp/isola-bench-api.XXXXXX)
iroot="$work/isola-root"
podman=(podman --root "$work/podman-root" --runroot "$work/podman-run" --runtime crun --tmpdir "$work/podman-tmp")
isock="$work/isola.sock"
psock="$work/podman.sock"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for id in $("$isola" --root "$iroot" ps -aq --no-trunc 2>/dev/null); do
    "$isola" --root "$iroot" rm -f "$id" >/dev/null 2>&1 || true
  done
  "${podman[@]}" rm -af >/dev/null 2>&1 || true
  "${podman[@]}" system reset -f >/dev/null 2>&1 || true
  umount -R "$work/podman-root" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,var,home}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .

"$isola" --root "$iroot" import "$work/rootfs.tar" busybox:latest >/dev/null
# The name the docker client asks for (`busybox` is docker.io/library/busybox).
"${podman[@]}" import -q "$work/rootfs.tar" docker.io/library/busybox:latest >/dev/null

"$isola" --root "$iroot" system service --listen "unix://$isock" >"$work/isola-service.log" 2>&1 &
pids+=($!)
"${podman[@]}" system service --time 0 "unix://$psock" >"$work/podman-service.log" 2>&1 &
pids+=($!)
for s in "$isock" "$psock"; do
  for _ in $(seq 1 200); do [ -S "$s" ] && break; sleep 0.05; done
  [ -S "$s" ] || { echo "bench: no service on $s" >&2; cat "$work"/*-service.log >&2; exit 1; }
done

export DOCKER_CONFIG="$work/docker-config"
run_isola_api()  { "$docker" -H "unix://$isock" run --rm --network none busybox true; }
run_isola_cli()  { "$isola" --root "$iroot" run --rm --network none busybox true; }
run_podman_api() { "$docker" -H "unix://$psock" run --rm --network none busybox true; }
# The docker client's own floor, no request at all: what any path through
# the docker CLI pays before the service is asked anything.
run_docker_client() { "$docker" --version; }

once() {
  local t0 t1
  t0=$(date +%s%N)
  if ! "run_$1" </dev/null >/dev/null 2>>"$work/$1.err"; then
    echo "bench: $1 failed:" >&2; tail -5 "$work/$1.err" >&2; return 1
  fi
  t1=$(date +%s%N)
  echo $(( t1 - t0 ))
}

tools=(isola_api isola_cli podman_api docker_client)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$WARMUP"); do
  for t in "${tools[@]}"; do once "$t" >/dev/null; done
done
for t in "${tools[@]}"; do : >"$work/$t.ns"; done
for i in $(seq 1 "$N"); do
  for t in "${tools[@]}"; do once "$t" >>"$work/$t.ns"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

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
  echo "# docker run --rm busybox true: through isola's API, isola's CLI, podman's API"
  echo
  echo "Measured by \`bench/api.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r),"
  echo "$N interleaved runs each after $WARMUP warm-up runs; release build of isola; docker client"
  echo "$("$docker" --version | awk '{print $3}' | tr -d ,) (Debian's, no dockerd); podman $(podman --version | awk '{print $3}') with crun $(crun --version | head -1 | awk '{print $3}'),"
  echo "on its own storage root; the same busybox rootfs tar imported into both stores; \`--network none\` everywhere."
  echo "Each run is the whole cycle a user waits for: create, attach, start, wait for \`true\` to exit, remove."
  echo "How they differ: the docker client makes five or six requests (create, attach, wait, start, ...);"
  echo "isola's service answers each from the engine in-process and the container's monitor does the rest,"
  echo "as under the CLI, which makes no request at all; podman's service runs conmon and crun per"
  echo "container and applies its own default seccomp profile. Load average (1, 5, 15 min) before:"
  echo "$load_before; after: $load_after. The machine is shared: compare ratios, not absolute times."
  echo "The last row is the docker client alone (\`docker --version\`, no request): the floor of every"
  echo "path through the docker CLI, which isola's own CLI does not pay (where the rest goes:"
  echo "bench/results/api-breakdown.md)."
  echo
  echo "| path | median (ms) | p90 (ms) | median vs isola CLI | median vs podman API |"
  echo "|---|---:|---:|---:|---:|"
  for t in "${tools[@]}"; do
    label=${t/docker_client/docker client alone}; label=${label/_api/ API}; label=${label/_cli/ CLI}
    echo "| $label | ${med[$t]} | ${p90[$t]} | $(ratio "${med[$t]}" "${med[isola_cli]}")x | $(ratio "${med[$t]}" "${med[podman_api]}")x |"
  done
} >"$OUT"
cat "$OUT"
