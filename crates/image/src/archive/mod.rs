//! Image archives: `load` (docker-archive or OCI layout tars, optionally
//! gzip-compressed), `save` (docker-archive), `import` (a rootfs tar as a
//! one-layer image). Everything goes through the store's verified writes.

use std::io::{Read, Write};

use crate::{Error, Image, Reference, Store};

/// Loads every image in a docker-archive or OCI-layout tar.
pub fn load(_store: &Store, _input: &mut dyn Read) -> Result<Vec<Image>, Error> {
    Err(Error::ArchiveFormat("load: not written yet".into()))
}

/// Writes `images` as a docker-archive tar.
pub fn save(_store: &Store, _images: &[String], _out: &mut dyn Write) -> Result<(), Error> {
    Err(Error::ArchiveFormat("save: not written yet".into()))
}

/// Makes a one-layer image from a rootfs tar.
pub fn import(
    _store: &Store,
    _rootfs_tar: &mut dyn Read,
    _name: Option<&Reference>,
) -> Result<Image, Error> {
    Err(Error::ArchiveFormat("import: not written yet".into()))
}
