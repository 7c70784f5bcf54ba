//! An SQLite camera database as the source: real database files in a temp directory, written
//! the way an NVR writes them while `camsync run` follows, with the example schema and query
//! from examples/sqlite/.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use camsync::app::load_inventory;
use camsync::config::{self, SourceConfig};
use camsync_sim::mediamtx::MediamtxSimOptions;
use common::daemon::{DEADLINE, start};
use common::*;
use rusqlite::Connection;

const SCHEMA: &str = include_str!("../examples/sqlite/schema.sql");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Journal {
    Wal,
    Rollback,
}

/// The NVR: owns the database and writes to it.
struct Nvr {
    path: PathBuf,
    conn: Connection,
}

impl Nvr {
    fn create(f: &Fixture, journal: Journal) -> Nvr {
        let path = f.path("nvr.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        if journal == Journal::Rollback {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        }
        Nvr { path, conn }
    }

    /// Adds a camera the way lightNVR keeps it: credentials inside the URL.
    fn add(&self, name: &str, url: &str) {
        self.exec(&format!(
            "INSERT INTO streams (name, url, record) VALUES ('{name}', '{}', 0)",
            with_credentials(url)
        ));
    }

    fn exec(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }
}

/// The query of examples/sqlite/camsync.yaml.
fn example_query() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sqlite/camsync.yaml");
    match config::load(&path, &|_| None).unwrap().source {
        SourceConfig::Sqlite(sqlite) => sqlite.query,
        other => panic!("the example reads {other:?}"),
    }
}

fn sqlite_source(query: &str, poll: &str) -> String {
    let mut text =
        format!("source:\n  sqlite:\n    path: nvr.db\n    poll: {poll}\n    query: |\n");
    for line in query.lines() {
        text.push_str(&format!("      {line}\n"));
    }
    text
}

/// A fixture reading `nvr.db` with the example query.
async fn fixture(with_mediamtx: bool, resync: &str, poll: &str) -> Fixture {
    let f = if with_mediamtx {
        Fixture::with_mediamtx(MediamtxSimOptions::default()).await
    } else {
        Fixture::new().await
    };
    f.write_config_with_resync(resync, "");
    f.set_source(&sqlite_source(&example_query(), poll));
    f
}

#[tokio::test]
async fn rows_inserted_updated_and_deleted_while_running_reach_both_servers() {
    let f = fixture(true, "1h", "50ms").await;
    let nvr = Nvr::create(&f, Journal::Wal);
    nvr.add("front", "rtsp://192.0.2.1/a");
    nvr.add("back", "rtsp://192.0.2.2/b");
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    assert_eq!(f.names(), sorted(&["back", "front"]));
    assert_eq!(f.mtx().path_names(), sorted(&["back", "front"]));

    nvr.exec(&format!(
        "INSERT INTO streams (name, url, record, sub_stream_url) VALUES ('garage', '{}', 1, '{}');
         UPDATE streams SET url = '{}' WHERE name = 'back';
         DELETE FROM streams WHERE name = 'front';",
        with_credentials("rtsp://192.0.2.3/main"),
        with_credentials("rtsp://192.0.2.3/sub"),
        with_credentials("rtsp://192.0.2.2/b2"),
    ));
    let want = sorted(&["back", "garage", "garage_sub"]);
    let followed = eventually(DEADLINE, || {
        f.names() == want
            && f.mtx().path_names() == want
            && f.go2rtc.stream_sources("back")
                == Some(vec![with_credentials("rtsp://192.0.2.2/b2")])
            && f.mtx()
                .path_config("back")
                .is_some_and(|p| p["source"] == with_credentials("rtsp://192.0.2.2/b2"))
    })
    .await;
    assert!(followed, "{:?} / {:?}", f.names(), f.mtx().path_names());
    // The example maps `record = 1` to the recording profile.
    let garage = f.mtx().path_config("garage").unwrap();
    assert_eq!(garage["record"], true, "{garage}");
    assert_eq!(f.mtx().path_config("garage_sub").unwrap()["record"], false);
    assert!(d.current().last_source_error.is_none());
    d.stop().await;
}

/// Runs NVR transactions in a loop until camsync has re-read the database `reads` more times,
/// and returns every transaction that failed.
async fn write_while_camsync_reads(
    f: &Fixture,
    journal: Journal,
    busy_timeout: Duration,
) -> Vec<String> {
    let nvr = Nvr::create(f, journal);
    nvr.add("a", "rtsp://192.0.2.1/a");
    nvr.add("b", "rtsp://192.0.2.2/b");
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    let writes = f.go2rtc.write_count();
    let progress = d.progress.clone();
    let path = nvr.path.clone();
    let failures = tokio::task::spawn_blocking(move || {
        let conn = Connection::open(path).unwrap();
        conn.busy_timeout(busy_timeout).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let target = progress.borrow().inventory_loads + 20;
        let mut failures = Vec::new();
        // Bounded: camsync polls every 5 ms, so 20 reads come long before this many commits.
        for i in 0..200_000 {
            if progress.borrow().inventory_loads >= target {
                return failures;
            }
            // fps is a column camsync ignores: the inventory stays the same.
            let tx =
                format!("BEGIN IMMEDIATE; UPDATE streams SET fps = {i} WHERE name = 'a'; COMMIT;");
            if let Err(e) = conn.execute_batch(&tx) {
                failures.push(e.to_string());
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        panic!("camsync did not re-read the database while it was written");
    })
    .await
    .unwrap();
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "an unchanged inventory writes nothing"
    );
    d.stop().await;
    failures
}

#[tokio::test]
async fn the_nvr_writing_a_wal_database_is_never_blocked() {
    let f = fixture(false, "1h", "5ms").await;
    // No busy timeout at all: a single lock conflict would fail a transaction.
    let failures = write_while_camsync_reads(&f, Journal::Wal, Duration::ZERO).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn the_nvr_writing_a_rollback_journal_database_only_waits_for_short_reads() {
    let f = fixture(false, "1h", "5ms").await;
    // In rollback-journal mode every reader briefly delays a commit; a writer with a busy
    // timeout far below what NVRs set (seconds) still never fails.
    let failures =
        write_while_camsync_reads(&f, Journal::Rollback, Duration::from_millis(100)).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn a_locked_database_deletes_nothing_and_is_read_again_once_free() {
    let f = fixture(false, "100ms", "20ms").await;
    let nvr = Nvr::create(&f, Journal::Rollback);
    nvr.add("a", "rtsp://192.0.2.1/a");
    nvr.add("b", "rtsp://192.0.2.2/b");
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    let writes = f.go2rtc.write_count();

    // A writer holds the database's exclusive lock in the middle of a big change.
    nvr.exec("BEGIN EXCLUSIVE; DELETE FROM streams;");
    d.until("a read refused by the lock", |s| s.source_errors >= 1)
        .await;
    let error = d.current().last_source_error.unwrap();
    assert!(
        error.contains("nvr.db") && error.contains("locked") && error.contains("last good"),
        "{error}"
    );
    assert_eq!(f.names(), sorted(&["a", "b"]));
    assert_eq!(
        f.go2rtc.write_count(),
        writes,
        "nothing written while locked"
    );

    nvr.exec("ROLLBACK;");
    nvr.add("c", "rtsp://192.0.2.3/c");
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b", "c"])).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
}

#[tokio::test]
async fn zero_rows_where_there_were_cameras_is_refused_by_the_mass_deletion_guard() {
    let f = fixture(true, "1h", "20ms").await;
    let nvr = Nvr::create(&f, Journal::Wal);
    nvr.add("a", "rtsp://192.0.2.1/a");
    nvr.add("b", "rtsp://192.0.2.2/b");
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    nvr.exec("DELETE FROM streams;");
    d.until("the refused sync", |s| s.syncs >= 2 && !s.last_sync_ok)
        .await;
    assert_eq!(f.names(), sorted(&["a", "b"]));
    assert_eq!(f.mtx().path_names(), sorted(&["a", "b"]));
    d.stop().await;
}

#[tokio::test]
async fn a_database_replaced_by_a_rename_is_followed() {
    let f = fixture(false, "1h", "20ms").await;
    // Rollback journal: a WAL database is replaced together with its `-wal` file, which is
    // the NVR's business, not camsync's.
    let nvr = Nvr::create(&f, Journal::Rollback);
    nvr.add("a", "rtsp://192.0.2.1/a");
    nvr.add("b", "rtsp://192.0.2.2/b");
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    drop(nvr);

    // A restored backup: a new file renamed over the old one.
    let restored = f.path("restore.db");
    let conn = Connection::open(&restored).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = DELETE; INSERT INTO streams (name, url) VALUES ('a', '{}'), ('z', '{}');",
        with_credentials("rtsp://192.0.2.1/a"),
        with_credentials("rtsp://192.0.2.9/z")
    ))
    .unwrap();
    drop(conn);
    std::fs::rename(&restored, f.path("nvr.db")).unwrap();
    assert!(
        eventually(DEADLINE, || f.names() == ["a", "z"]).await,
        "{:?} {:?}",
        f.names(),
        d.current()
    );
    d.stop().await;
}

/// A table with every mapped column and loose types, as a hand-made database may have.
fn loose_database(f: &Fixture) -> Connection {
    let conn = Connection::open(f.path("nvr.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE cams (id INTEGER PRIMARY KEY, name, url, url_sub, username, password,
                            enabled, targets, profile, mediamtx, notes);",
    )
    .unwrap();
    conn
}

const FULL_QUERY: &str = "SELECT id, name, url, url_sub, username, password, enabled, targets, profile, mediamtx, notes FROM cams ORDER BY id";

#[tokio::test]
async fn bad_rows_are_rejected_one_by_one_with_row_and_column_and_the_rest_loads() {
    let f = Fixture::new().await;
    f.set_source(&sqlite_source(FULL_QUERY, "1s"));
    let conn = loose_database(&f);
    let insert = |values: &str| {
        let values = values.replace("?1", &format!("'{PASSWORD}'"));
        conn.execute_batch(&format!("INSERT INTO cams (name, url, url_sub, username, password, enabled, targets, profile, mediamtx, notes) VALUES ({values})"))
            .unwrap();
    };
    insert(
        "'ok', 'rtsp://192.0.2.1/a', 'rtsp://192.0.2.1/b', 'admin', ?1, 1, 'go2rtc', 'recording', '{\"maxReaders\": 2}', x'00'",
    );
    insert("'nourl', NULL, '', 'admin', ?1, 1, NULL, NULL, NULL, NULL");
    insert("'badurl', 'exec:ffmpeg -i x', NULL, NULL, NULL, 1, NULL, NULL, NULL, ?1");
    insert("'ok', 'rtsp://192.0.2.1/c', NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL");
    insert("'typed', 'rtsp://192.0.2.1/d', NULL, 'admin', ?1, 'maybe', NULL, NULL, NULL, NULL");
    insert("NULL, 'rtsp://192.0.2.1/e', NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL");
    insert(
        "'where', 'rtsp://192.0.2.1/f', NULL, NULL, NULL, 1, 'go2rtc, nowhere', NULL, NULL, NULL",
    );
    insert("'numeric_pw', 'rtsp://192.0.2.1/g', NULL, 'admin', 1234, 0, '', '', NULL, NULL");
    insert("'bad_json', 'rtsp://192.0.2.1/h', NULL, 'admin', ?1, 1, NULL, NULL, '[1, 2]', NULL");

    let inventory = load_inventory(&f.config()).await.unwrap();
    assert_eq!(
        inventory.cameras.keys().collect::<Vec<_>>(),
        ["numeric_pw", "ok"]
    );
    let ok = &inventory.cameras["ok"];
    assert_eq!(ok.sources.len(), 2, "url and url_sub are two sources");
    assert_eq!(
        ok.sources[0].expose(),
        with_credentials("rtsp://192.0.2.1/a")
    );
    assert_eq!(ok.profile, "recording");
    assert_eq!(ok.mediamtx["maxReaders"], 2);
    let numeric = &inventory.cameras["numeric_pw"];
    assert!(!numeric.enabled);
    assert_eq!(
        numeric.targets, None,
        "an empty `targets` means every target"
    );
    assert_eq!(numeric.sources[0].expose(), "rtsp://admin:1234@192.0.2.1/g");

    let rejected: Vec<(&str, &str)> = inventory
        .rejected
        .iter()
        .map(|r| (r.camera.as_str(), r.location.as_str()))
        .collect();
    let db = f.path("nvr.db").display().to_string();
    let at = |row: usize| format!("{db} row {row} (id {row})");
    assert_eq!(
        rejected,
        [
            ("nourl", at(2).as_str()),
            ("badurl", at(3).as_str()),
            ("ok", at(4).as_str()),
            ("typed", at(5).as_str()),
            ("#6", at(6).as_str()),
            ("where", at(7).as_str()),
            ("bad_json", at(9).as_str()),
        ]
    );
    let reasons: Vec<&str> = inventory
        .rejected
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    let expect = [
        "`url`, `url_sub` is NULL or empty",
        "refused by go2rtc",
        "duplicate name",
        "column `enabled`",
        "column `name` is NULL",
        "unknown target \"nowhere\"",
        "column `mediamtx`: expected a JSON object",
    ];
    for (reason, want) in reasons.iter().zip(expect) {
        assert!(reason.contains(want), "{reason:?} should say {want:?}");
    }
    for r in &inventory.rejected {
        assert_no_secret(&r.reason);
    }

    // `camsync check` lists the same problems and exits 1.
    let out = assert_cmd::Command::cargo_bin("camsync")
        .unwrap()
        .args(["check", "--config"])
        .arg(f.config_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&at(5)) && stdout.contains("2 valid camera(s), 7 rejected"),
        "{stdout}"
    );
    assert_no_secret(&stdout);
}

#[tokio::test]
async fn an_unusable_query_or_database_is_an_error_never_an_empty_inventory() {
    let f = Fixture::new().await;
    let conn = loose_database(&f);
    conn.execute(
        "INSERT INTO cams (name, url) VALUES ('a', 'rtsp://192.0.2.1/a')",
        [],
    )
    .unwrap();
    let error = |query: &str| {
        f.write_config("");
        f.set_source(&sqlite_source(query, "1s"));
        let config = f.config();
        async move { load_inventory(&config).await.unwrap_err().to_string() }
    };

    let e = error("SELECT name, notes FROM cams").await;
    assert!(
        e.contains("no `url` column") && e.contains("SELECT name, notes FROM cams"),
        "{e}"
    );
    let e = error("SELECT id, url FROM cams").await;
    assert!(e.contains("no `name` column"), "{e}");
    let e = error("SELECT name, url FROM cameras").await;
    assert!(
        e.contains("does not compile") && e.contains("cameras"),
        "{e}"
    );
    let e = error("DELETE FROM cams RETURNING name, url").await;
    assert!(e.contains("only reads"), "{e}");
    let count: i64 = conn
        .query_row("SELECT count(*) FROM cams", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1, "the database was not written");

    std::fs::remove_file(f.path("nvr.db")).unwrap();
    let e = error("SELECT name, url FROM cams").await;
    assert!(e.contains("nvr.db") && e.contains("last good"), "{e}");
    assert!(
        !f.path("nvr.db").exists(),
        "a missing database is not created"
    );
}
