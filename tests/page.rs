//! The status page (`GET /`) in real browsers: headless Chromium through ChromeDriver and
//! Firefox through geckodriver, against a daemon syncing into the simulators over 127.0.0.1.
//! Without a driver (`CAMSYNC_CHROMEDRIVER`, `CAMSYNC_GECKODRIVER`; `.ci/run` installs both
//! browsers and sets them) the tests that need it are reported as ignored, with the reason.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::net::SocketAddr;

use camsync_sim::camera::SimCamera;
use camsync_sim::mediamtx::MediamtxSimOptions;
use common::*;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use webdriver::{Browser, DESKTOP, Engine, Screen};

const TOKEN: &str = "Tok-page-41c9e2";
const HEALTH: &str = "restart_check: 1h\nhealth:\n  interval: 100ms\n  grace: 100ms\n  idle_probe: 100ms\n  probe_timeout: 2s\n";

/// `camsync run` in-process with its API on `addr`, past its first sync.
struct Daemon {
    base: String,
    addr: SocketAddr,
    running: common::daemon::Running,
}

impl Daemon {
    async fn start(f: &Fixture, addr: SocketAddr) -> Daemon {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let running = common::daemon::start_with(f.config(), Some(listener));
        running.until("the first sync", |p| p.syncs >= 1).await;
        Daemon {
            base: format!("http://{addr}"),
            addr,
            running,
        }
    }

    async fn stop(self) {
        self.running.stop().await
    }
}

/// A test per browser running `$body(engine)`, each reported as ignored, with the reason, when
/// its driver is not set: `$body::chromium` and `$body::firefox`.
macro_rules! in_each_browser {
    ($body:ident) => {
        mod $body {
            use super::*;

            #[cfg_attr(
                not(camsync_browser),
                ignore = "needs chromium and chromedriver: set CAMSYNC_CHROMEDRIVER (.ci/run installs them)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chromium() {
                super::$body(Engine::Chromium).await
            }

            #[cfg_attr(
                not(camsync_firefox),
                ignore = "needs firefox and geckodriver: set CAMSYNC_GECKODRIVER (.ci/run installs them)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn firefox() {
                super::$body(Engine::Firefox).await
            }
        }
    };
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The daemon's page in `engine`, once it follows the event stream. It sets a marker that a
/// reload would lose: finding it later proves that what changed arrived in place.
async fn live_page(engine: Engine, daemon: &Daemon) -> Browser {
    let browser = Browser::start(engine, DESKTOP).await;
    browser.goto(&format!("{}/", daemon.base)).await;
    browser
        .until(
            "a live page",
            "document.getElementById('connection').textContent === 'Live'",
        )
        .await;
    browser
        .run("window.camsyncTestMarker = 1;", json!([]))
        .await;
    browser
}

/// The cell of `camera` on `target`.
fn cell(camera: &str, target: &str) -> String {
    format!(
        r#"document.querySelector('tr.camera[data-camera="{camera}"] td[data-target="{target}"]')"#
    )
}

fn cell_is(camera: &str, target: &str, state: &str) -> String {
    let cell = cell(camera, target);
    format!("{cell} && {cell}.dataset.state === '{state}'")
}

const NOTICE: &str = "document.getElementById('notice').textContent";

/// The cameras of [`site`], kept for the test's length: `door` and `yard` serve, `porch`'s
/// port refuses connections.
struct Cameras {
    door: SimCamera,
    _yard: SimCamera,
    _porch: tokio::net::TcpSocket,
}

/// Cameras on both servers: `door` and `yard` serve, `porch` refuses connections; one record
/// is rejected. Every camera has the marker password.
async fn site() -> (Fixture, Cameras) {
    let door = SimCamera::start().await.unwrap();
    let yard = SimCamera::start().await.unwrap();
    let (closed, port) = refusing_port();
    let porch = format!("rtsp://127.0.0.1:{port}/s");
    let f = Fixture::with_mediamtx(MediamtxSimOptions::default()).await;
    let mut text = inventory(&[
        ("door", &door.url("s")),
        ("yard", &yard.url("s")),
        ("porch", &porch),
    ]);
    text.push_str("  - name: attic\n    url: ftp://127.0.0.1/s\n");
    std::fs::write(f.path("cameras.yaml"), text).unwrap();
    let cameras = Cameras {
        door,
        _yard: yard,
        _porch: closed,
    };
    (f, cameras)
}

in_each_browser!(the_grid_follows_a_camera_reboot_and_a_reconnect_clicked_reaches_the_server);

async fn the_grid_follows_a_camera_reboot_and_a_reconnect_clicked_reaches_the_server(
    engine: Engine,
) {
    let (f, cameras) = site().await;
    let door = &cameras.door;
    f.write_config(HEALTH);
    let daemon = Daemon::start(&f, loopback()).await;
    let browser = live_page(engine, &daemon).await;
    for target in ["go2rtc", "mediamtx"] {
        browser
            .until("door healthy", &cell_is("door", target, "healthy"))
            .await;
        browser
            .until("yard healthy", &cell_is("yard", target, "healthy"))
            .await;
        browser
            .until("porch offline", &cell_is("porch", target, "camera-offline"))
            .await;
    }
    let heads = browser
        .run(
            "return [...document.querySelectorAll('#grid-head th')].map(th => th.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(heads, json!(["Camera", "go2rtc", "mediamtx"]));
    let rejected = browser.text("#rejected").await;
    assert!(
        rejected.contains("attic") && rejected.contains("cameras.yaml:"),
        "{rejected}"
    );
    let counts = browser.text("#counts").await;
    assert!(
        counts.contains("healthy: 4") && counts.contains("camera offline: 2"),
        "{counts}"
    );
    let player = browser
        .run(
            &format!("return {}.querySelector('a').href;", cell("door", "go2rtc")),
            json!([]),
        )
        .await;
    assert_eq!(
        player,
        json!(format!(
            "{}/stream.html?src=door",
            f.go2rtc.api_url().trim_end_matches('/')
        ))
    );

    // The camera reboots: its cells turn camera-offline, then healthy, without a reload.
    door.stop().await;
    browser
        .until(
            "door offline",
            &cell_is("door", "mediamtx", "camera-offline"),
        )
        .await;
    if engine == Engine::Chromium {
        // For the README, after a look by eye.
        let shot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/status-page.png");
        std::fs::write(shot, browser.screenshot().await).unwrap();
    }
    door.resume().await.unwrap();
    browser
        .until(
            "door healthy again",
            &cell_is("door", "mediamtx", "healthy"),
        )
        .await;
    assert_eq!(
        browser
            .run("return window.camsyncTestMarker;", json!([]))
            .await,
        1
    );

    // Its row opens to a timeline and its recent events.
    browser
        .click_until(
            r#"button.name-button[data-camera="door"]"#,
            "door's history",
            "document.querySelector('tr.details .events li time') !== null",
        )
        .await;
    let history = browser.text("tr.details").await;
    assert!(history.contains("camera offline"), "{history}");
    let spans = browser
        .run(
            "return document.querySelectorAll('tr.details .timeline')[1].children.length;",
            json!([]),
        )
        .await;
    assert!(
        spans.as_u64().unwrap() >= 3,
        "healthy, offline, healthy: {spans}"
    );

    // A reconnect clicked in the page re-registers the stream on that server only.
    let go2rtc_writes = f.go2rtc.write_count();
    let mediamtx_writes = f.mtx().write_count();
    browser
        .click_until(
            r#"button.reconnect[data-camera="yard"][data-target="go2rtc"]"#,
            "the reconnect's answer",
            &format!("{NOTICE}.startsWith('Reconnect yard: go2rtc: done')"),
        )
        .await;
    assert!(
        f.go2rtc.write_count() > go2rtc_writes,
        "go2rtc saw no write"
    );
    assert_eq!(f.mtx().write_count(), mediamtx_writes);

    // The plan as a readable list, and nothing secret anywhere on the page.
    browser
        .click_until(
            "#show-plan",
            "the plan",
            "!document.getElementById('plan-section').hidden",
        )
        .await;
    let plan = browser.text("#plan").await;
    assert!(plan.contains("go2rtc: planned"), "{plan}");
    let page = browser
        .run("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert_no_secret(page.as_str().unwrap());
    browser.close().await;
    daemon.stop().await;
}

#[cfg_attr(
    not(camsync_browser),
    ignore = "needs chromium and chromedriver: set CAMSYNC_CHROMEDRIVER (.ci/run installs them)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_acts_only_once_it_is_entered_and_keeps_it_for_the_tab() {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    std::fs::write(f.path("api.token"), TOKEN).unwrap();
    f.write_config("api:\n  token_file: api.token\n");
    let daemon = Daemon::start(&f, loopback()).await;
    let browser = Browser::start(Engine::Chromium, DESKTOP).await;
    browser.goto(&format!("{}/", daemon.base)).await;
    browser
        .until(
            "the token form",
            "!document.getElementById('token-section').hidden",
        )
        .await;
    let syncs = daemon.running.current().syncs;
    browser
        .click_until(
            "#sync-now",
            "the refusal",
            &format!("{NOTICE}.includes('needs its API token')"),
        )
        .await;
    assert_eq!(
        browser
            .run(
                "return document.querySelectorAll('tr.camera').length;",
                json!([])
            )
            .await,
        0,
        "nothing is shown without the token"
    );

    browser.type_into("#token", TOKEN).await;
    browser
        .click_until(
            "#token-form button[type=submit]",
            "the grid",
            "document.querySelector('tr.camera[data-camera=\"front\"]') !== null",
        )
        .await;
    browser
        .until(
            "a live page",
            "document.getElementById('connection').textContent === 'Live'",
        )
        .await;
    browser
        .click_until(
            "#sync-now",
            "the sync's end",
            &format!("/^Sync #\\d+ done/.test({NOTICE})"),
        )
        .await;
    assert!(daemon.running.current().syncs > syncs);

    // Kept for the tab (a reload does not ask again), never in a cookie or the address.
    let kept = browser
        .run(
            "return [document.cookie, location.href, Object.values(sessionStorage), localStorage.length];",
            json!([]),
        )
        .await;
    assert_eq!(kept, json!(["", format!("{}/", daemon.base), [TOKEN], 0]));
    browser.refresh().await;
    browser
        .until(
            "the grid after a reload",
            "document.querySelector('tr.camera') !== null",
        )
        .await;
    browser.close().await;
    daemon.stop().await;
}

in_each_browser!(an_open_page_survives_a_daemon_restart_and_follows_the_new_one);

async fn an_open_page_survives_a_daemon_restart_and_follows_the_new_one(engine: Engine) {
    let f = Fixture::new().await;
    f.write_cameras(&[("front", "rtsp://192.0.2.10/a")]);
    let daemon = Daemon::start(&f, loopback()).await;
    let addr = daemon.addr;
    let browser = live_page(engine, &daemon).await;
    daemon.stop().await;
    browser
        .until(
            "the page to say it is disconnected",
            "document.getElementById('connection').textContent.startsWith('Disconnected')",
        )
        .await;

    f.write_cameras(&[
        ("front", "rtsp://192.0.2.10/a"),
        ("back", "rtsp://192.0.2.11/b"),
    ]);
    let daemon = Daemon::start(&f, addr).await;
    browser
        .until(
            "live again",
            "document.getElementById('connection').textContent === 'Live'",
        )
        .await;
    browser
        .until(
            "the new daemon's camera",
            "document.querySelector('tr.camera[data-camera=\"back\"]') !== null",
        )
        .await;
    assert_eq!(
        browser
            .run("return window.camsyncTestMarker;", json!([]))
            .await,
        1
    );
    browser.close().await;
    daemon.stop().await;
}

/// Runs axe-core (`CAMSYNC_AXE_JS`) on the page; returns its serious and critical findings.
async fn accessibility_findings(browser: &Browser) -> Vec<Value> {
    let path = std::env::var("CAMSYNC_AXE_JS").expect("CAMSYNC_AXE_JS names axe.min.js");
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    browser.run(&axe, json!([])).await;
    let results = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
                .then(r => done(r.violations), e => done([{ id: 'axe-error', impact: 'critical', help: String(e) }]));",
            json!([]),
        )
        .await;
    results
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| json!({ "id": v["id"], "help": v["help"], "nodes": v["nodes"].as_array().map(|n| n.len()) }))
        .collect()
}

#[cfg_attr(
    not(all(camsync_browser, camsync_axe)),
    ignore = "needs chromium, chromedriver and axe-core: set CAMSYNC_CHROMEDRIVER and CAMSYNC_AXE_JS (.ci/run installs them)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_valid_html_accessible_in_light_and_dark_and_fits_a_phone() {
    let (f, _cameras) = site().await;
    f.write_config(HEALTH);
    let daemon = Daemon::start(&f, loopback()).await;

    let answer = reqwest::get(format!("{}/", daemon.base)).await.unwrap();
    assert_eq!(
        answer.headers()["content-security-policy"],
        camsync::api::CONTENT_SECURITY_POLICY
    );
    let html = answer.text().await.unwrap();
    let page = f.path("index.html");
    std::fs::write(&page, &html).unwrap();
    let tidy = std::process::Command::new("tidy")
        .args(["-q", "-e"])
        .arg(&page)
        .output()
        .expect("tidy is installed (Debian's package tidy)");
    assert!(
        tidy.status.success(),
        "tidy: {}",
        String::from_utf8_lossy(&tidy.stderr)
    );

    let browser = Browser::start(Engine::Chromium, DESKTOP).await;
    browser.goto(&format!("{}/", daemon.base)).await;
    browser
        .until(
            "porch offline",
            &cell_is("porch", "go2rtc", "camera-offline"),
        )
        .await;
    browser
        .click_until(
            r#"button.name-button[data-camera="door"]"#,
            "door's history",
            "document.querySelector('tr.details .events li') !== null",
        )
        .await;
    assert_eq!(
        accessibility_findings(&browser).await,
        Vec::<Value>::new(),
        "light"
    );
    browser.close().await;

    // A phone: no sideways scrolling, every cell still there; and the dark scheme.
    let phone = Browser::start(
        Engine::Chromium,
        Screen {
            width: 390,
            height: 844,
            dark: true,
        },
    )
    .await;
    phone.goto(&format!("{}/", daemon.base)).await;
    phone
        .until(
            "porch offline",
            &cell_is("porch", "go2rtc", "camera-offline"),
        )
        .await;
    let overflow = phone
        .run(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            json!([]),
        )
        .await;
    assert_eq!(overflow, 0, "the page is wider than the phone");
    assert_eq!(
        phone
            .run(
                "return matchMedia('(prefers-color-scheme: dark)').matches;",
                json!([])
            )
            .await,
        true
    );
    assert_eq!(
        accessibility_findings(&phone).await,
        Vec::<Value>::new(),
        "dark, phone"
    );
    let shot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/status-page-phone-dark.png"
    );
    std::fs::write(shot, phone.screenshot().await).unwrap();
    phone.close().await;
    daemon.stop().await;
}
