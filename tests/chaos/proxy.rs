//! A TCP proxy in front of a server's HTTP API: camsync talks to the proxy, which forwards to
//! the server — or, while told to, holds every request back or answers it `500` itself. That
//! gives both servers "an API that is slow" and "an API that answers 500" without changing the
//! simulators.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How long each request is held back while the proxy is slow (camsync's timeout is longer).
const SLOW: Duration = Duration::from_millis(400);
const FAILED: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Pass = 0,
    Slow = 1,
    Failing = 2,
}

pub struct ApiProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    stop: CancellationToken,
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ApiProxy {
    /// A proxy on 127.0.0.1 to the API at `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> ApiProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the simulators' API is http://127.0.0.1:PORT");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, mode.clone(), stop.clone()));
        ApiProxy { port, mode, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        let mode = mode.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = forward(client, upstream, mode) => {}
            }
        });
    }
}

/// One connection, until either side closes it (a server that is down closes it at once).
async fn forward(client: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let to_client = Mutex::new(to_client);
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            match mode.load(Ordering::Relaxed) {
                m if m == Mode::Failing as u8 => {
                    let _ = to_client.lock().await.write_all(FAILED).await;
                    return;
                }
                m if m == Mode::Slow as u8 => tokio::time::sleep(SLOW).await,
                _ => {}
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            if to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}
