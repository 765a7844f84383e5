//! filters: docker's `--filter` rules that several lists share (the CLI's
//! `--filter key=value`, the API's `filters` JSON): label filters, and the
//! filters of `network ls`. The same key ORs, different keys AND, and every
//! label filter must hold. It only matches records; it reads nothing.

use std::collections::BTreeMap;

use crate::networks::NetworkRecord;
use crate::state::DEFAULT_NETWORK;

#[derive(Debug, thiserror::Error)]
#[error("invalid filter {filter:?}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub reason: &'static str,
}

/// `label=key` (the label is set) or `label=key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
}

impl LabelFilter {
    pub fn parse(text: &str) -> LabelFilter {
        match text.split_once('=') {
            Some((k, v)) => LabelFilter {
                key: k.into(),
                value: Some(v.into()),
            },
            None => LabelFilter {
                key: text.into(),
                value: None,
            },
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.value {
            Some(v) => labels.get(&self.key) == Some(v),
            None => labels.contains_key(&self.key),
        }
    }
}

/// `network ls --filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFilters {
    /// Substrings of the name.
    pub name: Vec<String>,
    /// Prefixes of the id.
    pub id: Vec<String>,
    pub label: Vec<LabelFilter>,
    pub driver: Vec<String>,
    /// `builtin` (the default network) or `custom`.
    pub kind: Vec<String>,
}

impl NetworkFilters {
    /// From `key=value` pairs as `--filter` gives them.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<NetworkFilters, FilterError> {
        let mut f = NetworkFilters::default();
        for (key, value) in pairs {
            match key {
                "name" => f.name.push(value.into()),
                "id" => f.id.push(value.into()),
                "label" => f.label.push(LabelFilter::parse(value)),
                "driver" => f.driver.push(value.into()),
                "type" if matches!(value, "builtin" | "custom") => f.kind.push(value.into()),
                "type" => {
                    return Err(FilterError {
                        filter: format!("{key}={value}"),
                        reason: "type is builtin or custom",
                    })
                }
                _ => {
                    return Err(FilterError {
                        filter: format!("{key}={value}"),
                        reason: "networks filter on name, id, label, driver and type",
                    })
                }
            }
        }
        Ok(f)
    }

    pub fn matches(&self, n: &NetworkRecord) -> bool {
        let kind = if n.name == DEFAULT_NETWORK {
            "builtin"
        } else {
            "custom"
        };
        (self.name.is_empty() || self.name.iter().any(|s| n.name.contains(s.as_str())))
            && (self.id.is_empty() || self.id.iter().any(|p| n.id.starts_with(p.as_str())))
            && (self.driver.is_empty() || self.driver.contains(&n.driver))
            && (self.kind.is_empty() || self.kind.iter().any(|k| k == kind))
            && self.label.iter().all(|l| l.matches(&n.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_networks() {
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(LabelFilter::parse("a").matches(&labels));
        assert!(LabelFilter::parse("a=1").matches(&labels));
        assert!(!LabelFilter::parse("a=2").matches(&labels));
        assert!(!LabelFilter::parse("b").matches(&labels));
        let net = NetworkRecord {
            id: "abcdef".into(),
            name: "front".into(),
            driver: "bridge".into(),
            created: chrono::Utc::now(),
            bridge: "br-abcdef".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: "10.1.0.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            labels,
            options: BTreeMap::new(),
        };
        let f = |pairs: &[(&str, &str)]| {
            NetworkFilters::parse(pairs.iter().copied())
                .unwrap()
                .matches(&net)
        };
        assert!(f(&[("name", "ron"), ("label", "a=1"), ("type", "custom")]));
        assert!(f(&[("id", "abc"), ("id", "zzz")]));
        assert!(!f(&[("label", "a=1"), ("label", "b")]));
        assert!(!f(&[("type", "builtin")]));
        assert!(NetworkFilters::parse([("colour", "red")]).is_err());
    }
}
