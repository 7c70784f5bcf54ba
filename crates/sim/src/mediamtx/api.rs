//! The simulator's control API v3, answering like MediaMTX's gin router: JSON bodies
//! (`{"status":"ok"}` on success, `{"status":"error","error":"…"}` otherwise), Basic auth on
//! every route when configured, `404 page not found` as text for anything unrouted (wrong
//! methods included), `{name}` taken literally with its `/`s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State as HttpState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use serde_json::{Value, json};

use super::conf::{self, Patch, PathConf};
use super::{LivePath, Shared, VERSION, rfc3339};
use crate::rtsp::{self, HttpAuth};

/// Items per page when `itemsPerPage` is not given.
const DEFAULT_ITEMS_PER_PAGE: usize = 100;
/// `onlineTime` of a path that never came online: Go's zero `time.Time`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// A ready simulated camera "sends" about 1 Mbit/s.
const BYTES_PER_MILLI: u128 = 125;

type Name = Option<Path<String>>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let named: [(&str, MethodRouter<Arc<Shared>>); 6] = [
        ("/v3/config/paths/get/", get(config_get)),
        ("/v3/config/paths/add/", post(config_add)),
        ("/v3/config/paths/patch/", patch(config_patch)),
        ("/v3/config/paths/replace/", post(config_replace)),
        ("/v3/config/paths/delete/", delete(config_delete)),
        ("/v3/paths/get/", get(paths_get)),
    ];
    let mut router = Router::new()
        .route("/v3/info", get(info).fallback(not_found))
        .route(
            "/v3/config/paths/list",
            get(config_list).fallback(not_found),
        )
        .route("/v3/paths/list", get(paths_list).fallback(not_found));
    for (prefix, handler) in named {
        let handler = handler.fallback(not_found);
        router = router
            .route(prefix, handler.clone())
            .route(&format!("{prefix}{{*name}}"), handler);
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Counts and authenticates every request. Without credentials the answer asks for them;
/// with wrong ones it does not (MediaMTX would also pause 0–4 s first).
async fn gate(HttpState(shared): HttpState<Arc<Shared>>, request: Request, next: Next) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let auth = rtsp::http_auth(request.headers(), shared.authorization.as_deref());
    if auth != HttpAuth::Accepted {
        let mut response = error(StatusCode::UNAUTHORIZED, "authentication error");
        if auth == HttpAuth::Missing {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="mediamtx""#),
            );
        }
        return response;
    }
    next.run(request).await
}

/// gin's 404 for unrouted requests.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

fn json_body(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn ok() -> Response {
    json_body(StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
}

/// MediaMTX's error body (v1.15.5+), keys in its order.
fn error(status: StatusCode, message: &str) -> Response {
    json_body(
        status,
        format!(r#"{{"status":"error","error":{}}}"#, Value::from(message)),
    )
}

/// The path name of a `…/*name` route; MediaMTX refuses an empty one ([`invalid_name`]).
fn name_of(name: Name) -> Option<String> {
    name.map(|Path(name)| name).filter(|name| !name.is_empty())
}

fn invalid_name() -> Response {
    error(StatusCode::BAD_REQUEST, "invalid name")
}

async fn info(HttpState(shared): HttpState<Arc<Shared>>) -> Response {
    let started = rfc3339(shared.state().started);
    json_body(
        StatusCode::OK,
        format!(
            r#"{{"version":{},"started":{}}}"#,
            Value::from(VERSION),
            Value::from(started)
        ),
    )
}

async fn config_list(
    HttpState(shared): HttpState<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let confs: Vec<PathConf> = (shared.state().paths.values())
        .map(|path| path.conf.clone())
        .collect();
    list(confs, query.as_deref(), |conf| conf.to_json())
}

async fn config_get(HttpState(shared): HttpState<Arc<Shared>>, name: Name) -> Response {
    let Some(name) = name_of(name) else {
        return invalid_name();
    };
    let conf = shared
        .state()
        .paths
        .get(&name)
        .map(|path| path.conf.to_json());
    match conf {
        Some(body) => json_body(StatusCode::OK, body),
        None => error(StatusCode::NOT_FOUND, "path configuration not found"),
    }
}

async fn config_add(shared: HttpState<Arc<Shared>>, name: Name, body: Bytes) -> Response {
    write(shared, Edit::Add, name, Some(body)).await
}

async fn config_patch(shared: HttpState<Arc<Shared>>, name: Name, body: Bytes) -> Response {
    write(shared, Edit::Patch, name, Some(body)).await
}

async fn config_replace(shared: HttpState<Arc<Shared>>, name: Name, body: Bytes) -> Response {
    write(shared, Edit::Replace, name, Some(body)).await
}

async fn config_delete(shared: HttpState<Arc<Shared>>, name: Name) -> Response {
    write(shared, Edit::Delete, name, None).await
}

/// What a write does to its path's configuration.
#[derive(Clone, Copy)]
enum Edit {
    Add,
    Patch,
    Replace,
    Delete,
}

impl Edit {
    /// The path's next configuration (`None`: removed), or MediaMTX's error.
    fn next(
        self,
        current: Option<&PathConf>,
        name: &str,
        patch: &Patch,
    ) -> Result<Option<PathConf>, (StatusCode, String)> {
        let bad = |e: String| (StatusCode::BAD_REQUEST, e);
        match (self, current) {
            (Edit::Add, Some(_)) => Err(bad("path already exists".into())),
            (Edit::Add | Edit::Replace, _) => PathConf::new(name, patch).map(Some).map_err(bad),
            (Edit::Patch, Some(conf)) => conf.patched(name, patch).map(Some).map_err(bad),
            (Edit::Delete, Some(_)) => Ok(None),
            (Edit::Patch | Edit::Delete, None) => {
                Err((StatusCode::NOT_FOUND, "path not found".into()))
            }
        }
    }
}

/// Marks a write in flight for as long as it lives; counts the overlap if another one is.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        if shared.writes_in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
            shared.overlapping_writes.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One API write, as MediaMTX handles it: the body is decoded first, then the change is
/// checked and applied under the configuration lock, which a successful write keeps for its
/// emulated cost.
async fn write(
    HttpState(shared): HttpState<Arc<Shared>>,
    edit: Edit,
    name: Name,
    body: Option<Bytes>,
) -> Response {
    shared.writes.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&shared);
    if shared.failing_writes.load(Ordering::SeqCst) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "simulated failure");
    }
    let Some(name) = name_of(name) else {
        return invalid_name();
    };
    let patch = match body.as_deref().map(Patch::from_body).transpose() {
        Ok(patch) => patch.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let _lock = shared.write_lock.lock().await;
    let configured = {
        let mut state = shared.state();
        let current = state.paths.get(&name).map(|path| &path.conf);
        match edit.next(current, &name, &patch) {
            Ok(conf) => {
                shared.set_path(&mut state, &name, conf);
                state.paths.len()
            }
            Err((status, e)) => return error(status, &e),
        }
    };
    let cost =
        (shared.write_cost_per_path).saturating_mul(u32::try_from(configured).unwrap_or(u32::MAX));
    if !cost.is_zero() {
        tokio::time::sleep(cost).await;
    }
    ok()
}

async fn paths_list(
    HttpState(shared): HttpState<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let paths: Vec<Value> = {
        let state = shared.state();
        let now = SystemTime::now();
        (state.paths.iter())
            .filter(|(name, _)| !conf::is_pattern(name))
            .map(|(name, path)| runtime_json(name, path, now))
            .collect()
    };
    list(paths, query.as_deref(), Value::to_string)
}

async fn paths_get(HttpState(shared): HttpState<Arc<Shared>>, name: Name) -> Response {
    let Some(name) = name_of(name) else {
        return invalid_name();
    };
    let path = {
        let state = shared.state();
        (state.paths.get(&name))
            .filter(|_| !conf::is_pattern(&name))
            .map(|path| runtime_json(&name, path, SystemTime::now()))
    };
    match path {
        Some(path) => json_body(StatusCode::OK, path.to_string()),
        None => error(StatusCode::NOT_FOUND, "path not found"),
    }
}

/// A path's runtime state in `/v3/paths/*` (shape of v1.16.2). MediaMTX reports every
/// configured path `online`, ready or not. An `alwaysAvailable` path is ready from its creation
/// on, camera or not, and counts the bytes of its offline slate.
fn runtime_json(name: &str, path: &LivePath, now: SystemTime) -> Value {
    let ready_since =
        (path.ready_since).or_else(|| path.conf.always_available().then_some(path.created));
    let ready_time = ready_since.map(rfc3339);
    let available_time = ready_time.clone();
    let bytes_received = ready_since.map_or(0, |since| {
        let millis = now.duration_since(since).unwrap_or_default().as_millis();
        u64::try_from(millis * BYTES_PER_MILLI).unwrap_or(u64::MAX)
    });
    let readers: Vec<Value> = (path.readers.iter())
        .map(|id| json!({"type": "rtspSession", "id": id}))
        .collect();
    json!({
        "name": name,
        "confName": name,
        "ready": ready_time.is_some(),
        "readyTime": ready_time,
        "available": available_time.is_some(),
        "availableTime": available_time,
        "online": true,
        "onlineTime": ready_time.as_deref().unwrap_or(ZERO_TIME),
        "source": source_json(&path.conf),
        "tracks": if ready_time.is_some() { json!(["H264"]) } else { json!([]) },
        "bytesReceived": bytes_received,
        "bytesSent": 0,
        "readers": readers,
    })
}

/// The `source` object of a path: its static source's kind; `null` for a publisher path
/// nobody publishes to.
fn source_json(conf: &PathConf) -> Value {
    const KINDS: &[(&str, &str)] = &[
        ("rtsps", "rtspsSource"),
        ("rtsp", "rtspSource"),
        ("rtmp", "rtmpSource"),
        ("http", "hlsSource"),
        ("udp+rtp", "rtpSource"),
        ("udp", "udpSource"),
        ("srt", "srtSource"),
        ("whep", "webRTCSource"),
        ("rpiCamera", "rpiCameraSource"),
    ];
    if !conf.has_static_source() {
        return Value::Null;
    }
    let kind = KINDS
        .iter()
        .find(|(prefix, _)| conf.source().starts_with(prefix))
        .map_or("staticSource", |(_, kind)| kind);
    json!({"type": kind, "id": ""})
}

/// A paginated list answer, `items` rendered by `render`.
fn list<T>(items: Vec<T>, query: Option<&str>, render: impl Fn(&T) -> String) -> Response {
    let item_count = items.len();
    match paginate(items, query) {
        Ok((page_count, page)) => {
            let items: Vec<String> = page.iter().map(render).collect();
            json_body(
                StatusCode::OK,
                format!(
                    r#"{{"itemCount":{item_count},"pageCount":{page_count},"items":[{}]}}"#,
                    items.join(",")
                ),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

/// MediaMTX's `paginate`: `itemsPerPage` (default 100, not 0) and `page` (from 0) are Go
/// `uint31`s; a page past the end is empty. Returns the page count and the page.
fn paginate<T>(items: Vec<T>, query: Option<&str>) -> Result<(usize, Vec<T>), String> {
    let param = |key: &str| {
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let per_page = match param("itemsPerPage").as_str() {
        "" => DEFAULT_ITEMS_PER_PAGE,
        text => match parse_uint31(text)? {
            0 => return Err("invalid items per page".into()),
            n => n,
        },
    };
    let page = match param("page").as_str() {
        "" => 0,
        text => parse_uint31(text)?,
    };
    let page_count = items.len().div_ceil(per_page);
    let start = page.saturating_mul(per_page);
    Ok((
        page_count,
        items.into_iter().skip(start).take(per_page).collect(),
    ))
}

/// Go's `strconv.ParseUint(text, 10, 31)`, with its error texts.
fn parse_uint31(text: &str) -> Result<usize, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing \"{text}\": invalid syntax"
        ));
    }
    text.parse::<usize>()
        .ok()
        .filter(|n| *n < 1 << 31)
        .ok_or_else(|| format!("strconv.ParseUint: parsing \"{text}\": value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_matches_mediamtx() {
        let items: Vec<u32> = (0..250).collect();
        let (pages, page) = paginate(items.clone(), None).unwrap();
        assert_eq!((pages, page.len(), page[0]), (3, 100, 0));
        let (pages, page) = paginate(items.clone(), Some("page=2")).unwrap();
        assert_eq!((pages, page.len(), page[0]), (3, 50, 200));
        let (pages, page) = paginate(items.clone(), Some("page=9&itemsPerPage=1000")).unwrap();
        assert_eq!((pages, page.len()), (1, 0));
        assert_eq!(paginate(Vec::<u32>::new(), None).unwrap().0, 0);
        assert_eq!(
            paginate(items.clone(), Some("itemsPerPage=0")).unwrap_err(),
            "invalid items per page"
        );
        assert_eq!(
            paginate(items.clone(), Some("page=-1")).unwrap_err(),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            paginate(items, Some("page=4294967296")).unwrap_err(),
            "strconv.ParseUint: parsing \"4294967296\": value out of range"
        );
    }
}
