# Sourced by bench/vm.sh and bench/vm-isola.sh: the bare-QEMU floor (its
# inits and its command line) and the timing helpers both use.
# make_floor_inits DIR writes DIR/off.cpio (an init that powers off at once),
# DIR/idle.cpio (an init that sleeps forever, for idle PSS), DIR/echo.cpio
# (an init that says R on its virtio-serial port, answers the next byte it
# reads there and powers off: the saved VM of the restore floor), DIR/poke
# (connects to a unix socket, sends a byte, waits for one) and DIR/nothp
# (runs a command with transparent huge pages disabled, PR_SET_THP_DISABLE,
# as isola runs QEMU under TCG).
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
  cat > "$work/echo.c" <<'C'
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>
int main(void) {
  char c = 'R';
  int fd;
  mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
  while ((fd = open("/dev/vport0p1", O_RDWR)) < 0) usleep(1000);
  write(fd, &c, 1);
  /* 0 while no host is connected (the one that read R has gone). */
  while (read(fd, &c, 1) != 1) usleep(1000);
  write(fd, &c, 1);
  sync(); reboot(RB_POWER_OFF); return 0;
}
C
  cat > "$work/poke.c" <<'C'
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  char c = 'x';
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) usleep(500);
  if (argc > 2) { read(fd, &c, 1); return c != 'R'; }
  write(fd, &c, 1);
  return read(fd, &c, 1) != 1;
}
C
  cat > "$work/nothp.c" <<'C'
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc; prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0); execvp(argv[1], argv + 1); return 127;
}
C
  gcc -O2 -o "$work/poke" "$work/poke.c"
  gcc -O2 -o "$work/nothp" "$work/nothp.c"
  for i in off idle echo; do
    gcc -static -Os -o "$work/$i" "$work/$i.c"
    mkdir -p "$work/root-$i/dev"
    cp "$work/$i" "$work/root-$i/init"
    (cd "$work/root-$i" && mknod -m 600 dev/console c 5 1 && printf 'init\ndev\ndev/console\n' | cpio -o -H newc --quiet > "$work/$i.cpio")
  done
}

# bare_qemu ACCEL INITRAMFS [QEMU OPTIONS]: the floor, a bare QEMU boot of
# $kernel with $MEM MiB and no devices but those given, its console in
# $work, with THP disabled under TCG (as isola's QEMU). exec, so
# `bare_qemu ... &` gives QEMU's own pid.
bare_qemu() {
  local accel=$1 initrd=$2 nothp=()
  shift 2
  case $accel in tcg*) nothp=("$work/nothp") ;; esac
  exec "${nothp[@]}" qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on -accel "$accel" -m "${MEM}M" -smp 1 \
    -nodefaults -no-user-config -nographic -no-reboot -monitor none \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 reboot=t tsc_early_khz=2000000 quiet" \
    -serial "file:$work/bare-console.log" "$@"
}

# The devices of an isola VM container (the agent's virtio-serial port, the
# image and writable disks, entropy, the balloon), for the restore floor;
# the disks are sparse files the guest never reads.
floor_devices() {
  [ -e "$work/floor-image.disk" ] || truncate -s 1T "$work/floor-image.disk"
  [ -e "$work/floor-writable.disk" ] || truncate -s 64G "$work/floor-writable.disk"
  echo -chardev "socket,id=agent,path=$work/floor.sock,server=on,wait=off" \
    -device virtio-serial-device -device virtserialport,chardev=agent,name=isola.agent \
    -drive "file=$work/floor-image.disk,if=none,id=image,format=raw,readonly=on" \
    -device virtio-blk-device,drive=image,serial=isola-image \
    -drive "file=$work/floor-writable.disk,if=none,id=writable,format=raw" \
    -device virtio-blk-device,drive=writable,serial=isola-writable \
    -device virtio-rng-device -device virtio-balloon-device,free-page-reporting=on
}

# save_floor_vm ACCEL: boots the echo init with floor_devices, waits for its
# R, and saves the machine to $work/floor.vmstate through QMP (python3).
save_floor_vm() {
  # shellcheck disable=SC2046
  (bare_qemu "$1" "$work/echo.cpio" $(floor_devices) -qmp "unix:$work/qmp.sock,server=on,wait=off") &
  local pid=$!
  "$work/poke" "$work/floor.sock" ready
  python3 - "$work/qmp.sock" "$work/floor.vmstate" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def call(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
f.readline()
call("qmp_capabilities")
call("migrate", uri="exec:cat > " + sys.argv[2])
while call("query-migrate")["return"].get("status") not in ("completed", "failed"):
    time.sleep(0.01)
call("quit")
PY
  wait "$pid" 2>/dev/null || true
}

# restore_floor_vm ACCEL: the restore floor, once: a bare QEMU restores the
# saved machine, is poked, answers and powers off.
restore_floor_vm() {
  # shellcheck disable=SC2046
  (bare_qemu "$1" "$work/echo.cpio" $(floor_devices) -incoming fd:3 3<"$work/floor.vmstate") &
  local pid=$!
  "$work/poke" "$work/floor.sock"
  wait "$pid"
}

now() { date +%s%N; }
# The median of the numbers on stdin, rounded.
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
