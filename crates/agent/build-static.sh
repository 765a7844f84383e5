#!/usr/bin/env bash
# Builds the guest agent as the utility VM's /init: statically linked (glibc's
# libc.a and libseccomp.a; the initramfs holds no libraries), size-optimized
# (the binary is loaded into every VM's memory twice: QEMU maps the initramfs
# and the guest unpacks it). Prints the binary's path on stdout.
#
#   crates/agent/build-static.sh          # release: what isola ships and bench/vm.sh uses
#   crates/agent/build-static.sh --debug  # what the vm tests use (faster to build)
# The vm library finds target/x86_64-unknown-linux-gnu/{release,debug}/agent next to
# the running binary's target dir, or takes ISOLA_AGENT / an explicit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-unknown-linux-gnu
export LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu
if [ "${1:-}" = --debug ]; then
  RUSTFLAGS="-C target-feature=+crt-static -C strip=debuginfo" \
    "${CARGO:-cargo}" build -q -p agent --target "$target"
  echo "$PWD/target/$target/debug/agent"
else
  CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=fat \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort \
  RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" \
    "${CARGO:-cargo}" build -q --release -p agent --target "$target"
  echo "$PWD/target/$target/release/agent"
fi
