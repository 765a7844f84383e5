#!/usr/bin/env bash
# Builds isola's guest kernel (bzImage) from Debian's linux-source-6.1 with guest/kernel.config
# applied on top of `make tinyconfig`; no modules. The result is cached outside the work tree at
#   /var/cache/isola/kernel/<sha256 of config + source version>/bzImage
# and /var/cache/isola/kernel/latest points at the newest build (the vm library looks there).
# Idempotent: when the cached kernel exists the script prints its path and exits at once.
# Prints the bzImage path as the last line of stdout; progress goes to stderr.
#
# Environment: ISOLA_CACHE (default /var/cache/isola), JOBS (default 2).
# The build runs under `nice -n 19`: the machine's cores are shared.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
config="$here/guest/kernel.config"
cache="${ISOLA_CACHE:-/var/cache/isola}/kernel"
tarball=/usr/src/linux-source-6.1.tar.xz
jobs="${JOBS:-2}"

say() { echo "guest-kernel: $*" >&2; }

if [ ! -f "$tarball" ]; then
  say "missing $tarball (install it: apt-get install linux-source-6.1 bc flex bison libelf-dev libssl-dev)"
  exit 1
fi
for tool in make gcc bc flex bison; do
  command -v "$tool" >/dev/null || { say "missing build tool '$tool' (apt-get install build-essential bc flex bison libelf-dev libssl-dev)"; exit 1; }
done

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %Y "$tarball")
key=$( { cat "$config"; echo "linux-source-6.1 $src_version"; } | sha256sum | cut -c1-64)
out="$cache/$key"

# Re-point latest with a rename, so a reader never finds it missing mid-update.
point_latest() { ln -sfn "$key" "$cache/.latest.$$" && mv -T "$cache/.latest.$$" "$cache/latest"; }

if [ -f "$out/bzImage" ]; then
  point_latest
  say "cached ($key)"
  echo "$out/bzImage"
  exit 0
fi

mkdir -p "$cache"
# One build at a time (make setup may run from several checkouts or sessions):
# a second caller waits for the first, then finds its result in the cache.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  say "another guest kernel build is running; waiting for it"
  flock 9
fi
if [ -f "$out/bzImage" ]; then
  point_latest
  say "built by the other run ($key)"
  echo "$out/bzImage"
  exit 0
fi
build="$cache/build-$key"
rm -rf "$build"
mkdir -p "$build"
trap 'rm -rf "$build"' EXIT

say "unpacking $tarball (linux-source-6.1 $src_version)"
nice -n 19 tar -xJf "$tarball" -C "$build"
tree="$build/linux-source-6.1"

say "configuring: tinyconfig + guest/kernel.config"
nice -n 19 make -C "$tree" -s tinyconfig >/dev/null
cat "$config" >> "$tree/.config"
nice -n 19 make -C "$tree" -s olddefconfig >/dev/null

# Every CONFIG_X=y line in the fragment must survive olddefconfig (a dropped dependency
# silently turns an option off); fail before spending minutes compiling.
missing=()
while IFS= read -r line; do
  grep -qx "$line" "$tree/.config" || missing+=("$line")
done < <(grep -E '^CONFIG_[A-Z0-9_]+=' "$config")
if [ ${#missing[@]} -gt 0 ]; then
  say "these options did not take (a dependency is off): ${missing[*]}"
  exit 1
fi

say "compiling bzImage with $jobs jobs (several minutes; nice -n 19)"
start=$(date +%s)
nice -n 19 make -C "$tree" -j"$jobs" -s bzImage >"$build/make.log" 2>&1 || {
  tail -30 "$build/make.log" >&2
  say "build failed"
  exit 1
}
say "compiled in $(( $(date +%s) - start )) s"

# Publish atomically: a half-copied kernel is never visible under $out.
tmp="$cache/.tmp-$key"
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$tree/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$tree/.config" "$tmp/config"
echo "linux-source-6.1 $src_version" > "$tmp/source-version"
mv -T "$tmp" "$out"
point_latest
say "done"
echo "$out/bzImage"
