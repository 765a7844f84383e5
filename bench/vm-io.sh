#!/usr/bin/env bash
# File I/O of a container, in one run, in five places: process mode (the
# host's overlayfs), a VM container's rootfs (the image disk and writable
# disk its guest overlays: image/store/disks.rs), the same rootfs shared
# over 9p instead (ISOLA_VM_ROOTFS=share, what isola did before), a VM volume (a host
# directory over 9p, live both ways) and the VM guest's own tmpfs (the
# floor: the guest's memory, no device at all). The same busybox script
# (/io.sh in the image) runs each workload:
#   write 2,000 small files; ls -lR them; a 256 MiB sequential write;
#   untar a 20 MB tar of 2,000 small files; read the image's own 2,000 small
#   files (cold: first read in this VM) and again (warm);
# then, in a second start of the same container (a fresh VM: its page cache
# empty), read back the 2,000 written files (cold, then warm), read the
# 256 MiB file and delete the untarred tree. The tmpfs floor runs both
# halves in one start (tmpfs does not outlive the VM). Times are from the
# guest's clock (/proc/uptime, 10 ms steps), the median of N runs.
# Writes bench/results/vm-io.md.
#
#   bench/vm-io.sh        # N=3
# Needs: the guest kernel (scripts/guest-kernel.sh), qemu-system-x86; root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
out=bench/results/vm-io.md
work=$(mktemp -d /tmp/isola-bench-io.XXXXXX)
root=$work/root
trap '"$ISOLA" --root "$root" rm -f $("$ISOLA" --root "$root" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
      rm -rf "$work"' EXIT

scripts/guest-kernel.sh >/dev/null
echo "bench/vm-io: building isola and the static agent (release)" >&2
cargo build -q --release -p isola
crates/agent/build-static.sh >/dev/null
ISOLA=$PWD/target/release/isola

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,data,img,scratch,vol}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh cat ls dd tar rm mkdir awk sync; do ln -sf busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
for i in $(seq 0 1999); do echo "image file $i" >"$rootfs/img/f$i"; done
mkdir -p "$work/tree"
for i in $(seq 0 1999); do head -c 10240 /dev/urandom >"$work/tree/f$i"; done
tar -C "$work/tree" -cf "$rootfs/tree.tar" .
cat >"$rootfs/io.sh" <<'EOF'
#!/bin/sh
# io.sh PHASE DIR: PHASE a (write), b (read back), ab (both).
d=$2
now() { read up _ < /proc/uptime; echo "$up"; }
t() { name=$1; shift; s=$(now); "$@"; e=$(now); echo "RESULT $name $(awk "BEGIN{print $e-$s}")"; }
w() { mkdir -p "$d/small"; i=0; while [ $i -lt 2000 ]; do echo "file $i" > "$d/small/f$i"; i=$((i+1)); done; }
r() { i=0; while [ $i -lt 2000 ]; do read l < "$1/f$i"; i=$((i+1)); done; }
a() {
  t write_small w
  t ls_lR sh -c "ls -lR $d/small >/dev/null"
  t seq_write dd if=/dev/zero of="$d/big" bs=1M count=256 2>/dev/null
  t untar sh -c "mkdir $d/tree && tar -xf /tree.tar -C $d/tree"
  t image_cold r /img
  t image_warm r /img
  sync
}
b() {
  t read_small_cold r "$d/small"
  t read_small_warm r "$d/small"
  t seq_read dd if="$d/big" of=/dev/null bs=1M 2>/dev/null
  t delete_tree rm -rf "$d/tree"
}
case $1 in a) a ;; b) b ;; ab) a; b ;; esac
EOF
chmod +x "$rootfs/io.sh"
tar -C "$rootfs" -c . | "$ISOLA" --root "$root" import - iobench:latest >/dev/null

vm=(--isolation=vm --network none -m 512m)
: >"$work/results"
for i in $(seq "$N"); do
  echo "bench/vm-io: run $i of $N" >&2
  for mode in process vm-rootfs vm-9p vm-volume vm-tmpfs; do
    rm -rf "$work/vol" && mkdir -p "$work/vol"
    rootfs=disks
    case $mode in
      process) opts=(--network none) dir=/data ;;
      vm-rootfs) opts=("${vm[@]}") dir=/data ;;
      vm-9p) opts=("${vm[@]}") dir=/data rootfs=share ;;
      vm-volume) opts=("${vm[@]}" -v "$work/vol:/vol") dir=/vol ;;
      vm-tmpfs) opts=("${vm[@]}" --mount type=tmpfs,target=/scratch,tmpfs-size=400m) dir=/scratch ;;
    esac
    id=$(ISOLA_VM_ROOTFS=$rootfs "$ISOLA" --root "$root" create "${opts[@]}" iobench sh -c \
      "if [ -e $dir/small ]; then exec /io.sh b $dir; elif [ $mode = vm-tmpfs ]; then exec /io.sh ab $dir; else exec /io.sh a $dir; fi")
    "$ISOLA" --root "$root" start -a "$id" | sed -n "s/^RESULT /$mode /p" >>"$work/results"
    if [ "$mode" != vm-tmpfs ]; then
      "$ISOLA" --root "$root" start -a "$id" | sed -n "s/^RESULT /$mode /p" >>"$work/results"
    fi
    "$ISOLA" --root "$root" rm -f "$id" >/dev/null
  done
done

med() { awk -v m="$1" -v op="$2" '$1==m && $2==op {print $3}' "$work/results" | sort -n |
  awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a=="-"||b=="-") print "-"; else if (b+0==0) printf "%s", (a+0==0 ? "1.0" : "≥" sprintf("%.0f", a/0.01)); else printf "%.1f", a/b}'; }
ops="write_small ls_lR seq_write untar image_cold image_warm read_small_cold read_small_warm seq_read delete_tree"
{
  echo "# VM file I/O (bench/vm-io.sh)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), accelerator: $(grep -q kvm_pvm /proc/modules 2>/dev/null && echo 'tcg (nested kvm_pvm cannot boot the guest)' || echo auto), median of $N runs, seconds (guest clock, 10 ms steps; 0 = under 10 ms)."
  echo "The same busybox script in each place; VM containers have 512 MiB (-m 512m). The rootfs of a VM"
  echo "container is the image as a read-only EROFS disk and the writable layer as an ext4 disk, overlaid"
  echo "in the guest (isola's default); \"VM rootfs, 9p\" is the same snapshot directory shared over 9p"
  echo "(ISOLA_VM_ROOTFS=share: cache=mmap, msize 512 KiB, what isola did before); a volume is a host directory over 9p (cache=mmap: live both ways); the floor is the"
  echo "guest's own tmpfs (--mount type=tmpfs). Cold reads of written files come from a second start of"
  echo "the container (a fresh VM); the floor reads them in the same VM (tmpfs does not outlive it)."
  echo "Process mode runs on the host's overlayfs (its page cache warm). image_cold/image_warm read the"
  echo "image's own files (the rootfs) in every column."
  echo
  echo "| operation | process | VM rootfs (disks) | VM rootfs, 9p | VM volume (9p) | VM tmpfs (floor) | disks / floor | 9p rootfs / floor | volume / floor |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for op in $ops; do
    p=$(med process "$op"); r=$(med vm-rootfs "$op"); n=$(med vm-9p "$op"); v=$(med vm-volume "$op"); f=$(med vm-tmpfs "$op")
    echo "| $op | $p | $r | $n | $v | $f | **$(ratio "$r" "$f")** | $(ratio "$n" "$f") | $(ratio "$v" "$f") |"
  done
  echo
  echo "Targets (issue 13), against the floor: written files (write_small, untar, read_small_*) ≤ 2x;"
  echo "image content cold ≤ 3x, warm ≤ 1.2x; a volume ≤ 5x. Every run's times, in order:"
  echo
  echo '```'
  awk '{k = $1 " " $2; v[k] = v[k] " " $3} END {for (k in v) print k ":" v[k]}' "$work/results" | sort
  echo '```'
} >"$out"
cat "$out"
