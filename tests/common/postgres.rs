//! A PostgreSQL server for the Postgres source's tests: `CAMSYNC_TEST_POSTGRES` holds a
//! connection string (`.ci/run` starts a private server and sets it). Each test works in a
//! schema and a notification channel of its own, so tests run side by side. Without the
//! variable at build time (build.rs turns it into `cfg(camsync_postgres)`) the tests are
//! ignored, with the reason in cargo's output.
#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

pub const SERVER_VAR: &str = "CAMSYNC_TEST_POSTGRES";
pub const SCHEMA: &str = include_str!("../../examples/postgres/schema.sql");

/// The connection string. The tests calling it are ignored unless the variable was set at
/// build time; one run anyway (`--ignored`) without it fails here, saying why.
pub fn server() -> String {
    match std::env::var(SERVER_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{SERVER_VAR} is not set (a connection string to a PostgreSQL server the test may \
             create schemas on; `.ci/run` starts one)"
        ),
    }
}

/// One test's schema and channel on the server, and a connection to write with.
pub struct Pg {
    pub schema: String,
    pub channel: String,
    pub client: Client,
}

impl Pg {
    /// Connects and creates the test's schema with examples/postgres/schema.sql in it.
    pub async fn new(url: &str) -> Pg {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let pg = Pg {
            client: connect(url).await,
            schema: format!("camsync_test_{unique}"),
            channel: format!("cameras_changed_{unique}"),
        };
        pg.exec(&format!(
            "CREATE SCHEMA {0}; SET search_path TO {0};",
            pg.schema
        ))
        .await;
        pg.exec(&SCHEMA.replace("cameras_changed", &pg.channel))
            .await;
        pg
    }

    /// The same schema over a new connection (after a server restart).
    pub async fn reconnect(self, url: &str) -> Pg {
        let pg = Pg {
            client: connect(url).await,
            ..self
        };
        pg.exec(&format!("SET search_path TO {}", pg.schema)).await;
        pg
    }

    pub async fn exec(&self, sql: &str) {
        self.client.batch_execute(sql).await.unwrap();
    }

    /// Adds a camera with the marker password.
    pub async fn add(&self, name: &str, url: &str) {
        self.client
            .execute(
                "INSERT INTO cameras (name, url, username, password) VALUES ($1, $2, 'admin', $3)",
                &[&name, &url, &crate::common::PASSWORD],
            )
            .await
            .unwrap();
    }

    /// `query` reading this test's schema (the example's query names its table unqualified).
    pub fn qualify(&self, query: &str) -> String {
        query.replace("FROM cameras", &format!("FROM {}.cameras", self.schema))
    }

    pub async fn drop_schema(&self) {
        self.exec(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The `source:` section for `query`, with the connection string in `url_file` (written to
/// `dir`) and, when `listen`, the test's channel.
pub fn source_yaml(dir: &Path, url: &str, query: &str, listen: Option<&str>) -> String {
    std::fs::write(dir.join("pg.url"), url).unwrap();
    let mut text = String::from("source:\n  postgres:\n    url_file: pg.url\n    timeout: 2s\n");
    if let Some(channel) = listen {
        text.push_str(&format!("    listen: {channel}\n"));
    }
    text.push_str("    query: |\n");
    for line in query.lines() {
        text.push_str(&format!("      {line}\n"));
    }
    text
}

/// A TCP proxy on 127.0.0.1 in front of the server, which a test can cut (every connection
/// dropped, new ones refused) and restore: a network outage seen from camsync.
pub struct Proxy {
    /// A connection string through the proxy.
    pub url: String,
    cut: Arc<std::sync::Mutex<Option<CancellationToken>>>,
}

impl Proxy {
    pub async fn start(server_url: &str) -> Proxy {
        let config: tokio_postgres::Config = server_url.parse().unwrap();
        let host = config.get_hosts().first().cloned().unwrap();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut url = format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            listener.local_addr().unwrap().port(),
            config.get_user().unwrap_or("postgres"),
            config
                .get_dbname()
                .or(config.get_user())
                .unwrap_or("postgres"),
        );
        if let Some(password) = config.get_password() {
            let password = String::from_utf8_lossy(password).replace('\'', "\\'");
            url.push_str(&format!(" password='{password}'"));
        }
        let cut = Arc::new(std::sync::Mutex::new(Some(CancellationToken::new())));
        let state = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(token) = state.lock().unwrap().clone() else {
                    continue; // refused: dropped at once
                };
                let host = host.clone();
                tokio::spawn(async move {
                    match host {
                        Host::Unix(dir) => {
                            let socket = dir.join(format!(".s.PGSQL.{port}"));
                            if let Ok(server) = UnixStream::connect(socket).await {
                                forward(client, server, token).await;
                            }
                        }
                        Host::Tcp(name) => {
                            if let Ok(server) = TcpStream::connect((name.as_str(), port)).await {
                                forward(client, server, token).await;
                            }
                        }
                    }
                });
            }
        });
        Proxy { url, cut }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        if let Some(token) = self.cut.lock().unwrap().take() {
            token.cancel();
        }
    }

    pub fn restore(&self) {
        *self.cut.lock().unwrap() = Some(CancellationToken::new());
    }
}

async fn forward<S>(mut client: TcpStream, mut server: S, cut: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}

/// The query of examples/postgres/camsync.yaml.
pub fn example_query() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/postgres/camsync.yaml");
    let env = |var: &str| {
        (var == "CAMSYNC_DATABASE_URL").then(|| "host=/run/postgresql dbname=cameras".to_string())
    };
    match camsync::config::load(&path, &env).unwrap().source {
        camsync::config::SourceConfig::Postgres(pg) => pg.query,
        other => panic!("the example reads {other:?}"),
    }
}
