//! `GET /v1/cameras`, `GET /v1/cameras/{name}` and `POST /v1/cameras/{name}/reconnect`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::activity::{PairView, Summary};
use crate::camera::Camera;
use crate::ledger::Owned;
use crate::target::Applied;

/// `GET /v1/cameras`.
#[derive(Debug, Serialize)]
pub struct CamerasView {
    pub daemon: Summary,
    pub cameras: Vec<CameraView>,
}

/// A camera as desired (credentials redacted) and as it stands on each target.
#[derive(Debug, Serialize)]
pub struct CameraView {
    pub name: String,
    pub enabled: bool,
    pub profile: String,
    /// Sources with passwords shown as `***`.
    pub sources: Vec<String>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Serialize)]
pub struct TargetView {
    pub target: String,
    /// The camera is meant to be on this target (enabled, and the target is among its targets).
    pub wanted: bool,
    /// The ledger says camsync owns the stream there.
    pub owned: bool,
    /// camsync's last write of it there was confirmed.
    pub confirmed: bool,
    #[serde(flatten)]
    pub pair: PairView,
}

fn view(state: &ApiState, camera: &Camera, owned: &BTreeMap<String, Owned>) -> CameraView {
    let targets = state
        .reconciler
        .targets()
        .iter()
        .map(|t| {
            let entry = owned.get(t.name()).and_then(|o| o.get(&camera.name));
            TargetView {
                target: t.name().to_owned(),
                wanted: camera.wants_target(t.name()),
                owned: entry.is_some(),
                confirmed: entry.is_some_and(Option::is_some),
                pair: state
                    .activity
                    .pair(&camera.name, t.name())
                    .unwrap_or_default(),
            }
        })
        .collect();
    CameraView {
        name: camera.name.clone(),
        enabled: camera.enabled,
        profile: camera.profile.clone(),
        sources: camera.sources.iter().map(|s| s.redacted()).collect(),
        targets,
    }
}

fn owned_everywhere(state: &ApiState) -> BTreeMap<String, Owned> {
    state
        .reconciler
        .targets()
        .iter()
        .map(|t| (t.name().to_owned(), state.reconciler.owned(t.name())))
        .collect()
}

pub async fn list(State(state): State<ApiState>) -> Json<CamerasView> {
    let owned = owned_everywhere(&state);
    let cameras = state
        .activity
        .inventory()
        .map(|i| {
            i.cameras
                .values()
                .map(|c| view(&state, c, &owned))
                .collect()
        })
        .unwrap_or_default();
    Json(CamerasView {
        daemon: state.activity.summary(),
        cameras,
    })
}

fn camera(state: &ApiState, name: &str) -> Result<Camera, ApiError> {
    state.activity.camera(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no camera named {name:?} in the inventory (GET /v1/cameras lists them)"
        ))
    })
}

pub async fn one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CameraView>, ApiError> {
    let camera = camera(&state, &name)?;
    Ok(Json(view(&state, &camera, &owned_everywhere(&state))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectQuery {
    target: Option<String>,
}

/// The answer to a reconnect: one line per target.
#[derive(Debug, Serialize)]
pub struct Reconnected {
    pub camera: String,
    pub targets: Vec<ReconnectResult>,
}

#[derive(Debug, Serialize)]
pub struct ReconnectResult {
    pub target: String,
    /// `done`, `partial`, `failed` or `skipped`.
    pub outcome: &'static str,
    pub detail: Option<String>,
}

/// Deletes and re-adds the camera's stream on every target (or `?target=`) where camsync owns
/// it, under each target's write gate. 200 when nothing failed, 502 otherwise; the body says per target.
pub async fn reconnect(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<ReconnectQuery>, QueryRejection>,
) -> Result<(StatusCode, Json<Reconnected>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let camera = camera(&state, &name)?;
    let targets = state.reconciler.targets();
    if let Some(wanted) = &query.target
        && !targets.iter().any(|t| t.name() == wanted)
    {
        let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown target {wanted:?} (targets: {})",
            names.join(", ")
        )));
    }
    let mut results = Vec::new();
    for target in targets
        .iter()
        .filter(|t| query.target.as_ref().is_none_or(|w| w == t.name()))
    {
        // No sync step on this target meanwhile, and ownership checked under that.
        let gate = state.reconciler.write_gate(target.name());
        let _no_sync_step_meanwhile = gate.read().await;
        let skipped = |why: &str| ("skipped", Some(why.to_owned()));
        let (outcome, detail) = if !camera.wants_target(target.name()) {
            skipped("the camera is not meant for this target")
        } else if !state.reconciler.confirmed(target.name()).contains(&name) {
            skipped("camsync does not own this stream here (yet); a sync will create it")
        } else {
            match target.recover(&camera, true).await {
                Ok(Applied::Done) => ("done", None),
                Ok(Applied::Partial { detail }) => ("partial", Some(detail)),
                Err(e) => ("failed", Some(e.to_string())),
            }
        };
        let detail = detail.map(|d| crate::secret::redact(&d));
        tracing::info!(camera = %name, target_name = target.name(), outcome, "reconnect");
        state
            .activity
            .reconnected(&name, target.name(), outcome, detail.as_deref());
        results.push(ReconnectResult {
            target: target.name().to_owned(),
            outcome,
            detail,
        });
    }
    let status = if results.iter().any(|r| r.outcome == "failed") {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Reconnected {
            camera: name,
            targets: results,
        }),
    ))
}
