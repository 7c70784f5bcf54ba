//! The routes for machines: liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::state::ApiState;

/// The OpenAPI 3 description of the API's routes (checked against them by the tests).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once the inventory is loaded and the first sync is done, 503 before.
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let summary = state.activity.summary();
    let status = if summary.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": summary.ready,
        "inventory_loaded": summary.inventory_loaded,
        "first_sync_done": summary.syncs > 0,
    });
    (status, Json(body))
}

/// `GET /metrics`: the OpenMetrics text exposition.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    for (name, account) in state.resolver.accounts() {
        let states: Vec<_> = account
            .resolutions()
            .borrow()
            .values()
            .map(|r| r.state)
            .collect();
        state
            .activity
            .metrics()
            .resolver(name, &account.stats(), &states);
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.activity.metrics().encode(),
    )
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
