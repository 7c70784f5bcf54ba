//! The ledger: which streams camsync owns on each target, with a fingerprint of what it sent.
//!
//! Invariants:
//! - A stream is owned from the moment camsync *decides* to write it: [`Ledger::intend`] is
//!   recorded before the server call, [`Ledger::record`] after it succeeds. A crash in between
//!   leaves an owned entry with no fingerprint, which the next sync rewrites (PUT and `replace`
//!   are upserts), so a kill -9 mid-sync converges with no orphan and no duplicate.
//! - A delete is forgotten only after the server call succeeded; a crash in between leaves an
//!   owned entry the server no longer has, which the next sync simply forgets.
//! - Fingerprints are HMAC-SHA256 under a random per-ledger key, so the file never holds a hash
//!   that could be brute-forced back into a camera password.
//!
//! The store is an SQLite file in WAL mode (commits survive a process crash), mode 0600. Calls
//! are short and synchronous; they hold a mutex for the duration of one statement.
//!
//! One daemon per ledger: `camsync run` holds [`LedgerLock`], an exclusive lock on
//! `<ledger>.lock` (which holds its pid) for as long as it runs, so a second daemon on the same
//! ledger refuses to start instead of applying every change twice. Read-only commands take no
//! lock. A file that is not a camsync ledger (another SQLite database) is refused at open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

/// An HMAC of what camsync sent for one stream, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint(pub String);

/// One owned stream: `None` when a write was started but not confirmed.
pub type Owned = BTreeMap<String, Option<Fingerprint>>;

pub struct Ledger {
    conn: Mutex<Connection>,
    key: [u8; 32],
    path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}; check that the directory is writable (config `state:`)")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger {path}: {detail}")]
    Permissions { path: String, detail: String },
    #[error("ledger {path}: {source}")]
    Query {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger: no random source for the fingerprint key: {0}")]
    Random(String),
    #[error(
        "ledger {path} is not a camsync ledger ({detail}); point `state:` at a new file, or move \
         this one away if camsync may start afresh (it then adopts nothing it did not write)"
    )]
    Schema { path: String, detail: String },
    #[error(
        "ledger {path} is in use by another camsync process ({holder}, lock file {lock}); stop it \
         first, or give this one its own `state:` (beside a running `camsync run`, ask it to sync \
         with `POST /v1/sync` instead of running `camsync sync`)"
    )]
    Locked {
        path: String,
        lock: String,
        holder: String,
    },
    #[error("ledger {path}: cannot lock {lock}: {source}")]
    Lock {
        path: String,
        lock: String,
        #[source]
        source: std::io::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS owned (
    target TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (target, name)
);
";

impl Ledger {
    /// Opens (or creates, mode 0600) the ledger file.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let display = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LedgerError::Permissions {
                path: display.clone(),
                detail: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        create_private(path).map_err(|e| LedgerError::Permissions {
            path: display.clone(),
            detail: e.to_string(),
        })?;
        let conn = Connection::open(path).map_err(|source| LedgerError::Open {
            path: display.clone(),
            source,
        })?;
        Self::init(conn, Some(path.to_owned()))
    }

    /// A ledger that lives only as long as the process: for `plan` without a state file, tests.
    pub fn in_memory() -> Result<Ledger, LedgerError> {
        let conn = Connection::open_in_memory().map_err(|source| LedgerError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Ledger, LedgerError> {
        let display = path
            .as_ref()
            .map_or(":memory:".into(), |p| p.display().to_string());
        let q = |source| LedgerError::Query {
            path: display.clone(),
            source,
        };
        // WAL + NORMAL: a commit survives a killed process; only a power cut may lose the last
        // few, which the next sync repairs (a lost intent reads as adoption, a lost forget as a
        // stream to forget again).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(q)?;
        conn.execute_batch(SCHEMA).map_err(q)?;
        // `IF NOT EXISTS` keeps a foreign table of the same name: check the columns.
        for check in [
            "SELECT key, value FROM meta LIMIT 0",
            "SELECT target, name, fingerprint, updated_at FROM owned LIMIT 0",
        ] {
            conn.prepare(check).map_err(|e| LedgerError::Schema {
                path: display.clone(),
                detail: e.to_string(),
            })?;
        }
        let stored: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'fingerprint_key'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(q)?;
        let key = match stored.and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| LedgerError::Random(e.to_string()))?;
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('fingerprint_key', ?1)",
                    params![key.to_vec()],
                )
                .map_err(q)?;
                key
            }
        };
        Ok(Ledger {
            conn: Mutex::new(conn),
            key,
            path,
        })
    }

    fn display(&self) -> String {
        self.path
            .as_ref()
            .map_or(":memory:".into(), |p| p.display().to_string())
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let conn = crate::lock::lock(&self.conn);
        f(&conn).map_err(|source| LedgerError::Query {
            path: self.display(),
            source,
        })
    }

    /// The fingerprint of a rendered payload (which may contain secrets).
    pub fn fingerprint(&self, payload: &str) -> Fingerprint {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(payload.as_bytes());
        Fingerprint(hex::encode(mac.finalize().into_bytes()))
    }

    /// Everything camsync owns on `target`.
    pub fn owned(&self, target: &str) -> Result<Owned, LedgerError> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, fingerprint FROM owned WHERE target = ?1")?;
            let rows = stmt.query_map(params![target], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?.map(Fingerprint),
                ))
            })?;
            rows.collect()
        })
    }

    /// Records that camsync is about to write `name` on `target` (it owns it from now on).
    pub fn intend(&self, target: &str, name: &str) -> Result<(), LedgerError> {
        self.upsert(target, name, None)
    }

    /// Records a confirmed write.
    pub fn record(&self, target: &str, name: &str, fp: &Fingerprint) -> Result<(), LedgerError> {
        self.upsert(target, name, Some(&fp.0))
    }

    fn upsert(&self, target: &str, name: &str, fp: Option<&str>) -> Result<(), LedgerError> {
        self.with_conn(|c| {
            c.prepare_cached(
                "INSERT INTO owned (target, name, fingerprint, updated_at) VALUES (?1, ?2, ?3, unixepoch())
                 ON CONFLICT (target, name) DO UPDATE SET fingerprint = ?3, updated_at = unixepoch()",
            )?
            .execute(params![target, name, fp])
            .map(drop)
        })
    }

    /// Drops `name` on `target` from what camsync owns.
    pub fn forget(&self, target: &str, name: &str) -> Result<(), LedgerError> {
        self.with_conn(|c| {
            c.prepare_cached("DELETE FROM owned WHERE target = ?1 AND name = ?2")?
                .execute(params![target, name])
                .map(drop)
        })
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The exclusive hold of one daemon on a ledger, released when dropped (or the process ends).
#[derive(Debug)]
pub struct LedgerLock {
    _file: std::fs::File,
}

impl LedgerLock {
    /// Takes the lock next to the ledger at `path` (`<path>.lock`), writing this process's pid
    /// into it; fails at once, naming the holder's pid, if another process holds it.
    pub fn acquire(path: &Path) -> Result<LedgerLock, LedgerError> {
        use std::io::{Read, Seek, Write};
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let error = |source| LedgerError::Lock {
            path: path.display().to_string(),
            lock: lock.display().to_string(),
            source,
        };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The pid is a few bytes; more is not a pid.
                let _ = (&mut file).take(32).read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that wrote no pid".to_owned(),
                };
                return Err(LedgerError::Locked {
                    path: path.display().to_string(),
                    lock: lock.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(error(e)),
        }
        file.set_len(0).map_err(error)?;
        file.rewind().map_err(error)?;
        writeln!(file, "{}", std::process::id()).map_err(error)?;
        Ok(LedgerLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_sqlite_database_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for foreign in [
            "CREATE TABLE owned (id INTEGER PRIMARY KEY, label TEXT);",
            "CREATE TABLE meta (k TEXT, v TEXT);",
        ] {
            let path = dir.path().join("other.db");
            let _ = std::fs::remove_file(&path);
            Connection::open(&path)
                .unwrap()
                .execute_batch(foreign)
                .unwrap();
            let e = Ledger::open(&path).err().expect("refused").to_string();
            assert!(
                e.contains(&path.display().to_string())
                    && e.contains("not a camsync ledger")
                    && e.contains("state:"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_second_lock_on_a_ledger_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/ledger.db");
        let held = LedgerLock::acquire(&path).unwrap();
        let e = LedgerLock::acquire(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string())
                && e.contains(&format!("pid {}", std::process::id()))
                && e.contains("ledger.db.lock"),
            "{e}"
        );
        drop(held);
        LedgerLock::acquire(&path).expect("free again once dropped");
    }

    #[test]
    fn ownership_and_fingerprints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/ledger.db");
        let fp = {
            let l = Ledger::open(&path).unwrap();
            let fp = l.fingerprint("rtsp://u:p@h/x");
            l.intend("g", "cam").unwrap();
            l.record("g", "cam", &fp).unwrap();
            l.intend("g", "half_written").unwrap();
            fp
        };
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.fingerprint("rtsp://u:p@h/x"), fp, "key must persist");
        let owned = l.owned("g").unwrap();
        assert_eq!(owned.get("cam"), Some(&Some(fp)));
        assert_eq!(owned.get("half_written"), Some(&None));
        assert!(l.owned("other").unwrap().is_empty());
        l.forget("g", "cam").unwrap();
        assert!(!l.owned("g").unwrap().contains_key("cam"));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_holds_no_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let l = Ledger::open(&path).unwrap();
        let fp = l.fingerprint("rtsp://admin:UniqueMarker42@h/x");
        l.record("g", "cam", &fp).unwrap();
        drop(l);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(dir.path().join("ledger.db-wal")).unwrap_or_default());
        assert!(!String::from_utf8_lossy(&bytes).contains("UniqueMarker42"));
    }

    #[test]
    fn fingerprints_differ_per_ledger_key() {
        let a = Ledger::in_memory().unwrap();
        let b = Ledger::in_memory().unwrap();
        assert_eq!(a.fingerprint("x"), a.fingerprint("x"));
        assert_ne!(a.fingerprint("x"), a.fingerprint("y"));
        assert_ne!(a.fingerprint("x"), b.fingerprint("x"));
    }
}
