//! volumes: docker's volume endpoints over the engine's volumes (the same
//! ones `isola volume` and `-v name:/path` use). Only shapes and status
//! codes are made here; what a volume is, who uses it and what may be
//! removed is the engine's.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use engine::volumes::{VolumeCreate, VolumeFilters};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{blocking, ApiError, ApiVersion, AppState};

type Q = Query<HashMap<String, String>>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    /// Swarm's cluster volumes (API 1.42): not for a local engine.
    cluster_volume_spec: Option<Value>,
}

/// `POST /volumes/create`: 201 and the volume; the same name again with
/// the same labels is the same volume (as docker).
pub async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            ApiError::bad_request(format!("invalid field {}: {}", e.path(), e.inner()))
        })?
    };
    if b.cluster_volume_spec.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(
            "isola does not support ClusterVolumeSpec (swarm cluster volumes)",
        ));
    }
    let req = VolumeCreate {
        name: Some(b.name).filter(|n| !n.is_empty()),
        driver: b.driver.filter(|d| !d.is_empty()),
        labels: b.labels.unwrap_or_default(),
        options: b.driver_opts.unwrap_or_default(),
    };
    let engine = state.engine.clone();
    blocking(move || {
        let v = engine.create_volume(&req)?;
        Ok((StatusCode::CREATED, Json(engine::inspect::volume(&v))))
    })
    .await
}

fn volume_filters(q: &HashMap<String, String>) -> Result<VolumeFilters, ApiError> {
    let pairs = crate::containers::filters(q)?;
    Ok(VolumeFilters::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}

/// `GET /volumes`: `{"Volumes": [...], "Warnings": []}`, filtered by name,
/// label, dangling and driver.
pub async fn list(State(state): State<AppState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = volume_filters(&q)?;
    let engine = state.engine.clone();
    blocking(move || {
        let vols: Vec<Value> = engine
            .list_volumes(&filters)?
            .iter()
            .map(engine::inspect::volume)
            .collect();
        Ok(Json(json!({ "Volumes": vols, "Warnings": [] })))
    })
    .await
}

/// `GET /volumes/{name}`.
pub async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || Ok(Json(engine::inspect::volume(&engine.volume(&name)?)))).await
}

/// `DELETE /volumes/{name}?force=`: 204; 404 if missing (unless `force`),
/// 409 while a container names it (`force` or not, as docker).
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let force = crate::streams::flag(&q, "force");
    let engine = state.engine.clone();
    blocking(move || {
        engine.remove_volume(&name, force)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /volumes/prune`: the unused volumes passing the `label` filters;
/// anonymous ones only unless `all=true`, and all of them for clients older
/// than API 1.42, which knew no other behaviour (moby's rule).
pub async fn prune(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    let mut all = version < ApiVersion(1, 42);
    let mut labels = Vec::new();
    for (k, v) in crate::containers::filters(&q)? {
        match k.as_str() {
            "all" => {
                all = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'all={v}': all is true or false"
                        )))
                    }
                }
            }
            "label" => labels.push(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {other:?}: volume prune filters on label and all"
                )))
            }
        }
    }
    let filters = VolumeFilters::parse(labels.iter().map(|l| ("label", l.as_str())))?;
    let engine = state.engine.clone();
    blocking(move || {
        let report = engine.prune_volumes(all, &filters)?;
        Ok(Json(json!({
            "VolumesDeleted": report.removed,
            "SpaceReclaimed": report.reclaimed,
        })))
    })
    .await
}
