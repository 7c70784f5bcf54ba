//! The RTSP prober: one `OPTIONS` or `DESCRIBE` sent to a URL over TCP, answered with a status
//! and, for `DESCRIBE`, the media of the SDP. It probes a stream path on a server's RTSP proxy
//! (`rtsp://server:8554/<name>`) or a camera itself.
//!
//! Invariants:
//! - **Never disturbs a playing stream.** Only `OPTIONS` and `DESCRIBE` are sent, to the URL as
//!   given: no query parameter is added (go2rtc reads `?video`, `?mp4`, `?source`… from it, and
//!   `microphone` would reconnect every playing stream with a backchannel), never `SETUP` or
//!   `PLAY`, so no session exists and none needs a `TEARDOWN`. The connection is closed as soon
//!   as the answer is read, which also ends the short-lived consumer go2rtc attaches on
//!   `DESCRIBE`.
//! - **One TCP connection per call**, with `CSeq` from 1. After a `401` with a challenge (Basic
//!   or Digest, via `http-auth`, the best of several) and credentials at hand, the request is
//!   sent once more with `Authorization`, on the same connection unless the server closed it
//!   (then on a second one). A second `401` is an answer, not a loop. Credentials are never sent
//!   before a server asks for them.
//! - **Never reveals a credential.** The URL must carry no userinfo (the password travels only
//!   as a [`Secret`] and inside `Authorization`); every error names the URL through
//!   [`redact`] and never holds the password.
//! - **Bounded.** The whole call — name resolution, connecting, every request and answer — ends
//!   within [`Probe::timeout`], and a timeout says which phase it hit. An answer's head is read
//!   up to 16 KiB and its body up to 64 KiB (the simulators' shared RTSP reader), so a hostile
//!   peer can neither hold the call nor make it allocate without limit.
//!
//! Choosing the timeout is the caller's business, with one trap: a server's proxy answers
//! `DESCRIBE` only after dialing the camera. go2rtc holds it up to ~10 s by default (5 s to
//! connect, 5 s to read; longer with `#timeout=N`, up to ~30 s for `exec:`/`ffmpeg:` sources)
//! and then answers 404; MediaMTX holds an on-demand path up to `sourceOnDemandStartTimeout`
//! (10 s by default) and then answers 400, and pauses ~2 s before a 401 for wrong credentials.
//! A probe that gives up earlier reports a timeout where the server was about to give the real
//! answer, so a proxy probe's timeout must exceed the server's own dial time; a camera probe
//! can be short.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http_auth::{PasswordClient, PasswordParams};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::{Host, Url};

use crate::secret::{Secret, redact};
use camsync_formats::rtsp_wire as wire;

/// Sent with every request.
const USER_AGENT: &str = concat!("camsync/", env!("CARGO_PKG_VERSION"));
/// RTSP's default port, for URLs that name none.
const DEFAULT_PORT: u16 = 554;
/// Longer timeouts are cut to this, so that a deadline can always be computed.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// One probe target: what to ask, with what, and for how long.
#[derive(Clone)]
pub struct Probe {
    /// An `rtsp://` URL without userinfo, sent as the request URI (any fragment dropped).
    pub url: Url,
    /// User and password, offered only when the server answers 401 with a challenge.
    pub credentials: Option<(String, Secret)>,
    /// Limit for the whole call, connecting and any authentication round trip included; at
    /// most a day. No default: see the module docs for choosing it.
    pub timeout: Duration,
}

/// Written by hand so that a URL that wrongly carries a password does not print it.
impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("url", &redact(self.url.as_str()))
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A server's answer: any status, 4xx and 5xx included, is an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The reason phrase as the server wrote it (may be empty).
    pub reason: String,
    /// From the start of the call (name resolution and connecting included) to the end of the
    /// final answer.
    pub latency: Duration,
    /// One entry per SDP `m=` line: the media type and the encoding of its first format, from
    /// `a=rtpmap` or the static RTP payload types (`"video H264"`, `"audio PCMA"`), else the
    /// payload type itself. Empty when the answer carries no SDP.
    pub media: Vec<String>,
}

/// Which part of a call ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Resolving the host name and opening the TCP connection.
    Connect,
    /// Sending a request and reading its answer.
    Answer,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Answer => "answer",
        })
    }
}

/// Why a probe got no answer. Every variant names the URL, redacted.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("rtsp probe of {url}: connection refused")]
    Refused { url: String },
    #[error("rtsp probe of {url}: cannot connect: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("rtsp probe of {url}: no {phase} within {after:?}")]
    Timeout {
        url: String,
        phase: Phase,
        after: Duration,
    },
    #[error("rtsp probe of {url}: the server closed the connection before answering")]
    Closed { url: String },
    #[error("rtsp probe of {url}: unexpected answer: {detail}")]
    Protocol { url: String, detail: String },
    #[error("rtsp probe of {url}: cannot answer the server's 401: {detail}")]
    Auth { url: String, detail: String },
    #[error("rtsp probe of {url}: not a usable probe url: {detail}")]
    InvalidUrl { url: String, detail: &'static str },
}

impl Probe {
    /// Sends `OPTIONS`: is an RTSP server listening and talking? (go2rtc answers 200 for any
    /// path; it says nothing about a stream.)
    pub async fn options(&self) -> Result<Answer, ProbeError> {
        self.call(Method::Options).await
    }

    /// Sends `DESCRIBE` with `Accept: application/sdp`: is this stream served, and with what
    /// media?
    pub async fn describe(&self) -> Result<Answer, ProbeError> {
        self.call(Method::Describe).await
    }

    async fn call(&self, method: Method) -> Result<Answer, ProbeError> {
        let started = Instant::now();
        let mut call = Call::new(self, method, started + self.timeout.min(MAX_TIMEOUT))?;
        let reply = call.run().await?;
        Ok(reply.into_answer(started.elapsed()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Options,
    Describe,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
        }
    }
}

type Connection = BufReader<TcpStream>;

/// One call in progress.
struct Call<'a> {
    probe: &'a Probe,
    method: Method,
    /// The request URI.
    uri: String,
    /// The URL as errors show it.
    shown: String,
    deadline: Instant,
    /// The last `CSeq` sent.
    cseq: u32,
}

impl<'a> Call<'a> {
    fn new(probe: &'a Probe, method: Method, deadline: Instant) -> Result<Self, ProbeError> {
        let shown = redact(probe.url.as_str());
        let invalid = |detail| ProbeError::InvalidUrl {
            url: shown.clone(),
            detail,
        };
        if probe.url.scheme() != "rtsp" {
            return Err(invalid("only rtsp:// is supported"));
        }
        if !probe.url.username().is_empty() || probe.url.password().is_some() {
            return Err(invalid(
                "credentials belong in `credentials`, not in the url",
            ));
        }
        if probe.url.host().is_none() {
            return Err(invalid("no host"));
        }
        let mut uri = probe.url.clone();
        uri.set_fragment(None);
        Ok(Call {
            probe,
            method,
            uri: uri.into(),
            shown,
            deadline,
            cseq: 0,
        })
    }

    /// The request, then at most one authenticated retry: on the same connection while the
    /// server keeps it, else on a new one.
    async fn run(&mut self) -> Result<Reply, ProbeError> {
        let mut conn = self.connect().await?;
        let reply = self.exchange(&mut conn, None).await?;
        let Some(authorization) = self.authorization(&reply)? else {
            return Ok(reply);
        };
        if !reply.closes_connection() {
            match self.exchange(&mut conn, Some(&authorization)).await {
                // Some servers hang up after a 401 without saying so.
                Err(ProbeError::Closed { .. }) => {}
                other => return other,
            }
        }
        drop(conn);
        let mut conn = self.connect().await?;
        self.exchange(&mut conn, Some(&authorization)).await
    }

    async fn connect(&self) -> Result<Connection, ProbeError> {
        tokio::time::timeout_at(self.deadline, self.connect_unbounded())
            .await
            .unwrap_or_else(|_| Err(self.timeout(Phase::Connect)))
    }

    /// Tries every address the host resolves to, in order.
    async fn connect_unbounded(&self) -> Result<Connection, ProbeError> {
        let unreachable = |source| ProbeError::Unreachable {
            url: self.shown.clone(),
            source,
        };
        let port = self.probe.url.port().unwrap_or(DEFAULT_PORT);
        let addrs = resolve(&self.probe.url, port).await.map_err(unreachable)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(BufReader::new(stream)),
                Err(e) => last = e,
            }
        }
        Err(if last.kind() == io::ErrorKind::ConnectionRefused {
            ProbeError::Refused {
                url: self.shown.clone(),
            }
        } else {
            unreachable(last)
        })
    }

    /// Sends the request with the next `CSeq` and reads its answer.
    async fn exchange(
        &mut self,
        conn: &mut Connection,
        authorization: Option<&str>,
    ) -> Result<Reply, ProbeError> {
        self.cseq += 1;
        let request = request_text(self.method, &self.uri, self.cseq, authorization);
        let exchange = async {
            conn.get_mut().write_all(request.as_bytes()).await?;
            Reply::read(conn).await
        };
        match tokio::time::timeout_at(self.deadline, exchange).await {
            Err(_) => Err(self.timeout(Phase::Answer)),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => Err(ProbeError::Protocol {
                url: self.shown.clone(),
                detail: e.to_string(),
            }),
            Ok(Err(_)) => Err(ProbeError::Closed {
                url: self.shown.clone(),
            }),
        }
    }

    /// The `Authorization` answering `reply`'s challenges; `None` when the reply is no 401 or
    /// there are no credentials to offer (the 401 is then the answer).
    fn authorization(&self, reply: &Reply) -> Result<Option<String>, ProbeError> {
        let (401, Some((username, password))) = (reply.status, &self.probe.credentials) else {
            return Ok(None);
        };
        let auth_error = |detail: String| ProbeError::Auth {
            url: self.shown.clone(),
            detail: redact(&detail),
        };
        let mut client = best_challenge(reply.challenges()).map_err(auth_error)?;
        client
            .respond(&PasswordParams {
                username,
                password: password.expose(),
                uri: &self.uri,
                method: self.method.as_str(),
                body: Some(&[]),
            })
            .map(Some)
            .map_err(auth_error)
    }

    fn timeout(&self, phase: Phase) -> ProbeError {
        ProbeError::Timeout {
            url: self.shown.clone(),
            phase,
            after: self.probe.timeout,
        }
    }
}

async fn resolve(url: &Url, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port)).await?.collect(),
        None => Vec::new(),
    })
}

/// A client for the strongest scheme offered (Digest over Basic), from every
/// `WWW-Authenticate` header of a 401.
fn best_challenge<'a>(challenges: impl Iterator<Item = &'a str>) -> Result<PasswordClient, String> {
    challenges
        .fold(PasswordClient::builder(), |builder, challenge| {
            builder.challenges(challenge)
        })
        .build()
}

fn request_text(method: Method, uri: &str, cseq: u32, authorization: Option<&str>) -> String {
    let mut text = format!(
        "{} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: {USER_AGENT}\r\n",
        method.as_str()
    );
    if method == Method::Describe {
        text.push_str("Accept: application/sdp\r\n");
    }
    if let Some(authorization) = authorization {
        text.push_str("Authorization: ");
        text.push_str(authorization);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// One answer as read off the wire.
struct Reply {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// Reads one answer; `InvalidData` for anything that is not a well-formed, bounded RTSP
    /// answer, `UnexpectedEof` when the peer closed first.
    async fn read(conn: &mut Connection) -> io::Result<Reply> {
        let head = wire::read_head(conn)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let body = wire::read_body(conn, &head).await?;
        let (status, reason) = parse_status_line(&head.start).ok_or_else(|| {
            let start: String = head.start.chars().take(80).collect();
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an RTSP status line: {start:?}"),
            )
        })?;
        Ok(Reply {
            status,
            reason,
            headers: head.headers,
            body,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        wire::find_header(&self.headers, name)
    }

    fn challenges(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("WWW-Authenticate"))
            .map(|(_, value)| value.as_str())
    }

    fn closes_connection(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    fn into_answer(self, latency: Duration) -> Answer {
        let is_sdp = self
            .header("Content-Type")
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
        let media = if is_sdp {
            sdp_media(&String::from_utf8_lossy(&self.body))
        } else {
            Vec::new()
        };
        Answer {
            status: self.status,
            reason: self.reason,
            latency,
            media,
        }
    }
}

/// `RTSP/1.0 200 OK` → `(200, "OK")`; the reason may be missing.
fn parse_status_line(line: &str) -> Option<(u16, String)> {
    let (version, rest) = line.split_once(' ')?;
    if !version.starts_with("RTSP/") {
        return None;
    }
    let rest = rest.trim_start();
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=999).contains(s))?;
    Some((status, reason.trim().to_owned()))
}

/// The media of an SDP, as documented on [`Answer::media`].
fn sdp_media(sdp: &str) -> Vec<String> {
    struct Media<'s> {
        kind: &'s str,
        format: Option<&'s str>,
        encoding: Option<&'s str>,
    }
    let mut media: Vec<Media> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_whitespace();
            let kind = fields.next().unwrap_or_default();
            media.push(Media {
                kind,
                format: fields.nth(2),
                encoding: None,
            });
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:")
            && let Some(current) = media.last_mut()
            && let Some((format, encoding)) = rtpmap.split_once(char::is_whitespace)
            && current.format == Some(format.trim())
            && current.encoding.is_none()
        {
            current.encoding = encoding.trim().split('/').next();
        }
    }
    media
        .into_iter()
        .map(|m| {
            match m
                .encoding
                .or_else(|| m.format.and_then(static_payload_type))
                .or(m.format)
            {
                Some(encoding) => format!("{} {encoding}", m.kind),
                None => m.kind.to_owned(),
            }
        })
        .collect()
}

/// Encodings of the static RTP payload types (RFC 3551) that cameras use without `a=rtpmap`.
fn static_payload_type(format: &str) -> Option<&'static str> {
    Some(match format {
        "0" => "PCMU",
        "3" => "GSM",
        "8" => "PCMA",
        "9" => "G722",
        "14" => "MPA",
        "26" => "JPEG",
        "32" => "MPV",
        "33" => "MP2T",
        "34" => "H263",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line("RTSP/1.0 200 OK"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            parse_status_line("RTSP/1.0 404 Stream Not Found"),
            Some((404, "Stream Not Found".into()))
        );
        assert_eq!(
            parse_status_line("RTSP/1.0 401"),
            Some((401, String::new()))
        );
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), None);
        assert_eq!(parse_status_line("RTSP/1.0 abc OK"), None);
        assert_eq!(parse_status_line("RTSP/1.0 20 OK"), None);
    }

    #[test]
    fn media_from_rtpmap_static_types_and_bare_formats() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
                   m=audio 0 RTP/AVP 8 0\r\na=control:trackID=1\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:98 opus/48000/2\r\n\
                   m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n";
        assert_eq!(
            sdp_media(sdp),
            [
                "video H264",
                "audio PCMA",
                "audio 97",
                "application vnd.onvif.metadata"
            ]
        );
        assert_eq!(sdp_media("m=video\n"), ["video"]);
        assert!(sdp_media("").is_empty());
    }

    #[test]
    fn digest_is_preferred_over_basic_across_headers() {
        let client = best_challenge(
            [r#"Basic realm="cam""#, r#"Digest realm="cam", nonce="abc""#].into_iter(),
        );
        assert!(matches!(client, Ok(PasswordClient::Digest(_))));
        let client = best_challenge([r#"Basic realm="cam""#].into_iter());
        assert!(matches!(client, Ok(PasswordClient::Basic(_))));
        assert!(best_challenge(["Bearer"].into_iter()).is_err());
        assert!(best_challenge(std::iter::empty()).is_err());
    }

    #[test]
    fn requests_carry_cseq_agent_and_only_what_was_asked() {
        let options = request_text(Method::Options, "rtsp://h/x", 1, None);
        assert_eq!(
            options,
            format!("OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: {USER_AGENT}\r\n\r\n")
        );
        let describe = request_text(Method::Describe, "rtsp://h/x", 2, Some("Basic YTpi"));
        assert!(describe.starts_with("DESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\n"));
        assert!(describe.contains("\r\nAccept: application/sdp\r\n"));
        assert!(describe.ends_with("\r\nAuthorization: Basic YTpi\r\n\r\n"));
    }

    fn probe(url: &str) -> Probe {
        Probe {
            url: Url::parse(url).unwrap(),
            credentials: Some(("admin".into(), Secret::new("hunter2"))),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn urls_with_userinfo_or_another_scheme_are_refused_without_leaking() {
        let deadline = Instant::now();
        for url in ["rtsp://admin:hunter2@h/x", "rtsps://h/x", "http://h/x"] {
            let probe = probe(url);
            let err = Call::new(&probe, Method::Describe, deadline)
                .err()
                .expect("invalid url");
            assert!(matches!(err, ProbeError::InvalidUrl { .. }), "{err}");
            let shown = format!("{err} {err:?} {probe:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let probe = probe("rtsp://h:8554/cam%201?x=1#frag");
        let call = Call::new(&probe, Method::Describe, deadline).unwrap();
        assert_eq!(call.uri, "rtsp://h:8554/cam%201?x=1");
    }
}
