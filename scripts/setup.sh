#!/usr/bin/env bash
# Installs what isola's demo, tests and benchmarks need on a fresh Debian 12 machine,
# and prepares the host quirks DESIGN.md lists. Idempotent: a second run does nothing slow.
set -euo pipefail

PACKAGES=(crun runc containerd skopeo umoci docker-registry busybox-static podman
          libseccomp-dev pkg-config hyperfine jq iproute2 procps util-linux
          qemu-system-x86 cpio erofs-utils e2fsprogs apache2-utils openssl tini
          linux-source-6.1 build-essential bc flex bison libelf-dev libssl-dev xz-utils
          containernetworking-plugins iptables curl protobuf-compiler)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# crun refuses the hybrid cgroup v1 layout here until hugetlb has a v1 hierarchy.
if [ -d /sys/fs/cgroup/cpu ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null || true
fi

# podman cannot raise rlimits here (no CAP_SYS_RESOURCE); tell it not to try.
if [ ! -f /etc/containers/containers.conf ] || ! grep -q '^default_ulimits' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n' >> /etc/containers/containers.conf
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# VM mode runs foreign-architecture images with Debian's static user-mode
# emulators, inside the utility VM only: the package is unpacked into the
# cache, never installed (installing it would register the emulators with
# the host's binfmt_misc, running foreign binaries on the host's kernel).
CACHE=${CACHE:-/var/cache/isola}
fetch_deb() { # package[:arch] destination
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$1" >/dev/null 2>&1) || {
    # A foreign architecture's package lists may be missing: add them once.
    case "$1" in *:*) dpkg --add-architecture "${1#*:}"; apt-get update -q >/dev/null;; esac
    (cd "$tmp" && apt-get download -q "$1" >/dev/null)
  }
  mkdir -p "$2.tmp" && dpkg -x "$tmp"/*.deb "$2.tmp" && rm -rf "$2" && mv "$2.tmp" "$2"
  rm -rf "$tmp"
}
if [ ! -x "$CACHE/qemu-user/usr/bin/qemu-aarch64-static" ]; then
  echo "setup: unpacking qemu-user-static into $CACHE/qemu-user (for foreign images in VM mode)"
  fetch_deb qemu-user-static "$CACHE/qemu-user"
fi
# The tests' arm64 image is Debian's arm64 busybox-static.
if [ ! -x "$CACHE/fixtures/busybox-arm64/bin/busybox" ]; then
  echo "setup: fetching busybox-static:arm64 (the foreign-architecture test image)"
  mkdir -p "$CACHE/fixtures"
  fetch_deb busybox-static:arm64 "$CACHE/fixtures/busybox-arm64"
fi
# The docker client (never the engine) for the Docker Engine API tests: taken
# out of Debian's docker.io package, not installed, so no dockerd ever runs.
DOCKER_CLIENT_DIR=/var/cache/isola/docker-client
if [ ! -x "$DOCKER_CLIENT_DIR/usr/bin/docker" ]; then
  echo "setup: fetching the docker client into $DOCKER_CLIENT_DIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download -q docker.io >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q docker.io >/dev/null; }; })
  mkdir -p "$DOCKER_CLIENT_DIR.tmp"
  dpkg -x "$tmp"/docker.io_*.deb "$DOCKER_CLIENT_DIR.tmp"
  # Only the client: nothing else of the package is kept.
  mkdir -p "$DOCKER_CLIENT_DIR/usr/bin"
  mv "$DOCKER_CLIENT_DIR.tmp/usr/bin/docker" "$DOCKER_CLIENT_DIR/usr/bin/docker"
  rm -rf "$DOCKER_CLIENT_DIR.tmp" "$tmp"
fi
# docker-compose 1.29 and docker-py for the API's client tests. Without
# --no-install-recommends apt would bring docker.io, and with it a dockerd.
for p in docker-compose python3-docker; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "setup: installing $p (no recommends: never docker.io's daemon)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
  fi
done
if dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q "install ok installed"; then
  echo "setup: docker.io is installed (a dockerd may run); isola's tests never use it" >&2
fi
