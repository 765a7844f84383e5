//! seccomp: placeholder; owned by the seccomp work (see lib.rs).
