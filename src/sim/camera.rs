//! A simulated IP camera: minimal RTSP on 127.0.0.1 that answers `OPTIONS` and `DESCRIBE`
//! (an H264 SDP for any path), optionally behind Basic auth.
//!
//! Invariants: the camera keeps its port for its whole life, so a stopped camera comes back
//! where go2rtc expects it; while stopped, connections are refused (nothing listens) and no
//! connection from before the stop stays open. It never streams media: a camera that answers
//! `DESCRIBE` counts as up, which is all go2rtc's dial and camsync's probes look at.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::Mutex;
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
    /// The `Authorization` value required for everything but `OPTIONS`; `None` = open camera.
    authorization: Option<String>,
    describes: AtomicU64,
}

impl SimCamera {
    /// Starts a camera without authentication on 127.0.0.1 and a free port.
    pub async fn start() -> io::Result<SimCamera> {
        Self::start_with(None).await
    }

    /// Starts a camera that requires Basic auth with `user`/`pass` (except for `OPTIONS`).
    pub async fn start_with_auth(user: &str, pass: &str) -> io::Result<SimCamera> {
        Self::start_with(Some(rtsp::basic_auth(user, pass))).await
    }

    async fn start_with(authorization: Option<String>) -> io::Result<SimCamera> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let behaviour = Arc::new(Behaviour {
            authorization,
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

    /// How many `DESCRIBE` requests the camera has answered, whatever the answer (401 included).
    pub fn describe_count(&self) -> u64 {
        self.behaviour.describes.load(Ordering::Relaxed)
    }
}

impl Handler for Behaviour {
    async fn handle(&self, request: Request) -> Response {
        if request.method == "DESCRIBE" {
            self.describes.fetch_add(1, Ordering::Relaxed);
        }
        if request.method == "OPTIONS" {
            return Response::options();
        }
        if let Some(expected) = &self.authorization
            && !rtsp::auth_matches(request.header("Authorization"), expected)
        {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="camera""#);
        }
        match request.method.as_str() {
            "DESCRIBE" => Response::sdp(&request.uri, "camsync sim camera"),
            _ => Response::new(501),
        }
    }
}
