# Sourced by bench/vm.sh and bench/vm-isola.sh: the bare-QEMU floor (its
# inits and its command line) and the timing helpers both use.
# make_floor_inits DIR writes DIR/off.cpio (an init that powers off at once)
# and DIR/idle.cpio (an init that sleeps forever, for idle PSS).
make_floor_inits() {
  local work=$1 i
  cat > "$work/off.c" <<'C'
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { sync(); reboot(RB_POWER_OFF); return 0; }
C
  cat > "$work/idle.c" <<'C'
#include <unistd.h>
int main(void) { for (;;) pause(); }
C
  for i in off idle; do
    gcc -static -Os -o "$work/$i" "$work/$i.c"
    mkdir -p "$work/root-$i/dev"
    cp "$work/$i" "$work/root-$i/init"
    (cd "$work/root-$i" && mknod -m 600 dev/console c 5 1 && printf 'init\ndev\ndev/console\n' | cpio -o -H newc --quiet > "$work/$i.cpio")
  done
}

# bare_qemu ACCEL INITRAMFS: the floor, a bare QEMU boot of $kernel with $MEM
# MiB and no devices, its console in $work. exec, so `bare_qemu ... &` gives
# QEMU's own pid.
bare_qemu() {
  exec qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on -accel "$1" -m "${MEM}M" -smp 1 \
    -nodefaults -no-user-config -nographic -no-reboot -monitor none \
    -kernel "$kernel" -initrd "$2" \
    -append "console=ttyS0 panic=-1 reboot=t tsc_early_khz=2000000 quiet" \
    -serial "file:$work/bare-console.log"
}

now() { date +%s%N; }
# The median of the numbers on stdin, rounded.
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
