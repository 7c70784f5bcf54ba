//! Sync requests: the camera-changed webhook, `POST /v1/sync`, their results
//! (`GET /v1/syncs/{id}`) and the dry-run plan.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, body};
use crate::activity::Lookup;
use crate::reconcile::report::SyncReport;
use crate::source::Inventory;

/// `POST /v1/webhook/camera-changed`: `{"name": …}`, `{"names": […]}` or `{}` (everything).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraChanged {
    name: Option<String>,
    names: Option<Vec<String>>,
    /// Anything that makes two deliveries of one change sign differently; otherwise unused.
    #[serde(default, rename = "nonce")]
    _nonce: Option<serde::de::IgnoredAny>,
}

/// The answer to an accepted request.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Resolves through `GET /v1/syncs/{id}`.
    pub id: u64,
    pub status: String,
    /// The cameras named, or empty for everything.
    pub cameras: Vec<String>,
}

fn accepted(state: &ApiState, cameras: Vec<String>) -> (StatusCode, Json<Accepted>) {
    let id = state.activity.request_sync(&cameras);
    tracing::debug!(id, cameras = cameras.len(), "sync requested");
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: format!("/v1/syncs/{id}"),
            cameras,
        }),
    )
}

pub async fn webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let raw = body(raw)?;
    state.auth.webhook(&headers, &raw, SystemTime::now())?;
    let changed: CameraChanged = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body ({e}); send {{\"name\": \"front_door\"}}, {{\"names\": [...]}} or {{}}"
        ))
    })?;
    let names = match (changed.name, changed.names) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `name` or `names`, not both".into(),
            ));
        }
        (Some(name), None) => vec![name],
        (None, names) => names.unwrap_or_default(),
    };
    check_known(&state, &names).await?;
    Ok(accepted(&state, names))
}

pub async fn sync_now(State(state): State<ApiState>) -> (StatusCode, Json<Accepted>) {
    accepted(&state, Vec::new())
}

/// Refuses names that are neither in the inventory (valid or rejected) nor owned by camsync on
/// some target (a camera just deleted from the source is a change too). A name camsync has not
/// seen yet is looked up in a fresh read of the source.
async fn check_known(state: &ApiState, names: &[String]) -> Result<(), ApiError> {
    let in_inventory = |inventory: &Inventory, name: &str| {
        inventory.cameras.contains_key(name) || inventory.rejected.iter().any(|r| r.camera == name)
    };
    let current = state.activity.inventory();
    let mut unknown: Vec<&String> = names
        .iter()
        .filter(|n| !current.as_ref().is_some_and(|i| in_inventory(i, n)))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let owned: BTreeSet<String> = state
        .workers
        .handles()
        .iter()
        .flat_map(|w| w.owned().keys().cloned().collect::<Vec<_>>())
        .collect();
    unknown.retain(|n| !owned.contains(*n));
    if unknown.is_empty() {
        return Ok(());
    }
    let fresh = read_source(state).await?;
    unknown.retain(|n| !in_inventory(&fresh, n));
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
    Err(ApiError::BadRequest(format!(
        "unknown camera {}: not in the camera inventory and not owned by camsync on any target",
        list.join(", ")
    )))
}

async fn read_source(state: &ApiState) -> Result<Arc<Inventory>, ApiError> {
    state
        .source
        .load()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// `GET /v1/syncs/{id}`.
#[derive(Debug, Serialize)]
struct SyncState<'a> {
    id: u64,
    /// `pending`, `running` or `done`.
    state: &'static str,
    /// The sync that serves the request, once one started.
    sync: Option<u64>,
    result: Option<&'a crate::activity::SyncRecord>,
}

pub async fn result(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "{id:?} is not a sync id (the number a webhook or POST /v1/sync answered)"
        ))
    })?;
    let (label, sync, result) = match state.activity.lookup(id) {
        Lookup::Unknown => {
            return Err(ApiError::NotFound(format!(
                "no sync request {id} (the last one is {})",
                state.activity.last_request()
            )));
        }
        Lookup::Expired => {
            return Err(ApiError::Gone(format!(
                "the result of sync request {id} is no longer kept (the last {} syncs are, fewer when they are large)",
                crate::activity::KEEP_SYNCS
            )));
        }
        Lookup::Pending => ("pending", None, None),
        Lookup::Running { sync } => ("running", Some(sync), None),
        Lookup::Done(record) => ("done", Some(record.sync), Some(record)),
    };
    let answer = SyncState {
        id,
        state: label,
        sync,
        result: result.as_deref(),
    };
    serde_json::to_value(answer)
        .map(Json)
        .map_err(|e| ApiError::Unavailable(format!("cannot encode the result: {e}")))
}

/// `GET /v1/plan`: what a sync would do now, from a fresh read of the source.
pub async fn plan(State(state): State<ApiState>) -> Result<Json<SyncReport>, ApiError> {
    let inventory = read_source(&state).await?;
    Ok(Json(state.plan.plan(&inventory).await))
}
