//! End-to-end: a VM container's files are disks its guest overlays (the
//! image as a read-only EROFS disk, the writable layer as an ext4 disk of
//! its own; image/store/disks.rs), through the real `isola` binary. What a
//! user relies on: writes survive `stop` + `start`, two containers of one
//! image never see each other's writes, a volume stays live both ways, the
//! host reads a stopped container's files and refuses while its VM holds
//! them, a deleted file's space goes back to the host, and `rm` leaves no
//! disk, mount or loop device. Few VMs, many
//! checks each (TCG boots are slow).

mod common;

use std::path::Path;

use common::{eventually, Root};

#[test]
fn vm_disks_keep_writes_across_restarts_apart_per_container_and_leave_nothing() {
    let root = Root::new().with_env("ISOLA_AGENT", testkit::static_agent());
    if !root.vm_kernel_or_skip("VM disks") {
        return;
    }
    let vm = ["--isolation=vm", "--network", "none"];
    let create = |name: &str, cmd: &str| {
        let mut args = vec!["create", "--name", name];
        args.extend(vm);
        args.extend(["busybox", "sh", "-c", cmd]);
        root.ok(&args).trim().to_string()
    };
    // First start writes; a later start of the same container finds it,
    // and deletes a big file: its space goes back to the host.
    let writer = create(
        "writer",
        "if [ -e /data/note ]; then cat /data/note; echo again >> /data/note; rm -f /data/big; \
         else mkdir -p /data && echo first > /data/note && echo changed:x:7: >> /etc/group; \
         dd if=/dev/zero of=/data/big bs=1M count=32 2>/dev/null; fi; \
         mount | grep ' / '",
    );
    let disk = |id: &str| {
        let dir = root.path().join("image/snapshots").join(id);
        dir.join("writable.disk")
    };
    let allocated = |id: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(disk(id)).unwrap().blocks() * 512
    };
    let first = root.ok(&["start", "-a", &writer]);
    assert!(
        first.contains("overlay on / type overlay") && first.contains("/run/isola/writable/upper"),
        "the guest's rootfs is the overlay of its disks: {first}"
    );
    let full = allocated(&writer);
    assert!(full >= 32 << 20, "32 MiB written, {full} bytes on the host");
    let again = root.ok(&["start", "-a", &writer]);
    assert!(
        again.starts_with("first\n"),
        "a file written before stop is there after start: {again}"
    );
    let freed = allocated(&writer);
    assert!(
        freed + (24 << 20) <= full,
        "a deleted file's space stays on the host: {full} bytes, then {freed}"
    );

    // The host reads the stopped container's files: diff, cp.
    let diff = root.ok(&["diff", &writer]);
    for want in ["A /data/note", "C /etc/group"] {
        assert!(diff.lines().any(|l| l == want), "diff lacks {want}: {diff}");
    }
    let copied = tempfile::tempdir().unwrap();
    root.ok(&[
        "cp",
        &format!("{writer}:/data/note"),
        copied.path().to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(copied.path().join("note")).unwrap(),
        "first\nagain\n"
    );
    // The host can write there too while it is stopped; the guest sees it.
    std::fs::write(copied.path().join("from-host"), "host file\n").unwrap();
    root.ok(&[
        "cp",
        copied.path().join("from-host").to_str().unwrap(),
        &format!("{writer}:/data/"),
    ]);

    // Another container of the same image sees none of it; a running one
    // with a volume: live both ways, its disk refused to the host.
    let vol = tempfile::tempdir().unwrap();
    let volume = format!("{}:/vol", vol.path().display());
    let mut args = vec!["run", "-d", "--name", "reader", "-v", &volume];
    args.extend(vm);
    args.extend(["busybox", "sleep", "300"]);
    let reader = root.ok(&args).trim().to_string();
    eventually("the reader VM running", || {
        root.inspect(&reader, ".State.Status") == "running"
    });
    let (code, err) = root.fails(&["exec", &reader, "cat", "/data/note"]);
    assert_ne!(code, 0, "one container sees another's new file");
    assert!(err.contains("No such file"), "{err}");
    let group = root.ok(&["exec", &reader, "cat", "/etc/group"]);
    assert!(
        !group.contains("changed"),
        "one container sees another's change: {group}"
    );
    std::fs::write(vol.path().join("host-wrote"), "from the host\n").unwrap();
    assert_eq!(
        root.ok(&["exec", &reader, "cat", "/vol/host-wrote"]),
        "from the host\n"
    );
    root.ok(&[
        "exec",
        &reader,
        "sh",
        "-c",
        "echo from the guest > /vol/guest-wrote",
    ]);
    assert_eq!(
        std::fs::read_to_string(vol.path().join("guest-wrote")).unwrap(),
        "from the guest\n",
        "the host sees the guest's write at once"
    );
    let (code, err) = root.fails(&["diff", &reader]);
    assert_ne!(code, 0);
    assert!(
        err.contains("while the VM runs") && err.trim().lines().count() == 1,
        "{err}"
    );
    // An exec names a user of the image, read while the VM holds the disk.
    assert_eq!(
        root.ok(&["exec", "-u", "nobody", &reader, "id", "-u"]),
        "65534\n"
    );
    assert!(disk(&reader).is_file());
    assert!(!mounted(&root.path().join("image/snapshots").join(&reader)));

    // The writer's next start sees what the host copied in.
    let third = root.ok(&["start", "-a", &writer]);
    assert!(third.starts_with("first\nagain\n"), "{third}");
    assert_eq!(
        root.ok(&[
            "run",
            "--rm",
            "--isolation=vm",
            "--network",
            "none",
            "busybox",
            "true"
        ]),
        ""
    );

    root.ok(&["rm", "-f", &writer, &reader]);
    assert!(!disk(&writer).exists() && !disk(&reader).exists());
    root.assert_clean();
    // The image's disk goes with the image.
    assert!(
        image_disks(root.path()) > 0,
        "the image disk is kept for the image"
    );
    root.ok(&["rmi", "busybox"]);
    assert_eq!(image_disks(root.path()), 0, "image disk left after rmi");
}

/// Whether anything is mounted under `dir`.
fn mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| Path::new(m).starts_with(&dir))
        })
}

/// How many EROFS image disks the store keeps.
fn image_disks(root: &Path) -> usize {
    std::fs::read_dir(root.join("image/disks"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}
