//! images: the image operations clients call through the engine (pull, load,
//! the question `run` asks first: is this image here?), so that the CLI and
//! the API service reach the image store and the registries in one place.
//! It owns where credentials and registry settings come from; the work is
//! `image`'s. It prints nothing itself: progress goes where the caller says.

use crate::events::{self, EventType};
use crate::lifecycle::{Engine, Error};

pub use image::archive::Loaded;
pub use image::progress::{Mode as ProgressMode, Stream as ProgressStream};
pub use image::registry::{Platform, Pulled};
pub use image::Image;

/// One step of an image's history ([`Engine::image_history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image's id, on the newest entry only.
    pub id: Option<String>,
    /// The image's names, on the newest entry only.
    pub tags: Vec<String>,
    /// RFC 3339, as the image config has it.
    pub created: Option<String>,
    pub created_by: String,
    /// Bytes of the layer this step made (0: it made none).
    pub size: u64,
    pub comment: String,
}

/// docker's `--pull` policy for `run` and `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only an image the store lacks (docker's default).
    #[default]
    Missing,
    /// Pull before every create, even when the image is here.
    Always,
    /// Never pull: an image the store lacks is an error.
    Never,
}

/// A `--pull` value that is none of missing, always, never.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid pull policy {value:?}: expected missing, always or never")]
pub struct PullPolicyError {
    pub value: String,
}

impl std::str::FromStr for PullPolicy {
    type Err = PullPolicyError;

    fn from_str(s: &str) -> Result<PullPolicy, PullPolicyError> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(PullPolicyError {
                value: other.to_string(),
            }),
        }
    }
}

/// What `push` asks for.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// The image to push: a name or an id.
    pub source: String,
    /// Where to push it (a registry name and tag); `source` when None.
    pub target: Option<String>,
    pub insecure_registries: Vec<String>,
    pub progress: Option<ProgressMode>,
    pub progress_stream: ProgressStream,
}

/// What a pull is told.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// `busybox`, `127.0.0.1:5000/busybox:1.36`, `...@sha256:...`.
    pub reference: String,
    /// Platform to choose from a multi-platform image; the host's if None.
    pub platform: Option<Platform>,
    /// Registries (host[:port]) spoken to over plain HTTP, besides the
    /// host's configured ones.
    pub insecure_registries: Vec<String>,
    pub progress: Option<ProgressMode>,
    pub progress_stream: ProgressStream,
}

impl Engine {
    /// Pulls an image into the store, with the credentials of `isola login`
    /// and the host's registry settings.
    pub fn pull(&self, req: &PullRequest) -> Result<Pulled, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let opts = image::registry::PullOptions {
            platform: req.platform.clone(),
            transport: image::registry::Transport::from_host(&req.insecure_registries)?,
            auth: image::registry::AuthStore::new(self.root()),
            progress: req
                .progress
                .unwrap_or_else(|| ProgressMode::detect_on(false, req.progress_stream)),
            progress_stream: req.progress_stream,
        };
        let pulled = image::registry::pull(&store, &req.reference, &opts)?;
        self.registry_event("pull", &pulled.reference);
        Ok(pulled)
    }

    /// docker's event for a pull or push of `reference`: the image's name
    /// as the id, the name without its tag as an attribute.
    fn registry_event(&self, action: &str, reference: &str) {
        let name = familiar_reference(reference);
        let bare = events::strip_tag(&name).to_string();
        events::simple(
            self.root(),
            EventType::Image,
            action,
            &name,
            &[("name", bare)],
        );
    }

    /// Pushes `source` (a name or id) to the registry `target` names
    /// (`source` itself when `None`), with the stored credentials.
    pub fn push(&self, req: &PushRequest) -> Result<image::registry::Pushed, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let img = store.resolve(&req.source).map_err(Error::Image)?;
        let target = image::Reference::parse(req.target.as_deref().unwrap_or(&req.source))?;
        let opts = image::registry::PushOptions {
            transport: image::registry::Transport::from_host(&req.insecure_registries)?,
            auth: image::registry::AuthStore::new(self.root()),
            progress: req
                .progress
                .unwrap_or_else(|| ProgressMode::detect_on(false, req.progress_stream)),
            progress_stream: req.progress_stream,
        };
        let pushed = image::registry::push(&store, &img, &target, &opts)?;
        self.registry_event("push", &pushed.reference);
        Ok(pushed)
    }

    /// Loads the images of a docker-archive or OCI-layout tar; each comes
    /// with the names the archive gave it.
    pub fn load(
        &self,
        input: &mut dyn std::io::Read,
        progress: ProgressMode,
    ) -> Result<Vec<Loaded>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let loaded =
            image::archive::load_listing(&store, input, &image::progress::Progress::new(progress))
                .map_err(Error::Image)?;
        for l in &loaded {
            let names: Vec<String> = l.names.iter().map(|n| n.familiar()).collect();
            let name = names.first().cloned().unwrap_or_else(|| l.image.id.clone());
            events::simple(
                self.root(),
                EventType::Image,
                "load",
                &name,
                &[("name", name.clone())],
            );
        }
        Ok(loaded)
    }

    /// Writes the images `names` name (with their names) as one
    /// docker-archive tar to `out`, as `docker save` does. Every name is
    /// resolved before the first byte, so a missing image fails with
    /// nothing written.
    pub fn save_images(&self, names: &[String], out: &mut dyn std::io::Write) -> Result<(), Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        for n in names {
            store.resolve(n).map_err(Error::Image)?;
        }
        image::archive::save(&store, names, out).map_err(Error::Image)?;
        for n in names {
            let name = familiar_reference(n);
            events::simple(
                self.root(),
                EventType::Image,
                "save",
                &name,
                &[("name", name.clone())],
            );
        }
        Ok(())
    }

    /// How `img` was made: its config's history, newest first. The entries
    /// that made a layer carry its unpacked size; the newest carries the
    /// image's id and names (docker's readers show `<missing>` for the
    /// others: they have no image of their own).
    pub fn image_history(&self, img: &Image) -> Result<Vec<HistoryEntry>, Error> {
        let dirs = self.image_layer_dirs(img)?; // top first
        let mut layer_sizes = dirs.iter().map(|d| crate::disk::dir_size(d));
        let history = img.config.history().clone().unwrap_or_default();
        let mut out = Vec::new();
        for (i, h) in history.iter().rev().enumerate() {
            let size = match h.empty_layer() {
                Some(true) => 0,
                _ => layer_sizes.next().unwrap_or(0),
            };
            out.push(HistoryEntry {
                id: (i == 0).then(|| img.id.clone()),
                tags: match i {
                    0 => img.names.iter().map(image::Reference::familiar).collect(),
                    _ => Vec::new(),
                },
                created: h.created().clone(),
                created_by: h.created_by().clone().unwrap_or_default(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// The image `name_or_id` names; None if the store has none.
    pub fn find_image(&self, name_or_id: &str) -> Result<Option<Image>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        match store.resolve(name_or_id) {
            Ok(img) => Ok(Some(img)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::Image(e)),
        }
    }

    /// The unpacked layer directories of `img`, top first (overlayfs's
    /// lowerdir order, what `inspect` shows, joined by `:`, as `GraphDriver.Data.LowerDir`).
    pub fn image_layer_dirs(&self, img: &Image) -> Result<Vec<std::path::PathBuf>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        img.layers
            .iter()
            .rev()
            .map(|l| store.layer_diff_dir(l).map_err(Error::Image))
            .collect()
    }

    /// Every image in the store, newest first.
    pub fn list_images(&self) -> Result<Vec<Image>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        store.list().map_err(Error::Image)
    }

    /// Points `target` (a name, `latest` if it has no tag) at the image
    /// `source` names. A digest cannot be a tag.
    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), Error> {
        let target_ref = image::Reference::parse(target)?;
        if target_ref.digest.is_some() {
            return Err(Error::TagWithDigest {
                target: target.into(),
            });
        }
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        store.tag(source, &target_ref).map_err(Error::Image)?;
        if let Ok(img) = store.resolve(source) {
            let name = target_ref.familiar();
            events::simple(
                self.root(),
                EventType::Image,
                "tag",
                &img.id,
                &[("name", name)],
            );
        }
        Ok(())
    }

    /// `rmi`: untags or deletes the image `name_or_id` names; returns
    /// docker's lines (`Untagged: ..`, `Deleted: ..`).
    pub fn remove_image(&self, name_or_id: &str, force: bool) -> Result<Vec<String>, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        let id = store.resolve(name_or_id).ok().map(|i| i.id);
        let lines = store.remove(name_or_id, force).map_err(Error::Image)?;
        let id = id.unwrap_or_default();
        for l in &lines {
            if let Some(name) = l.strip_prefix("Untagged: ") {
                let attrs = [("name", name.to_string())];
                events::simple(self.root(), EventType::Image, "untag", &id, &attrs);
            } else if l.strip_prefix("Deleted: ") == Some(id.as_str()) {
                let attrs = [("name", id.clone())];
                events::simple(self.root(), EventType::Image, "delete", &id, &attrs);
            }
        }
        Ok(lines)
    }

    /// Whether the store holds the image `name_or_id` names. A name that is
    /// neither a valid reference nor an id is an error, as with `tag`.
    pub fn has_image(&self, name_or_id: &str) -> Result<bool, Error> {
        let store = image::store::Store::open(self.root()).map_err(Error::Image)?;
        match store.resolve(name_or_id) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => {
                check_reference(name_or_id)?;
                Ok(false)
            }
            Err(e) => Err(Error::Image(e)),
        }
    }
}

/// `name` as docker shows it in messages (`busybox:latest`,
/// `127.0.0.1:5000/app:1`); unchanged if it is not a reference.
/// Whether `img` is of platform `p` (a variant is compared when `p` names one).
pub fn matches(img: &image::store::Image, p: &Platform) -> bool {
    let (os, arch, variant) = img.platform();
    let arch = image::registry::normalize_arch(&arch);
    (os.is_empty() || os == p.os)
        && (arch.is_empty() || arch == p.architecture)
        && p.variant
            .as_ref()
            .is_none_or(|v| variant.as_deref().is_none_or(|iv| iv == v))
}

pub fn familiar_reference(name: &str) -> String {
    image::Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.familiar())
}

/// An image name the store could not find must at least be a valid
/// reference (or an id prefix), so that a typo gets the reference error
/// rather than "not found".
pub(crate) fn check_reference(name_or_id: &str) -> Result<(), image::ReferenceError> {
    let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
    if (4..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    image::Reference::parse(name_or_id).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_parse_as_docker_spells_them() {
        assert_eq!("missing".parse(), Ok(PullPolicy::Missing));
        assert_eq!("always".parse(), Ok(PullPolicy::Always));
        assert_eq!("never".parse(), Ok(PullPolicy::Never));
        assert!("sometimes".parse::<PullPolicy>().is_err());
    }

    #[test]
    fn bad_references_are_refused_and_ids_pass() {
        assert!(check_reference("Bad_Image:UPPER").is_err());
        assert!(check_reference("busybox:").is_err());
        assert!(check_reference("a//b").is_err());
        assert!(check_reference("busybox:1.36").is_ok());
        assert!(check_reference("de1e55bcf597").is_ok());
        assert!(check_reference("sha256:de1e").is_ok());
    }
}
