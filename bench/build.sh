#!/usr/bin/env bash
# bench/build.sh: the same Dockerfile (three RUN and two COPY steps over a
# context of 3,000 small files) built by
#   isola build                 (process isolation; and --isolation vm, reported against it)
# versus
#   buildah bud --layers        (Debian's buildah, overlay storage, its default OCI isolation)
# cold (--no-cache: every step runs, the base image already local) and
# cached (nothing changed: every step from the cache), N times each
# (default 5; N=9 bench/build.sh), alternating, in the same run. Both take
# busybox from the same docker-registry on 127.0.0.1 (pulled once, before
# the timings). Writes a markdown table of medians and ratios to
# bench/results/build.md (OUT=path to write elsewhere). Needs root.
set -euo pipefail
shopt -s inherit_errexit

N=${N:-5}
VM_N=${VM_N:-3}
FILES=${FILES:-3000}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/registry.sh
. "$repo/bench/registry.sh"
OUT=${OUT:-$repo/bench/results/build.md}

[ "$(id -u)" = 0 ] || { echo "bench/build.sh: needs root" >&2; exit 1; }
if ! command -v buildah >/dev/null; then
  echo "bench: installing buildah (Debian)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends buildah >/dev/null
fi
for tool in skopeo /usr/bin/docker-registry python3 buildah; do
  command -v "$tool" >/dev/null || { echo "bench/build.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

echo "bench: building the release isola" >&2
(cd "$repo" && cargo build --release -q -p isola)
isola="$repo/target/release/isola"

work=$(mktemp -d /tmp/isola-bench-build.XXXXXX)
registry_pid=
storage="$work/buildah-storage"
runroot="$work/buildah-run"
buildah_() { buildah --root "$storage" --runroot "$runroot" --storage-driver overlay "$@"; }
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  buildah_ rm --all >/dev/null 2>&1 || true
  buildah_ rmi --all --force >/dev/null 2>&1 || true
  umount -R "$storage/overlay" 2>/dev/null || true
  for id in $("$isola" --root "$work/isola-root" ps -aq --no-trunc 2>/dev/null); do
    "$isola" --root "$work/isola-root" rm -f "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# --- busybox, from the tests' image maker, in a registry on loopback
start_registry "$work"
base="127.0.0.1:$port/busybox:latest"
# busybox-static with its applet links, imported by isola and pushed by it.
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
seed="$work/isola-seed"
"$isola" --root "$seed" import "$work/rootfs.tar" "$base" >/dev/null
"$isola" --root "$seed" push -q "$base" >/dev/null

# --- the context
ctx="$work/ctx"
mkdir -p "$ctx/src"
python3 - "$ctx/src" "$FILES" <<'PY'
import os, sys
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(out, f"d{i // 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i}\n" * (1 + i % 20))
PY
echo "setting=1" > "$ctx/app.conf"
cat > "$ctx/Dockerfile" <<EOF
FROM $base
COPY src/ /src/
RUN find /src -type f | wc -l > /count
RUN mkdir /gen && for i in \$(seq 500); do echo \$i > /gen/f\$i; done
COPY app.conf /etc/app.conf
RUN cat /etc/app.conf /count > /summary
CMD ["cat", "/summary"]
EOF

# --- the runs, alternating
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN {printf "%.2f\n", a - b}'; }
iroot="$work/isola-root"
"$isola" --root "$iroot" pull -q "$base" >/dev/null
buildah_ pull -q --tls-verify=false "$base" >/dev/null
# Each tool must have built the image: it prints the files it counted.
check() {
  [ "$2" = "setting=1
$FILES" ] || { echo "bench: $1 built a wrong image: $2" >&2; exit 1; }
}
isola_build() {
  local t0; t0=$(now)
  "$isola" --root "$iroot" build -q --network none "$@" -t bench:isola "$ctx" >/dev/null
  since "$t0"
}
buildah_build() {
  local t0; t0=$(now)
  buildah_ bud -q --layers --network none --tls-verify=false "$@" -t bench:buildah "$ctx" >/dev/null 2>&1
  since "$t0"
}
sync
ic=() bc=() ih=() bh=() vc=()
for i in $(seq "$N"); do
  t=$(isola_build --no-cache);   ic+=("$t"); echo "bench: isola cold    run $i: ${t}s" >&2
  t=$(buildah_build --no-cache); bc+=("$t"); echo "bench: buildah cold  run $i: ${t}s" >&2
  t=$(isola_build);              ih+=("$t"); echo "bench: isola cached  run $i: ${t}s" >&2
  t=$(buildah_build);            bh+=("$t"); echo "bench: buildah cached run $i: ${t}s" >&2
done
check isola "$("$isola" --root "$iroot" run --rm --isolation process bench:isola)"
check buildah "$(buildah_ run "$(buildah_ from -q bench:buildah)" cat /summary)"
vm=no
if "$isola" --root "$iroot" info --format json | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["Vm"]["Kernel"].startswith("missing"))'; then
  vm=yes
  for i in $(seq "$VM_N"); do
    t=$(isola_build --no-cache --isolation vm); vc+=("$t"); echo "bench: isola vm cold run $i: ${t}s" >&2
  done
  check "isola (vm)" "$("$isola" --root "$iroot" run --rm --isolation process bench:isola)"
fi

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mic=$(median "${ic[@]}"); mbc=$(median "${bc[@]}"); mih=$(median "${ih[@]}"); mbh=$(median "${bh[@]}")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
accel=$("$isola" --root "$iroot" info --format json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("VmAcceleration","?").upper())')
mkdir -p "$(dirname "$OUT")"
{
  echo "# Image build: isola build vs buildah bud"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- machine: $(nproc) CPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
  echo "- Dockerfile: FROM busybox, COPY of $FILES small files, three RUN steps, one more COPY, CMD (bench/build.sh writes it); busybox from docker-registry on 127.0.0.1, pulled by each tool before the timings"
  echo "- command: \`N=$N bench/build.sh\` ($N runs each, alternating; release build)"
  echo "- isola: \`isola build [--no-cache] -t bench:isola CTX\` (RUN steps in process isolation, \`--network none\`)"
  echo "- peer: \`buildah bud --layers [--no-cache] -t bench:buildah CTX\` (buildah $(buildah --version | awk '{print $3}'), overlay storage, OCI isolation with its runtime, \`--network none\`; \`--layers\` so that it caches steps as isola does)"
  echo
  echo "| build | isola median (s) | buildah median (s) | ratio isola / buildah | isola runs (s) | buildah runs (s) |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| cold (--no-cache) | $mic | $mbc | **$(ratio "$mic" "$mbc")** | ${ic[*]} | ${bc[*]} |"
  echo "| cached (nothing changed) | $mih | $mbh | **$(ratio "$mih" "$mbh")** | ${ih[*]} | ${bh[*]} |"
  if [ "$vm" = yes ]; then
    mvc=$(median "${vc[@]}")
    echo
    echo "VM isolation (\`isola build --no-cache --isolation vm\`, each RUN step in its own utility VM, $accel): median **$mvc s** over $VM_N runs (${vc[*]}), **$(ratio "$mvc" "$mic")×** the process-mode cold build."
  fi
  echo
  echo "Below 1 means isola is faster. Cold builds vary from run to run on this shared machine (each writes thousands of small files; ext4 writeback and journal commits land in some runs and not others): read the medians side by side, not alone. isola writes a COPY straight into its layer (each file created once, when the layer is unpacked); buildah copies into its container and diffs it."
} > "$OUT"
cat "$OUT"
