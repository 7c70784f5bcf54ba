//! Producers: the dials of a stream's cameras, the preload workers that keep a producer
//! connected and redial it on go2rtc's schedule, the keepalive that notices a stopped or hung
//! camera and freezes the counters, and the RTSP `DESCRIBE` answered from the camera or from a
//! preload's cached tracks. Also the runtime side of each stream object that this bookkeeping
//! lives in.
//!
//! A worker belongs to one stream object and runs until its token is cancelled (the preload
//! deleted or replaced, the object replaced, the incarnation dead); it changes its object only
//! while it is still that object's worker ([`State::worker_object`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Shared, State, VERSION};
use crate::rtsp::{self, Handler, HeldSession, Request as RtspRequest, Response as RtspResponse};

/// go2rtc's default dial limits for an RTSP source.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// What a connected producer receives while its camera sends (a modest H264 main stream).
const BYTES_PER_SECOND: u64 = 50_000;
/// How often a connected producer checks that its camera still sends (an RTSP `OPTIONS` on a
/// side connection: the simulated camera sends no media to watch).
const KEEPALIVE_EVERY: Duration = Duration::from_millis(200);
/// An unanswered keepalive older than this freezes the counter (no data flows).
const STALL_AFTER: Duration = Duration::from_millis(300);

/// The runtime side of one stream object.
#[derive(Default)]
pub(super) struct StreamObject {
    /// The preload's producer worker (id, stop token), while preloaded.
    pub(super) worker: Option<(u64, CancellationToken)>,
    /// The producer's connection to the camera, once it has connected.
    pub(super) link: Option<Link>,
    /// A dial of the camera has worked on this object.
    ever_up: bool,
    /// The camera went away (a failed dial or a lost connection) after it had been up.
    outage: bool,
    /// The camera came back after an outage while the stuck switch was on: broken for new
    /// consumers, and no data flows, until the object is replaced.
    pub(super) stuck: bool,
}

/// A producer connected (or once connected, now redialing) to its camera.
pub(super) struct Link {
    pub(super) id: u64,
    /// The source that answered, as sent.
    pub(super) source: String,
    /// `127.0.0.1:PORT` of the camera.
    pub(super) remote_addr: String,
    /// The connection is up (else the worker is redialing).
    pub(super) connected: bool,
    /// Bytes received before `flowing_since`.
    bytes: u64,
    /// Data flows since then; `None` while frozen.
    flowing_since: Option<Instant>,
}

impl Link {
    pub(super) fn bytes_at(&self, now: Instant) -> u64 {
        let flowing = self.flowing_since.map_or(0, |since| {
            let millis =
                u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX);
            millis.saturating_mul(BYTES_PER_SECOND) / 1000
        });
        self.bytes.saturating_add(flowing)
    }

    /// Stops the counter where it is.
    pub(super) fn freeze(&mut self, now: Instant) {
        self.bytes = self.bytes_at(now);
        self.flowing_since = None;
    }
}

impl StreamObject {
    pub(super) fn stop_worker(&self) {
        if let Some((_, token)) = &self.worker {
            token.cancel();
        }
    }

    fn camera_seen(&mut self, up: bool, stuck_after_reboot: bool) {
        if !up {
            self.outage |= self.ever_up;
            return;
        }
        self.ever_up = true;
        if std::mem::take(&mut self.outage) && stuck_after_reboot {
            self.stuck = true;
        }
    }
}

impl State {
    /// Drops every stream object, stopping their preload workers.
    pub(super) fn drop_objects(&mut self) {
        for object in std::mem::take(&mut self.objects).into_values() {
            object.stop_worker();
        }
    }

    /// Replaces the stream object `name` (PUT, DELETE): no consumers, no producer, no history.
    pub(super) fn drop_object(&mut self, name: &str) {
        self.preloads.remove(name);
        if let Some(object) = self.objects.remove(name) {
            object.stop_worker();
        }
    }

    fn object(&mut self, name: &str) -> &mut StreamObject {
        self.objects.entry(name.to_owned()).or_default()
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The object's preload worker, if `worker` is still the current one.
    fn worker_object(&mut self, name: &str, worker: u64) -> Option<&mut StreamObject> {
        self.objects
            .get_mut(name)
            .filter(|o| o.worker.as_ref().is_some_and(|(id, _)| *id == worker))
    }

    /// A dial of `name`'s camera worked (`true`) or failed: the stuck-stream bookkeeping.
    pub(super) fn camera_seen(&mut self, name: &str, up: bool) {
        let stuck_after_reboot = self.stuck_after_reboot;
        self.object(name).camera_seen(up, stuck_after_reboot);
    }
}

/// go2rtc's redial delay after the `retry`-th failed dial (from 0) of a producer that lost its
/// camera while consumers remain: 1 s ×5, 5 s ×5, 10 s ×10, then 60 s, no jitter. The first
/// redial follows the loss at once.
pub fn redial_delay(retry: u32) -> Duration {
    Duration::from_secs(match retry {
        0..5 => 1,
        5..10 => 5,
        10..20 => 10,
        _ => 60,
    })
}

/// Tries the sources in order, as go2rtc does for a new consumer; the first error is reported.
pub(super) async fn dial_any(sources: &[String]) -> Result<(), String> {
    let mut first_error = None;
    for source in sources {
        match rtsp::describe(source, CONNECT_TIMEOUT, READ_TIMEOUT).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no producers".to_owned()))
}

/// Dials the sources in order and keeps the first that answers; the first error otherwise.
pub(super) async fn connect_any(sources: &[String]) -> Result<(String, HeldSession), String> {
    let mut first_error = None;
    for source in sources {
        match rtsp::describe_and_hold(source, CONNECT_TIMEOUT, READ_TIMEOUT).await {
            Ok(session) => return Ok((source.clone(), session)),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no producers".to_owned()))
}

/// The loopback address a dialable source connects to (`rtsp://` or `ffmpeg:rtsp://`).
fn camera_addr(source: &str) -> Option<SocketAddr> {
    let source = source.strip_prefix("ffmpeg:").unwrap_or(source);
    let url = url::Url::parse(source.split('#').next()?).ok()?;
    // `rtsp` is not a special scheme to `url`: its host is opaque text.
    let host = url.host_str()?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST.into()
    } else {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<std::net::IpAddr>().ok()?
    };
    ip.is_loopback()
        .then(|| SocketAddr::new(ip, url.port().unwrap_or(554)))
}

/// Starts a preload worker for `name` (replacing any running one), with a session already
/// dialed, or dialing at once.
pub(super) fn start_worker(
    shared: &Arc<Shared>,
    name: &str,
    session: Option<(String, HeldSession)>,
) {
    let mut state = shared.state();
    let Some(sources) = state.streams.get(name).cloned() else {
        return;
    };
    let id = state.new_id();
    let token = state.kill.child_token();
    let object = state.object(name);
    object.stop_worker();
    object.worker = Some((id, token.clone()));
    drop(state);
    // A session dialed by the caller is connected before it answers.
    let session = session.and_then(|(source, held)| {
        let addr = camera_addr(&source)?;
        link_up(shared, name, id, &source, addr);
        Some((source, addr, held))
    });
    let worker = preload_worker(shared.clone(), name.to_owned(), id, sources, session);
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = worker => {}
        }
    });
}

/// Starts a worker for every preload that has none (after a start or restart).
pub(super) fn start_preload_workers(shared: &Arc<Shared>) {
    let idle: Vec<String> = {
        let state = shared.state();
        state
            .preloads
            .keys()
            .filter(|name| state.objects.get(*name).is_none_or(|o| o.worker.is_none()))
            .cloned()
            .collect()
    };
    for name in idle {
        start_worker(shared, &name, None);
    }
}

/// A preload's producer: connected while the camera answers, redialing on go2rtc's schedule
/// ([`redial_delay`]) from the moment it is lost. Runs until its token is cancelled.
async fn preload_worker(
    shared: Arc<Shared>,
    name: String,
    worker: u64,
    sources: Vec<String>,
    mut session: Option<(String, SocketAddr, HeldSession)>,
) {
    let mut retry = 0;
    loop {
        let (addr, held) = match session.take() {
            Some((_, addr, held)) => (addr, held),
            None => match connect_any(&sources).await {
                Ok((source, held)) => match camera_addr(&source) {
                    Some(addr) => {
                        link_up(&shared, &name, worker, &source, addr);
                        (addr, held)
                    }
                    // Only loopback sources ever connect; counted as a failed dial anyway.
                    None => {
                        tokio::time::sleep(redial_delay(retry)).await;
                        retry = retry.saturating_add(1);
                        continue;
                    }
                },
                Err(e) => {
                    tracing::debug!(name, error = %e, retry, "go2rtc sim: preload redial failed");
                    if let Some(object) = shared.state().worker_object(&name, worker) {
                        object.camera_seen(false, false);
                    }
                    tokio::time::sleep(redial_delay(retry)).await;
                    retry = retry.saturating_add(1);
                    continue;
                }
            },
        };
        retry = 0;
        watch_camera(&shared, &name, worker, addr, held).await;
        let now = Instant::now();
        if let Some(object) = shared.state().worker_object(&name, worker) {
            object.camera_seen(false, false);
            if let Some(link) = &mut object.link {
                link.freeze(now);
                link.connected = false;
            }
        }
    }
}

/// Records a (re)connected producer; data flows unless the stream is stuck.
fn link_up(shared: &Shared, name: &str, worker: u64, source: &str, addr: SocketAddr) {
    let mut state = shared.state();
    let stuck_after_reboot = state.stuck_after_reboot;
    let id = state.new_id();
    let Some(object) = state.worker_object(name, worker) else {
        return;
    };
    object.camera_seen(true, stuck_after_reboot);
    let flowing_since = (!object.stuck).then(Instant::now);
    match &mut object.link {
        Some(link) if link.source == source => {
            link.connected = true;
            link.flowing_since = flowing_since;
        }
        link => {
            *link = Some(Link {
                id,
                source: source.to_owned(),
                remote_addr: addr.to_string(),
                connected: true,
                bytes: 0,
                flowing_since,
            });
        }
    }
}

/// Sets whether data flows on `name`'s link (not on a stuck stream).
fn set_flowing(shared: &Shared, name: &str, worker: u64, flowing: bool) {
    let now = Instant::now();
    let mut state = shared.state();
    let Some(object) = state.worker_object(name, worker) else {
        return;
    };
    let stuck = object.stuck;
    if let Some(link) = object.link.as_mut().filter(|l| l.connected) {
        if !flowing {
            link.freeze(now);
        } else if link.flowing_since.is_none() && !stuck {
            link.flowing_since = Some(now);
        }
    }
}

/// Watches a connected camera until it is lost: its session closes (stopped), or a keepalive
/// stays unanswered for go2rtc's read timeout (hung). A keepalive late by [`STALL_AFTER`]
/// freezes the counter until it is answered.
async fn watch_camera(
    shared: &Shared,
    name: &str,
    worker: u64,
    addr: SocketAddr,
    held: HeldSession,
) {
    let Ok(Ok(side)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await else {
        return;
    };
    let mut side = BufReader::new(side);
    let closed = held.closed();
    tokio::pin!(closed);
    for cseq in 1u64.. {
        let asked = Instant::now();
        let request = format!("OPTIONS rtsp://{addr}/ RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n");
        if side.get_mut().write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut stalled = false;
        {
            let answer = read_answer(&mut side);
            tokio::pin!(answer);
            loop {
                let limit = asked + if stalled { READ_TIMEOUT } else { STALL_AFTER };
                tokio::select! {
                    () = &mut closed => return,
                    answered = &mut answer => {
                        if !answered {
                            return;
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(limit) => {
                        if stalled {
                            return; // go2rtc's read timeout: the connection is dropped
                        }
                        stalled = true;
                        set_flowing(shared, name, worker, false);
                    }
                }
            }
        }
        if stalled {
            set_flowing(shared, name, worker, true);
        }
        tokio::select! {
            () = &mut closed => return,
            () = tokio::time::sleep(KEEPALIVE_EVERY) => {}
        }
    }
}

/// Reads one RTSP answer head (a keepalive's has no body); false if the connection ended.
async fn read_answer(reader: &mut BufReader<TcpStream>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.trim().is_empty() => return true,
            Ok(_) => {}
        }
    }
}

impl Handler for Shared {
    async fn handle(&self, request: RtspRequest) -> RtspResponse {
        match request.method.as_str() {
            "OPTIONS" => RtspResponse::options(),
            "DESCRIBE" => self.describe(&request).await,
            "SETUP" if request.wants_udp() => RtspResponse::new(461),
            _ => RtspResponse::new(501),
        }
    }
}

impl Shared {
    /// 200 when the stream's camera answers (or a preload holds its tracks); 404 for an
    /// unknown stream and, identically, for a camera that cannot be dialed, a stuck stream or
    /// a wedged server.
    async fn describe(&self, request: &RtspRequest) -> RtspResponse {
        let name = request.path_name();
        let (sources, preloaded, stuck) = {
            let state = self.state();
            (
                state.streams.get(&name).cloned(),
                state.preloads.contains_key(&name),
                state.wedged || state.objects.get(&name).is_some_and(|o| o.stuck),
            )
        };
        let Some(sources) = sources else {
            return RtspResponse::new(404);
        };
        if stuck {
            return RtspResponse::new(404);
        }
        if preloaded {
            return RtspResponse::sdp(&request.uri, &format!("go2rtc/{VERSION}"));
        }
        // The consumer attaches for this request only: the producer dials, answers, and is
        // stopped again when it leaves.
        let up = dial_any(&sources).await.is_ok();
        let stuck = {
            let mut state = self.state();
            if state.streams.get(&name) != Some(&sources) {
                return RtspResponse::new(404);
            }
            state.camera_seen(&name, up);
            state.objects.get(&name).is_some_and(|o| o.stuck)
        };
        if up && !stuck {
            RtspResponse::sdp(&request.uri, &format!("go2rtc/{VERSION}"))
        } else {
            RtspResponse::new(404)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counters_grow_with_flowing_time_and_freeze() {
        let mut link = Link {
            id: 1,
            source: "rtsp://127.0.0.1:1/x".to_owned(),
            remote_addr: "127.0.0.1:1".to_owned(),
            connected: true,
            bytes: 0,
            flowing_since: Some(Instant::now()),
        };
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND);
        link.freeze(Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND);
        link.flowing_since = Some(Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(link.bytes_at(Instant::now()), 2 * BYTES_PER_SECOND + 25_000);
    }

    #[test]
    fn stuck_needs_up_then_down_then_up_with_the_switch_on() {
        let mut object = StreamObject::default();
        object.camera_seen(false, true);
        object.camera_seen(true, true);
        assert!(!object.stuck, "a camera that was never up has not rebooted");
        object.camera_seen(false, false);
        object.camera_seen(true, false);
        assert!(!object.stuck, "switch off when it came back");
        object.camera_seen(false, false);
        object.camera_seen(true, true);
        assert!(object.stuck);
    }

    #[test]
    fn camera_addresses_are_loopback_only() {
        let addr = |s| camera_addr(s).map(|a| a.to_string());
        assert_eq!(
            addr("rtsp://u:p@127.0.0.1:8554/x#timeout=30").as_deref(),
            Some("127.0.0.1:8554")
        );
        assert_eq!(
            addr("ffmpeg:rtsp://localhost/x").as_deref(),
            Some("127.0.0.1:554")
        );
        assert_eq!(addr("rtsp://[::1]:10/x").as_deref(), Some("[::1]:10"));
        assert_eq!(addr("rtsp://10.0.0.5/x"), None);
        assert_eq!(addr("rtsp://cam.lan/x"), None);
    }
}
