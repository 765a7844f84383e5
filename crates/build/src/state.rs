//! What a build carries from step to step: the image config (docker's
//! JSON, kept as JSON so fields the OCI types lack, Healthcheck, OnBuild,
//! Shell, survive) and the layers so far. Its id, a digest of both, is
//! what the next step's cache key starts from.

use std::collections::BTreeMap;

use image::manifest::Descriptor;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::words::Vars;

/// docker's shell for shell-form commands when no SHELL is set.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub config: Value,
    pub layers: Vec<Descriptor>,
}

impl State {
    /// An empty image (`FROM scratch`) for `os`/`arch`.
    pub fn scratch(os: &str, arch: &str, variant: Option<&str>) -> State {
        let mut config = json!({
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        State {
            config,
            layers: Vec::new(),
        }
    }

    /// `sha256:<hex>` of the config and layers.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.config).expect("configs serialize"));
        h.update(serde_json::to_vec(&self.layers).expect("descriptors serialize"));
        image::digest::finish(h)
    }

    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `config` object (Env, Cmd, ...), made if absent.
    pub fn cfg(&mut self) -> &mut Map<String, Value> {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        self.config["config"]
            .as_object_mut()
            .expect("made an object")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config["config"].get(key).filter(|v| !v.is_null())
    }

    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.get(key)?.as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    }

    /// The Env as variables.
    pub fn env(&self) -> Vars {
        self.strings("Env")
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.strings("Env").unwrap_or_default();
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
        self.cfg().insert("Env".into(), json!(env));
    }

    /// Adds `key` to a map field (ExposedPorts, Volumes, Labels).
    pub fn insert(&mut self, field: &str, key: &str, value: Value) {
        let cfg = self.cfg();
        if !cfg.get(field).is_some_and(Value::is_object) {
            cfg.insert(field.into(), json!({}));
        }
        cfg[field]
            .as_object_mut()
            .expect("made an object")
            .insert(key.into(), value);
    }

    pub fn shell(&self) -> Vec<String> {
        self.strings("Shell")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    pub fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// Appends a history entry and sets `created`.
    pub fn history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let mut entry = json!({"created": created, "created_by": created_by});
        if empty_layer {
            entry["empty_layer"] = json!(true);
        }
        if !self.config["history"].is_array() {
            self.config["history"] = json!([]);
        }
        self.config["history"]
            .as_array_mut()
            .expect("made an array")
            .push(entry);
        self.config["created"] = json!(created);
    }

    /// Adds a layer and its diff id.
    pub fn push_layer(&mut self, layer: Descriptor, diff_id: &str) {
        self.layers.push(layer);
        if !self.config["rootfs"]["diff_ids"].is_array() {
            self.config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        self.config["rootfs"]["diff_ids"]
            .as_array_mut()
            .expect("made an array")
            .push(json!(diff_id));
    }

    /// The state as an image the engine can make a container from: not
    /// in the store, its layers are.
    pub fn image(&self) -> Result<image::Image, serde_json::Error> {
        Ok(image::Image {
            id: self.id(),
            names: Vec::new(),
            manifest_digest: String::new(),
            config: serde_json::from_value(self.config.clone())?,
            layers: self.diff_ids(),
            size: 0,
            created: None,
            repo_digests: Vec::new(),
            layer_blobs: self.layers.iter().map(|l| l.digest.clone()).collect(),
        })
    }

    pub fn platform(&self) -> (String, String, Option<String>) {
        let s = |k: &str| self.config[k].as_str().map(str::to_string);
        (
            s("os").unwrap_or_else(|| "linux".into()),
            s("architecture").unwrap_or_default(),
            s("variant"),
        )
    }

    /// The labels (for `--label` applied to the result).
    pub fn add_labels(&mut self, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            self.insert("Labels", k, json!(v));
        }
    }
}
