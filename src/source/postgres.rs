//! A Postgres camera database: read with a query, changes heard through `LISTEN`/`NOTIFY`.
//!
//! Invariants:
//! - camsync never writes: every read is one `READ ONLY` transaction.
//! - The connection string holds a password: it is never logged, and errors name the database
//!   by host, port and name only ([`label`]). Errors are passed through [`redact`] as well.
//! - An unreachable database is never taken for an empty one: a failed read is a
//!   [`SourceError`], so the last good inventory stays in force and nothing is deleted.
//! - After every (re)connect of the listener, a full re-read is signalled: notifications sent
//!   while camsync was not listening are lost, so only a re-read catches what changed then.
//!   A lost listener reconnects with exponential backoff and jitter (0.5 s up to 30 s), reset
//!   once a connection has stayed up for a minute.
//!
//! Reads and the listener use two connections: the reader's is opened on first use, kept, and
//! opened again after it breaks (one retry when a kept connection turns out to be dead).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::future::BoxFuture;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_postgres::config::Host;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::columns::{Cell, Columns};
use super::reader::{Reader, Record, SourceError};
use crate::config::PostgresConfig;
use crate::secret::redact;

const LISTEN_MIN_DELAY: Duration = Duration::from_millis(500);
const LISTEN_MAX_DELAY: Duration = Duration::from_secs(30);
/// A listener connection that lived this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(60);
/// Notices a peer that vanished without closing the connection (a cut network).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// The database as messages name it: `postgres://host:port/dbname`, never the credentials.
pub fn label(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{host}:{port}/{db}")
}

/// The Postgres source of one config.
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    connect: tokio_postgres::Config,
    label: String,
    query: String,
    listen: Option<String>,
    timeout: Duration,
    reader: Mutex<Option<Client>>,
}

/// Why a read failed.
enum ReadError {
    /// The connection broke: open a new one.
    Connection(tokio_postgres::Error),
    Failed(SourceError),
}

impl Postgres {
    pub fn new(config: &PostgresConfig) -> Postgres {
        let mut connect = config.connect.clone();
        if connect.get_connect_timeout().is_none() {
            connect.connect_timeout(config.timeout);
        }
        connect.keepalives_idle(KEEPALIVE_IDLE);
        if connect.get_application_name().is_none() {
            connect.application_name("camsync");
        }
        Postgres {
            inner: Arc::new(Inner {
                label: label(&connect),
                connect,
                query: config.query.clone(),
                listen: config.listen.clone(),
                timeout: config.timeout,
                reader: Mutex::new(None),
            }),
        }
    }

    /// Runs the query in a read-only transaction and maps its rows.
    async fn read_records(&self) -> Result<Vec<Record>, SourceError> {
        let inner = &self.inner;
        let (columns, rows) = match tokio::time::timeout(inner.timeout, inner.read()).await {
            Ok(result) => result?,
            Err(_) => {
                // The connection may be stuck: start over next time.
                *inner.reader.lock().await = None;
                return Err(inner.failed(format!(
                    "no answer within {:?} (source.postgres.timeout)",
                    inner.timeout
                )));
            }
        };
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, cells)| columns.record(i + 1, cells))
            .collect())
    }

    /// Listens on the configured channel until `cancel`, sending one `()` per notification and
    /// one after every (re)connect. `None` when no channel is configured.
    fn listen(&self, cancel: CancellationToken) -> Option<mpsc::Receiver<()>> {
        let channel = self.inner.listen.clone()?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(self.inner.clone().listen(channel, tx, cancel));
        Some(rx)
    }
}

impl Inner {
    fn failed(&self, message: String) -> SourceError {
        SourceError::Database {
            database: self.label.clone(),
            message: redact(&message),
        }
    }

    /// A connection for reads; its driver task ends when the client is dropped.
    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.connect.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection ended: {}", describe(&e));
            }
        });
        Ok(client)
    }

    async fn read(&self) -> Result<(Columns, Vec<Vec<Cell>>), SourceError> {
        let mut reader = self.reader.lock().await;
        loop {
            let kept = reader.take().filter(|c| !c.is_closed());
            let reused = kept.is_some();
            let mut client = match kept {
                Some(client) => client,
                None => self
                    .connect()
                    .await
                    .map_err(|e| self.failed(format!("cannot connect: {}", describe(&e))))?,
            };
            match query(&mut client, &self.label, &self.query).await {
                Ok(result) => {
                    *reader = Some(client);
                    return Ok(result);
                }
                Err(ReadError::Failed(e)) => {
                    *reader = Some(client);
                    return Err(e);
                }
                // A kept connection the server closed since (a restart): one fresh try.
                Err(ReadError::Connection(_)) if reused => continue,
                Err(ReadError::Connection(e)) => {
                    return Err(self.failed(format!("the query failed: {}", describe(&e))));
                }
            }
        }
    }

    async fn listen(
        self: Arc<Self>,
        channel: String,
        tx: mpsc::Sender<()>,
        cancel: CancellationToken,
    ) {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(LISTEN_MIN_DELAY)
            .with_max_delay(LISTEN_MAX_DELAY)
            .with_jitter()
            .without_max_times();
        let mut delays = backoff.build();
        loop {
            let started = Instant::now();
            let lost = tokio::select! {
                _ = cancel.cancelled() => return,
                outcome = self.listen_once(&channel, &tx) => match outcome {
                    Ok(()) => return,
                    Err(reason) => reason,
                },
            };
            if started.elapsed() >= HEALTHY {
                delays = backoff.build();
            }
            let delay = delays.next().unwrap_or(LISTEN_MAX_DELAY);
            tracing::warn!(database = %self.label, channel = %channel, retry_in = ?delay,
                "not listening for camera changes: {}; the last good inventory stays in force", redact(&lost));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One listener connection: returns why it ended, or `Ok` when nobody wants changes.
    async fn listen_once(&self, channel: &str, tx: &mpsc::Sender<()>) -> Result<(), String> {
        let (client, mut connection) = self
            .connect
            .connect(NoTls)
            .await
            .map_err(|e| format!("cannot connect: {}", describe(&e)))?;
        let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
        let driver = AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        if notify_tx.send(()).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        }));
        let listen = format!("LISTEN {}", quote_ident(channel));
        match tokio::time::timeout(self.timeout, client.batch_execute(&listen)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{listen} failed: {}", describe(&e))),
            Err(_) => return Err(format!("{listen}: no answer within {:?}", self.timeout)),
        }
        tracing::info!(database = %self.label, channel, "listening for camera changes");
        // Whatever changed while camsync was not listening sent no notification it heard.
        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
            return Ok(());
        }
        while notify_rx.recv().await.is_some() {
            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return Ok(());
            }
        }
        drop(client);
        match driver.await {
            Ok(Err(e)) => Err(format!("the connection was lost: {}", describe(&e))),
            _ => Err("the server closed the connection".into()),
        }
    }
}

/// Quotes a channel name as a Postgres identifier, so it is used exactly as written (as
/// `pg_notify('name', …)` names it).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The error with its cause (the server's message for a database error), redacted.
fn describe(e: &tokio_postgres::Error) -> String {
    let text = match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    redact(&text)
}

async fn query(
    client: &mut Client,
    database: &str,
    query: &str,
) -> Result<(Columns, Vec<Vec<Cell>>), ReadError> {
    let classify = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => ReadError::Failed(SourceError::Query {
            database: database.to_owned(),
            reason: redact(&format!("the query failed: {}", db.message())),
            query: query.to_owned(),
        }),
        None => ReadError::Connection(e),
    };
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(classify)?;
    let statement = tx.prepare(query).await.map_err(classify)?;
    let columns = Columns::new(
        database,
        query,
        statement.columns().iter().map(|c| c.name()),
    )
    .map_err(ReadError::Failed)?;
    let types: Vec<Option<&Type>> = statement
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| columns.uses(i).then(|| c.type_()))
        .collect();
    let rows = tx.query(&statement, &[]).await.map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    let cells = rows
        .iter()
        .map(|row| {
            types
                .iter()
                .enumerate()
                .map(|(i, ty)| ty.map_or(Cell::Null, |ty| cell(row, i, ty)))
                .collect()
        })
        .collect();
    Ok((columns, cells))
}

fn cell(row: &Row, index: usize, ty: &Type) -> Cell {
    fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize, wrap: impl FnOnce(T) -> Cell) -> Cell {
        match row.try_get::<_, Option<T>>(index) {
            Ok(Some(value)) => wrap(value),
            Ok(None) => Cell::Null,
            Err(_) => Cell::Other(format!("an undecodable {}", row.columns()[index].type_())),
        }
    }
    match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            get(row, index, Cell::Text)
        }
        Type::BOOL => get(row, index, Cell::Bool),
        Type::INT2 => get(row, index, |n: i16| Cell::Int(n.into())),
        Type::INT4 => get(row, index, |n: i32| Cell::Int(n.into())),
        Type::INT8 => get(row, index, Cell::Int),
        Type::FLOAT4 => get(row, index, |x: f32| Cell::Real(x.into())),
        Type::FLOAT8 => get(row, index, Cell::Real),
        Type::JSON | Type::JSONB => get(row, index, Cell::Json),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => get(row, index, |items: Vec<Option<String>>| {
            Cell::List(items.into_iter().flatten().collect())
        }),
        _ => Cell::Other(format!("type {ty}")),
    }
}

impl Reader for Postgres {
    /// The database as messages name it.
    fn label(&self) -> String {
        self.inner.label.clone()
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Record>, SourceError>> {
        Box::pin(self.read_records())
    }

    fn watch(&self, cancel: CancellationToken) -> Result<Option<mpsc::Receiver<()>>, SourceError> {
        Ok(self.listen(cancel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_never_shows_the_credentials() {
        let parse = |s: &str| s.parse::<tokio_postgres::Config>().unwrap();
        let config = parse("postgresql://cam:hunter2@db.example:5433/cameras");
        assert_eq!(label(&config), "postgres://db.example:5433/cameras");
        let config = parse("host=/run/postgresql user=cam password=hunter2");
        assert_eq!(label(&config), "postgres:///run/postgresql:5432/cam");
    }

    #[test]
    fn channel_names_are_quoted_exactly() {
        assert_eq!(quote_ident("cameras"), "\"cameras\"");
        assert_eq!(quote_ident("Cam\"s"), "\"Cam\"\"s\"");
    }
}
