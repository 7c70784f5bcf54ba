//! Sharding over real sockets: several camsync instances, each with its own ledger and shard,
//! against simulated go2rtc servers.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use camsync::app::{LedgerMode, load_inventory, reconciler};
use camsync::config;
use camsync::config::process_env;
use camsync::ledger::Ledger;
use camsync::reconcile::report::SyncReport;
use camsync::source::shard::owner;
use camsync_sim::go2rtc::{Go2rtcSim, Go2rtcSimOptions};
use common::*;

/// `n` cameras named cam00, cam01, … with documentation addresses.
fn cameras(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("cam{i:02}"),
                format!("rtsp://192.0.2.{}:554/s", i + 1),
            )
        })
        .collect()
}

fn write_inventory(dir: &Path, cams: &[(String, String)]) {
    let pairs: Vec<(&str, &str)> = cams.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    std::fs::write(dir.join("cameras.yaml"), inventory(&pairs)).unwrap();
    std::fs::write(dir.join("cam.password"), format!("{PASSWORD}\n")).unwrap();
}

/// Writes `<name>.yaml`: one go2rtc target, its own state file, shard `index` of `count`.
fn write_instance(dir: &Path, name: &str, go2rtc: &Go2rtcSim, index: u32, count: u32) {
    let text = format!(
        "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: {}\n    timeout: 5s\n\
         state: {name}.db\nhealth:\n  enabled: false\nshard:\n  index: {index}\n  count: {count}\n",
        go2rtc.api_url()
    );
    std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
}

/// One camsync "process" of instance `name`: config, inventory, ledger, one sync.
async fn sync(dir: &Path, name: &str) -> SyncReport {
    let config = config::load(&dir.join(format!("{name}.yaml")), &process_env).unwrap();
    let inventory = load_inventory(&config).await.unwrap();
    let report = reconciler(&config, LedgerMode::ReadWrite)
        .unwrap()
        .sync(&inventory)
        .await;
    assert!(report.ok(), "{name}: {}", report.render_text());
    report
}

fn owned(dir: &Path, name: &str) -> BTreeSet<String> {
    Ledger::open(&dir.join(format!("{name}.db")))
        .unwrap()
        .owned("go2rtc")
        .unwrap()
        .into_keys()
        .collect()
}

fn in_shard(cams: &[(String, String)], index: u32, count: u32) -> BTreeSet<String> {
    cams.iter()
        .map(|(n, _)| n.clone())
        .filter(|n| owner(n, count) == index)
        .collect()
}

fn names(sim: &Go2rtcSim) -> BTreeSet<String> {
    sim.stream_names().into_iter().collect()
}

#[tokio::test]
async fn two_instances_sharing_one_server_never_delete_or_rewrite_each_others_streams() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let go2rtc = Go2rtcSim::start(Go2rtcSimOptions::default()).await.unwrap();
    go2rtc.add_stream_by_hand("users_own", &["rtsp://192.0.2.200/own"]);
    let mut cams = cameras(20);
    write_inventory(dir, &cams);
    write_instance(dir, "a", &go2rtc, 0, 2);
    write_instance(dir, "b", &go2rtc, 1, 2);
    let (shard_a, shard_b) = (in_shard(&cams, 0, 2), in_shard(&cams, 1, 2));
    assert!(
        shard_a.len() >= 5 && shard_b.len() >= 5,
        "{shard_a:?} {shard_b:?}"
    );

    assert_eq!(sync(dir, "a").await.targets[0].counts.create, shard_a.len());
    assert_eq!(sync(dir, "b").await.targets[0].counts.create, shard_b.len());
    let mut all: BTreeSet<String> = shard_a.union(&shard_b).cloned().collect();
    all.insert("users_own".into());
    assert_eq!(names(&go2rtc), all);
    assert_eq!(
        (owned(dir, "a"), owned(dir, "b")),
        (shard_a.clone(), shard_b.clone())
    );

    // Converged: neither instance writes again, whatever order they run in.
    let writes = go2rtc.write_count();
    for name in ["b", "a", "b"] {
        sync(dir, name).await;
    }
    assert_eq!(go2rtc.write_count(), writes, "an instance rewrote a stream");

    // One camera of each shard leaves the inventory, one of B's changes its URL.
    let gone_a = shard_a.iter().next().unwrap().clone();
    let gone_b = shard_b.iter().next().unwrap().clone();
    let changed_b = shard_b.iter().nth(1).unwrap().clone();
    cams.retain(|(n, _)| *n != gone_a && *n != gone_b);
    for (n, url) in cams.iter_mut() {
        if *n == changed_b {
            *url = "rtsp://192.0.2.250:554/new".into();
        }
    }
    write_inventory(dir, &cams);
    let old_sources = go2rtc.stream_sources(&changed_b);

    // A alone: it deletes its own camera, and leaves B's removed and changed cameras as B made them.
    let report = sync(dir, "a").await;
    let c = report.targets[0].counts;
    assert_eq!(
        (c.delete, c.create, c.update),
        (1, 0, 0),
        "{}",
        report.render_text()
    );
    assert!(!names(&go2rtc).contains(&gone_a));
    assert!(
        names(&go2rtc).contains(&gone_b),
        "A deleted a stream of B's"
    );
    assert_eq!(
        go2rtc.stream_sources(&changed_b),
        old_sources,
        "A rewrote a stream of B's"
    );

    // B then does its part.
    let report = sync(dir, "b").await;
    let c = report.targets[0].counts;
    assert_eq!((c.delete, c.update), (1, 1), "{}", report.render_text());
    assert_eq!(
        go2rtc.stream_sources(&changed_b),
        Some(vec![with_credentials("rtsp://192.0.2.250:554/new")])
    );
    let mut expected: BTreeSet<String> = cams.iter().map(|(n, _)| n.clone()).collect();
    expected.insert("users_own".into());
    assert_eq!(names(&go2rtc), expected);
    assert_eq!(
        go2rtc.stream_sources("users_own"),
        Some(vec!["rtsp://192.0.2.200/own".to_string()])
    );
}

/// The sidecar layout: each instance has its own server. Growing from 2 to 3 shards in the
/// documented order (the new instance first, then the old ones) moves each camera at most once,
/// only to the new server, and never leaves a camera without a server in between.
#[tokio::test]
async fn growing_and_shrinking_the_shard_count_moves_only_what_must_move() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let cams = cameras(30);
    write_inventory(dir, &cams);
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Go2rtcSim::start(Go2rtcSimOptions::default()).await.unwrap());
    }
    let all: BTreeSet<String> = cams.iter().map(|(n, _)| n.clone()).collect();
    let served =
        |servers: &[Go2rtcSim]| -> BTreeSet<String> { servers.iter().flat_map(names).collect() };
    let pod = |i: usize| format!("pod{i}");

    for (i, server) in servers.iter().enumerate().take(2) {
        write_instance(dir, &pod(i), server, i as u32, 2);
        sync(dir, &pod(i)).await;
        assert_eq!(names(server), in_shard(&cams, i as u32, 2));
    }
    assert_eq!(served(&servers), all);

    // Grow: the new instance takes its share first; the moved cameras are briefly on two servers.
    write_instance(dir, &pod(2), &servers[2], 2, 3);
    sync(dir, &pod(2)).await;
    let moved = in_shard(&cams, 2, 3);
    assert!(!moved.is_empty());
    assert_eq!(names(&servers[2]), moved);
    assert_eq!(
        served(&servers),
        all,
        "a camera had no server during the move"
    );
    // Then the old ones, each removing only what moved away and rewriting nothing else.
    for (i, server) in servers.iter().enumerate().take(2) {
        write_instance(dir, &pod(i), server, i as u32, 3);
        let report = sync(dir, &pod(i)).await;
        let c = report.targets[0].counts;
        let left = in_shard(&cams, i as u32, 2).intersection(&moved).count();
        assert_eq!(
            (c.create, c.update, c.delete),
            (0, 0, left),
            "{}",
            report.render_text()
        );
        assert_eq!(names(server), in_shard(&cams, i as u32, 3));
    }
    assert_eq!(served(&servers), all);
    let on_two: usize = servers.iter().map(|s| names(s).len()).sum();
    assert_eq!(on_two, all.len(), "a camera is on two servers");

    // Shrink: the remaining instances take the last shard's cameras first, then it goes away.
    for (i, server) in servers.iter().enumerate().take(2) {
        write_instance(dir, &pod(i), server, i as u32, 2);
        let report = sync(dir, &pod(i)).await;
        let c = report.targets[0].counts;
        assert_eq!((c.update, c.delete), (0, 0), "{}", report.render_text());
        assert_eq!(names(server), in_shard(&cams, i as u32, 2));
    }
    assert_eq!(served(&servers[..2]), all);
}
