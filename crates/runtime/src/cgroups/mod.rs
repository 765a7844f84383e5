//! cgroups: placeholder; owned by the cgroups work (see lib.rs).
