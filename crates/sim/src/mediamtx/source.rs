//! Pulled sources and RTSP: the supervisor MediaMTX runs for a path whose source is a camera,
//! and the simulator's answers to RTSP clients.
//!
//! A supervisor dials with `DESCRIBE` and keeps the connection open while the path is ready;
//! when the camera closes it, the path stops being ready and drops its readers. After any
//! failure it waits [`RETRY_PAUSE`] — fixed, no backoff — and dials again. It may block only on
//! the camera and its timers, and ends when its path object is closed (the caller's token).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::conf::{self, PathConf};
use super::{PathKey, Shared, State};
use crate::rtsp::{self, Handler, HeldSession, Request as RtspRequest, Response as RtspResponse};

/// MediaMTX's fixed pause before redialing a failed source.
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// MediaMTX's default `readTimeout`, which bounds the dial and the `DESCRIBE`.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the source of one path object: forever for an always-on source; for an on-demand one
/// (`on_demand` = its start timeout) until it fails to start in time or its camera goes away,
/// either of which drops the path's readers.
pub(super) async fn supervise(
    shared: Arc<Shared>,
    key: PathKey,
    source: String,
    on_demand: Option<Duration>,
) {
    loop {
        let session = match on_demand {
            None => connect(&source).await,
            Some(limit) => match tokio::time::timeout(limit, connect(&source)).await {
                Ok(session) => session,
                Err(_) => {
                    shared.state().source_lost(&key);
                    return;
                }
            },
        };
        shared.state().source_ready(&key);
        session.closed().await;
        if !shared.state().source_lost(&key) {
            return;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Dials `source` until its camera answers, pausing [`RETRY_PAUSE`] after each failure.
async fn connect(source: &str) -> HeldSession {
    loop {
        match rtsp::describe_and_hold(source, READ_TIMEOUT, READ_TIMEOUT).await {
            Ok(session) => return session,
            Err(e) => tracing::debug!(error = %e, "mediamtx sim: source failed; retrying in 5 s"),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

impl State {
    fn source_ready(&mut self, key: &PathKey) {
        if let Some(path) = self.paths.get_mut(&key.name).filter(|p| p.id == key.id) {
            path.ready_since = Some(SystemTime::now());
        }
    }

    /// The source stopped (lost its camera or never started): the path is not ready and every
    /// reader is dropped. Returns whether the source goes on retrying, which only an always-on
    /// source of a path object still configured does.
    fn source_lost(&mut self, key: &PathKey) -> bool {
        let Some(path) = self.paths.get_mut(&key.name).filter(|p| p.id == key.id) else {
            return false;
        };
        path.ready_since = None;
        path.source_running = !path.conf.source_on_demand();
        let keeps_running = path.source_running;
        let dropped = std::mem::take(&mut path.readers).len();
        self.reader_disconnects += dropped as u64;
        keeps_running
    }
}

impl Handler for Shared {
    async fn handle(&self, request: RtspRequest) -> RtspResponse {
        match request.method.as_str() {
            "OPTIONS" => RtspResponse::options(),
            "DESCRIBE" => self.describe(&request).await,
            _ => RtspResponse::new(501),
        }
    }
}

impl Shared {
    /// 401 without the reader's credentials when reads need them; 200 with the stream's SDP
    /// when the path is ready (or `alwaysAvailable`); 400 when no
    /// configuration matches; 404 at once when nothing is available; for an on-demand source,
    /// the request is held while it starts: 200 if its camera answers within
    /// `sourceOnDemandStartTimeout`, else 400.
    async fn describe(&self, request: &RtspRequest) -> RtspResponse {
        if let Some(expected) = &self.read_authorization
            && !rtsp::auth_matches(request.header("Authorization"), expected)
        {
            return RtspResponse::new(401).header("WWW-Authenticate", r#"Basic realm="mediamtx""#);
        }
        let Some((conf, ready)) = self.find_path(&request.path_name()) else {
            return RtspResponse::new(400);
        };
        let sdp = || RtspResponse::sdp(&request.uri, "MediaMTX");
        if ready || conf.always_available() {
            return sdp();
        }
        if !(conf.has_static_source() && conf.source_on_demand()) {
            return RtspResponse::new(404);
        }
        match tokio::time::timeout(conf.start_timeout(), connect(conf.source())).await {
            Ok(_session) => sdp(),
            Err(_) => RtspResponse::new(400),
        }
    }

    /// MediaMTX's `FindPathConf`: the configuration a requested name uses (its own, else a
    /// catch-all) and whether its path is ready. `None` for an invalid or unconfigured name.
    fn find_path(&self, name: &str) -> Option<(PathConf, bool)> {
        let state = self.state();
        if let Some(path) = state.paths.get(name) {
            return Some((path.conf.clone(), path.ready_since.is_some()));
        }
        conf::check_path_name(name).ok()?;
        (state.paths.get("all_others"))
            .or_else(|| state.paths.get("all"))
            .map(|path| (path.conf.clone(), false))
    }
}
