#!/usr/bin/env bash
# isola's demonstration (see ../shared/DESIGN.md). Process isolation: a
# busybox container pinging localhost is an ordinary host process, and
# `isola top` shows the same pid the host's `ps` and `pgrep` see. VM
# isolation: the same image pings inside its own utility VM; `isola top`
# shows guest pids, the host has no such ping, only the VM worker named
# after the container, and `uname -r` inside is the guest kernel's.
# Called by `make demo` after the release build, as root. Grows with each
# isolation mode that exists.
set -euo pipefail
cd "$(dirname "$0")/.."

ISOLA=${ISOLA:-$PWD/target/release/isola}
export ISOLA_ROOT=${ISOLA_ROOT:-/var/lib/isola}

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
isola() { printf '\033[36m$ isola %s\033[0m\n' "$*"; "$ISOLA" "$@"; }

# A local busybox image, made from Debian's busybox-static, when the store lacks one.
ensure_busybox() {
  if "$ISOLA" image inspect busybox:latest >/dev/null 2>&1; then
    return
  fi
  say "importing a busybox image from Debian's busybox-static (/bin/busybox)"
  local rootfs
  rootfs=$(mktemp -d /tmp/isola-demo-rootfs.XXXXXX)
  mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,var,home}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | "$ISOLA" import - busybox:latest
  rm -rf "$rootfs"
}

ensure_busybox

id=""
cleanup() { [ -n "$id" ] && "$ISOLA" rm -f "$id" >/dev/null 2>&1 || true; }
trap cleanup EXIT

say "process isolation: busybox pings localhost in its own namespaces, on the host kernel"
printf '\033[36m$ %s\033[0m\n' "isola run -d busybox ping localhost"
id=$("$ISOLA" run -d busybox ping localhost)
echo "${id:0:12}"
sleep 1
isola ps
isola logs --tail 3 "${id:0:12}"

say "isola top: the PIDs as the host sees them"
isola top "${id:0:12}"
pid=$("$ISOLA" inspect --format '{{.State.Pid}}' "$id")

say "the same process in the host's ps and pgrep: an ordinary host process"
show ps -o pid,comm -p "$pid"
show pgrep -x ping
if pgrep -x ping | grep -qx "$pid"; then
  echo "=> pid $pid is the container's ping, seen directly by the host"
else
  echo "demo: pid $pid from isola top is not in pgrep's output" >&2
  exit 1
fi

say "stop and remove it"
isola stop -t 1 "${id:0:12}"
isola rm "${id:0:12}"
id=""
isola ps -a

# ---- VM isolation: the same image, in a utility VM with its own kernel ----
if ! "$ISOLA" info | grep '^VM Kernel: /' >/dev/null; then
  say "VM isolation: no guest kernel (run scripts/guest-kernel.sh) ($("$ISOLA" info | sed -n 's/^VM Kernel: //p'))"
  exit 1
fi

say "VM isolation: the same busybox ping, in its own utility VM (QEMU microvm, its own guest kernel)"
isola info 2>/dev/null | grep -E '^(VM |Default Isolation)'
printf '\033[36m$ %s\033[0m\n' "isola run -d --isolation=vm busybox ping localhost"
id=$("$ISOLA" run -d --isolation=vm busybox ping localhost)
echo "${id:0:12}"
for _ in $(seq 100); do
  "$ISOLA" logs "$id" 2>/dev/null | grep 'bytes from' >/dev/null && break
  sleep 0.2
done
isola ps
isola logs --tail 3 "${id:0:12}"

say "isola top: the PIDs inside the utility VM"
isola top "${id:0:12}"

say "the host's pgrep finds no ping of this container: it runs in the guest"
qemu=$("$ISOLA" inspect --format '{{.State.Pid}}' "$id")
show pgrep -x ping || true
for p in $(pgrep -x ping || true); do
  if grep -q "$id" "/proc/$p/cgroup" 2>/dev/null; then
    echo "demo: host pid $p is this container's ping" >&2
    exit 1
  fi
done
echo "=> none of the host's ping processes (if any, from other containers) belong to ${id:0:12}"

say "ps shows the VM worker for that container instead (named after its id)"
show ps -o pid,rss,comm -p "$qemu"

say "its own kernel: uname -r inside the VM, and on the host"
isola exec "${id:0:12}" uname -r
show uname -r
isola inspect --format '{{.ConsoleLogPath}}' "${id:0:12}"

say "stop and remove it: no QEMU, socket or cgroup is left"
isola stop -t 1 "${id:0:12}"
isola rm "${id:0:12}"
id=""
if kill -0 "$qemu" 2>/dev/null; then
  echo "demo: QEMU $qemu still runs after rm" >&2
  exit 1
fi
isola ps -a

# ---- Networking: both modes on one network ----
say "networking: a user network, a web server in a VM with a published port, a process container as its client"
net=isola-demo
cid=""
www=$(mktemp -d /tmp/isola-demo-www.XXXXXX)
echo "hello from a VM container" >"$www/index.html"
cleanup() {
  for c in "$id" "$cid"; do [ -n "$c" ] && "$ISOLA" rm -f "$c" >/dev/null 2>&1; done
  "$ISOLA" network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$www"
}
"$ISOLA" network rm "$net" >/dev/null 2>&1 || true
isola network create "$net"
printf '\033[36m$ %s\033[0m\n' "isola run -d --name demo-web --isolation=vm --network $net -p 127.0.0.1:18080:80 -v $www:/www:ro busybox httpd -f -p 80 -h /www"
"$ISOLA" rm -f demo-web >/dev/null 2>&1 || true
id=$("$ISOLA" run -d --name demo-web --isolation=vm --network "$net" -p 127.0.0.1:18080:80 -v "$www:/www:ro" busybox httpd -f -p 80 -h /www)
isola ps
isola port demo-web
say "the host fetches the published port; a process container fetches the VM by name"
# httpd in the guest listens a moment after the VM is up.
for _ in $(seq 50); do
  busybox wget -q -O /dev/null http://127.0.0.1:18080/ 2>/dev/null && break
  sleep 0.2
done
show timeout 10 busybox wget -q -O - http://127.0.0.1:18080/ || { echo "demo: the published port did not answer" >&2; exit 1; }
printf '\033[36m$ %s\033[0m\n' "isola run --rm --network $net busybox wget -q -O - http://demo-web/"
"$ISOLA" run --rm --network "$net" busybox sh -c 'timeout 10 wget -q -O - http://demo-web/' \
  || { echo "demo: the process container did not reach demo-web by name" >&2; exit 1; }
isola inspect --format '{{.NetworkSettings.IPAddress}}' demo-web
isola rm -f demo-web
id=""
isola network rm "$net"
rm -rf "$www"
