# Sourced by bench/vm.sh and bench/vm-isola.sh: the bare-QEMU floor's inits.
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
