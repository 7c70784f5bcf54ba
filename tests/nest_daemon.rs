//! `camsync run` with a Nest camera: its stream is generated through the Nest simulator's SDM
//! API, given to go2rtc and MediaMTX, kept alive by extensions that write nothing to the
//! servers, and regenerated (then given to both again) when Google lets it lapse. Nothing of its
//! tokens shows in the API.

mod common;

use std::time::Duration;

use camsync_sim::mediamtx::MediamtxSimOptions;
use camsync_sim::nest::{EXTEND, GENERATE, NestSim, NestSimOptions};
use common::daemon::{DEADLINE, start_with};
use common::*;
use tokio::net::TcpListener;

const DEVICE: &str = "cam-1";

/// A fixture with go2rtc, MediaMTX, the Nest simulator and two cameras: `porch` (Nest) and
/// `plain`; `extra` goes into camsync.yaml.
async fn nest_fixture(
    stream_lifetime: Duration,
    renew_before: &str,
    extra: &str,
) -> (Fixture, NestSim) {
    let nest = NestSim::start(NestSimOptions {
        devices: vec![DEVICE.into()],
        stream_lifetime,
        commands_per_minute: 600,
        ..NestSimOptions::default()
    })
    .await
    .unwrap();
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let options = NestSimOptions::default();
    std::fs::write(f.path("nest-client-secret"), &options.client_secret).unwrap();
    std::fs::write(f.path("nest-refresh-token"), &options.refresh_token).unwrap();
    f.write_config(&format!(
        "{extra}nest_accounts:\n  - name: home\n    project_id: {}\n    client_id: {}\n    \
         client_secret_file: nest-client-secret\n    refresh_token_file: nest-refresh-token\n    \
         max_per_minute: 600\n    renew_before: {renew_before}\n    sdm_url: {}\n    token_url: {}\n",
        options.project,
        options.client_id,
        nest.sdm_url(),
        nest.token_url()
    ));
    std::fs::write(
        f.path("cameras.yaml"),
        format!(
            "cameras:\n  - name: porch\n    nest:\n      account: home\n      device: {DEVICE}\n  \
             - name: plain\n    url: rtsp://192.0.2.1/plain\n"
        ),
    )
    .unwrap();
    (f, nest)
}

async fn get(url: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// MediaMTX's source for `porch`, once it has one.
fn mtx_source(f: &Fixture) -> Option<String> {
    f.mtx()
        .path_config("porch")
        .and_then(|c| c["source"].as_str().map(str::to_owned))
}

/// go2rtc's source for `porch`, once it has one.
fn porch_source(f: &Fixture) -> Option<String> {
    f.go2rtc
        .stream_sources("porch")
        .and_then(|s| s.into_iter().next())
}

#[tokio::test]
async fn a_nest_stream_reaches_both_servers_and_extensions_write_nothing() {
    let (f, nest) = nest_fixture(Duration::from_secs(4), "2s", "").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let d = start_with(f.config(), Some(listener));
    let prefix = format!("{}/sdm/{DEVICE}?auth=", nest.rtsp_url());
    assert!(
        eventually(DEADLINE, || porch_source(&f)
            .is_some_and(|s| s.starts_with(&prefix)))
        .await,
        "go2rtc: {:?}",
        f.go2rtc.stream_names()
    );
    let given = porch_source(&f).unwrap();
    assert!(
        eventually(DEADLINE, || mtx_source(&f).as_deref() == Some(&given)).await,
        "MediaMTX has the same stream: {:?}",
        mtx_source(&f)
    );
    assert_eq!(f.names(), sorted(&["plain", "porch"]));

    // Two stream lifetimes pass on extensions alone: nothing is written to either server.
    let (writes, mtx_writes) = (f.go2rtc.write_count(), f.mtx().write_count());
    assert!(eventually(Duration::from_secs(15), || nest.answered(EXTEND) >= 3).await);
    assert_eq!(nest.live_devices(), [DEVICE]);
    assert_eq!(porch_source(&f).as_deref(), Some(given.as_str()));
    assert_eq!(
        (f.go2rtc.write_count(), f.mtx().write_count()),
        (writes, mtx_writes)
    );

    // The API shows the camera's stream without its token, and the account's queue.
    let token = given.split("auth=").nth(1).unwrap().to_owned();
    let body = get(&format!("{api}/v1/cameras/porch")).await;
    assert!(!body.contains(&token), "the stream token leaks: {body}");
    let porch: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        porch["sources"][0],
        format!("{}/***", nest.rtsp_url()),
        "a resolved stream shows its host alone"
    );
    assert_eq!(porch["resolved"]["state"], "live");
    assert_eq!(porch["resolved"]["generation"], 1);
    assert_eq!(porch["resolved"]["device"], nest.device_name(DEVICE));
    let list: serde_json::Value =
        serde_json::from_str(&get(&format!("{api}/v1/cameras")).await).unwrap();
    assert!(
        list["resolvers"]["home"]["executed"][0].as_u64() >= Some(3),
        "{list}"
    );
    let history = get(&format!("{api}/v1/cameras/porch/events")).await;
    assert!(
        history.contains(
            r#""type":"stream","camera":"porch","resolver":"home","state":"live","generation":1"#
        ),
        "{history}"
    );
    let metrics = get(&format!("{api}/metrics")).await;
    assert!(
        metrics.contains(r#"camsync_resolver_streams{resolver="home",kind="live"} 1"#)
            && metrics.contains(r#"camsync_resolver_commands{resolver="home",kind="extend"}"#)
            && metrics
                .contains(r#"camsync_resolver_queue_wait_seconds{resolver="home",kind="max"}"#),
        "{metrics}"
    );

    // A reconnect of a Nest camera generates a new stream, which both servers get.
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{api}/v1/cameras/porch/reconnect"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert!(
        eventually(DEADLINE, || porch_source(&f).is_some_and(|s| s != given)).await,
        "go2rtc keeps {given:?}"
    );
    let fresh = porch_source(&f).unwrap();
    assert!(eventually(DEADLINE, || mtx_source(&f).as_deref() == Some(&fresh)).await);
    d.stop().await;
}

#[tokio::test]
async fn a_stream_google_lets_lapse_is_generated_anew_and_given_to_both_servers() {
    let (f, nest) = nest_fixture(Duration::from_secs(4), "2s", "").await;
    let d = start_with(f.config(), None);
    assert!(eventually(DEADLINE, || porch_source(&f).is_some()).await);
    let first = porch_source(&f).unwrap();

    // Google forgets the stream (the camera went offline): the next extension fails, and a
    // new stream is generated and given to the servers.
    nest.end_streams();
    assert!(
        eventually(DEADLINE, || porch_source(&f).is_some_and(|s| s != first)).await,
        "go2rtc keeps {first:?}"
    );
    let second = porch_source(&f).unwrap();
    assert!(eventually(DEADLINE, || mtx_source(&f).as_deref() == Some(&second)).await);
    assert_eq!(nest.answered(GENERATE), 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_monitor_has_a_broken_nest_stream_generated_anew_not_re_registered() {
    // Streams of five minutes: no extension falls due while the test runs, so only the health
    // monitor can notice that Google ended the stream.
    let (f, nest) = nest_fixture(
        Duration::from_secs(300),
        "60s",
        "restart_check: 1h\nhealth:\n  interval: 100ms\n  grace: 1ms\n  idle_probe: 100ms\n  probe_timeout: 2s\n",
    )
    .await;
    let d = start_with(f.config(), None);
    assert!(eventually(DEADLINE, || porch_source(&f).is_some()).await);
    let first = porch_source(&f).unwrap();
    assert!(eventually(DEADLINE, || mtx_source(&f).as_deref() == Some(&first)).await);

    nest.end_streams();
    assert!(
        eventually(Duration::from_secs(20), || porch_source(&f)
            .is_some_and(|s| s != first))
        .await,
        "go2rtc keeps {first:?}"
    );
    let second = porch_source(&f).unwrap();
    assert!(eventually(DEADLINE, || mtx_source(&f).as_deref() == Some(&second)).await);
    let commands: Vec<String> = nest.commands().into_iter().map(|c| c.command).collect();
    assert!(
        commands.iter().all(|c| c.ends_with("GenerateRtspStream")),
        "{commands:?}"
    );
    d.stop().await;
}
