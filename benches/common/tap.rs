//! A TCP tap in front of a camera, for the benchmarks on the real servers: the servers and
//! camsync dial the tap, which forwards every connection to the camera and notes, per
//! connection, when it was accepted, when the client sent `PLAY`, and when the first RTP packet
//! (an interleaved frame, `$`) came back. That tells, without asking the server's API (a list
//! overlapping a write can crash go2rtc), when data flows to the server again and where the
//! time went. Taking the tap down ([`Tap::stop`]) is the camera going off the network: nothing
//! listens on its port and every open connection is closed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One connection through the tap.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub accepted: Instant,
    /// When the client sent `PLAY` (a server pulling the stream; camsync's probes never play).
    pub play: Option<Instant>,
    /// When the first RTP packet reached the client after `PLAY`.
    pub media: Option<Instant>,
}

/// A tap on 127.0.0.1, on the same port for its whole life.
pub struct Tap {
    port: u16,
    camera: u16,
    log: Arc<Mutex<Vec<Connection>>>,
    /// Cancelled by [`Tap::stop`]; `None` while stopped.
    running: Mutex<Option<CancellationToken>>,
}

impl Tap {
    /// Starts a tap forwarding to the camera on `camera_port`.
    pub async fn start(camera_port: u16) -> std::io::Result<Tap> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let tap = Tap {
            port: listener.local_addr()?.port(),
            camera: camera_port,
            log: Arc::default(),
            running: Mutex::new(None),
        };
        tap.serve(listener);
        Ok(tap)
    }

    /// `rtsp://127.0.0.1:PORT/path` through the tap.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// The camera goes off the network: the listener and every connection close.
    pub fn stop(&self) {
        if let Some(token) = self.lock_running().take() {
            token.cancel();
        }
    }

    /// The camera listens again on the same port.
    pub async fn resume(&self) -> std::io::Result<()> {
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))).await?;
        self.serve(listener);
        Ok(())
    }

    /// The connections accepted at or after `since`, in order.
    pub fn since(&self, since: Instant) -> Vec<Connection> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .filter(|c| c.accepted >= since)
            .copied()
            .collect()
    }

    /// When data first reached a server over a connection accepted at or after `since`.
    pub fn media_since(&self, since: Instant) -> Option<Instant> {
        self.since(since).iter().filter_map(|c| c.media).min()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        if let Some(old) = self.lock_running().replace(token.clone()) {
            old.cancel();
        }
        let (log, camera) = (self.log.clone(), self.camera);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let index = {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push(Connection {
                        accepted: Instant::now(),
                        play: None,
                        media: None,
                    });
                    log.len() - 1
                };
                let (log, token) = (log.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = forward(client, camera, &log, index) => {}
                    }
                });
            }
        });
    }
}

/// Copies both ways between `client` and the camera, noting `PLAY` and the first RTP packet.
async fn forward(
    client: TcpStream,
    camera: u16,
    log: &Mutex<Vec<Connection>>,
    index: usize,
) -> std::io::Result<()> {
    let upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, camera)).await?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut camera_rx, mut camera_tx) = upstream.into_split();
    let note = |update: &dyn Fn(&mut Connection)| {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = log.get_mut(index) {
            update(c);
        }
    };
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if buf[..n].windows(5).any(|w| w == b"PLAY ") {
                let now = Instant::now();
                note(&|c| {
                    c.play.get_or_insert(now);
                });
            }
            camera_tx.write_all(&buf[..n]).await?;
        }
    };
    let media = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = camera_rx.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            // An interleaved frame starts with `$`; RTSP answers are text without one.
            if buf[..n].contains(&b'$') {
                let now = Instant::now();
                note(&|c| {
                    if c.play.is_some() {
                        c.media.get_or_insert(now);
                    }
                });
            }
            client_tx.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        r = requests => r,
        r = media => r,
    }
}
