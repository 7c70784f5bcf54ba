//! The minimal RTSP shared by the simulators: request parsing, response writing, a TCP server
//! loop that can stream the H.264 test pattern after `SETUP`/`PLAY` (RTP interleaved on the RTSP
//! connection), and the one client call the servers make to a camera (`DESCRIBE`, optionally
//! keeping the connection open as a pulling server does).
//!
//! Only what the simulators answer is understood: a request line, headers, and a body sized by
//! `Content-Length` (read and ignored), read with the bounded reader of [`camsync_formats::rtsp_wire`];
//! interleaved frames a client sends (RTCP receiver reports) are skipped; a
//! connection breaking its limits is closed. [`RtspServer`] owns its accept loop and every connection task: once
//! [`RtspServer::shutdown`] returns, the port refuses connections and no connection is left open.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::h264::Pattern;
use super::rtp::{self, RtpSender};
use camsync_formats::rtsp_wire::{find_header, invalid, read_body, read_head};

/// The methods both simulators list in `Public:`.
pub(crate) const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN";
/// The session id of every RTSP session (one per connection).
const SESSION: &str = "5ca1ab1e";
/// Pictures per second of the streamed test pattern; one IDR each second.
const FPS: u32 = 10;

/// The test pattern every simulator describes and a camera streams: 64×64 pixels.
fn pattern() -> Pattern {
    Pattern::new(64, 64, FPS)
}

/// One RTSP request, without its body.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub uri: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The request path, percent-decoded, without the leading `/` or any query:
    /// `rtsp://host:8554/cam%201?x=1` → `cam 1`.
    pub fn path_name(&self) -> String {
        let path = match self.uri.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
            None => self.uri.as_str(),
        };
        let path = path.split('?').next().unwrap_or_default();
        let path = path.strip_prefix('/').unwrap_or(path);
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// Whether this (SETUP) request asks for UDP transport: any `Transport:` without `TCP`.
    pub fn wants_udp(&self) -> bool {
        self.header("Transport")
            .is_some_and(|t| !t.to_ascii_uppercase().contains("TCP"))
    }
}

/// One RTSP response; `CSeq` is added when it is written.
#[derive(Debug)]
pub(crate) struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    media: Media,
}

/// What a response does to the connection's media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Unchanged,
    /// `SETUP` accepted: RTP goes on this interleaved channel once playing.
    Channel(u8),
    /// `PLAY` accepted: start streaming on the channel set up.
    Play,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            media: Media::Unchanged,
        }
    }

    /// The answer to `SETUP` of the video track: TCP interleaved on the channels the client
    /// asked for (0-1 if it did not say); UDP is refused with 461.
    pub fn setup(request: &Request) -> Self {
        if request.wants_udp() {
            return Response::new(461);
        }
        let channel = request
            .header("Transport")
            .and_then(|t| {
                t.split(';')
                    .find_map(|p| p.trim().strip_prefix("interleaved="))
            })
            .and_then(|range| range.split('-').next())
            .and_then(|first| first.trim().parse::<u8>().ok())
            .unwrap_or(0);
        let mut response = Response::new(200)
            .header(
                "Transport",
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={channel}-{}",
                    channel.saturating_add(1)
                ),
            )
            .header("Session", format!("{SESSION};timeout=60"));
        response.media = Media::Channel(channel);
        response
    }

    /// The answer to `PLAY`: the test pattern streams from now on.
    pub fn play() -> Self {
        let mut response = Response::new(200)
            .header("Session", SESSION)
            .header("Range", "npt=0.000-");
        response.media = Media::Play;
        response
    }

    /// 200 within the session (`GET_PARAMETER` keep-alives, `TEARDOWN`).
    pub fn in_session() -> Self {
        Response::new(200).header("Session", SESSION)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// 200 with an SDP body, as answered to `DESCRIBE` on `uri`.
    pub fn sdp(uri: &str, session_name: &str) -> Self {
        let mut response = Response::new(200)
            .header("Content-Type", "application/sdp")
            .header("Content-Base", format!("{}/", uri.trim_end_matches('/')));
        response.body = h264_sdp(session_name).into_bytes();
        response
    }

    /// 200 to `OPTIONS`.
    pub fn options() -> Self {
        Response::new(200).header("Public", PUBLIC_METHODS)
    }

    async fn write_to<W: AsyncWrite + Unpin>(
        &self,
        w: &mut W,
        cseq: Option<&str>,
    ) -> io::Result<()> {
        let mut head = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(cseq) = cseq {
            head.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        w.write_all(head.as_bytes()).await?;
        w.write_all(&self.body).await?;
        w.flush().await
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        454 => "Session Not Found",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

/// A small, valid SDP with one H264 video track: the parameter sets of the test pattern.
pub(crate) fn h264_sdp(session_name: &str) -> String {
    let pattern = pattern();
    let sprop = format!("{},{}", base64(&pattern.sps()), base64(&pattern.pps()));
    format!(
        "v=0\r\n\
         o=- 1 1 IN IP4 127.0.0.1\r\n\
         s={session_name}\r\n\
         c=IN IP4 0.0.0.0\r\n\
         t=0 0\r\n\
         m=video 0 RTP/AVP 96\r\n\
         a=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop};profile-level-id=42c01e\r\n\
         a=control:trackID=0\r\n"
    )
}

/// The `Authorization` value for HTTP/RTSP Basic auth.
pub(crate) fn basic_auth(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// Whether `header` (an `Authorization` value) carries exactly `expected` (from [`basic_auth`]).
/// What an HTTP request's credentials are to a simulator's API that expects `expected`
/// (`Basic …`), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpAuth {
    Accepted,
    Missing,
    Wrong,
}

pub(crate) fn http_auth(headers: &axum::http::HeaderMap, expected: Option<&str>) -> HttpAuth {
    let Some(expected) = expected else {
        return HttpAuth::Accepted;
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match (given, auth_matches(given, expected)) {
        (_, true) => HttpAuth::Accepted,
        (None, false) => HttpAuth::Missing,
        (Some(_), false) => HttpAuth::Wrong,
    }
}

pub(crate) fn auth_matches(header: Option<&str>, expected: &str) -> bool {
    header
        .and_then(|h| h.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("Basic")
                && expected.strip_prefix("Basic ") == Some(token.trim())
        })
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads one request (its body is read and dropped), skipping interleaved frames before it;
/// `None` when the peer closed.
async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Request>> {
    while r.fill_buf().await?.first() == Some(&b'$') {
        let mut header = [0u8; 4];
        r.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]);
        tokio::io::copy(&mut r.take(u64::from(len)), &mut tokio::io::sink()).await?;
    }
    let Some(head) = read_head(r).await? else {
        return Ok(None);
    };
    read_body(r, &head).await?;
    let mut parts = head.start.split_whitespace();
    let (Some(method), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("bad request line"));
    };
    if !version.starts_with("RTSP/") {
        return Err(invalid("not RTSP"));
    }
    Ok(Some(Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers: head.headers,
    }))
}

/// What answers the requests of an [`RtspServer`].
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;

    /// Called once per accepted connection, before its first request.
    fn connected(&self) {}

    /// Resolves when media may flow (before each picture of the session that `PLAY`ed `uri`):
    /// a handler that freezes holds it; `false` ends the session (the connection is closed).
    fn media_flows(&self, uri: &str) -> impl Future<Output = bool> + Send {
        let _ = uri;
        std::future::ready(true)
    }
}

/// A running RTSP listener and its connections. Dropping it stops them too, without waiting.
pub(crate) struct RtspServer {
    cancel: CancellationToken,
    /// Stops only the accept loop (a child of `cancel`).
    stop_accepting: CancellationToken,
    accepting: Option<tokio::task::JoinHandle<()>>,
    tracker: TaskTracker,
}

impl RtspServer {
    /// Serves `listener` until `cancel` fires (or the server is shut down or dropped).
    pub fn spawn<H: Handler>(
        listener: TcpListener,
        cancel: CancellationToken,
        handler: Arc<H>,
    ) -> Self {
        let tracker = TaskTracker::new();
        let stop_accepting = cancel.child_token();
        let accepting = tokio::spawn(accept_loop(
            listener,
            stop_accepting.clone(),
            cancel.clone(),
            tracker.clone(),
            handler,
        ));
        RtspServer {
            cancel,
            stop_accepting,
            accepting: Some(accepting),
            tracker,
        }
    }

    /// Closes the listener, then every connection, and waits until they are gone. In that
    /// order: a client redialing the moment its connection drops must find the port closed,
    /// as with a camera that powers off, not a listener about to go.
    pub async fn shutdown(mut self) {
        self.stop_accepting.cancel();
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.await;
        }
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    stop: CancellationToken,
    cancel: CancellationToken,
    tracker: TaskTracker,
    handler: Arc<H>,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                handler.connected();
                let (cancel, handler) = (cancel.clone(), handler.clone());
                tracker.spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        result = serve_connection(stream, handler.as_ref()) => {
                            if let Err(e) = result {
                                tracing::debug!(error = %e, "rtsp sim connection closed");
                            }
                        }
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "rtsp sim accept failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Answers requests one by one; once a `SETUP` and a `PLAY` were accepted, streams the test
/// pattern alongside until either side of the connection fails or the peer closes it.
async fn serve_connection<H: Handler>(stream: TcpStream, handler: &H) -> io::Result<()> {
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let writer = Mutex::new(writer);
    // The channel set up and the URI played, once a `PLAY` was accepted.
    let (playing, mut play) = watch::channel(None::<(u8, String)>);
    let requests = async {
        let mut channel = None;
        while let Some(request) = read_request(&mut reader).await? {
            let cseq = request.header("CSeq").map(str::to_owned);
            let uri = request.uri.clone();
            let response = handler.handle(request).await;
            response
                .write_to(&mut *writer.lock().await, cseq.as_deref())
                .await?;
            match (response.media, channel) {
                (Media::Channel(c), _) => channel = Some(c),
                (Media::Play, Some(c)) => {
                    playing.send_replace(Some((c, uri)));
                }
                (Media::Play | Media::Unchanged, _) => {}
            }
        }
        Ok(())
    };
    let media = async {
        // `playing` lives as long as `requests`, which this future never outlives.
        let Ok(Some((channel, uri))) = play.wait_for(Option::is_some).await.map(|p| p.clone())
        else {
            return std::future::pending().await;
        };
        stream_pattern(&writer, channel, &uri, handler).await
    };
    tokio::select! {
        result = requests => result,
        result = media => result,
    }
}

/// Sends the test pattern on `channel`, [`FPS`] pictures a second, while the handler lets
/// media flow; returns when writing fails or the handler ends the session.
async fn stream_pattern<H: Handler, W: AsyncWrite + Unpin>(
    writer: &Mutex<W>,
    channel: u8,
    uri: &str,
    handler: &H,
) -> io::Result<()> {
    let pattern = pattern();
    let mut sender = RtpSender::new(0x0ca3_5e9c, 1);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / FPS);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        ticker.tick().await;
        if !handler.media_flows(uri).await {
            return Ok(());
        }
        let timestamp = (n * u64::from(90_000 / FPS)) as u32;
        let mut frames = Vec::new();
        for packet in sender.picture(&pattern.picture(n), timestamp) {
            frames.extend_from_slice(&rtp::interleaved(channel, &packet));
        }
        let mut writer = writer.lock().await;
        writer.write_all(&frames).await?;
        writer.flush().await?;
    }
    Ok(())
}

/// Why go2rtc could not get an SDP from a source; the texts are Go's (go2rtc prefixes
/// `streams: `).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("unsupported scheme: {0}")]
    Unsupported(String),
    #[error("dial tcp {0}: connect: connection refused")]
    Refused(String),
    #[error("dial tcp {0}: i/o timeout")]
    ConnectTimeout(String),
    #[error("read tcp {0}: i/o timeout")]
    ReadTimeout(String),
    #[error("wrong user/pass")]
    Unauthorized,
    #[error("wrong response on DESCRIBE")]
    Status(u16),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where and how to send a `DESCRIBE` for one go2rtc source.
struct DescribeTarget {
    /// `host:port` as written in the source, for error texts.
    shown: String,
    /// Where to connect; `None` for hosts the simulator must never contact.
    addr: Option<SocketAddr>,
    /// The source URL without userinfo.
    uri: String,
    authorization: Option<String>,
}

impl DescribeTarget {
    /// Understands `rtsp://…` and `ffmpeg:rtsp://…`, with go2rtc `#options` ignored.
    fn parse(source: &str) -> Result<Self, DialError> {
        let source = source.strip_prefix("ffmpeg:").unwrap_or(source);
        let source = source.split('#').next().unwrap_or_default();
        let scheme = source.split(':').next().unwrap_or_default();
        let url = url::Url::parse(source)
            .ok()
            .filter(|u| u.scheme() == "rtsp")
            .ok_or_else(|| DialError::Unsupported(scheme.to_owned()))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port().unwrap_or(554);
        let authorization = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            basic_auth(
                &decode(url.username()),
                &decode(url.password().unwrap_or_default()),
            )
        });
        let mut bare = url.clone();
        // Clearing userinfo cannot fail on a URL that has a host, which every rtsp URL here has.
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        Ok(DescribeTarget {
            shown: format!("{host}:{port}"),
            addr: loopback_ip(&host).map(|ip| SocketAddr::new(ip, port)),
            uri: bare.to_string(),
            authorization,
        })
    }
}

/// The address of a loopback host name; `None` for anything else, which is never dialed.
fn loopback_ip(host: &str) -> Option<std::net::IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(Ipv4Addr::LOCALHOST.into());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .ok()
        .filter(|ip| ip.is_loopback())
}

/// Sends one `DESCRIBE` for `source` as go2rtc's RTSP client would, within `connect_timeout`
/// to connect and `read_timeout` for the answer. Non-loopback hosts fail at once as a connect
/// timeout: the simulators never contact anything off this machine.
pub(crate) async fn describe(
    source: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(), DialError> {
    describe_and_hold(source, connect_timeout, read_timeout)
        .await
        .map(drop)
}

/// An RTSP connection kept open after a successful `DESCRIBE`, as a server pulling a camera
/// keeps its session: [`HeldSession::closed`] resolves when the camera goes away.
pub(crate) struct HeldSession {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    _writer: tokio::net::tcp::OwnedWriteHalf,
}

impl HeldSession {
    /// Waits until the peer closes the connection (or it fails); anything it sends is ignored.
    pub async fn closed(mut self) {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = self.reader.read(&mut buf).await {}
    }
}

/// [`describe`], keeping the connection open on success.
pub(crate) async fn describe_and_hold(
    source: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<HeldSession, DialError> {
    let target = DescribeTarget::parse(source)?;
    let Some(addr) = target.addr else {
        return Err(DialError::ConnectTimeout(target.shown));
    };
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(DialError::ConnectTimeout(target.shown)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(DialError::Refused(target.shown));
        }
        Ok(result) => result?,
    };
    let (status, session) = tokio::time::timeout(read_timeout, describe_on(stream, &target))
        .await
        .map_err(|_| DialError::ReadTimeout(target.shown.clone()))??;
    match status {
        200 => Ok(session),
        401 => Err(DialError::Unauthorized),
        other => Err(DialError::Status(other)),
    }
}

async fn describe_on(
    stream: TcpStream,
    target: &DescribeTarget,
) -> Result<(u16, HeldSession), DialError> {
    let mut request = format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: go2rtc/1.9.14\r\n",
        target.uri
    );
    if let Some(authorization) = &target.authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    let (reader, mut writer) = stream.into_split();
    writer.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(reader);
    let head = read_head(&mut reader)
        .await?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    read_body(&mut reader, &head).await?;
    let status = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DialError::Io(invalid("bad status line")))?;
    let session = HeldSession {
        reader,
        _writer: writer,
    };
    Ok((status, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(basic_auth("admin", "secret"), "Basic YWRtaW46c2VjcmV0");
    }

    #[test]
    fn auth_scheme_is_case_insensitive_credentials_are_not() {
        let expected = basic_auth("admin", "secret");
        assert!(auth_matches(Some("basic YWRtaW46c2VjcmV0"), &expected));
        assert!(!auth_matches(Some("Basic YWRtaW46c2VjcmV1"), &expected));
        assert!(!auth_matches(Some("Basic"), &expected));
        assert!(!auth_matches(None, &expected));
    }

    #[test]
    fn path_name_is_decoded_without_query() {
        let request = |uri: &str| Request {
            method: "DESCRIBE".into(),
            uri: uri.into(),
            headers: Vec::new(),
        };
        assert_eq!(
            request("rtsp://127.0.0.1:8554/cam%201?video").path_name(),
            "cam 1"
        );
        assert_eq!(request("rtsp://127.0.0.1:8554").path_name(), "");
        assert_eq!(request("/site/cam").path_name(), "site/cam");
    }

    #[test]
    fn only_loopback_hosts_are_dialable() {
        let addr = |s: &str| DescribeTarget::parse(s).map(|t| t.addr);
        assert!(matches!(addr("rtsp://127.0.0.1:9/x"), Ok(Some(_))));
        assert!(matches!(addr("rtsp://[::1]:9/x"), Ok(Some(_))));
        assert!(matches!(
            addr("ffmpeg:rtsp://localhost/x#video=h264"),
            Ok(Some(_))
        ));
        assert!(matches!(addr("rtsp://192.0.2.7/x"), Ok(None)));
        assert!(matches!(addr("rtsp://camera.example/x"), Ok(None)));
        assert!(matches!(
            addr("http://127.0.0.1/x"),
            Err(DialError::Unsupported(_))
        ));
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_leaves_the_uri() {
        let target = DescribeTarget::parse("rtsp://ad%40min:p%3Ass@127.0.0.1:8554/x").unwrap();
        assert_eq!(target.uri, "rtsp://127.0.0.1:8554/x");
        assert_eq!(target.authorization, Some(basic_auth("ad@min", "p:ss")));
    }
}
