//! A headless Chromium driven through ChromeDriver's W3C WebDriver protocol (a handful of JSON
//! calls over reqwest), for the status page's tests. ChromeDriver listens on 127.0.0.1 only;
//! Chromium starts with a fresh profile and its background networking off, so it talks to
//! nothing but the page under test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn chromium_args(profile: &std::path::Path, width: u32, height: u32) -> Vec<String> {
    [
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
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={width},{height}"),
    ])
    .collect()
}

impl Browser {
    /// Starts ChromeDriver (`CAMSYNC_CHROMEDRIVER`) and a session of Chromium
    /// (`CAMSYNC_CHROMIUM`, else what ChromeDriver finds) in a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_bin = std::env::var_os("CAMSYNC_CHROMEDRIVER")
            .map(PathBuf::from)
            .expect("CAMSYNC_CHROMEDRIVER names chromedriver");
        let mut driver = Command::new(&driver_bin)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        // It says which port it took ("ChromeDriver was started successfully on port N.");
        // the rest of what it prints is read and dropped.
        let stdout = driver.stdout.take().unwrap();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully")
                    && let Some(port) = line.split("on port ").nth(1)
                {
                    let _ = port_tx.send(port.trim_end_matches('.').parse::<u16>());
                }
            }
        });
        let port = tokio::task::spawn_blocking(move || port_rx.recv_timeout(DEADLINE))
            .await
            .unwrap()
            .ok()
            .and_then(Result::ok)
            .expect("chromedriver says the port it listens on");
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut options = json!({ "args": chromium_args(profile.path(), width, height) });
        if let Some(binary) = std::env::var_os("CAMSYNC_CHROMIUM") {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        Browser {
            session: format!("{base}/session/{session}"),
            http,
            driver,
            _profile: profile,
        }
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

    /// Emulates `prefers-color-scheme: dark` (through ChromeDriver's DevTools passage).
    pub async fn dark(&self) {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": "dark" }]
            }}),
        )
        .await;
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

    /// Ends the session (Chromium exits) and ChromeDriver (also killed if the test fails
    /// before this).
    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
