//! Nest streams kept alive by an account's command queue: under tokio's paused clock against a
//! fake SDM API that enforces Google's quota and expiry (hours in milliseconds), and over real
//! sockets against the Nest simulator.

#[path = "common/fake_sdm.rs"]
mod fake_sdm;

use std::collections::BTreeMap;
use std::time::Duration;

use camsync::config::NestAccountConfig;
use camsync::health::probe::Probe;
use camsync::resolve::account::{Account, Command, Resolutions, Settings, StreamState};
use camsync::resolve::live::{LiveStreams, ResolveError};
use camsync::resolve::sdm::SdmClient;
use camsync::secret::Secret;
use camsync_sim::nest::{NestSim, NestSimOptions};
use fake_sdm::FakeSdm;
use tokio::time::Instant;

fn settings() -> Settings {
    Settings {
        jitter: || 0.0,
        ..Settings::default()
    }
}

fn cameras(n: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| {
            (
                format!("cam-{i:03}"),
                format!("enterprises/p/devices/d{i:03}"),
            )
        })
        .collect()
}

/// Waits (on the paused clock) until `check` holds for the published resolutions.
async fn resolved(account: &Account, within: Duration, check: impl Fn(&Resolutions) -> bool) {
    let mut watch = account.resolutions();
    let waited = tokio::time::timeout(within, watch.wait_for(|r| check(r))).await;
    assert!(
        waited.is_ok_and(|r| r.is_ok()),
        "not within {within:?}: {:?}",
        account.resolutions().borrow()
    );
}

fn states(resolutions: &Resolutions) -> BTreeMap<StreamState, usize> {
    let mut counts = BTreeMap::new();
    for r in resolutions.values() {
        *counts.entry(r.state).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn twenty_cameras_stay_alive_for_two_hours_within_the_quota_on_extensions_alone() {
    let sdm = FakeSdm::default();
    let account = Account::start("home", sdm.clone(), settings());
    let start = Instant::now();
    account.want(cameras(20));
    resolved(&account, Duration::from_secs(180), |r| {
        r.len() == 20 && r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
    // Staggered: one command every 6 s.
    let firsts: Vec<Instant> = sdm.seen().iter().map(|s| s.at).collect();
    assert!(
        firsts
            .windows(2)
            .all(|w| w[1] - w[0] >= Duration::from_secs(6))
    );

    tokio::time::sleep_until(start + Duration::from_secs(2 * 3600)).await;

    assert_eq!(sdm.over_quota(), [], "the quota is never exceeded");
    let state = sdm.state();
    assert_eq!(state.lapses, [], "no stream expired while wanted");
    drop(state);
    assert_eq!(sdm.count(Command::Generate), 20, "one generate per camera");
    assert_eq!(sdm.count(Command::Stop), 0);
    // Each stream is extended once per 4 minutes: 29 or 30 times in 2 hours.
    let extends = sdm.count(Command::Extend);
    assert!(
        (20 * 29..=20 * 30).contains(&extends),
        "{extends} extensions"
    );
    let now = Instant::now();
    for i in 0..20 {
        let device = format!("enterprises/p/devices/d{i:03}");
        let valid = sdm.valid_fraction(&device, start + Duration::from_secs(120), now);
        assert_eq!(valid, 1.0, "{device} was valid {valid:.4} of the time");
    }
    let resolutions = account.resolutions().borrow().clone();
    for (name, r) in &resolutions {
        assert_eq!(r.state, StreamState::Live, "{name}");
        assert!(r.expires.is_some_and(|e| e > now), "{name}");
        assert_eq!(
            r.generation, 1,
            "{name}: extensions keep the upstream session"
        );
    }
    let stats = account.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(
        stats.executed,
        [extends as u64, 20, 0],
        "by level: extend, generate, stop"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_429_the_account_waits_and_an_extension_due_goes_before_a_generate() {
    let sdm = FakeSdm::default();
    let account = Account::start("home", sdm.clone(), settings());
    let one = cameras(2).into_iter().take(1).collect();
    account.want(one);
    resolved(&account, Duration::from_secs(10), |r| {
        r.len() == 1 && r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
    let generated = sdm.seen()[0].at;
    // Just before cam-000's extension falls due, cam-001 is wanted and Google answers 429.
    tokio::time::sleep_until(generated + Duration::from_secs(239)).await;
    sdm.state().limit_next = 1;
    account.want(cameras(2));
    resolved(&account, Duration::from_secs(60), |r| {
        r.len() == 2 && r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
    let after: Vec<(String, Command, bool)> = sdm.seen()[1..]
        .iter()
        .map(|s| (s.device.clone(), s.command, s.limited))
        .collect();
    assert_eq!(
        after,
        [
            ("enterprises/p/devices/d001".into(), Command::Generate, true),
            ("enterprises/p/devices/d000".into(), Command::Extend, false),
            (
                "enterprises/p/devices/d001".into(),
                Command::Generate,
                false
            ),
        ]
    );
    let seen = sdm.seen();
    assert!(
        seen[2].at - seen[1].at >= Duration::from_secs(5),
        "the account paused"
    );
    assert_eq!(account.stats().rate_limited, 1);
    assert_eq!(sdm.state().lapses, []);
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_degrades_every_camera_of_the_account_without_a_retry_storm() {
    let sdm = FakeSdm::default();
    let account = Account::start("home", sdm.clone(), settings());
    account.want(cameras(3));
    resolved(&account, Duration::from_secs(60), |r| {
        r.len() == 3 && r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
    sdm.state().revoked = true;
    let calls = sdm.seen().len();
    resolved(&account, Duration::from_secs(300), |r| {
        r.values().all(|c| c.state == StreamState::Degraded)
    })
    .await;
    let resolutions = account.resolutions().borrow().clone();
    for r in resolutions.values() {
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.contains("nest account home"), "{error}");
        assert!(error.contains("sign in again"), "{error}");
    }
    let revoked_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    // Refused calls are not recorded by the fake; count the attempts through the stats.
    let failed = account.stats().failed;
    assert!(
        failed <= 3600 / 300 + 2,
        "{failed} attempts in an hour after {:?}",
        revoked_at.elapsed()
    );
    assert_eq!(sdm.seen().len(), calls, "nothing reached Google");

    sdm.state().revoked = false;
    resolved(&account, Duration::from_secs(400), |r| {
        r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_google_ends_is_generated_anew_and_a_regenerate_is_at_once() {
    let sdm = FakeSdm::default();
    let account = Account::start("home", sdm.clone(), settings());
    account.want(cameras(1));
    resolved(&account, Duration::from_secs(10), |r| {
        r.len() == 1 && r.values().all(|c| c.state == StreamState::Live)
    })
    .await;
    let first = account.resolutions().borrow()["cam-000"].clone();
    // The camera rebooted: Google forgot its stream.
    sdm.state().streams.clear();
    resolved(&account, Duration::from_secs(300), |r| {
        r["cam-000"].generation == 2 && r["cam-000"].state == StreamState::Live
    })
    .await;
    let second = account.resolutions().borrow()["cam-000"].clone();
    assert_ne!(first.url, second.url);

    account.regenerate("cam-000");
    resolved(&account, Duration::from_secs(10), |r| {
        r["cam-000"].generation == 3
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cameras_beyond_the_quotas_capacity_are_reported_over_quota_and_never_generated() {
    let sdm = FakeSdm::default();
    let account = Account::start("home", sdm.clone(), settings());
    account.want(cameras(40));
    resolved(&account, Duration::from_secs(600), |r| {
        states(r).get(&StreamState::Live) == Some(&32)
    })
    .await;
    let resolutions = account.resolutions().borrow().clone();
    assert_eq!(
        states(&resolutions),
        BTreeMap::from([(StreamState::Live, 32), (StreamState::OverQuota, 8)])
    );
    assert!(resolutions["cam-039"].url.is_none());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sdm.count(Command::Generate), 32);
    assert_eq!(sdm.over_quota(), []);
    assert_eq!(sdm.state().lapses, []);

    // A camera no longer wanted is stopped, and frees its place.
    let fewer: BTreeMap<String, String> = cameras(40)
        .into_iter()
        .filter(|(name, _)| name != "cam-000")
        .collect();
    account.want(fewer);
    resolved(&account, Duration::from_secs(120), |r| {
        !r.contains_key("cam-000") && r["cam-032"].state == StreamState::Live
    })
    .await;
    assert_eq!(sdm.count(Command::Stop), 1);
}

/// The simulator's account, as camsync.yaml would give it.
fn account_of(sim: &NestSim) -> NestAccountConfig {
    let options = NestSimOptions::default();
    NestAccountConfig {
        name: "home".into(),
        project_id: options.project,
        client_id: options.client_id,
        client_secret: Secret::new(options.client_secret),
        refresh_token: Secret::new(options.refresh_token),
        max_per_minute: 600,
        renew_before: Duration::from_secs(2),
        sdm_url: sim.sdm_url().parse().unwrap(),
        token_url: sim.token_url().parse().unwrap(),
        timeout: Duration::from_secs(5),
    }
}

/// Over real sockets: the simulator's 429 and a stream it no longer extends reach the renewal
/// as what they are (a pause for the account; a new stream), and one access token serves every
/// call while it lives.
#[tokio::test]
async fn the_sdm_clients_answers_are_classified_as_the_renewal_needs() {
    let sim = NestSim::start(NestSimOptions {
        commands_per_minute: 2,
        ..NestSimOptions::default()
    })
    .await
    .unwrap();
    let client = SdmClient::new(account_of(&sim)).unwrap();
    let device = sim.device_name("cam-1");
    let grant = client.generate(&device).await.unwrap();
    sim.end_streams();
    let gone = client.extend(&device, &grant).await.unwrap_err();
    assert!(
        matches!(gone, ResolveError::StreamGone { status: 400, .. }),
        "{gone:?}"
    );
    // The refused extension did not count against the quota; the second generate does.
    client.generate(&device).await.unwrap();
    let limited = client.generate(&device).await.unwrap_err();
    assert!(
        matches!(limited, ResolveError::RateLimited { .. }),
        "{limited:?}"
    );
    assert_eq!(
        limited.to_string(),
        "resolver home: the command quota is used up (429)"
    );
    assert_eq!(
        sim.token_requests(),
        1,
        "one access token serves every call"
    );
}

/// Over real sockets: the SDM client against the simulator, with streams of a few seconds.
#[tokio::test]
async fn the_simulators_streams_stay_playable_through_extensions() {
    let sim = NestSim::start(NestSimOptions {
        stream_lifetime: Duration::from_secs(3),
        commands_per_minute: 600,
        ..NestSimOptions::default()
    })
    .await
    .unwrap();
    let options = NestSimOptions::default();
    let account = account_of(&sim);
    let client = SdmClient::new(account.clone()).unwrap();
    let nest = Account::start(
        "home",
        client,
        Settings {
            per_minute: 600,
            renew_before: Duration::from_secs(2),
            ..settings()
        },
    );
    nest.want(BTreeMap::from([("front".into(), sim.device_name("cam-1"))]));
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_secs(7) {
        let url = nest
            .resolutions()
            .borrow()
            .get("front")
            .and_then(|r| r.url.clone());
        if let Some(url) = url {
            let probe = Probe {
                url: url.expose().parse().unwrap(),
                credentials: None,
                timeout: Duration::from_secs(2),
            };
            statuses.push(probe.describe().await.map(|a| a.status).ok());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(statuses.len() > 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == Some(200)), "{statuses:?}");
    let commands: Vec<&str> = sim
        .commands()
        .iter()
        .map(|c| c.command.rsplit('.').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| match c {
            "GenerateRtspStream" => "generate",
            "ExtendRtspStream" => "extend",
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(commands[0], "generate");
    assert!(commands[1..].iter().all(|c| *c == "extend"), "{commands:?}");
    assert!(commands.len() >= 4, "{commands:?}");
    assert_eq!(nest.resolutions().borrow()["front"].generation, 1);

    // A revoked refresh token: a fresh client fails with an error that names the account
    // and carries no secret.
    sim.revoke_refresh_token();
    let error = SdmClient::new(account)
        .unwrap()
        .generate(&sim.device_name("cam-1"))
        .await
        .unwrap_err();
    assert!(error.is_revoked(), "{error:?}");
    let text = format!("{error} {error:?}");
    assert!(text.contains("nest account home"), "{text}");
    for secret in [&options.client_secret, &options.refresh_token] {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_camera_is_retried_on_its_backoff_however_often_it_is_asked_for() {
    let sdm = FakeSdm::default();
    sdm.state()
        .failing
        .push("enterprises/p/devices/d001".into());
    let account = Account::start("home", sdm.clone(), settings());
    let start = Instant::now();
    // The inventory is read every 30 s (the default resync), and by webhooks in between; the
    // health monitor (or a user) asks for a new stream of the failing camera as often.
    for _ in 0..40 {
        account.want(cameras(2));
        account.regenerate("cam-001");
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let attempts: Vec<Duration> = sdm
        .seen()
        .iter()
        .filter(|s| s.device.ends_with("d001"))
        .map(|s| s.at - start)
        .collect();
    // 5 s, doubling, capped at 300 s: about 7 attempts in 10 minutes, not one per read.
    assert!(
        (6..=8).contains(&attempts.len()),
        "{} attempts: {attempts:?}",
        attempts.len()
    );
    let resolutions = account.resolutions().borrow().clone();
    assert_eq!(resolutions["cam-001"].state, StreamState::Degraded);
    assert_eq!(
        resolutions["cam-000"].state,
        StreamState::Live,
        "the other camera is fine"
    );
}
