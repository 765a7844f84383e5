#!/usr/bin/env bash
# Installs what isola's demo, tests and benchmarks need on a fresh Debian 12 machine,
# and prepares the host quirks DESIGN.md lists. Idempotent: a second run does nothing slow.
set -euo pipefail

PACKAGES=(crun runc containerd skopeo umoci docker-registry busybox-static podman
          libseccomp-dev pkg-config hyperfine jq iproute2 procps util-linux
          qemu-system-x86 cpio apache2-utils openssl tini
          linux-source-6.1 build-essential bc flex bison libelf-dev libssl-dev xz-utils
          containernetworking-plugins iptables)

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
