//! go2rtc's HTTP API: `/api`, `/api/streams`, `/api/preload` and `/api/restart`, with its
//! answers — JSON with a trailing newline, Go's `http.Error` texts, an empty 200 for a
//! successful write — and optional Basic auth on every route. Every request is tied to the
//! incarnation that received it: once that dies, the request never answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{RawQuery, Request as HttpRequest, State as HttpState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::config::FileEdit;
use super::json::{info_json, list_json, stream_json};
use super::producer::{connect_any, dial_any, start_preload_workers, start_worker};
use crate::rtsp::{self, HttpAuth};

/// Go's fatal errors for a map read while a write is in flight.
const LIST_WRITE: &str = "fatal error: concurrent map iteration and map write";
const GET_WRITE: &str = "fatal error: concurrent map read and map write";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api", any(api_info))
        .route("/api/streams", any(streams_api))
        .route("/api/preload", any(preload_api))
        .route("/api/restart", any(restart_api))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Counts, authenticates, and ties every request to the life of its incarnation: once the
/// simulator dies, a request in flight never answers (its connection drops instead).
async fn gate(
    HttpState(shared): HttpState<Arc<Shared>>,
    request: HttpRequest,
    next: Next,
) -> HttpResponse {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if rtsp::http_auth(request.headers(), shared.authorization.as_deref()) != HttpAuth::Accepted {
        let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="go2rtc""#),
        );
        return response;
    }
    let kill = shared.kill_token();
    tokio::select! {
        () = kill.cancelled() => std::future::pending().await,
        response = next.run(request) => response,
    }
}

/// The decoded query, repeated keys kept in order (`url::form_urlencoded`, like Go's
/// `url.ParseQuery`: `+` is a space).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
        Query(
            pairs
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`, `""` if absent (Go's `Query().Get`).
    fn first(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Whether the query asks for a real dial (go2rtc's probe consumer).
    fn wants_media(&self) -> bool {
        ["video", "audio", "microphone"].iter().any(|k| self.has(k))
    }
}

async fn api_info(HttpState(shared): HttpState<Arc<Shared>>) -> HttpResponse {
    json_response(&info_json(&shared), false)
}

async fn streams_api(
    HttpState(shared): HttpState<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
) -> HttpResponse {
    if [Method::PUT, Method::DELETE, Method::PATCH].contains(&method) {
        shared.writes.fetch_add(1, Ordering::Relaxed);
    }
    let query = Query::parse(raw.as_deref());
    let (src, name) = (query.first("src"), query.first("name"));
    if src.is_empty() && name.is_empty() && method != Method::POST {
        let list = shared.read(LIST_WRITE, list_json).await;
        return json_response(&list, false);
    }
    match method {
        Method::GET => get_stream(&shared, src, query.wants_media()).await,
        Method::PUT => {
            let name = if name.is_empty() { src } else { name };
            put_stream(&shared, name, query.all("src")).await
        }
        Method::PATCH => patch_stream(&shared, name, src).await,
        // Newer go2rtc: memory by `name` (older builds: by `src`), the file always by `src`.
        Method::DELETE => {
            delete_stream(&shared, if name.is_empty() { src } else { name }, src).await
        }
        Method::POST => text(StatusCode::BAD_REQUEST, ""),
        _ => StatusCode::OK.into_response(),
    }
}

async fn get_stream(shared: &Shared, name: &str, dial: bool) -> HttpResponse {
    let Some(sources) = shared
        .read(GET_WRITE, |state| state.streams.get(name).cloned())
        .await
    else {
        return text(StatusCode::NOT_FOUND, "");
    };
    if dial && let Err(e) = dial_any(&sources).await {
        return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("streams: {e}"));
    }
    let json = stream_json(&shared.state(), name, Instant::now());
    match json {
        Some(json) => json_response(&json, true),
        None => text(StatusCode::NOT_FOUND, ""),
    }
}

async fn put_stream(shared: &Shared, name: &str, sources: Vec<String>) -> HttpResponse {
    if !sources.iter().all(|s| source_allowed(s)) {
        return text(StatusCode::BAD_REQUEST, "");
    }
    let persisted = shared
        .write(|state| {
            state.drop_object(name); // a new stream object has no consumers
            let persisted = state.patch_file(FileEdit::Stream(name, Some(&sources)));
            state.streams.insert(name.to_owned(), sources);
            persisted
        })
        .await;
    empty_or_error(persisted, StatusCode::BAD_REQUEST)
}

async fn patch_stream(shared: &Shared, name: &str, src: &str) -> HttpResponse {
    if name.is_empty() || !source_allowed(src) {
        return text(StatusCode::BAD_REQUEST, "");
    }
    shared
        .write(|state| state.streams.insert(name.to_owned(), vec![src.to_owned()]))
        .await;
    StatusCode::OK.into_response()
}

async fn delete_stream(shared: &Shared, memory_key: &str, file_key: &str) -> HttpResponse {
    let persisted = shared
        .write(|state| {
            state.streams.remove(memory_key);
            state.drop_object(memory_key);
            state.patch_file(FileEdit::Stream(file_key, None))
        })
        .await;
    empty_or_error(persisted, StatusCode::BAD_REQUEST)
}

/// What the API accepts as a source since v1.9.12: no whitespace, no command sources.
fn source_allowed(source: &str) -> bool {
    !source.is_empty()
        && !source.bytes().any(|b| b.is_ascii_whitespace())
        && !["exec:", "echo:", "expr:"]
            .iter()
            .any(|p| source.starts_with(p))
}

async fn preload_api(
    HttpState(shared): HttpState<Arc<Shared>>,
    method: Method,
    RawQuery(raw): RawQuery,
) -> HttpResponse {
    let query = Query::parse(raw.as_deref());
    let src = query.first("src");
    match method {
        Method::GET => json_response(&json!(shared.state().preloads), false),
        Method::PUT => {
            shared.writes.fetch_add(1, Ordering::Relaxed);
            put_preload(&shared, src, preload_query(&query)).await
        }
        Method::DELETE => {
            shared.writes.fetch_add(1, Ordering::Relaxed);
            delete_preload(&shared, src)
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
}

/// go2rtc dials before it keeps a preload: a camera that is down fails the PUT (a running
/// preload keeps redialing). On success the new preload's producer is connected at once,
/// replacing any old redial loop.
async fn put_preload(shared: &Arc<Shared>, name: &str, query: String) -> HttpResponse {
    let Some(sources) = shared.state().streams.get(name).cloned() else {
        return text(StatusCode::NOT_FOUND, "stream not found");
    };
    let session = match connect_any(&sources).await {
        Ok(session) => session,
        Err(e) => {
            shared.state().camera_seen(name, false);
            return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("streams: {e}"));
        }
    };
    let persisted = {
        let mut state = shared.state();
        if state.streams.get(name) != Some(&sources) {
            // The stream was replaced or removed while dialing.
            return text(StatusCode::NOT_FOUND, "stream not found");
        }
        let persisted = state.patch_file(FileEdit::Preload(name, Some(&query)));
        state.preloads.insert(name.to_owned(), query);
        persisted
    };
    start_worker(shared, name, Some(session));
    empty_or_error(persisted, StatusCode::INTERNAL_SERVER_ERROR)
}

fn delete_preload(shared: &Shared, name: &str) -> HttpResponse {
    let mut state = shared.state();
    if let Some(object) = state.objects.get_mut(name) {
        object.stop_worker();
        object.worker = None;
        if let Some(link) = &mut object.link {
            link.freeze(Instant::now());
            link.connected = false;
        }
    }
    if state.preloads.remove(name).is_none() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "streams: preload not found",
        );
    }
    let persisted = state.patch_file(FileEdit::Preload(name, None));
    empty_or_error(persisted, StatusCode::INTERNAL_SERVER_ERROR)
}

/// The query go2rtc stores for a preload: its media keys, Go-encoded (sorted), or its default.
fn preload_query(query: &Query) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for key in ["audio", "microphone", "video"] {
        for value in query.all(key) {
            encoded.append_pair(key, &value);
        }
    }
    let encoded = encoded.finish();
    if encoded.is_empty() {
        "video&audio".to_owned()
    } else {
        encoded
    }
}

async fn restart_api(HttpState(shared): HttpState<Arc<Shared>>, method: Method) -> HttpResponse {
    if method != Method::POST {
        return text(StatusCode::BAD_REQUEST, "");
    }
    {
        let mut state = shared.state();
        state.restart_calls += 1;
        state.load_file();
    }
    start_preload_workers(&shared);
    StatusCode::OK.into_response()
}

/// go2rtc's JSON answers: `application/json`, a trailing newline, pretty for one stream.
fn json_response(value: &Value, pretty: bool) -> HttpResponse {
    let body = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let body = body.unwrap_or_default() + "\n";
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Go's `http.Error`: text/plain, the message plus a newline (so an "empty" error body is
/// `"\n"`).
fn text(status: StatusCode, message: &str) -> HttpResponse {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

/// 200 with no body and no Content-Type, as go2rtc answers a successful write.
fn empty_or_error(result: Result<(), String>, error_status: StatusCode) -> HttpResponse {
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => text(error_status, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_rejects_command_and_whitespace_sources() {
        for bad in [
            "exec:ffmpeg -i x",
            "echo:rtsp://x",
            "expr:1",
            "rtsp://a b",
            "rtsp://a\tb",
            "",
        ] {
            assert!(!source_allowed(bad), "{bad:?}");
        }
        assert!(source_allowed(
            "ffmpeg:rtsp://127.0.0.1/x#video=h264#timeout=30"
        ));
    }

    #[test]
    fn preload_query_is_go_encoded_or_default() {
        assert_eq!(preload_query(&Query::parse(Some("src=a"))), "video&audio");
        assert_eq!(
            preload_query(&Query::parse(Some("src=a&video&audio=opus"))),
            "audio=opus&video="
        );
    }
}
