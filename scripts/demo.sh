#!/usr/bin/env bash
# isola's demonstration (see ../shared/DESIGN.md), process-isolation half:
# a busybox container pinging localhost is an ordinary host process, and
# `isola top` shows the same pid the host's `ps` and `pgrep` see.
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
