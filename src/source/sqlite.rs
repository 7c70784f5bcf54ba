//! An SQLite camera database, such as an NVR's own: read with a query, watched through
//! `PRAGMA data_version`.
//!
//! Invariants:
//! - camsync never writes to the database: the connection is opened read-only, with
//!   `query_only`, and a query that could write is refused before it runs.
//! - camsync never holds a lock the NVR waits on for long: every statement is its own short
//!   read transaction (rows are copied out, then the statement ends before any validation), and
//!   the busy timeout is small. A busy or locked database is retried with backoff and, if still
//!   busy, reported as a [`SourceError::Busy`], never as "no cameras".
//! - One connection serves both the reads and the poll, because `data_version` numbers are only
//!   comparable on one connection. The poll reports a change whenever the database's version
//!   differs from the one the last read saw, so a read that failed because the database was
//!   busy is tried again at the next poll. The file's identity (device and inode) is checked too:
//!   a database replaced by a rename gets a new connection and a re-read.
//!
//! Blocking calls run on tokio's blocking pool; the mutex around the connection is held for one
//! read or one poll.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::future::BoxFuture;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::columns::{Cell, Columns};
use super::reader::{Reader, Record, SourceError};

/// How long one statement waits for a writer's lock before SQLite reports the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_millis(20);
/// Reads of a busy database: attempts after the first, and the delays between them.
const BUSY_RETRIES: usize = 4;
const BUSY_MIN_DELAY: Duration = Duration::from_millis(25);
const BUSY_MAX_DELAY: Duration = Duration::from_millis(400);

/// The SQLite source of one config.
#[derive(Clone)]
pub struct Sqlite {
    path: PathBuf,
    query: Arc<str>,
    poll: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    /// `data_version` on `open` when the last read began; `None` until one read has finished.
    read_version: Option<i64>,
}

struct Open {
    conn: Connection,
    identity: (u64, u64),
}

/// Why a read failed.
enum ReadError {
    /// Another connection holds a lock: try again shortly.
    Busy,
    Failed(SourceError),
}

impl Sqlite {
    pub fn new(path: PathBuf, query: String, poll: Duration) -> Sqlite {
        Sqlite {
            path,
            query: query.into(),
            poll,
            state: Arc::default(),
        }
    }

    /// Runs the query and maps its rows; a busy database is retried a few times with backoff.
    async fn read_records(&self) -> Result<Vec<Record>, SourceError> {
        let attempt = || async {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.read_blocking())
                .await
                .unwrap_or_else(|e| {
                    Err(ReadError::Failed(SourceError::Database {
                        database: self.label(),
                        message: format!("the read was interrupted: {e}"),
                    }))
                })
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(BUSY_MIN_DELAY)
            .with_max_delay(BUSY_MAX_DELAY)
            .with_max_times(BUSY_RETRIES)
            .with_jitter();
        attempt
            .retry(backoff)
            .when(|e| matches!(e, ReadError::Busy))
            .notify(|_, wait| tracing::debug!(database = %self.label(), ?wait, "camera database busy; retrying"))
            .await
            .map_err(|e| match e {
                ReadError::Busy => SourceError::Busy {
                    database: self.label(),
                    tries: BUSY_RETRIES + 1,
                },
                ReadError::Failed(e) => e,
            })
    }

    fn read_blocking(&self) -> Result<Vec<Record>, ReadError> {
        let database = self.label();
        let failed = |e: rusqlite::Error| classify(&database, e);
        let mut state = crate::lock::lock(&self.state);
        let open = self.current(&mut state).map_err(failed)?;
        let version = data_version(&open.conn).map_err(failed)?;
        let rows = query(&open.conn, &database, &self.query);
        if !matches!(rows, Err(ReadError::Busy)) {
            // A failure that is not a lock repeats until the database changes: do not poll it
            // again before then.
            state.read_version = Some(version);
        }
        drop(state);
        let (columns, rows) = rows?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, cells)| columns.record(i + 1, cells))
            .collect())
    }

    /// The connection to the file now at `path`, (re)opened if there is none or the file was
    /// replaced since.
    fn current<'s>(&self, state: &'s mut State) -> Result<&'s Open, rusqlite::Error> {
        let identity = identity(&self.path);
        let open = match state.open.take() {
            Some(open) if Some(open.identity) == identity => open,
            _ => {
                state.read_version = None;
                Open {
                    conn: open(&self.path)?,
                    identity: identity.unwrap_or_default(),
                }
            }
        };
        Ok(state.open.insert(open))
    }

    /// Whether the database changed since the last read. A poll that finds the connection in
    /// use by a read, or the database busy, reports nothing: the next one will.
    fn poll_blocking(&self) -> bool {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::WouldBlock) => return false,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let identity = identity(&self.path);
        if identity.is_none() {
            // The file is gone: report it once, so the read says why.
            return state.open.take().is_some();
        }
        let read_version = state.read_version;
        let version = match self.current(&mut state).and_then(|o| data_version(&o.conn)) {
            Ok(version) => version,
            Err(e) => {
                tracing::debug!(database = %self.label(), "polling the camera database: {e}");
                return false;
            }
        };
        read_version != Some(version)
    }

    /// Polls every `poll` until `cancel`, sending one `()` per change seen.
    fn poll_changes(&self, cancel: CancellationToken) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(1);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + this.poll, this.poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let poller = this.clone();
                let changed = tokio::task::spawn_blocking(move || poller.poll_blocking())
                    .await
                    .unwrap_or(false);
                // A change already waiting to be read covers this one too.
                if changed && let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                    return;
                }
            }
        });
        rx
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn data_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
}

/// Runs the query and copies the used columns of every row out; the statement (and with it the
/// read transaction) ends before this returns.
fn query(
    conn: &Connection,
    database: &str,
    query: &str,
) -> Result<(Columns, Vec<Vec<Cell>>), ReadError> {
    let failed = |e: rusqlite::Error| classify(database, e);
    let mut stmt = conn.prepare(query).map_err(|e| {
        let e = classify(database, e);
        match e {
            ReadError::Failed(SourceError::Database { database, message }) => {
                ReadError::Failed(SourceError::Query {
                    database,
                    reason: format!("the query does not compile: {message}"),
                    query: query.to_owned(),
                })
            }
            busy => busy,
        }
    })?;
    if !stmt.readonly() {
        return Err(ReadError::Failed(SourceError::Query {
            database: database.to_owned(),
            reason: "the query would write to the database; camsync only reads: give a SELECT"
                .into(),
            query: query.to_owned(),
        }));
    }
    let columns = Columns::new(database, query, stmt.column_names()).map_err(ReadError::Failed)?;
    let used: Vec<bool> = (0..columns.width()).map(|i| columns.uses(i)).collect();
    let mut rows = stmt.query([]).map_err(failed)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let mut cells = Vec::with_capacity(used.len());
        for (index, used) in used.iter().enumerate() {
            let cell = if *used {
                cell(row.get_ref(index).map_err(failed)?)
            } else {
                Cell::Null
            };
            cells.push(cell);
        }
        out.push(cells);
    }
    Ok((columns, out))
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Real(x),
        ValueRef::Text(bytes) => Cell::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(_) => Cell::Blob,
    }
}

fn classify(database: &str, e: rusqlite::Error) -> ReadError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ReadError::Busy,
        _ => ReadError::Failed(SourceError::Database {
            database: database.to_owned(),
            message: e.to_string(),
        }),
    }
}

impl Reader for Sqlite {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Record>, SourceError>> {
        Box::pin(self.read_records())
    }

    fn watch(&self, cancel: CancellationToken) -> Result<Option<mpsc::Receiver<()>>, SourceError> {
        Ok(Some(self.poll_changes(cancel)))
    }
}
