//! End-to-end: behaviours where isola-runtime must do what runc does. Each
//! test runs the same bundle against isola-runtime and against runc (found
//! on PATH; with CI set a missing runc fails the test), so what it expects
//! is runc's behaviour, not only ours. Needs root.

mod common;

use std::os::unix::fs::symlink;

use common::{mounts_under, runtimes};
use testkit::{runtime_config, unique_name, Bundle};

/// A `proc` or `sysfs` mount whose destination in the rootfs is a symlink
/// is refused, as runc refuses it: following the link would mount procfs
/// (or sysfs) wherever the image points it, e.g. over a directory that a
/// later bind mount exposes, or one the runtime trusts.
#[test]
fn proc_or_sys_on_a_symlink_is_refused() {
    for dir in ["proc", "sys"] {
        for rt in runtimes(&["runc"]) {
            let bundle = Bundle::new(&runtime_config(&["true"]));
            let rootfs = bundle.rootfs();
            std::fs::remove_dir(rootfs.join(dir)).unwrap();
            std::fs::create_dir(rootfs.join("elsewhere")).unwrap();
            symlink("elsewhere", rootfs.join(dir)).unwrap();
            let id = unique_name("symproc");
            let c = rt.create(&bundle, &id, &[]);
            let err = c.stderr();
            assert!(
                !c.success,
                "{}: create with /{dir} a symlink succeeded",
                rt.name()
            );
            assert!(
                err.contains("must be mounted on ordinary directory"),
                "{}: {err}",
                rt.name()
            );
            assert!(err.contains(&format!("/{dir}")), "{}: {err}", rt.name());
            assert_eq!(
                mounts_under(&bundle.path()),
                Vec::<String>::new(),
                "{}: mounts left",
                rt.name()
            );
            assert_eq!(
                std::fs::read_dir(rootfs.join("elsewhere")).unwrap().count(),
                0,
                "{}: something was mounted at the link's target",
                rt.name()
            );
        }
    }
}
