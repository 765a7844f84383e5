//! Platform choice for multi-platform images: parse `--platform
//! os/arch[/variant]`, name the host's platform in OCI terms, and pick the
//! matching entry of a manifest list / OCI index. Fetches nothing.

use std::fmt;

use oci_client::manifest::ImageIndexEntry;

use super::error::RegistryError;

/// An OCI platform as `--platform` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let bad = || RegistryError::InvalidPlatform {
            platform: s.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalize_arch(&parts[1].to_ascii_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The platform this process runs on, in OCI names.
    pub fn host() -> Platform {
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: normalize_arch(std::env::consts::ARCH).to_string(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Rust/uname names to the GOARCH names OCI uses (`aarch64` is `arm64`).
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        "powerpc64le" => "ppc64le",
        other => other,
    }
}

/// The digest of the index entry for `wanted`. An entry without a variant
/// matches any wanted variant only when `wanted` has none (docker's rule,
/// simplified); entries with an unknown platform never match.
pub fn choose(entries: &[ImageIndexEntry], wanted: &Platform) -> Option<String> {
    let matches = |e: &&ImageIndexEntry| {
        let Some(p) = &e.platform else { return false };
        let os = p.os.to_string();
        let arch = p.architecture.to_string();
        if os != wanted.os || normalize_arch(&arch) != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &p.variant) {
            (None, _) => true,
            (Some(w), Some(v)) => w == v,
            // arm64 images rarely say "v8"; accept the plain entry.
            (Some(w), None) => wanted.architecture == "arm64" && w == "v8",
        }
    };
    // Prefer an exact variant match, else the first entry that fits.
    let fitting: Vec<&ImageIndexEntry> = entries.iter().filter(matches).collect();
    fitting
        .iter()
        .find(|e| e.platform.as_ref().and_then(|p| p.variant.as_ref()) == wanted.variant.as_ref())
        .or(fitting.first())
        .map(|e| e.digest.clone())
}

/// The platforms an index offers, for error messages.
pub fn available(entries: &[ImageIndexEntry]) -> String {
    let list: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(json: &str) -> Vec<ImageIndexEntry> {
        let idx: oci_client::manifest::OciImageIndex = serde_json::from_str(json).unwrap();
        idx.manifests
    }

    const INDEX: &str = r#"{"schemaVersion":2,"manifests":[
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"os":"linux","architecture":"amd64"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}
    ]}"#;

    #[test]
    fn picks_the_wanted_platform() {
        let e = index(INDEX);
        let p = |s| Platform::parse(s).unwrap();
        assert_eq!(choose(&e, &p("linux/amd64")).unwrap(), "sha256:bb");
        assert_eq!(choose(&e, &p("linux/arm64")).unwrap(), "sha256:cc");
        assert_eq!(choose(&e, &p("linux/arm/v7")).unwrap(), "sha256:aa");
        assert_eq!(choose(&e, &p("linux/x86_64")).unwrap(), "sha256:bb");
        assert_eq!(choose(&e, &p("linux/arm/v6")), None);
        assert_eq!(choose(&e, &p("windows/amd64")), None);
        assert_eq!(available(&e), "linux/arm/v7, linux/amd64, linux/arm64/v8");
    }

    #[test]
    fn platform_syntax() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }
}
