//! networks: docker's network endpoints over the engine's networks
//! (bridge networks with their own subnets; `connect`/`disconnect` for
//! process containers).

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{blocking, ApiError, AppState};

/// `GET /networks`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filters = crate::containers::filters(&q)?;
    let engine = state.engine.clone();
    blocking(move || {
        let mut out = Vec::new();
        for net in engine.networks()?.list()? {
            // docker: values of one key OR, keys AND, every label.
            let keys: std::collections::BTreeSet<&str> =
                filters.iter().map(|(k, _)| k.as_str()).collect();
            let keep = keys.into_iter().all(|key| {
                let matches = |v: &String| match key {
                    "name" => net.name.contains(v.as_str()),
                    "id" => net.id.starts_with(v.as_str()),
                    "driver" => net.driver == *v,
                    "label" => match v.split_once('=') {
                        Some((k, v)) => net.labels.get(k).is_some_and(|x| x == v),
                        None => net.labels.contains_key(v),
                    },
                    _ => false,
                };
                let mut values = filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
                if key == "label" {
                    values.all(matches)
                } else {
                    values.any(matches)
                }
            });
            if keep {
                out.push(engine::inspect::network(&engine, &net)?);
            }
        }
        Ok(Json(Value::Array(out)))
    })
    .await
}

/// `GET /networks/{id}`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let net = engine.networks()?.get(&id)?;
        Ok(Json(engine::inspect::network(&engine, &net)?))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    labels: Option<BTreeMap<String, String>>,
    options: Option<BTreeMap<String, String>>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    check_duplicate: bool,
    attachable: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
}

/// `POST /networks/create`.
pub async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut de = serde_json::Deserializer::from_slice(&body);
    let b: CreateBody = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::bad_request(format!("invalid field {}: {}", e.path(), e.inner())))?;
    if b.name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid field Name: a network needs a name",
        ));
    }
    if !matches!(b.driver.as_deref(), None | Some("") | Some("bridge")) {
        return Err(ApiError::bad_request(format!(
            "isola does not support network driver {:?}: bridge only",
            b.driver.unwrap_or_default()
        )));
    }
    if b.enable_ipv6 {
        return Err(ApiError::bad_request(
            "isola does not support EnableIPv6 yet",
        ));
    }
    let _ = (b.check_duplicate, b.attachable);
    let ipam = b.ipam.unwrap_or_default();
    if !matches!(ipam.driver.as_deref(), None | Some("") | Some("default")) {
        return Err(ApiError::bad_request(
            "isola supports only the default IPAM driver",
        ));
    }
    let mut configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request(
            "isola supports one IPAM config (one IPv4 subnet) per network",
        ));
    }
    let config = configs.pop().unwrap_or_default();
    let req = engine::networks::NetworkCreate {
        name: b.name,
        subnet: config.subnet,
        gateway: config.gateway,
        ip_range: config.ip_range,
        internal: b.internal,
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
    };
    let engine = state.engine.clone();
    let net = blocking(move || Ok(engine.networks()?.create(&req)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": net.id, "Warning": ""})),
    ))
}

/// `DELETE /networks/{id}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        engine.remove_network(&id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    force: bool,
    endpoint_config: Option<Value>,
}

async fn connection(
    state: AppState,
    id: String,
    body: Bytes,
    connect: bool,
) -> Result<StatusCode, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(&body);
    let b: ConnectBody = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::bad_request(format!("invalid field {}: {}", e.path(), e.inner())))?;
    if connect
        && b.endpoint_config
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != &json!({}))
    {
        return Err(ApiError::bad_request(
            "isola does not support EndpointConfig on connect yet",
        ));
    }
    let _ = b.force;
    let engine = state.engine.clone();
    blocking(move || {
        if connect {
            engine.connect_network(&b.container, &id)?;
        } else {
            engine.disconnect_network(&b.container, &id)?;
        }
        Ok(StatusCode::OK)
    })
    .await
}

pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    connection(state, id, body, true).await
}

pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    connection(state, id, body, false).await
}

/// `POST /networks/prune`.
pub async fn prune(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let removed = engine.prune_networks()?;
        Ok(Json(json!({ "NetworksDeleted": removed })))
    })
    .await
}
