//! MediaMTX over its v3 control API (`/v3/config/paths/*`, `/v3/info`).
//!
//! Invariants (SERVERS.md):
//! - One call at a time per server: every write makes MediaMTX re-evaluate its whole
//!   configuration, and concurrency gains nothing.
//! - Write only what changed. Any write that changes a path drops its readers, so `upsert` reads
//!   the path first: nothing differs → no call; only `record*` fields differ → `patch` with
//!   just those (they change in place); anything else → `replace` with the whole desired config
//!   (fields not sent revert to MediaMTX's defaults, which is what camsync wants). Durations are
//!   compared as durations: MediaMTX answers `30m` as `30m0s`.
//! - A path the last list did not show is created with one `add`; MediaMTX refuses an existing
//!   one (400 `path already exists`), and then the path is written as `upsert` does.
//! - Both body formats are accepted: `{"status":"ok"}` or empty on success, and
//!   `{"status":"error","error":…}` or `{"error":…}` on failure; the error text is surfaced.
//! - `/v3/info.started` changes when MediaMTX restarts; a reload of its YAML file keeps it but
//!   discards every API-made path, which the canary of [`Target::run_check`] notices.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::rules::is_duration_field;
use crate::camera::Camera;
use crate::config::TargetConfig;
use crate::http_body::detail;
use crate::target::http::ApiClient;
use crate::target::{Applied, BoxFuture, RunCheck, StreamObservation, Target, TargetError};

/// Paths per page when listing: the API's maximum is not documented; 1,000 keeps a page of a
/// large site around 2 MB.
const PAGE_SIZE: usize = 1000;
/// Up to this many paths are checked one GET each; more, with one paged list.
const ONE_BY_ONE: usize = 8;
/// MediaMTX's answer (400) to an `add` of a path it has.
const ALREADY_EXISTS: &str = "path already exists";

pub struct Mediamtx {
    api: ApiClient,
    serial: Mutex<()>,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(rename = "pageCount")]
    page_count: usize,
    items: Vec<T>,
}

#[derive(Deserialize)]
struct PathItem {
    name: String,
}

/// One item of `/v3/paths/list` (fields as in MediaMTX v1.16; tolerant of missing ones).
#[derive(Deserialize)]
struct RuntimePath {
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default, rename = "bytesReceived")]
    bytes_received: u64,
    #[serde(default)]
    readers: Vec<Value>,
}

#[derive(Deserialize)]
struct Info {
    started: Option<String>,
}

impl Mediamtx {
    pub fn new(config: &TargetConfig) -> Result<Mediamtx, TargetError> {
        Ok(Mediamtx {
            api: ApiClient::new(config)?,
            serial: Mutex::new(()),
        })
    }

    /// The path config camsync wants for `camera`: its first source and its resolved fields.
    fn desired(camera: &Camera) -> Map<String, Value> {
        let mut body = camera.mediamtx.clone();
        let source = camera
            .sources
            .first()
            .map(|s| s.expose())
            .unwrap_or_default();
        body.insert("source".into(), Value::String(source));
        body
    }

    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> Result<(StatusCode, String), TargetError> {
        let mut request = self.api.request(op, method, path)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        self.api.send(op, request).await
    }

    /// Maps a write's answer: success bodies are `{"status":"ok"}` or empty.
    fn check_write(&self, op: &str, status: StatusCode, body: &str) -> Result<(), TargetError> {
        match status {
            StatusCode::OK => Ok(()),
            StatusCode::BAD_REQUEST => Err(self.api.rejected(op, error_text(body))),
            _ => Err(self.api.unexpected(op, status, error_text(body))),
        }
    }

    /// Every item of a paged list endpoint (`…/list?page=P&itemsPerPage=K`).
    async fn all_pages<T: DeserializeOwned>(
        &self,
        op: &str,
        path: &str,
    ) -> Result<Vec<T>, TargetError> {
        let _serial = self.serial.lock().await;
        let mut items = Vec::new();
        let mut page = 0;
        loop {
            let query = [
                ("page", page.to_string()),
                ("itemsPerPage", PAGE_SIZE.to_string()),
            ];
            let request = self.api.request(op, Method::GET, path)?.query(&query);
            let (status, body) = self.api.send(op, request).await?;
            if status != StatusCode::OK {
                return Err(self.api.unexpected(op, status, error_text(&body)));
            }
            let list: Page<T> = serde_json::from_str(&body)
                .map_err(|e| self.api.protocol(op, format!("not a paged list: {e}")))?;
            items.extend(list.items);
            page += 1;
            if page >= list.page_count {
                return Ok(items);
            }
        }
    }

    async fn list_names(&self) -> Result<BTreeSet<String>, TargetError> {
        let items: Vec<PathItem> = self.all_pages("list paths", "v3/config/paths/list").await?;
        Ok(items.into_iter().map(|i| i.name).collect())
    }

    async fn observe_paths(&self) -> Result<BTreeMap<String, StreamObservation>, TargetError> {
        let items: Vec<RuntimePath> = self.all_pages("list path states", "v3/paths/list").await?;
        Ok(items
            .into_iter()
            .map(|p| {
                let status = StreamObservation {
                    ready: p.ready,
                    bytes_in: p.bytes_received,
                    consumers: p.readers.len(),
                };
                (p.name, status)
            })
            .collect())
    }

    async fn current(
        &self,
        op: &str,
        name: &str,
    ) -> Result<Option<Map<String, Value>>, TargetError> {
        match self
            .call(
                op,
                Method::GET,
                &format!("v3/config/paths/get/{name}"),
                None,
            )
            .await?
        {
            (StatusCode::OK, body) => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| self.api.protocol(op, format!("not a path config: {e}"))),
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(self.api.unexpected(op, status, error_text(&body))),
        }
    }

    /// Whether the server's configuration of path `name` is `want` (the fields given, as
    /// MediaMTX normalises them), or has no such path for `None`.
    async fn holds(
        &self,
        name: &str,
        want: Option<&Map<String, Value>>,
    ) -> Result<bool, TargetError> {
        let current = self.current(&format!("check path {name:?}"), name).await?;
        Ok(is_as_wanted(want, current.as_ref()))
    }

    /// Whether the server holds every `expected` path (its fields given, as MediaMTX
    /// normalises them; `None`: no such path). Many paths are checked with one paged list
    /// of their configurations, a few with one GET each.
    pub(crate) async fn holds_all(
        &self,
        expected: &BTreeMap<String, Option<Map<String, Value>>>,
    ) -> Result<bool, TargetError> {
        if expected.len() <= ONE_BY_ONE {
            for (name, want) in expected {
                if !self.holds(name, want.as_ref()).await? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let listed: Vec<Map<String, Value>> = self
            .all_pages("check paths", "v3/config/paths/list")
            .await?;
        let current: BTreeMap<&str, &Map<String, Value>> = listed
            .iter()
            .filter_map(|config| Some((config.get("name")?.as_str()?, config)))
            .collect();
        Ok(expected
            .iter()
            .all(|(name, want)| is_as_wanted(want.as_ref(), current.get(name.as_str()).copied())))
    }

    async fn upsert_path(&self, camera: &Camera) -> Result<Applied, TargetError> {
        let name = &camera.name;
        let op = format!("write path {name:?}");
        let desired = Self::desired(camera);
        let _serial = self.serial.lock().await;
        let changed = self
            .current(&op, name)
            .await?
            .map(|current| changed_fields(&desired, &current));
        let (path, body) = match &changed {
            Some(fields) if fields.is_empty() => return Ok(Applied::Done),
            Some(fields) if fields.keys().all(|k| k.starts_with("record")) => {
                (format!("v3/config/paths/patch/{name}"), fields)
            }
            _ => (format!("v3/config/paths/replace/{name}"), &desired),
        };
        let method = if path.contains("/patch/") {
            Method::PATCH
        } else {
            Method::POST
        };
        let (status, text) = self.call(&op, method, &path, Some(body)).await?;
        self.check_write(&op, status, &text)?;
        Ok(Applied::Done)
    }

    async fn create_path(&self, camera: &Camera) -> Result<Applied, TargetError> {
        let name = &camera.name;
        let op = format!("add path {name:?}");
        let (status, text) = {
            let _serial = self.serial.lock().await;
            let path = format!("v3/config/paths/add/{name}");
            self.call(&op, Method::POST, &path, Some(&Self::desired(camera)))
                .await?
        };
        if status == StatusCode::BAD_REQUEST && error_text(&text) == ALREADY_EXISTS {
            return self.upsert_path(camera).await;
        }
        self.check_write(&op, status, &text)?;
        Ok(Applied::Done)
    }

    async fn delete_path(&self, name: &str) -> Result<Applied, TargetError> {
        let op = format!("delete path {name:?}");
        let _serial = self.serial.lock().await;
        match self
            .call(
                &op,
                Method::DELETE,
                &format!("v3/config/paths/delete/{name}"),
                None,
            )
            .await?
        {
            // Already gone is what a delete wants.
            (StatusCode::NOT_FOUND, _) => Ok(Applied::Done),
            (status, body) => self.check_write(&op, status, &body).map(|()| Applied::Done),
        }
    }

    async fn check_run(&self, canary: Option<&str>) -> Result<RunCheck, TargetError> {
        let op = "check for a restart";
        let (status, body) = {
            let _serial = self.serial.lock().await;
            self.call(op, Method::GET, "v3/info", None).await?
        };
        if status != StatusCode::OK {
            return Err(self.api.unexpected(op, status, error_text(&body)));
        }
        let info: Info = serde_json::from_str(&body)
            .map_err(|e| self.api.protocol(op, format!("not server info: {e}")))?;
        let canary_missing = match canary {
            None => false,
            Some(name) => {
                let _serial = self.serial.lock().await;
                self.current(op, name).await?.is_none()
            }
        };
        Ok(RunCheck {
            epoch: info.started,
            canary_missing,
        })
    }
}

/// The desired fields whose value differs from the server's.
/// Whether a path's `current` configuration is `want` (`None`: the path must not exist).
fn is_as_wanted(want: Option<&Map<String, Value>>, current: Option<&Map<String, Value>>) -> bool {
    match (want, current) {
        (Some(want), Some(current)) => changed_fields(want, current).is_empty(),
        (None, None) => true,
        _ => false,
    }
}

fn changed_fields(
    desired: &Map<String, Value>,
    current: &Map<String, Value>,
) -> Map<String, Value> {
    desired
        .iter()
        .filter(|(key, want)| {
            !current
                .get(*key)
                .is_some_and(|have| same_value(key, want, have))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn same_value(key: &str, want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::String(a), Value::String(b)) if is_duration_field(key) => {
            match (humantime::parse_duration(a), humantime::parse_duration(b)) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            }
        }
        _ => want == have,
    }
}

/// MediaMTX's error text from either body format, or the raw text.
fn error_text(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => detail(&e.error),
        Err(_) => detail(body),
    }
}

impl Target for Mediamtx {
    fn name(&self) -> &str {
        &self.api.target
    }

    fn render(&self, camera: &Camera) -> String {
        Value::Object(Self::desired(camera)).to_string()
    }

    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        Box::pin(self.list_names())
    }

    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        Box::pin(self.observe_paths())
    }

    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.upsert_path(camera))
    }

    fn create<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.create_path(camera))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(self.delete_path(name))
    }

    fn run_check<'a>(
        &'a self,
        canary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        Box::pin(self.check_run(canary))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn only_fields_that_really_differ_are_changes() {
        let current = map(json!({
            "source": "rtsp://h/x", "sourceOnDemand": true, "sourceOnDemandCloseAfter": "5m0s",
            "recordSegmentDuration": "30m0s", "recordDeleteAfter": "1d", "maxReaders": 0
        }));
        let same = map(
            json!({"source": "rtsp://h/x", "sourceOnDemandCloseAfter": "300s", "recordSegmentDuration": "30m"}),
        );
        assert!(changed_fields(&same, &current).is_empty());
        let record_only = map(json!({"source": "rtsp://h/x", "recordDeleteAfter": "7d"}));
        assert_eq!(
            changed_fields(&record_only, &current),
            map(json!({"recordDeleteAfter": "7d"}))
        );
        let source = map(json!({"source": "rtsp://h/y", "recordDeleteAfter": "1d"}));
        assert_eq!(
            changed_fields(&source, &current),
            map(json!({"source": "rtsp://h/y"}))
        );
    }

    async fn against_the_simulator() -> (camsync_sim::mediamtx::MediamtxSim, Mediamtx) {
        use std::time::Duration;

        use crate::config::TargetKind;
        use camsync_sim::mediamtx::{MediamtxSim, MediamtxSimOptions};
        let sim = MediamtxSim::start(MediamtxSimOptions::default())
            .await
            .unwrap();
        let api = Mediamtx::new(&TargetConfig {
            name: "m".into(),
            kind: TargetKind::Mediamtx,
            api: Some(sim.api_url().parse().unwrap()),
            rtsp: None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
            path: None,
            inline_credentials: false,
            env_file: None,
            max_writes_per_minute: None,
            max_in_flight: 1,
        })
        .unwrap();
        (sim, api)
    }

    #[tokio::test]
    async fn a_new_path_costs_one_add_and_one_that_appeared_meanwhile_is_replaced() {
        let (sim, api) = against_the_simulator().await;
        let camera = Camera::example("door", "rtsp://192.0.2.1/door");
        api.create(&camera).await.unwrap();
        assert_eq!(sim.request_count(), 1, "one add");
        assert_eq!(
            sim.path_config("door").unwrap()["source"],
            "rtsp://192.0.2.1/door"
        );

        // Made by hand after camsync's last list: the add is refused, the path replaced.
        sim.add_path_by_hand("yard", json!({"source": "rtsp://192.0.2.9/other"}));
        let camera = Camera::example("yard", "rtsp://192.0.2.2/yard");
        api.create(&camera).await.unwrap();
        assert_eq!(sim.request_count(), 4, "the add, a read, the replace");
        assert_eq!(
            sim.path_config("yard").unwrap()["source"],
            "rtsp://192.0.2.2/yard"
        );
    }

    #[tokio::test]
    async fn many_paths_are_checked_with_one_list_and_any_difference_is_seen() {
        let (sim, api) = against_the_simulator().await;
        let source = |i: usize| json!({"source": format!("rtsp://127.0.0.1/{i}"), "maxReaders": 0});
        for i in 0..20 {
            sim.add_path_by_hand(&format!("p{i}"), source(i));
        }
        let mut expected: BTreeMap<String, Option<Map<String, Value>>> = (0..20)
            .map(|i| (format!("p{i}"), Some(map(source(i)))))
            .collect();
        expected.insert("gone".into(), None);
        assert!(expected.len() > ONE_BY_ONE, "the list is what is tested");
        assert!(api.holds_all(&expected).await.unwrap());

        let mut differs = expected.clone();
        differs.insert(
            "p3".into(),
            Some(map(json!({"source": "rtsp://127.0.0.1/x"}))),
        );
        assert!(!api.holds_all(&differs).await.unwrap(), "a changed field");
        let mut missing = expected.clone();
        missing.insert("p20".into(), Some(map(source(20))));
        assert!(!api.holds_all(&missing).await.unwrap(), "a path not there");
        let mut present = expected.clone();
        present.insert("p4".into(), None);
        assert!(
            !api.holds_all(&present).await.unwrap(),
            "a path that must be gone"
        );
        let few: BTreeMap<_, _> = differs
            .into_iter()
            .filter(|(name, _)| ["gone", "p3", "p5"].contains(&name.as_str()))
            .collect();
        assert!(
            !api.holds_all(&few).await.unwrap(),
            "one by one, the same answer"
        );
    }

    #[test]
    fn both_error_body_formats_are_read() {
        assert_eq!(
            error_text(r#"{"status":"error","error":"path already exists"}"#),
            "path already exists"
        );
        assert_eq!(
            error_text(r#"{"error":"json: unknown field \"x\""}"#),
            "json: unknown field \"x\""
        );
        assert_eq!(error_text("404 page not found\n"), "404 page not found");
    }
}
