//! A simulated IP camera: minimal RTSP on 127.0.0.1 that answers `OPTIONS` and `DESCRIBE`
//! (an H264 SDP for any path) and streams real H.264 after `SETUP` (TCP interleaved; UDP is
//! refused with 461) and `PLAY`, optionally behind Basic or Digest auth, with the failure modes
//! the health checks must tell apart.
//!
//! The stream is a 64×64 test pattern at 10 pictures a second, an IDR of `I_PCM` macroblocks
//! each second and all-skip P pictures between (see `h264`), about 7 kB/s: enough for real
//! go2rtc and MediaMTX to report the stream ready and count its bytes.
//!
//! Modes:
//! - **answering** (the start, and [`SimCamera::answer`]): every request is answered and
//!   playing sessions stream.
//! - **hung** ([`SimCamera::hang`]): connections are accepted and requests read, but nothing is
//!   ever answered and playing sessions stop sending — a camera whose firmware froze. Held
//!   requests, and their connections even if the client left, stay until the camera answers
//!   again (then they are answered and streaming goes on) or stops.
//! - **stopped** ([`SimCamera::stop`] until [`SimCamera::resume`]): nothing listens, so
//!   connecting is refused. Stopping and hanging are independent: a hung camera resumes hung.
//!
//! Auth: `OPTIONS` never needs it. With [`SimCamera::start_with_auth`] everything else needs
//! Basic; with [`SimCamera::start_with_digest`], Digest (MD5, RFC 2617, with or without `qop`)
//! against a fixed `realm="camera"` and one nonce for the camera's life. A 401 leaves the
//! connection open, as most cameras do.
//!
//! Invariants: the camera keeps its port for its whole life, so a stopped camera comes back
//! where go2rtc expects it; while stopped, connections are refused (nothing listens) and no
//! connection from before the stop stays open. A camera that answers `DESCRIBE` counts as up for
//! the simulated servers and camsync's probes; the real servers need the stream. Counters
//! ([`SimCamera::connections`], [`SimCamera::options_count`], [`SimCamera::describe_count`])
//! only grow.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_auth::{PasswordClient, PasswordParams};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::rtsp::{self, Handler, Request, Response, RtspServer};

/// A simulated camera; see the module docs.
pub struct SimCamera {
    port: u16,
    behaviour: Arc<Behaviour>,
    /// `None` while stopped.
    server: Mutex<Option<RtspServer>>,
}

/// How the camera answers; shared with its connection tasks.
struct Behaviour {
    auth: Auth,
    mode: watch::Sender<Mode>,
    connections: AtomicU64,
    options: AtomicU64,
    describes: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Answering,
    Hung,
}

/// What the camera requires for everything but `OPTIONS`.
enum Auth {
    Open,
    /// The exact `Authorization` value expected.
    Basic(String),
    Digest(Digest),
}

impl SimCamera {
    /// Starts a camera without authentication on 127.0.0.1 and a free port.
    pub async fn start() -> io::Result<SimCamera> {
        Self::start_with(Auth::Open).await
    }

    /// Starts a camera that requires Basic auth with `user`/`pass` (except for `OPTIONS`).
    pub async fn start_with_auth(user: &str, pass: &str) -> io::Result<SimCamera> {
        Self::start_with(Auth::Basic(rtsp::basic_auth(user, pass))).await
    }

    /// Starts a camera that requires Digest auth with `user`/`pass` (except for `OPTIONS`).
    pub async fn start_with_digest(user: &str, pass: &str) -> io::Result<SimCamera> {
        let nonce = format!("{:016x}", RandomState::new().hash_one(user));
        let challenge = format!(r#"Digest realm="camera", nonce="{nonce}""#);
        Self::start_with(Auth::Digest(Digest::new(user, pass, challenge))).await
    }

    async fn start_with(auth: Auth) -> io::Result<SimCamera> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let behaviour = Arc::new(Behaviour {
            auth,
            mode: watch::Sender::new(Mode::Answering),
            connections: AtomicU64::new(0),
            options: AtomicU64::new(0),
            describes: AtomicU64::new(0),
        });
        let server = RtspServer::spawn(listener, CancellationToken::new(), behaviour.clone());
        Ok(SimCamera {
            port,
            behaviour,
            server: Mutex::new(Some(server)),
        })
    }

    /// The TCP port, the same for the camera's whole life.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:PORT/path`, without credentials.
    pub fn url(&self, path: &str) -> String {
        format!(
            "rtsp://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Takes the camera off the network: closes the listener and every open connection.
    /// Connecting is refused until [`SimCamera::resume`]. Stopping a stopped camera does nothing.
    pub async fn stop(&self) {
        if let Some(server) = self.server.lock().await.take() {
            server.shutdown().await;
        }
    }

    /// Listens again on the same port. Resuming a running camera does nothing; it fails only if
    /// something else took the port meanwhile.
    pub async fn resume(&self) -> io::Result<()> {
        let mut server = self.server.lock().await;
        if server.is_none() {
            let listener =
                TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))).await?;
            *server = Some(RtspServer::spawn(
                listener,
                CancellationToken::new(),
                self.behaviour.clone(),
            ));
        }
        Ok(())
    }

    /// Freezes the camera: connections are still accepted, nothing is answered.
    pub fn hang(&self) {
        self.behaviour.mode.send_replace(Mode::Hung);
    }

    /// Answers again, held requests included.
    pub fn answer(&self) {
        self.behaviour.mode.send_replace(Mode::Answering);
    }

    /// How many TCP connections the camera has accepted.
    pub fn connections(&self) -> u64 {
        self.behaviour.connections.load(Ordering::Relaxed)
    }

    /// How many `OPTIONS` requests the camera has received, answered or not.
    pub fn options_count(&self) -> u64 {
        self.behaviour.options.load(Ordering::Relaxed)
    }

    /// How many `DESCRIBE` requests the camera has received, whatever the answer (401
    /// included) and whether answered or not (while hung).
    pub fn describe_count(&self) -> u64 {
        self.behaviour.describes.load(Ordering::Relaxed)
    }
}

impl Handler for Behaviour {
    async fn handle(&self, request: Request) -> Response {
        let counter = match request.method.as_str() {
            "OPTIONS" => Some(&self.options),
            "DESCRIBE" => Some(&self.describes),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.answering().await;
        if request.method == "OPTIONS" {
            return Response::options();
        }
        if let Some(challenge) = self.auth.challenge_for(&request) {
            return Response::new(401).header("WWW-Authenticate", challenge);
        }
        match request.method.as_str() {
            "DESCRIBE" => Response::sdp(&request.uri, "camsync sim camera"),
            "SETUP" => Response::setup(&request),
            "PLAY" => Response::play(),
            "GET_PARAMETER" | "TEARDOWN" => Response::in_session(),
            _ => Response::new(501),
        }
    }

    fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    async fn media_flows(&self, _uri: &str) -> bool {
        self.answering().await;
        true
    }
}

impl Behaviour {
    /// Resolves while (or as soon as) the camera is not hung.
    async fn answering(&self) {
        // The sender lives in `self`, so this waits for a mode change, never for a closed channel.
        let _ = self
            .mode
            .subscribe()
            .wait_for(|mode| *mode == Mode::Answering)
            .await;
    }
}

impl Auth {
    /// The `WWW-Authenticate` challenge to answer `request` with; `None` when it may pass.
    fn challenge_for(&self, request: &Request) -> Option<String> {
        let authorization = request.header("Authorization");
        match self {
            Auth::Open => None,
            Auth::Basic(expected) => (!rtsp::auth_matches(authorization, expected))
                .then(|| r#"Basic realm="camera""#.to_owned()),
            Auth::Digest(digest) => {
                (!digest.admits(authorization, &request.method)).then(|| digest.challenge.clone())
            }
        }
    }
}

/// A Digest protection space: the challenge the camera sends and the credentials it accepts.
struct Digest {
    user: String,
    pass: String,
    /// The `WWW-Authenticate` value, `Digest realm=…, nonce=…[, qop=…]`.
    challenge: String,
}

impl Digest {
    fn new(user: &str, pass: &str, challenge: String) -> Self {
        Digest {
            user: user.to_owned(),
            pass: pass.to_owned(),
            challenge,
        }
    }

    /// Whether `authorization` answers this challenge for `method` with the right password.
    ///
    /// The expected `response` is computed by `http-auth` from our own challenge and the
    /// client's `uri` and `cnonce`: that is RFC 2617's computation without a hand-written MD5.
    /// It assumes the client's first use of the nonce (`nc=00000001`), as a probe makes.
    fn admits(&self, authorization: Option<&str>, method: &str) -> bool {
        let Some(client) = authorization.and_then(DigestParams::parse) else {
            return false;
        };
        let Ok(PasswordClient::Digest(mut ours)) =
            PasswordClient::try_from(self.challenge.as_str())
        else {
            return false;
        };
        if client.get("username").as_deref() != Some(self.user.as_str())
            || client.get("nonce").as_deref() != Some(ours.nonce())
        {
            return false;
        }
        let (Some(uri), Some(response)) = (client.get("uri"), client.get("response")) else {
            return false;
        };
        let params = PasswordParams {
            username: &self.user,
            password: &self.pass,
            uri: &uri,
            method,
            body: Some(&[]),
        };
        let cnonce = client.get("cnonce").unwrap_or_default();
        ours.respond_with_testing_cnonce(&params, &cnonce)
            .ok()
            .and_then(|expected| DigestParams::parse(&expected))
            .and_then(|expected| expected.get("response"))
            == Some(response)
    }
}

/// The parameters of a `Digest …` credentials header (the same `auth-param` syntax as a
/// challenge, so `http-auth`'s challenge parser reads it).
struct DigestParams(Vec<(String, String)>);

impl DigestParams {
    fn parse(header: &str) -> Option<Self> {
        let parsed = http_auth::parse_challenges(header).ok()?;
        let [credentials] = parsed.as_slice() else {
            return None;
        };
        if !credentials.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        Some(DigestParams(
            credentials
                .params
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_unescaped()))
                .collect(),
        ))
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client sends: `http-auth` with a random cnonce, as the prober uses it.
    fn respond(challenge: &str, user: &str, pass: &str, uri: &str) -> String {
        let mut client = PasswordClient::try_from(challenge).unwrap();
        client
            .respond(&PasswordParams {
                username: user,
                password: pass,
                uri,
                method: "DESCRIBE",
                body: Some(&[]),
            })
            .unwrap()
    }

    #[test]
    fn digest_checks_password_user_nonce_and_method_with_or_without_qop() {
        let uri = "rtsp://127.0.0.1:554/main";
        for challenge in [
            r#"Digest realm="camera", nonce="n1""#,
            r#"Digest realm="camera", nonce="n1", qop="auth""#,
        ] {
            let digest = Digest::new("admin", "s3cret", challenge.to_owned());
            let good = respond(challenge, "admin", "s3cret", uri);
            assert!(digest.admits(Some(&good), "DESCRIBE"), "{good}");
            assert!(!digest.admits(Some(&good), "SETUP"), "method is signed");
            let wrong = respond(challenge, "admin", "guess", uri);
            assert!(!digest.admits(Some(&wrong), "DESCRIBE"));
            let other_user = respond(challenge, "root", "s3cret", uri);
            assert!(!digest.admits(Some(&other_user), "DESCRIBE"));
            let stale = respond(&challenge.replace("n1", "n0"), "admin", "s3cret", uri);
            assert!(!digest.admits(Some(&stale), "DESCRIBE"));
            assert!(!digest.admits(Some(&rtsp::basic_auth("admin", "s3cret")), "DESCRIBE"));
            assert!(!digest.admits(None, "DESCRIBE"));
        }
    }
}
