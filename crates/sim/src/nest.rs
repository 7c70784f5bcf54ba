//! Google's Smart Device Management (SDM) API for Nest cameras and its OAuth token endpoint,
//! simulated on 127.0.0.1, with an RTSP endpoint that streams a camera's test pattern while its
//! live stream is alive. Shapes follow Google's Device Access documentation and what clients
//! of it rely on (Home Assistant's `google-nest-sdm`, go2rtc's `nest` source):
//!
//! - `POST /oauth2/v4/token` (form: `grant_type=refresh_token`, `client_id`, `client_secret`,
//!   `refresh_token`) → `{access_token, expires_in, scope, token_type}`; a revoked refresh
//!   token → 400 `{"error": "invalid_grant", …}`, a wrong client → 401 `invalid_client`.
//! - `GET /v1/enterprises/{project}/devices[/{id}]` with the bearer access token.
//! - `POST /v1/enterprises/{project}/devices/{id}:executeCommand` with
//!   `sdm.devices.commands.CameraLiveStream.GenerateRtspStream` (→ `streamUrls.rtspUrl`,
//!   `streamToken`, `streamExtensionToken`, `expiresAt`), `ExtendRtspStream` (→ new tokens and
//!   `expiresAt`, no URL: the client puts the new `streamToken` in the URL's `auth=`) and
//!   `StopRtspStream`. Errors are Google's `{"error": {code, message, status}}`; more than
//!   `commands_per_minute` commands of the project within 60 s answer 429
//!   `RESOURCE_EXHAUSTED`.
//!
//! Where the real service differs or is unknown: its RTSP URLs are `rtsps://` (TLS), these are
//! `rtsp://`; an unknown or expired extension token answers 400 `INVALID_ARGUMENT` here
//! (Google documents no answer for it); the per-device limit (5 commands a minute) is not
//! simulated; a stream's URL admits any number of clients. A stream, once alive, keeps its
//! sessions playing across extensions and ends them at its expiry or stop.
//!
//! Time is tokio's clock (so a test may pause it); `expiresAt` is wall-clock time derived from
//! it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::rtsp::{self, Handler, RtspServer};

pub const GENERATE: &str = "sdm.devices.commands.CameraLiveStream.GenerateRtspStream";
pub const EXTEND: &str = "sdm.devices.commands.CameraLiveStream.ExtendRtspStream";
pub const STOP: &str = "sdm.devices.commands.CameraLiveStream.StopRtspStream";
const SCOPE: &str = "https://www.googleapis.com/auth/sdm.service";

#[derive(Debug, Clone)]
pub struct NestSimOptions {
    /// The Device Access project id (`enterprises/{project}`).
    pub project: String,
    /// Device ids; each is a camera with the `CameraLiveStream` trait and RTSP.
    pub devices: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub access_token_lifetime: Duration,
    /// How long a generated or extended stream lives (Google: 5 minutes).
    pub stream_lifetime: Duration,
    /// Commands of the project accepted in any 60 s (Google: 10).
    pub commands_per_minute: usize,
}

impl Default for NestSimOptions {
    fn default() -> Self {
        NestSimOptions {
            project: "sim-project".into(),
            devices: vec!["cam-1".into()],
            client_id: "sim-client.apps.googleusercontent.com".into(),
            client_secret: "sim-client-secret".into(),
            refresh_token: "1//sim-refresh-token".into(),
            access_token_lifetime: Duration::from_secs(3599),
            stream_lifetime: Duration::from_secs(300),
            commands_per_minute: 10,
        }
    }
}

/// One `executeCommand` request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSeen {
    pub device: String,
    /// The command's full name, or what was sent in its place.
    pub command: String,
    pub at: Instant,
    /// The HTTP status answered.
    pub status: u16,
}

pub struct NestSim {
    shared: Arc<Shared>,
    api_port: u16,
    rtsp_port: u16,
    _rtsp: RtspServer,
    _http: DropGuard,
}

struct Shared {
    options: NestSimOptions,
    rtsp_port: u16,
    /// Wall-clock time at `started`, for `expiresAt`.
    started_wall: SystemTime,
    started: Instant,
    revoked: AtomicBool,
    token_requests: AtomicU64,
    state: Mutex<NestState>,
}

#[derive(Default)]
struct NestState {
    next: u64,
    /// Access token → expiry.
    access: HashMap<String, Instant>,
    /// Stream id → its stream.
    streams: HashMap<u64, LiveStream>,
    /// Current extension token → stream id.
    extension: HashMap<String, u64>,
    /// Every stream token handed out → stream id (an older one still names its stream).
    stream_tokens: HashMap<String, u64>,
    /// When the commands accepted in the last 60 s were.
    window: VecDeque<Instant>,
    commands: Vec<CommandSeen>,
}

struct LiveStream {
    device: String,
    expires: Instant,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, NestState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wall(&self, at: Instant) -> String {
        let wall = self.started_wall + at.saturating_duration_since(self.started);
        humantime::format_rfc3339_millis(wall).to_string()
    }

    fn device(&self, project: &str, id: &str) -> Option<Value> {
        (project == self.options.project && self.options.devices.iter().any(|d| d == id)).then(
            || {
                json!({
                    "name": format!("enterprises/{project}/devices/{id}"),
                    "type": "sdm.devices.types.CAMERA",
                    "assignee": format!("enterprises/{project}/structures/sim/rooms/sim"),
                    "traits": {
                        "sdm.devices.traits.Info": { "customName": id },
                        "sdm.devices.traits.CameraLiveStream": {
                            "maxVideoResolution": { "width": 640, "height": 480 },
                            "videoCodecs": ["H264"],
                            "audioCodecs": ["AAC"],
                            "supportedProtocols": ["RTSP"],
                        },
                    },
                    "parentRelations": [],
                })
            },
        )
    }

    /// Whether the stream that `uri`'s `auth=` token belongs to is alive now. RTSP clients
    /// (go2rtc, MediaMTX's gortsplib) append a track's relative control after the query
    /// (`?auth=TOKEN/trackID=0`), so the token ends at the first `/`.
    fn admits(&self, uri: &str) -> bool {
        let Some(token) = url::Url::parse(uri).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "auth")
                .and_then(|(_, v)| v.split('/').next().map(str::to_owned))
        }) else {
            return false;
        };
        let now = Instant::now();
        let state = self.state();
        state
            .stream_tokens
            .get(&token)
            .and_then(|id| state.streams.get(id))
            .is_some_and(|s| s.expires > now && uri.contains(&format!("/sdm/{}?", s.device)))
    }
}

fn google_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": {
            "code": status.as_u16(), "message": message, "status": name,
        }})),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

impl NestSim {
    pub async fn start(options: NestSimOptions) -> io::Result<NestSim> {
        let api = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let rtsp = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let (api_port, rtsp_port) = (api.local_addr()?.port(), rtsp.local_addr()?.port());
        let shared = Arc::new(Shared {
            options,
            rtsp_port,
            started_wall: SystemTime::now(),
            started: Instant::now(),
            revoked: AtomicBool::new(false),
            token_requests: AtomicU64::new(0),
            state: Mutex::default(),
        });
        let cancel = CancellationToken::new();
        let router = Router::new()
            .route("/oauth2/v4/token", post(token))
            .route("/v1/enterprises/{project}/devices", get(devices))
            .route(
                "/v1/enterprises/{project}/devices/{device}",
                get(device).post(execute),
            )
            .with_state(shared.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(api, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let rtsp = RtspServer::spawn(rtsp, cancel.child_token(), shared.clone());
        Ok(NestSim {
            shared,
            api_port,
            rtsp_port,
            _rtsp: rtsp,
            _http: cancel.drop_guard(),
        })
    }

    /// The SDM API's base, `http://127.0.0.1:PORT/v1` (Google's is
    /// `https://smartdevicemanagement.googleapis.com/v1`).
    pub fn sdm_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.api_port)
    }

    /// The OAuth token endpoint (Google's is `https://www.googleapis.com/oauth2/v4/token`).
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/oauth2/v4/token", self.api_port)
    }

    /// `rtsp://127.0.0.1:PORT`, where the streams' URLs point.
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}", self.rtsp_port)
    }

    /// `enterprises/{project}/devices/{id}`.
    pub fn device_name(&self, id: &str) -> String {
        format!("enterprises/{}/devices/{id}", self.shared.options.project)
    }

    /// From now on the refresh token is refused (`invalid_grant`), as when a user revokes
    /// access or an app in testing mode passes its 7 days; access tokens already given stay
    /// valid until they expire.
    pub fn revoke_refresh_token(&self) {
        self.shared.revoked.store(true, Ordering::SeqCst);
    }

    /// Ends every stream, as Google does when a camera goes offline: their extension tokens
    /// are refused and their sessions cut.
    pub fn end_streams(&self) {
        let mut state = self.shared.state();
        state.streams.clear();
        state.extension.clear();
    }

    /// Token endpoint requests received, refused ones included.
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::Relaxed)
    }

    /// Every `executeCommand` received, in order, with its answer.
    pub fn commands(&self) -> Vec<CommandSeen> {
        self.shared.state().commands.clone()
    }

    /// How many times `command` (e.g. [`EXTEND`]) was answered 200.
    pub fn answered(&self, command: &str) -> usize {
        self.shared
            .state()
            .commands
            .iter()
            .filter(|c| c.command == command && c.status == 200)
            .count()
    }

    /// Devices with a stream alive now.
    pub fn live_devices(&self) -> Vec<String> {
        let now = Instant::now();
        let mut devices: Vec<String> = self
            .shared
            .state()
            .streams
            .values()
            .filter(|s| s.expires > now)
            .map(|s| s.device.clone())
            .collect();
        devices.sort();
        devices
    }
}

async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared.token_requests.fetch_add(1, Ordering::Relaxed);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map_or("", String::as_str);
    let options = &shared.options;
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    if field("client_id") != options.client_id || field("client_secret") != options.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    if field("refresh_token") != options.refresh_token || shared.revoked.load(Ordering::SeqCst) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Token has been expired or revoked.",
        );
    }
    let mut state = shared.state();
    state.next += 1;
    let access = format!("ya29.sim-access-{}", state.next);
    let lifetime = options.access_token_lifetime;
    state
        .access
        .insert(access.clone(), Instant::now() + lifetime);
    axum::Json(json!({
        "access_token": access,
        "expires_in": lifetime.as_secs(),
        "scope": SCOPE,
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The bearer token's refusal, if it is not a live access token.
fn unauthenticated(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = Instant::now();
    let live = token.is_some_and(|t| shared.state().access.get(t).is_some_and(|e| *e > now));
    (!live).then(|| {
        google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        )
    })
}

fn unknown_device(project: &str, id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("Device enterprises/{project}/devices/{id} not found."),
    )
}

async fn devices(
    State(shared): State<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthenticated(&shared, &headers) {
        return refused;
    }
    let devices: Vec<Value> = shared
        .options
        .devices
        .iter()
        .filter_map(|id| shared.device(&project, id))
        .collect();
    if devices.is_empty() && project != shared.options.project {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Permission denied.",
        );
    }
    axum::Json(json!({ "devices": devices })).into_response()
}

async fn device(
    State(shared): State<Arc<Shared>>,
    Path((project, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthenticated(&shared, &headers) {
        return refused;
    }
    match shared.device(&project, &id) {
        Some(device) => axum::Json(device).into_response(),
        None => unknown_device(&project, &id),
    }
}

async fn execute(
    State(shared): State<Arc<Shared>>,
    Path((project, device_command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(id) = device_command.strip_suffix(":executeCommand") else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found.");
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let command = request["command"].as_str().unwrap_or_default().to_owned();
    let response = command_answer(
        &shared,
        &project,
        id,
        &command,
        &request["params"],
        &headers,
    );
    shared.state().commands.push(CommandSeen {
        device: id.to_owned(),
        command,
        at: Instant::now(),
        status: response.status().as_u16(),
    });
    response
}

fn command_answer(
    shared: &Shared,
    project: &str,
    id: &str,
    command: &str,
    params: &Value,
    headers: &HeaderMap,
) -> Response {
    if let Some(refused) = unauthenticated(shared, headers) {
        return refused;
    }
    if shared.device(project, id).is_none() {
        return unknown_device(project, id);
    }
    let now = Instant::now();
    let options = &shared.options;
    let mut state = shared.state();
    while state
        .window
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
    {
        state.window.pop_front();
    }
    if state.window.len() >= options.commands_per_minute {
        return google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Rate limited for the ExecuteDeviceCommand API for the user.",
        );
    }
    let extension = params["streamExtensionToken"].as_str().unwrap_or_default();
    let live = state.extension.get(extension).copied().filter(|sid| {
        state
            .streams
            .get(sid)
            .is_some_and(|s| s.device == id && s.expires > now)
    });
    let answer = match (command, live) {
        (GENERATE, _) => {
            state.next += 1;
            let sid = state.next;
            state.streams.insert(
                sid,
                LiveStream {
                    device: id.to_owned(),
                    expires: now + options.stream_lifetime,
                },
            );
            let mut results = new_tokens(shared, &mut state, sid);
            let token = results["streamToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            results["streamUrls"] = json!({
                "rtspUrl": format!("rtsp://127.0.0.1:{}/sdm/{id}?auth={token}", shared.rtsp_port),
            });
            json!({ "results": results })
        }
        (EXTEND, Some(sid)) => {
            state.extension.remove(extension);
            if let Some(stream) = state.streams.get_mut(&sid) {
                stream.expires = now + options.stream_lifetime;
            }
            json!({ "results": new_tokens(shared, &mut state, sid) })
        }
        (STOP, Some(sid)) => {
            state.extension.remove(extension);
            state.streams.remove(&sid);
            json!({})
        }
        (EXTEND | STOP, None) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid or expired stream extension token.",
            );
        }
        _ => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("Command {command:?} not supported."),
            );
        }
    };
    state.window.push_back(now);
    axum::Json(answer).into_response()
}

/// A new stream token and extension token for stream `sid`, and its expiry.
fn new_tokens(shared: &Shared, state: &mut NestState, sid: u64) -> Value {
    state.next += 1;
    let n = state.next;
    let stream_token = format!("g.0.sim-stream-{n}");
    let extension_token = format!("sim-extension-{n}");
    state.stream_tokens.insert(stream_token.clone(), sid);
    state.extension.insert(extension_token.clone(), sid);
    let expires = state
        .streams
        .get(&sid)
        .map_or(Instant::now(), |s| s.expires);
    json!({
        "streamExtensionToken": extension_token,
        "streamToken": stream_token,
        "expiresAt": shared.wall(expires),
    })
}

impl Handler for Shared {
    async fn handle(&self, request: rtsp::Request) -> rtsp::Response {
        if request.method == "OPTIONS" {
            return rtsp::Response::options();
        }
        if !self.admits(&request.uri) {
            return rtsp::Response::new(401);
        }
        match request.method.as_str() {
            "DESCRIBE" => rtsp::Response::sdp(&request.uri, "camsync sim nest camera"),
            "SETUP" => rtsp::Response::setup(&request),
            "PLAY" => rtsp::Response::play(),
            "GET_PARAMETER" | "TEARDOWN" => rtsp::Response::in_session(),
            _ => rtsp::Response::new(501),
        }
    }

    async fn media_flows(&self, uri: &str) -> bool {
        self.admits(uri)
    }
}
