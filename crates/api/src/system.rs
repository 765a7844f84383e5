//! system: `/_ping`, `/version` and `/info`, what clients ask first to
//! negotiate a version and to learn the host (isola's facts from
//! `engine::info`, under docker's names).

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::state::Status;
use serde_json::{json, Value};

use crate::{blocking, ApiError, AppState, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: "OK"; the version headers are the middleware's.
pub async fn ping(method: Method) -> Response {
    let mut resp = if method == Method::HEAD {
        ().into_response()
    } else {
        "OK".into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("builder-version", HeaderValue::from_static("1"));
    resp
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    let (os, arch, _) = engine::isolation::host_platform();
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": { "Name": "isola" },
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": os,
                "Arch": arch,
                "KernelVersion": kernel_version(),
                "Isolation": "process, vm (hyperv)",
            },
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": os,
        "Arch": arch,
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

/// `GET /info`: counts, the host, and `Isolation`, the host's default.
pub async fn info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let host = engine::info::host_info(engine.root());
        let containers = engine.list()?;
        let count = |f: &dyn Fn(Status) -> bool| {
            containers.iter().filter(|c| f(c.state.status)).count()
        };
        let images = engine.list_images()?.len();
        let (_, arch, _) = engine::isolation::host_platform();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Ok(Json(json!({
            "ID": "",
            "Containers": containers.len(),
            "ContainersRunning": count(&|s| matches!(s, Status::Running | Status::Restarting)),
            "ContainersPaused": count(&|s| s == Status::Paused),
            "ContainersStopped": count(&|s| matches!(s, Status::Exited | Status::Created | Status::Dead)),
            "Images": images,
            "Driver": "overlay",
            "DriverStatus": [["Backing Filesystem", "overlayfs snapshots"]],
            "DockerRootDir": host.storage_root,
            "Isolation": host.default_isolation.map(|m| m.to_string()).unwrap_or_default(),
            "IsolationSource": host.default_isolation_source,
            "VmAcceleration": host.vm_acceleration.mode,
            "OperatingSystem": host.operating_system,
            "OSType": "linux",
            "OSVersion": "",
            "Architecture": host.architecture,
            "Platform": host.oci_platform,
            "NCPU": host.cpus,
            "MemTotal": host.memory_bytes,
            "Name": hostname,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "KernelVersion": host.kernel_version,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": host.cgroup_version,
            "LoggingDriver": "json-file",
            "DefaultRuntime": "isola",
            "Runtimes": { "isola": { "path": "isola" } },
            "Plugins": { "Volume": [], "Network": ["bridge", "host", "null"], "Log": ["json-file"] },
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Swarm": { "LocalNodeState": "inactive" },
            "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"] },
            "Debug": false,
            "ExperimentalBuild": false,
            "Labels": [],
            "Warnings": [],
            "ArchitectureOci": arch,
        })))
    })
    .await
}
