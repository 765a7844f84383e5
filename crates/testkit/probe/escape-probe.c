/*
 * escape-probe: what isola's escape tests run inside a container to see
 * whether the kernel refuses a call that would reach past the container
 * (seccomp, capabilities, device rules, read-only paths). Each subcommand
 * makes one call (or a short chain of them) and prints one line: "ok" when
 * the call succeeded, "errno=<NAME>" when it failed; a chain prints the
 * failing step first ("open errno=EPERM"). It exits 0 either way, so the
 * test asserts on what was printed; 2 means it was used wrongly.
 *
 * Built static (testkit::escape_probe: cc -static -O2), so it runs in any
 * rootfs, busybox's included. Raw syscall numbers are used where the C
 * library may lack a wrapper or would fall back to another call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *errno_name(int e)
{
	static char buf[16];
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	default:
		snprintf(buf, sizeof buf, "%d", e);
		return buf;
	}
}

/* Prints the result of one call: rc < 0 means it failed with errno. */
static int report(const char *step, long rc)
{
	if (rc >= 0) {
		if (!step)
			puts("ok");
		return 0;
	}
	if (step)
		printf("%s errno=%s\n", step, errno_name(errno));
	else
		printf("errno=%s\n", errno_name(errno));
	return 1;
}

/* A raw clone/clone3 child exits at once; the parent reaps it. */
static long reap(long pid)
{
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid;
}

static int usage(void)
{
	fputs("usage: escape-probe process_vm_readv|kcmp|pidfd_getfd|unknown-syscall|"
	      "ptrace-traceme|keyctl|io_uring_setup|personality-bad|clone-newuser|clone3|"
	      "socket-vsock|mknod-open <path> <b|c> <major> <minor>|"
	      "write-file <path> <text>|mount-tmpfs <dir>\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	errno = 0;

	if (!strcmp(cmd, "process_vm_readv")) {
		char src[8] = "secret", dst[8] = {0};
		struct iovec local = {dst, sizeof dst}, remote = {src, sizeof src};
		report(NULL, syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL));
	} else if (!strcmp(cmd, "kcmp")) {
		/* KCMP_FILE (0): are fd 0 of this process and fd 0 of this process the same file? */
		report(NULL, syscall(SYS_kcmp, getpid(), getpid(), 0, 0UL, 0UL));
	} else if (!strcmp(cmd, "pidfd_getfd")) {
		long pidfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (!report("pidfd_open", pidfd))
			report(NULL, syscall(SYS_pidfd_getfd, pidfd, 0, 0));
	} else if (!strcmp(cmd, "unknown-syscall")) {
		/* No kernel has syscall 1000: ENOSYS unless a filter answers first. */
		report(NULL, syscall(1000, 0, 0, 0));
	} else if (!strcmp(cmd, "ptrace-traceme")) {
		report(NULL, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	} else if (!strcmp(cmd, "keyctl")) {
		/* KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), creating it (1). */
		report(NULL, syscall(SYS_keyctl, 0, -3, 1));
	} else if (!strcmp(cmd, "io_uring_setup")) {
		char params[120] = {0}; /* struct io_uring_params */
		long fd = syscall(SYS_io_uring_setup, 1, params);
		report(NULL, fd);
	} else if (!strcmp(cmd, "personality-bad")) {
		/* READ_IMPLIES_EXEC (0x0400000): every readable mapping executable. */
		report(NULL, syscall(SYS_personality, 0x0400000UL));
	} else if (!strcmp(cmd, "clone-newuser")) {
		report(NULL, reap(syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0UL, 0UL, 0UL, 0UL)));
	} else if (!strcmp(cmd, "clone3")) {
		struct clone_args args;
		memset(&args, 0, sizeof args);
		args.exit_signal = SIGCHLD;
		report(NULL, reap(syscall(SYS_clone3, &args, sizeof args)));
	} else if (!strcmp(cmd, "socket-vsock")) {
		report(NULL, socket(AF_VSOCK, SOCK_STREAM, 0));
	} else if (!strcmp(cmd, "mknod-open") && argc == 6) {
		mode_t type = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
		dev_t dev = makedev(strtoul(argv[4], NULL, 0), strtoul(argv[5], NULL, 0));
		char c;
		if (report("mknod", mknod(argv[2], type | 0600, dev)))
			return 0;
		int fd = open(argv[2], O_RDONLY | O_NONBLOCK);
		if (report("open", fd))
			return 0;
		if (report("read", read(fd, &c, 1)))
			return 0;
		puts("ok");
	} else if (!strcmp(cmd, "write-file") && argc == 4) {
		int fd = open(argv[2], O_WRONLY);
		if (report("open", fd))
			return 0;
		if (report("write", write(fd, argv[3], strlen(argv[3]))))
			return 0;
		puts("ok");
	} else if (!strcmp(cmd, "mount-tmpfs") && argc == 3) {
		report(NULL, mount("tmpfs", argv[2], "tmpfs", 0, NULL));
	} else {
		return usage();
	}
	return 0;
}
