//! The Postgres server itself stopped and started while `camsync run` reads from it
//! (`CAMSYNC_TEST_POSTGRES_CTL`, which `.ci/run` sets; ignored without it at build time). A test binary of its
//! own: cargo runs test binaries one after another, so no other test's connection is cut.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use common::daemon::{DEADLINE, start};
use common::*;
use pg::{Pg, example_query, server, source_yaml};

const CTL_VAR: &str = "CAMSYNC_TEST_POSTGRES_CTL";

fn ctl(action: &str) {
    let command = std::env::var(CTL_VAR).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} {action} >/dev/null"))
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {action} failed");
}

#[tokio::test]
#[cfg_attr(
    not(all(camsync_postgres, camsync_postgres_ctl)),
    ignore = "set CAMSYNC_TEST_POSTGRES and CAMSYNC_TEST_POSTGRES_CTL (pg_ctl for that server)"
)]
async fn a_restarted_server_deletes_nothing_while_down_and_is_followed_once_back() {
    let url = server();
    let pg = Pg::new(&url).await;
    pg.add("a", "rtsp://192.0.2.1/a").await;
    pg.add("b", "rtsp://192.0.2.2/b").await;
    let f = Fixture::new().await;
    f.write_config_with_resync("300ms", "");
    f.set_source(&source_yaml(
        f.dir.path(),
        &url,
        &pg.qualify(&example_query()),
        Some(&pg.channel),
    ));
    let d = start(f.config());
    d.until("the first sync", |s| s.syncs >= 1 && s.last_sync_ok)
        .await;
    let writes = f.go2rtc.write_count();

    ctl("stop");
    d.until("reads failing while the server is down", |s| {
        s.source_errors >= 2
    })
    .await;
    assert_eq!(f.names(), sorted(&["a", "b"]));
    assert_eq!(f.go2rtc.write_count(), writes, "nothing written meanwhile");
    assert_no_secret(&d.current().last_source_error.unwrap());

    ctl("start");
    let pg = Pg::reconnect(pg, &url).await;
    pg.add("c", "rtsp://192.0.2.3/c").await;
    assert!(
        eventually(DEADLINE, || f.names() == sorted(&["a", "b", "c"])).await,
        "{:?}",
        f.names()
    );
    d.stop().await;
    pg.drop_schema().await;
}
