#!/usr/bin/env bash
# bench/pull.sh: pull and unpack the same generated image (about 60 MB over six
# layers: busybox plus five layers of incompressible data) from a local Debian
# docker-registry on 127.0.0.1, with
#   isola --root <fresh dir> pull 127.0.0.1:<port>/big:latest        (pull + unpack)
# versus
#   podman --root <fresh dir> pull 127.0.0.1:<port>/big:latest       (pull + per-layer unpack
#                                                                     into its own overlay storage: the same work)
# and
#   skopeo copy docker://127.0.0.1:<port>/big:latest oci:<dir>:big &&
#   umoci unpack --image <dir>:big <bundle>                          (pull + one flattened rootfs)
# N times each (default 5; N=9 bench/pull.sh), alternating, each into a fresh
# directory, in the same run. Writes a markdown table of medians and the
# ratio to bench/results/pull.md (OUT=path to write elsewhere). Needs root
# (umoci and isola keep file ownership).
set -euo pipefail
shopt -s inherit_errexit

N=${N:-5}
LAYERS=${LAYERS:-5}          # data layers besides busybox
LAYER_MB=${LAYER_MB:-12}     # MB of random data per data layer
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/registry.sh
. "$repo/bench/registry.sh"
OUT=${OUT:-$repo/bench/results/pull.md}

[ "$(id -u)" = 0 ] || { echo "bench/pull.sh: needs root" >&2; exit 1; }
for tool in skopeo umoci podman /usr/bin/docker-registry python3 /bin/busybox; do
  command -v "$tool" >/dev/null || { echo "bench/pull.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

echo "bench: building the release isola" >&2
(cd "$repo" && cargo build --release -q -p isola)
isola="$repo/target/release/isola"

work=$(mktemp -d /tmp/isola-bench-pull.XXXXXX)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the image: an OCI layout written by a small script (sha256, gzip, tar)
echo "bench: generating the image ($LAYERS x ${LAYER_MB} MB + busybox)" >&2
python3 - "$work/layout" "$LAYERS" "$LAYER_MB" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
out, layers, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{out}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d
def layer(add):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        add(t)
    raw = buf.getvalue()
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    return "sha256:" + hashlib.sha256(raw).hexdigest(), gz
def busybox(t):
    for d in ["bin", "etc", "tmp", "root"]:
        i = tarfile.TarInfo(d); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    t.add("/bin/busybox", "bin/busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a == "busybox": continue
        i = tarfile.TarInfo("bin/" + a); i.type = tarfile.SYMTYPE; i.linkname = "busybox"; t.addfile(i)
    for name, text in [("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")]:
        b = text.encode(); i = tarfile.TarInfo(name); i.size = len(b); t.addfile(i, io.BytesIO(b))
def data(n):
    def add(t):
        d = tarfile.TarInfo(f"data{n}"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
        # Files of 1-4 MB of random bytes: incompressible, like binaries and media.
        left, k = mb << 20, 0
        while left > 0:
            size = min(left, (1 + k % 4) << 20)
            i = tarfile.TarInfo(f"data{n}/file{k}.bin"); i.size = size; i.mode = 0o644
            t.addfile(i, io.BytesIO(os.urandom(size)))
            left -= size; k += 1
    return add
descs, diff_ids = [], []
for add in [busybox] + [data(n) for n in range(layers)]:
    diff, gz = layer(add)
    diff_ids.append(diff)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)})
config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
    "layers": descs}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": blob(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "big"}}]}
json.dump(index, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print(sum(d["size"] for d in descs) >> 20, file=sys.stderr)
PY
image_mb=$(du -sm "$work/layout/blobs" | cut -f1)

# --- the registry
start_registry "$work"
ref="127.0.0.1:$port/big:latest"
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/layout:big" "docker://$ref"

# --- the runs, alternating
now() { date +%s.%N; }
# Both must have unpacked the whole image, or the timing means nothing.
check_size() {
  local mb; mb=$(du -sm "$2" | cut -f1)
  [ "$mb" -ge $((LAYERS * LAYER_MB)) ] || { echo "bench: $1 unpacked only $mb MB into $2" >&2; exit 1; }
}
run_isola() {
  local root="$work/isola-$1"
  local t0; t0=$(now)
  "$isola" --root "$root" pull -q "$ref" >/dev/null
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.2f\n", a - b}'
  check_size isola "$root/image/layers"
  rm -rf "$root"
}
run_peer() {
  local dir="$work/peer-$1"
  mkdir -p "$dir"
  local t0; t0=$(now)
  skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$ref" "oci:$dir/oci:big" >/dev/null
  umoci unpack --image "$dir/oci:big" "$dir/bundle" >/dev/null 2>&1
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.2f\n", a - b}'
  check_size "skopeo + umoci" "$dir/bundle/rootfs"
  rm -rf "$dir"
}
run_podman() {
  local dir="$work/podman-$1"
  mkdir -p "$dir"
  local t0; t0=$(now)
  podman --root "$dir/root" --runroot "$dir/run" --storage-driver overlay \
    pull -q --tls-verify=false "$ref" >/dev/null
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.2f\n", a - b}'
  check_size podman "$dir/root/overlay"
  podman --root "$dir/root" --runroot "$dir/run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
  umount -R "$dir/root/overlay" 2>/dev/null || true
  rm -rf "$dir"
}
sync
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
isola_times=() peer_times=() podman_times=()
for i in $(seq "$N"); do
  t=$(run_isola "$i");  isola_times+=("$t");  echo "bench: isola pull            run $i: ${t}s" >&2
  t=$(run_podman "$i"); podman_times+=("$t"); echo "bench: podman pull           run $i: ${t}s" >&2
  t=$(run_peer "$i");   peer_times+=("$t");   echo "bench: skopeo + umoci unpack run $i: ${t}s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
mi=$(median "${isola_times[@]}")
mp=$(median "${peer_times[@]}")
mpod=$(median "${podman_times[@]}")
ratio=$(awk -v a="$mi" -v b="$mp" 'BEGIN {printf "%.2f", a / b}')
ratio_podman=$(awk -v a="$mi" -v b="$mpod" 'BEGIN {printf "%.2f", a / b}')

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
mkdir -p "$(dirname "$OUT")"
{
  echo "# Pull and unpack: isola vs podman pull, and skopeo + umoci"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $load_before"
  echo "- machine: $(nproc) CPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
  echo "- image: busybox + $LAYERS layers of $LAYER_MB MB random data, ${image_mb} MB of gzip blobs, from docker-registry $(/usr/bin/docker-registry --version | awk '{print $3}') on 127.0.0.1"
  echo "- command: \`N=$N bench/pull.sh\` ($N runs each, alternating, each into a fresh directory; release build)"
  echo "- isola: \`isola --root <fresh> pull -q $ref\` (download, verify, unpack)"
  echo "- peer, the same work: \`podman --root <fresh> pull\` ($(podman --version | awk '{print $3}'), overlay storage: download, verify, unpack each layer into its own directory, as isola does)"
  echo "- second peer, different work: \`skopeo copy docker://... oci:<dir>:big && umoci unpack --image <dir>:big <bundle>\` ($(skopeo --version | awk '{print $3}'), umoci $(umoci --version | awk '{print $3}')): one flattened rootfs, no per-layer snapshots"
  echo
  echo "| tool | median (s) | runs (s) |"
  echo "|---|---:|---|"
  echo "| isola pull | $mi | ${isola_times[*]} |"
  echo "| podman pull | $mpod | ${podman_times[*]} |"
  echo "| skopeo copy + umoci unpack | $mp | ${peer_times[*]} |"
  echo
  echo "ratio isola / podman (median): **$ratio_podman**; isola / skopeo + umoci: **$ratio** (below 1 means isola is faster)"
} > "$OUT"
cat "$OUT"
