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

use super::error::{ApiError, body};
use super::state::ApiState;
use crate::activity::Lookup;
use crate::echo::{Echo, Message};
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
    let names = changed_cameras(&raw).map_err(ApiError::BadRequest)?;
    check_known(&state, &names).await?;
    Ok(accepted(&state, names))
}

/// The cameras a webhook body names (empty: every camera), or why the body is refused; the
/// reason quotes the body only escaped and cut.
fn changed_cameras(raw: &[u8]) -> Result<Vec<String>, String> {
    let changed: CameraChanged = serde_json::from_slice(raw).map_err(|e| {
        format!(
            "invalid JSON body ({}); send {{\"name\": \"front_door\"}}, {{\"names\": [...]}} or {{}}",
            Message(&e.to_string())
        )
    })?;
    match (changed.name, changed.names) {
        (Some(_), Some(_)) => Err("give `name` or `names`, not both".into()),
        (Some(name), None) => Ok(vec![name]),
        (None, names) => Ok(names.unwrap_or_default()),
    }
}

/// How many unknown names an error lists before it only counts the rest.
const UNKNOWN_SHOWN: usize = 5;

fn unknown_cameras(unknown: &[&String]) -> String {
    let mut list: Vec<String> = unknown
        .iter()
        .take(UNKNOWN_SHOWN)
        .map(|n| Echo(n).to_string())
        .collect();
    if unknown.len() > UNKNOWN_SHOWN {
        list.push(format!("and {} more", unknown.len() - UNKNOWN_SHOWN));
    }
    format!(
        "unknown camera {}: not in the camera inventory and not owned by camsync on any target",
        list.join(", ")
    )
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
    Err(ApiError::BadRequest(unknown_cameras(&unknown)))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn one_bounded_line(text: &str) -> bool {
        !text.chars().any(char::is_control) && text.chars().count() < 1_500
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(512))]

        /// Whatever a caller posts, the body is read or refused with one short line.
        #[test]
        fn any_body_is_read_or_refused_in_one_short_line(
            raw in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2048),
                "\\{(\"(name|names|nonce|x)\": ?(\"[^\"]{0,3000}\"|\\[\\]|null|1|\\{\\}),? ?){0,3}\\}"
                    .prop_map(String::into_bytes),
            ],
        ) {
            if let Err(reason) = changed_cameras(&raw) {
                prop_assert!(one_bounded_line(&reason), "{reason}");
            }
        }

        /// The names a body gives are the names a sync is asked for, byte for byte.
        #[test]
        fn the_names_sent_are_the_names_synced(
            names in proptest::collection::vec(any::<String>(), 0..20),
            nonce in any::<Option<String>>(),
        ) {
            let body = serde_json::json!({"names": names, "nonce": nonce}).to_string();
            prop_assert_eq!(changed_cameras(body.as_bytes()), Ok(names.clone()));
            if let Some(first) = names.first() {
                let body = serde_json::json!({"name": first}).to_string();
                prop_assert_eq!(changed_cameras(body.as_bytes()), Ok(vec![first.clone()]));
            }
        }

        /// Refusing unknown names never echoes a forged line or a whole 64 KiB body.
        #[test]
        fn unknown_names_are_reported_in_one_short_line(
            names in proptest::collection::vec(any::<String>(), 1..50),
        ) {
            let refs: Vec<&String> = names.iter().collect();
            let message = unknown_cameras(&refs);
            prop_assert!(one_bounded_line(&message), "{message}");
            let more = names.len().saturating_sub(UNKNOWN_SHOWN);
            prop_assert_eq!(message.contains(&format!("and {more} more")), more > 0);
        }
    }

    #[test]
    fn name_and_names_together_or_the_wrong_shape_are_refused() {
        assert!(changed_cameras(br#"{"name": "a", "names": ["b"]}"#).is_err());
        assert!(changed_cameras(br#"{"camera": "a"}"#).is_err());
        assert!(changed_cameras(br#"["a"]"#).is_err());
        assert_eq!(changed_cameras(b"{}"), Ok(vec![]));
        let long = format!(r#"{{"name": 1, "x": "{}"}}"#, "y\n".repeat(40_000));
        let reason = changed_cameras(long.as_bytes()).unwrap_err();
        assert!(one_bounded_line(&reason), "{reason}");
        let forged = changed_cameras(br#"{"a\r\nX-Forged: 1": 1}"#).unwrap_err();
        assert!(forged.contains(r"a\r\nX-Forged"), "{forged}");
        assert!(one_bounded_line(&forged), "{forged}");
        let long_name = "n".repeat(60_000);
        let message = unknown_cameras(&[&long_name]);
        assert!(one_bounded_line(&message), "{}", message.len());
    }
}
