//! A headless browser (Chromium through ChromeDriver, Firefox through geckodriver) driven by
//! the W3C WebDriver protocol (a handful of JSON calls over reqwest), for the status page's
//! tests. The driver listens on 127.0.0.1 only; the browser starts with a fresh profile and its
//! background services off, so it talks to nothing but the page under test.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `CAMSYNC_CHROMEDRIVER` (Debian's chromium-driver); Chromium is what it finds, or
    /// `CAMSYNC_CHROMIUM`.
    Chromium,
    /// `CAMSYNC_GECKODRIVER` (`cargo install geckodriver`); Firefox is what it finds.
    Firefox,
}

/// The window and colour scheme the page is shown in.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    pub width: u32,
    pub height: u32,
    pub dark: bool,
}

pub const DESKTOP: Screen = Screen {
    width: 1280,
    height: 900,
    dark: false,
};

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The WebDriver server's process, killed when dropped (also when a test fails early).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium_capabilities(profile: &std::path::Path) -> Value {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = json!({ "args": args });
    if let Some(binary) = std::env::var_os("CAMSYNC_CHROMIUM") {
        options["binary"] = json!(binary.to_string_lossy());
    }
    json!({ "browserName": "chrome", "goog:chromeOptions": options })
}

fn firefox_capabilities(dark: bool) -> Value {
    // geckodriver already sets the preferences for automation that silence most background
    // services; these close the rest.
    let prefs = json!({
        "app.update.disabledForTesting": true,
        "browser.safebrowsing.malware.enabled": false,
        "browser.safebrowsing.phishing.enabled": false,
        "browser.safebrowsing.downloads.enabled": false,
        "datareporting.policy.dataSubmissionEnabled": false,
        "toolkit.telemetry.enabled": false,
        "network.captive-portal-service.enabled": false,
        "network.connectivity-service.enabled": false,
        "extensions.update.enabled": false,
        "browser.search.update": false,
        "services.settings.server": "http://127.0.0.1:9/",
        // 0: dark, 1: light.
        "layout.css.prefers-color-scheme.content-override": if dark { 0 } else { 1 },
    });
    json!({ "browserName": "firefox", "moz:firefoxOptions": {
        "args": ["-headless"],
        "prefs": prefs,
    }})
}

/// The port a driver says it listens on: ChromeDriver prints "… started successfully on port
/// N.", geckodriver "Listening on 127.0.0.1:N". Everything else it prints is read and dropped.
async fn listening_port(driver: &mut Driver) -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(driver.0.stdout.take().unwrap()),
        Box::new(driver.0.stderr.take().unwrap()),
    ];
    for stream in streams {
        let port_tx = port_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let port = line
                    .split("on port ")
                    .nth(1)
                    .or_else(|| line.split("Listening on 127.0.0.1:").nth(1))
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                    // ChromeDriver first repeats the port it was asked for.
                    .filter(|port| *port != 0);
                if let Some(port) = port {
                    let _ = port_tx.send(port);
                }
            }
        });
    }
    tokio::task::spawn_blocking(move || port_rx.recv_timeout(DEADLINE))
        .await
        .unwrap()
        .expect("the WebDriver server says the port it listens on")
}

impl Browser {
    /// Starts the engine's driver and a browser session showing pages on `screen`.
    pub async fn start(engine: Engine, screen: Screen) -> Browser {
        let (var, args): (&str, &[&str]) = match engine {
            Engine::Chromium => (
                "CAMSYNC_CHROMEDRIVER",
                &["--port=0", "--allowed-ips=127.0.0.1"],
            ),
            Engine::Firefox => (
                "CAMSYNC_GECKODRIVER",
                &["--port", "0", "--host", "127.0.0.1"],
            ),
        };
        let driver_bin = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{var} names the WebDriver server"));
        let mut driver = Driver(
            Command::new(&driver_bin)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display())),
        );
        let port = listening_port(&mut driver).await;
        let profile = tempfile::tempdir().unwrap();
        let capabilities = match engine {
            Engine::Chromium => chromium_capabilities(profile.path()),
            // geckodriver makes (and removes) a fresh profile of its own.
            Engine::Firefox => firefox_capabilities(screen.dark),
        };
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": capabilities } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        let browser = Browser {
            session: format!("{base}/session/{session}"),
            http,
            _driver: driver,
            _profile: profile,
        };
        browser
            .call(
                reqwest::Method::POST,
                "/window/rect",
                json!({ "width": screen.width, "height": screen.height }),
            )
            .await;
        if engine == Engine::Chromium && screen.dark {
            browser
                .call(
                    reqwest::Method::POST,
                    "/goog/cdp/execute",
                    json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                        "features": [{ "name": "prefers-color-scheme", "value": "dark" }]
                    }}),
                )
                .await;
        }
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn refresh(&self) {
        self.call(reqwest::Method::POST, "/refresh", json!({}))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its result.
    pub async fn run_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Polls `expression` (JavaScript) until it is true; fails the test after the deadline,
    /// saying `what` and the page's status line.
    pub async fn until(&self, what: &str, expression: &str) {
        let until = tokio::time::Instant::now() + DEADLINE;
        let script = format!("return Boolean({expression});");
        loop {
            if self.run(&script, json!([])).await == true {
                return;
            }
            if tokio::time::Instant::now() >= until {
                let seen = self
                    .run(
                        "return [document.getElementById('connection').textContent, document.getElementById('notice').textContent];",
                        json!([]),
                    )
                    .await;
                panic!("timed out waiting for {what}; the page says {seen}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// A real click (pointer events) on the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Clicks the element matching `css`, then waits until `expression` holds (see
    /// [`Browser::until`]).
    pub async fn click_until(&self, css: &str, what: &str, expression: &str) {
        self.click(css).await;
        self.until(what, expression).await;
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/text"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }

    /// Ends the session (the browser exits), then the driver.
    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
