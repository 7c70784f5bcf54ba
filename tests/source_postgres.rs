//! A Postgres camera database as the source, against a real server (`CAMSYNC_TEST_POSTGRES`,
//! which `.ci/run` sets; without it at build time the tests are ignored): rows changed while
//! `camsync run` follows through NOTIFY, bad rows, the mass-deletion guard, an outage and the
//! notifications missed during it. The example schema, trigger and query from
//! examples/postgres/ are the ones tested.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use camsync::app::load_inventory;
use camsync_sim::mediamtx::MediamtxSimOptions;
use common::daemon::{DEADLINE, start};
use common::*;
use pg::{Pg, Proxy, example_query, server, source_yaml};

/// A fixture reading the test's schema with the example query through `url`.
async fn fixture(pg: &Pg, url: &str, resync: &str, with_mediamtx: bool) -> Fixture {
    let f = if with_mediamtx {
        Fixture::with_mediamtx(MediamtxSimOptions::default()).await
    } else {
        Fixture::new().await
    };
    f.write_config_with_resync(resync, "");
    f.set_source(&source_yaml(
        f.dir.path(),
        url,
        &pg.qualify(&example_query()),
        Some(&pg.channel),
    ));
    f
}

#[tokio::test]
#[cfg_attr(
    not(camsync_postgres),
    ignore = "set CAMSYNC_TEST_POSTGRES to a PostgreSQL connection string"
)]
async fn rows_inserted_updated_and_deleted_while_running_reach_both_servers_through_notify() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.add("front", "rtsp://192.0.2.1/a").await;
    pg.add("back", "rtsp://192.0.2.2/b").await;
    // No periodic resync: only a notification can explain a change being followed.
    let f = fixture(&pg, &url, "1h", true).await;
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    assert_eq!(f.names(), sorted(&["back", "front"]));
    assert_eq!(f.mtx().path_names(), sorted(&["back", "front"]));

    pg.exec(
        "INSERT INTO cameras (name, url, url_backup, profile, targets, mediamtx) VALUES
             ('garage', 'rtsp://192.0.2.3/main', 'rtsp://192.0.2.3/backup', 'recording',
              NULL, '{\"maxReaders\": 3}'),
             ('porch', 'rtsp://192.0.2.4/p', NULL, 'viewing', '{go2rtc}', NULL);
         UPDATE cameras SET url = 'rtsp://192.0.2.2/b2' WHERE name = 'back';
         DELETE FROM cameras WHERE name = 'front';",
    )
    .await;
    let followed = eventually(DEADLINE, || {
        f.names() == sorted(&["back", "garage", "porch"])
            && f.mtx().path_names() == sorted(&["back", "garage"])
            && f.go2rtc.stream_sources("back")
                == Some(vec![with_credentials("rtsp://192.0.2.2/b2")])
    })
    .await;
    assert!(followed, "{:?} / {:?}", f.names(), f.mtx().path_names());
    assert_eq!(
        f.go2rtc.stream_sources("garage"),
        Some(vec![
            "rtsp://192.0.2.3/main".to_string(),
            "rtsp://192.0.2.3/backup".to_string()
        ])
    );
    let garage = f.mtx().path_config("garage").unwrap();
    assert_eq!(garage["record"], true, "{garage}");
    assert_eq!(garage["maxReaders"], 3, "{garage}");
    assert_eq!(garage["source"], "rtsp://192.0.2.3/main");

    // Disabling a camera removes its streams.
    pg.exec("UPDATE cameras SET enabled = false WHERE name = 'back'")
        .await;
    let followed = eventually(DEADLINE, || {
        f.names() == sorted(&["garage", "porch"]) && f.mtx().path_names() == ["garage"]
    })
    .await;
    assert!(followed, "{:?} / {:?}", f.names(), f.mtx().path_names());
    d.stop().await;
    pg.drop_schema().await;
}

#[tokio::test]
#[cfg_attr(
    not(camsync_postgres),
    ignore = "set CAMSYNC_TEST_POSTGRES to a PostgreSQL connection string"
)]
async fn notifications_missed_while_disconnected_are_caught_by_the_re_read_after_reconnecting() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.add("a", "rtsp://192.0.2.1/a").await;
    let proxy = Proxy::start(&url).await;
    let f = fixture(&pg, &proxy.url, "1h", false).await;
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;

    // camsync's connections are cut; the change's notification reaches nobody.
    proxy.cut();
    pg.add("b", "rtsp://192.0.2.2/b").await;
    pg.add("c", "rtsp://192.0.2.3/c").await;
    let loads = d.current().inventory_loads;
    proxy.restore();
    d.until("the re-read after reconnecting", |s| {
        s.inventory_loads > loads
    })
    .await;
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b", "c"])).await,
        "{:?}",
        f.names()
    );
    // And notifications are heard again on the new connection.
    pg.exec("DELETE FROM cameras WHERE name = 'c'").await;
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b"])).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
    pg.drop_schema().await;
}

#[tokio::test]
#[cfg_attr(
    not(camsync_postgres),
    ignore = "set CAMSYNC_TEST_POSTGRES to a PostgreSQL connection string"
)]
async fn an_unreachable_database_keeps_the_last_good_inventory_and_deletes_nothing() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.add("a", "rtsp://192.0.2.1/a").await;
    pg.add("b", "rtsp://192.0.2.2/b").await;
    let proxy = Proxy::start(&url).await;
    let f = fixture(&pg, &proxy.url, "200ms", false).await;
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    let writes = f.go2rtc.write_count();

    proxy.cut();
    d.until("reads failing while unreachable", |s| s.source_errors >= 2)
        .await;
    let error = d.current().last_source_error.unwrap();
    assert!(
        error.contains("postgres://127.0.0.1:") && error.contains("last good"),
        "{error}"
    );
    assert_no_secret(&error);
    assert_eq!(f.names(), sorted(&["a", "b"]));
    assert_eq!(f.go2rtc.write_count(), writes, "nothing written meanwhile");

    proxy.restore();
    pg.add("c", "rtsp://192.0.2.3/c").await;
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b", "c"])).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
    pg.drop_schema().await;
}

#[tokio::test]
#[cfg_attr(
    not(camsync_postgres),
    ignore = "set CAMSYNC_TEST_POSTGRES to a PostgreSQL connection string"
)]
async fn zero_rows_where_there_were_cameras_is_refused_by_the_mass_deletion_guard() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.add("a", "rtsp://192.0.2.1/a").await;
    pg.add("b", "rtsp://192.0.2.2/b").await;
    let f = fixture(&pg, &url, "1h", false).await;
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    pg.exec("TRUNCATE cameras").await;
    d.until("the refused sync", |s| s.syncs >= 2 && !s.last_sync_ok)
        .await;
    assert_eq!(f.names(), sorted(&["a", "b"]));
    d.stop().await;
    pg.drop_schema().await;
}

#[tokio::test]
#[cfg_attr(
    not(camsync_postgres),
    ignore = "set CAMSYNC_TEST_POSTGRES to a PostgreSQL connection string"
)]
async fn bad_rows_are_rejected_one_by_one_and_an_unusable_query_fails_whole() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.exec(
        "CREATE TABLE loose (id serial, name text, url text, enabled text, targets integer,
                             password text, profile text, key uuid, username text);
         INSERT INTO loose (name, url, enabled, targets, password, profile, username) VALUES
             ('ok', 'rtsp://192.0.2.1/a', 'yes', NULL, NULL, NULL, NULL),
             ('nourl', NULL, 'true', NULL, NULL, NULL, NULL),
             ('ok', 'rtsp://192.0.2.1/b', 'true', NULL, NULL, NULL, NULL),
             ('typed', 'rtsp://192.0.2.1/c', 'maybe', NULL, NULL, NULL, NULL),
             ('targets', 'rtsp://192.0.2.1/d', NULL, 7, NULL, NULL, NULL),
             ('nouser', 'rtsp://192.0.2.1/e', NULL, NULL, 'Pw-Marker-7f3a9c', NULL, NULL),
             ('badprofile', 'rtsp://192.0.2.1/f', NULL, NULL, NULL, 'nightly', NULL),
             ('withpw', 'rtsp://192.0.2.1/g', 'false', NULL, 'Pw-Marker-7f3a9c', '', 'admin');",
    )
    .await;
    let query = format!(
        "SELECT id, name, url, enabled, targets, password, profile, username FROM {}.loose ORDER BY id",
        pg.schema
    );
    let f = Fixture::new().await;
    f.set_source(&source_yaml(f.dir.path(), &url, &query, None));
    let inventory = load_inventory(&f.config()).await.unwrap();
    assert_eq!(
        inventory.cameras.keys().collect::<Vec<_>>(),
        ["ok", "withpw"]
    );
    let withpw = &inventory.cameras["withpw"];
    assert!(!withpw.enabled);
    assert_eq!(withpw.profile, "viewing", "'' means the default profile");
    assert_eq!(
        withpw.sources[0].expose(),
        with_credentials("rtsp://192.0.2.1/g")
    );
    let got: Vec<(&str, &str, &str)> = inventory
        .rejected
        .iter()
        .map(|r| (r.camera.as_str(), r.location.as_str(), r.reason.as_str()))
        .collect();
    let expect = [
        ("nourl", 2, "`url` is NULL or empty"),
        ("ok", 3, "duplicate name"),
        ("typed", 4, "column `enabled`"),
        (
            "targets",
            5,
            "column `targets`: expected a comma-separated list, found an integer",
        ),
        ("nouser", 6, "no username"),
        ("badprofile", 7, "unknown profile \"nightly\""),
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for ((camera, location, reason), (want_camera, row, want_reason)) in got.iter().zip(expect) {
        assert_eq!(*camera, want_camera);
        assert!(
            location.ends_with(&format!("row {row} (id {row})"))
                && location.starts_with("postgres://"),
            "{location}"
        );
        assert!(
            reason.contains(want_reason),
            "{reason:?} should say {want_reason:?}"
        );
        assert_no_secret(reason);
    }

    let error = |query: String| {
        f.write_config("");
        f.set_source(&source_yaml(f.dir.path(), &url, &query, None));
        let config = f.config();
        async move { load_inventory(&config).await }
    };
    // A type camsync does not map is named, per row.
    pg.exec("UPDATE loose SET key = gen_random_uuid() WHERE name = 'withpw'")
        .await;
    let inventory = error(format!(
        "SELECT name, url, key AS username FROM {}.loose WHERE name = 'withpw'",
        pg.schema
    ))
    .await
    .unwrap();
    let reason = &inventory.rejected[0].reason;
    assert!(
        reason.contains("column `username`: expected text, found type uuid"),
        "{reason}"
    );

    let error = |query: String| {
        let read = error(query);
        async move { read.await.unwrap_err().to_string() }
    };
    let e = error(format!("SELECT name FROM {}.loose", pg.schema)).await;
    assert!(
        e.contains("no `url` column") && e.contains("SELECT name FROM"),
        "{e}"
    );
    let e = error(format!("SELECT name, url FROM {}.nowhere", pg.schema)).await;
    assert!(e.contains("does not exist") && e.contains("nowhere"), "{e}");
    let e = error(format!(
        "DELETE FROM {}.loose RETURNING name, url",
        pg.schema
    ))
    .await;
    assert!(e.contains("read-only transaction"), "{e}");
    let count: i64 = pg
        .client
        .query_one("SELECT count(*) FROM loose", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 8, "the database was not written");
    pg.drop_schema().await;
}
