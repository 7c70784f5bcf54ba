//! The daemon's HTTP API (axum): the status page, webhook, status, forced reconnect, plan,
//! events, metrics and health probes. [`routes`] is the one list of routes: the router is
//! built from it and the OpenAPI document is checked against it. The handlers share
//! [`ApiState`] (`state.rs`) and refuse with [`ApiError`] (`error.rs`).
//!
//! The API never writes to a server: the webhook and `POST /v1/sync` only request a sync from
//! the daemon's loop ([`crate::activity::Activity::request_sync`]); a reconnect asks each
//! target's worker to re-register the camera, ahead of other work, and answers when the
//! workers are done. No answer, log line or metric label holds a credential: cameras are shown
//! with redacted sources.

mod auth;
mod cameras;
mod error;
mod page;
mod probes;
mod server;
mod sse;
mod state;
mod sync;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use auth::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
pub use error::{ApiError, BODY_LIMIT};
pub use page::CONTENT_SECURITY_POLICY;
pub use probes::OPENAPI;
pub use server::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URL_BYTES};
pub use state::{ApiParts, ApiState, TargetInfo};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the listener.
    Open,
    /// The bearer token, when one is configured.
    Token,
    /// A webhook signature, or the bearer token (checked by the handler: it needs the body).
    Webhook,
}

/// One route of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

fn table() -> Vec<(Route, MethodRouter<ApiState>)> {
    let route = |method: Method, path, access| Route {
        method,
        path,
        access,
    };
    vec![
        (route(Method::GET, "/", Access::Open), get(page::index)),
        (
            route(Method::GET, "/ui/app.js", Access::Open),
            get(page::script),
        ),
        (
            route(Method::GET, "/ui/app.css", Access::Open),
            get(page::style),
        ),
        (
            route(Method::GET, "/healthz", Access::Open),
            get(probes::healthz),
        ),
        (
            route(Method::GET, "/readyz", Access::Open),
            get(probes::readyz),
        ),
        (
            route(Method::GET, "/metrics", Access::Open),
            get(probes::metrics),
        ),
        (
            route(Method::GET, "/v1/openapi.json", Access::Open),
            get(probes::openapi),
        ),
        (
            route(Method::POST, "/v1/webhook/camera-changed", Access::Webhook),
            post(sync::webhook),
        ),
        (
            route(Method::POST, "/v1/sync", Access::Token),
            post(sync::sync_now),
        ),
        (
            route(Method::GET, "/v1/syncs/{id}", Access::Token),
            get(sync::result),
        ),
        (
            route(Method::GET, "/v1/plan", Access::Token),
            get(sync::plan),
        ),
        (
            route(Method::GET, "/v1/cameras", Access::Token),
            get(cameras::list),
        ),
        (
            route(Method::GET, "/v1/cameras/{name}", Access::Token),
            get(cameras::one),
        ),
        (
            route(Method::GET, "/v1/cameras/{name}/events", Access::Token),
            get(cameras::history),
        ),
        (
            route(Method::POST, "/v1/cameras/{name}/reconnect", Access::Token),
            post(cameras::reconnect),
        ),
        (
            route(Method::GET, "/v1/events", Access::Token),
            get(sse::events),
        ),
    ]
}

/// Every route the API serves.
pub fn routes() -> Vec<Route> {
    table().into_iter().map(|(route, _)| route).collect()
}

/// The router over [`routes`], with the body limit, the token check and per-request spans and
/// metrics.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (route, handler) in table() {
        let handler = match route.access {
            Access::Token => {
                handler.route_layer(middleware::from_fn_with_state(state.clone(), require_token))
            }
            Access::Open | Access::Webhook => handler,
        };
        router = router.route(route.path, handler);
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(server::limit_url))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, within the connection limits of
/// `api:` (see `server.rs`); then stops accepting and lets requests in flight finish (event
/// streams end at once).
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let limits = state.limits;
    server::serve(listener, router(state), limits, shutdown).await
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match state.auth.bearer(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// One span per request and `camsync_http_requests_total`, by route template (never the raw
/// path or query).
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!("api", method = %request.method(), route = %route);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    state.activity.metrics().request(&route, status);
    span.in_scope(|| tracing::debug!(status, "answered"));
    response
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    // A path segment holds no '/': a camera named `site/door` is `/v1/cameras/site%2Fdoor`.
    let hint = uri
        .path()
        .strip_prefix("/v1/cameras/")
        .filter(|rest| rest.contains('/'))
        .map(|rest| {
            let (name, action) = match rest.strip_suffix("/reconnect") {
                Some(name) => (name, "/reconnect"),
                None => (rest, ""),
            };
            format!(
                "; a camera name that contains '/' is sent percent-encoded: /v1/cameras/{}{action}",
                name.replace('/', "%2F")
            )
        });
    ApiError::NotFound(format!(
        "no such route{}",
        hint.as_deref().unwrap_or("; see GET /v1/openapi.json")
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The security each access level must declare in the document.
    fn security(access: Access) -> serde_json::Value {
        match access {
            Access::Open => serde_json::json!([]),
            Access::Token => serde_json::json!([{ "bearer": [] }]),
            Access::Webhook => serde_json::json!([
                { "webhookSignature": [], "webhookTimestamp": [] },
                { "bearer": [] }
            ]),
        }
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeMap::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                documented.insert(
                    (method.to_uppercase(), path.clone()),
                    operation["security"].clone(),
                );
            }
        }
        let served: BTreeMap<(String, String), serde_json::Value> = routes()
            .into_iter()
            .map(|r| {
                (
                    (r.method.to_string(), r.path.to_owned()),
                    security(r.access),
                )
            })
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn every_reference_in_the_openapi_document_resolves() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => out.push(r.to_owned()),
                            _ => refs(v, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
