//! `GET /v1/cameras`, `GET /v1/cameras/{name}`, its recent events and
//! `POST /v1/cameras/{name}/reconnect`.
//!
//! A reconnect asks each target's worker to delete and add the stream (ahead of other work)
//! and answers once every worker is done with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::{ApiState, TargetInfo};
use crate::activity::{PairView, Summary};
use crate::camera::Camera;
use crate::events::Envelope;
use crate::ledger::Owned;
use crate::reconcile::report::OutcomeKind;
use crate::reconcile::ticket::Ticket;
use crate::reconcile::worker::QueueStats;
use crate::resolve::account::{CommandStats, StreamState};

/// `GET /v1/cameras`.
#[derive(Debug, Serialize)]
pub struct CamerasView {
    pub daemon: Summary,
    /// The targets, in the configuration's order.
    pub targets: Vec<TargetInfo>,
    /// Each target's work queue.
    pub queues: BTreeMap<String, QueueStats>,
    /// Each Nest account's and resolver's command queue.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resolvers: BTreeMap<String, CommandStats>,
    /// File targets without `api:`: camsync writes their file but cannot check that the
    /// server loaded it.
    pub unverified_targets: Vec<String>,
    pub cameras: Vec<CameraView>,
}

/// A camera as desired (credentials redacted) and as it stands on each target.
#[derive(Debug, Serialize)]
pub struct CameraView {
    pub name: String,
    pub enabled: bool,
    pub profile: String,
    /// Sources with passwords (and a Nest stream's token) shown as `***`.
    pub sources: Vec<String>,
    /// A Nest camera's stream, or that of a camera with `resolve:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedView>,
    pub targets: Vec<TargetView>,
}

/// A resolved camera's stream as its account's queue keeps it.
#[derive(Debug, Serialize)]
pub struct ResolvedView {
    /// The Nest account or resolver.
    pub resolver: String,
    pub device: String,
    /// `pending`, `live`, `degraded` or `over-quota`.
    pub state: Option<StreamState>,
    /// Streams generated for it so far (each a new upstream session).
    pub generation: u64,
    /// Seconds until the stream expires, if one is live.
    pub expires_in_secs: Option<u64>,
    pub failures: u32,
    pub error: Option<String>,
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

fn view(state: &ApiState, camera: &Camera, owned: &BTreeMap<String, Arc<Owned>>) -> CameraView {
    let targets = state
        .workers
        .handles()
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
        resolved: resolved_view(state, camera),
        targets,
    }
}

fn resolved_view(state: &ApiState, camera: &Camera) -> Option<ResolvedView> {
    let by = camera.resolver.as_ref()?;
    let resolution = state.resolver.resolution(camera);
    let now = tokio::time::Instant::now();
    Some(ResolvedView {
        resolver: by.resolver.clone(),
        device: by.device.clone(),
        state: resolution.as_ref().map(|r| r.state),
        generation: resolution.as_ref().map_or(0, |r| r.generation),
        expires_in_secs: resolution
            .as_ref()
            .and_then(|r| r.expires)
            .map(|e| e.saturating_duration_since(now).as_secs()),
        failures: resolution.as_ref().map_or(0, |r| r.failures),
        error: resolution.and_then(|r| r.error),
    })
}

fn owned_everywhere(state: &ApiState) -> BTreeMap<String, Arc<Owned>> {
    state
        .workers
        .handles()
        .iter()
        .map(|w| (w.name().to_owned(), w.owned()))
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only these cameras (comma-separated; names never hold a comma); unknown ones are left
    /// out. The status page reads the cameras an event named this way, in one request.
    names: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<CamerasView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let wanted: Option<std::collections::BTreeSet<&str>> = query
        .names
        .as_deref()
        .map(|names| names.split(',').collect());
    let owned = owned_everywhere(&state);
    let cameras = state
        .activity
        .inventory()
        .map(|i| {
            i.cameras
                .values()
                .filter(|c| wanted.as_ref().is_none_or(|w| w.contains(c.name.as_str())))
                .map(|c| view(&state, c, &owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(CamerasView {
        daemon: state.activity.summary(),
        targets: state.targets.clone(),
        queues: state
            .workers
            .handles()
            .iter()
            .map(|w| (w.name().to_owned(), w.stats()))
            .collect(),
        resolvers: state
            .resolver
            .accounts()
            .map(|(name, account)| (name.to_owned(), account.stats()))
            .collect(),
        unverified_targets: state.workers.unobserved().to_vec(),
        cameras,
    }))
}

fn camera(state: &ApiState, name: &str) -> Result<Arc<Camera>, ApiError> {
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

/// `GET /v1/cameras/{name}/events`.
#[derive(Debug, Serialize)]
pub struct History {
    pub camera: String,
    /// The newest events about the camera, oldest first (at most
    /// [`crate::events::HISTORY_PER_CAMERA`], since the daemon started).
    pub events: Vec<Envelope>,
}

pub async fn history(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<History>, ApiError> {
    camera(&state, &name)?;
    Ok(Json(History {
        events: state.activity.history(&name),
        camera: name,
    }))
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
/// it, through each target's worker. 200 when nothing failed, 502 otherwise; the body says per
/// target. A resolved camera's stream (Nest, `resolve:`) is generated anew instead (202: the
/// servers get the new stream when the resolver answers).
pub async fn reconnect(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<ReconnectQuery>, QueryRejection>,
) -> Result<(StatusCode, Json<Reconnected>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let camera = camera(&state, &name)?;
    if state.resolver.regenerate(&camera) {
        tracing::info!(camera = %name, "reconnect: a new stream is resolved");
        state.activity.reconnected(
            &name,
            "resolver",
            "regenerating",
            Some("a new stream is resolved; the servers get it when the resolver answers"),
        );
        return Ok((
            StatusCode::ACCEPTED,
            Json(Reconnected {
                camera: name,
                targets: Vec::new(),
            }),
        ));
    }
    let workers = state.workers.handles();
    if let Some(wanted) = &query.target
        && !workers.iter().any(|w| w.name() == wanted)
    {
        let names: Vec<&str> = workers.iter().map(|w| w.name()).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown target {wanted:?} (targets: {})",
            names.join(", ")
        )));
    }
    let chosen = workers
        .iter()
        .filter(|w| query.target.as_ref().is_none_or(|t| t == w.name()));
    let ticket = Ticket::new();
    let mut results = Vec::new();
    for worker in chosen {
        let skipped = if !camera.wants_target(worker.name()) {
            Some("the camera is not meant for this target")
        } else if !state.workers.can_recover(worker.name()) {
            Some(
                "camsync cannot re-register streams on this target (a file target needs the server's `api:`)",
            )
        } else if !worker.confirmed().contains(&name) {
            Some("camsync does not own this stream here (yet); a sync will create it")
        } else {
            None
        };
        match skipped {
            Some(why) => results.push(ReconnectResult {
                target: worker.name().to_owned(),
                outcome: "skipped",
                detail: Some(why.to_owned()),
            }),
            None => worker.recover(
                &name,
                true,
                "a reconnect was asked for",
                std::slice::from_ref(&ticket),
            ),
        }
    }
    ticket.release();
    ticket.wait().await;
    let report = state.workers.report(&ticket, Vec::new());
    for target in report.targets {
        let step = target.steps.iter().find(|s| s.stream == name);
        let (outcome, detail) = match step {
            Some(s) => (s.outcome, s.detail.clone()),
            None => (OutcomeKind::Failed, target.error.clone()),
        };
        let outcome = match outcome {
            OutcomeKind::Done => "done",
            OutcomeKind::Partial => "partial",
            OutcomeKind::Skipped => "skipped",
            _ => "failed",
        };
        results.push(ReconnectResult {
            target: target.target,
            outcome,
            detail: detail.map(|d| crate::secret::redact(&d)),
        });
    }
    let order = state.workers.names();
    results.sort_by_key(|r| order.iter().position(|n| *n == r.target));
    for r in &results {
        tracing::info!(camera = %name, target_name = %r.target, outcome = r.outcome, "reconnect");
        state
            .activity
            .reconnected(&name, &r.target, r.outcome, r.detail.as_deref());
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
