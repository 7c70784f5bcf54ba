//! Parsers that take outside input, fed with arbitrary and mangled text (property tests, run in
//! CI in bounded time): the config and the inventory file never panic, and what they say back
//! never carries a raw control character that could forge a line of output.

#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::BTreeMap;
use std::path::Path;

use camsync::camera::ValidationContext;
use camsync::config::{self, TargetKind};
use camsync::profile::Profiles;
use camsync::source::{file, validate_records};
use proptest::prelude::*;

const CONFIG: &str = "source:\n  file: cameras.yaml\ntargets:\n  - name: go2rtc\n    kind: go2rtc\n    api: http://127.0.0.1:1984\n    timeout: 5s\n  - name: mediamtx\n    kind: mediamtx\n    api: http://127.0.0.1:9997\nstate: state.db\nresync: 30s\nhealth:\n  interval: 2s\nretry:\n  min: 200ms\n  max: 1m\n";

const INVENTORY: &str = "cameras:\n  - name: front\n    url: rtsp://192.0.2.1:554/Streaming/Channels/101?channel=1&subtype=0\n    username: admin\n    password: \"p@ss:w/rd\"\n    profile: recording\n    targets: [go2rtc]\n  - name: \"site/back\"\n    urls: [rtsp://192.0.2.2/a, rtsp://192.0.2.2/b]\n    mediamtx: {maxReaders: 3}\n  - {name: garage, url: rtsp://192.0.2.3/x, enabled: false}\n";

/// A text with one of: a cut at any byte, an inserted byte, a replaced byte.
fn mangled(base: &'static str) -> impl Strategy<Value = String> {
    let len = base.len();
    (0..=len, any::<u8>(), 0..3u8).prop_map(move |(at, byte, how)| {
        let mut bytes = base.as_bytes().to_vec();
        match how {
            0 => bytes.truncate(at),
            1 => bytes.insert(at, byte),
            _ if at < len => bytes[at] = byte,
            _ => {}
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn no_forged_lines(said: &str) {
    assert!(
        !said.contains(['\r', '\u{1b}', '\u{0}']),
        "a raw control character in: {said:?}"
    );
}

fn parse_inventory(text: &str) {
    let targets: BTreeMap<String, TargetKind> = [
        ("go2rtc".to_string(), TargetKind::Go2rtc),
        ("mediamtx".to_string(), TargetKind::Mediamtx),
    ]
    .into();
    let profiles = Profiles::builtin();
    let ctx = ValidationContext::new(Path::new("/nonexistent"), &targets, &profiles, &|_| None);
    match file::parse(text, Path::new("cameras.yaml"), &mut Default::default())
        .map(|records| validate_records(records, &ctx))
    {
        Ok(inventory) => {
            for r in &inventory.rejected {
                no_forged_lines(&r.reason);
                no_forged_lines(&r.location);
            }
        }
        Err(e) => no_forged_lines(&e.to_string()),
    }
}

fn parse_config(text: &str) {
    match config::parse(text, Path::new("/nonexistent/camsync.yaml"), &|_| None) {
        Ok(_) => {}
        Err(e) => no_forged_lines(&e.to_string()),
    }
}

proptest! {
    #![proptest_config(crate::test_support::cases(512))]

    #[test]
    fn a_mangled_inventory_is_read_or_refused_never_a_panic(text in mangled(INVENTORY)) {
        parse_inventory(&text);
    }

    #[test]
    fn a_mangled_config_is_read_or_refused_never_a_panic(text in mangled(CONFIG)) {
        parse_config(&text);
    }

    #[test]
    fn any_text_as_inventory_or_config_never_panics(text in any::<String>()) {
        parse_inventory(&text);
        parse_config(&text);
    }

    #[test]
    fn yaml_shaped_noise_never_panics(
        text in "(cameras:|targets:|source:| |-|\\n|:|\\{|\\}|\\[|\\]|,|&a|\\*a|!!str|\"|'|#|name|url|[a-z0-9]{1,4}|\\r|\\t|\u{1b}){0,60}"
    ) {
        parse_inventory(&text);
        parse_config(&text);
    }
}

/// A server that answers every request with the body and status set last.
struct Hostile {
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl Hostile {
    fn start() -> Hostile {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answer = std::sync::Arc::new(std::sync::Mutex::new((200, String::new())));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = answer.clone();
        let app = axum::Router::new().fallback(move || {
            let (status, body) = shared.lock().unwrap().clone();
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        Hostile {
            answer,
            url,
            runtime,
        }
    }

    /// Every read a target makes, against the answer `(status, body)`; none may panic.
    fn read_with(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
        for kind in ["go2rtc", "mediamtx"] {
            let text = format!(
                "source:\n  file: cameras.yaml\ntargets:\n  - name: t\n    kind: {kind}\n    api: {}\n    timeout: 5s\n",
                self.url
            );
            let config =
                config::parse(&text, Path::new("/nonexistent/camsync.yaml"), &|_| None).unwrap();
            let target = camsync::target::from_config(&config.targets)
                .unwrap()
                .remove(0);
            self.runtime.block_on(async {
                for said in [
                    target.list().await.err(),
                    target.observe().await.err(),
                    target.run_check(Some("cam")).await.err(),
                ]
                .into_iter()
                .flatten()
                {
                    no_forged_lines(&said.to_string());
                }
            });
        }
    }
}

proptest! {
    #![proptest_config(crate::test_support::cases(64))]

    /// A server answering anything (JSON-shaped or not, any status) is an error or a
    /// listing, never a panic, and its words reach camsync's messages escaped.
    #[test]
    fn any_server_answer_is_read_or_refused_never_a_panic(
        status in prop_oneof![Just(200u16), Just(404), Just(500), 100u16..600],
        body in prop_oneof![
            any::<String>(),
            "\\{(\"[a-z\\r\u{1b}]{0,5}\": ?(null|\\{\\}|\\[\\]|[0-9]{1,3}|\"[ -~\\r\\n]{0,8}\"|\\{\"items\": ?\\[\\{\"name\": ?\"x\"\\}\\]\\}),? ?){0,4}\\}",
        ],
    ) {
        prop_assume!(status >= 200 || status == 100);
        HOSTILE.with(|h| h.read_with(status, &body));
    }
}

thread_local! {
    static HOSTILE: Hostile = Hostile::start();
}
