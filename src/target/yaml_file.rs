//! A server's YAML file as a target (`go2rtc-file`, `mediamtx-file`): what the two have in
//! common. How each server's entries look, and what else its file needs, is in its own folder
//! ([`super::go2rtc::file`], [`super::mediamtx::file`]).
//!
//! Invariants:
//! - Only entries camsync owns under `streams:` (go2rtc, plus `preload:` for preloaded streams)
//!   or `paths:` (MediaMTX) are touched; every other byte of the file stays as it was
//!   ([`camsync_formats::yaml_edit`]).
//! - A sync's changes are applied in memory, the new text is parsed back and checked to hold
//!   exactly the intended entries, and only then written, atomically ([`crate::atomic_file`]),
//!   in one write whatever the number of changes. Unchanged text is not written: MediaMTX
//!   reloads, and drops API-made paths and readers, on every change of its file.
//! - Writes to a MediaMTX file are at least [`mediamtx::QUIET`] after its last change
//!   (ours or anyone's): it ignores, for good, a change within 1 s of the one it last loaded.
//!   Changes that arrive meanwhile queue up and go out together in the next write. With
//!   `api:`, every write (and every sync with changes whose file text was already right) is
//!   checked through the API, and the file replaced again if MediaMTX did not load it.
//! - With `api:`, the server is observed through its API (stream status for the health
//!   monitor), and a MediaMTX path the server lost is re-created through the API exactly as the
//!   file has it, so a later reload leaves the identical path alone. go2rtc is only observed:
//!   a write through its API would patch its file with the credentials expanded.
//! - No password in clear unless the config says so. go2rtc expands `${VAR}` when it loads its
//!   file, so its sources get `${CAMSYNC_<CAMERA>_PASSWORD}` references, and the values go to
//!   `env_file` (0600) for the server's environment. MediaMTX cannot expand references: a camera
//!   with a password fails on a `mediamtx-file` target unless `inline_credentials: true`, and
//!   then the file is kept at mode 0600.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::go2rtc::file as go2rtc;
use super::mediamtx::Mediamtx;
use super::mediamtx::file as mediamtx;
use super::{
    Applied, BatchTarget, BoxFuture, Change, Preview, RunCheck, StreamObservation, Target,
    TargetError,
};
use crate::atomic_file::{self, WriteOutcome};
use crate::bounded_read;
use crate::camera::Camera;
use crate::config::{TargetConfig, TargetKind};
use camsync_formats::yaml_edit::{Change as EditChange, Document};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Go2rtc,
    Mediamtx,
}

impl Flavor {
    fn section(self) -> &'static str {
        match self {
            Flavor::Go2rtc => "streams",
            Flavor::Mediamtx => "paths",
        }
    }
}

pub struct YamlFile {
    name: String,
    flavor: Flavor,
    path: PathBuf,
    inline_credentials: bool,
    env_file: Option<PathBuf>,
    /// Serializes writes, and remembers the last one (MediaMTX's quiet second).
    last_write: Mutex<Option<Instant>>,
    /// The same server's API, when configured: observed; MediaMTX's also recovers paths and
    /// checks that a written file was loaded.
    observer: Option<Observer>,
}

enum Observer {
    Go2rtc(super::go2rtc::Go2rtc),
    Mediamtx(Mediamtx),
}

impl Observer {
    fn target(&self) -> &dyn Target {
        match self {
            Observer::Go2rtc(api) => api,
            Observer::Mediamtx(api) => api,
        }
    }
}

/// One camera as the file will hold it.
struct Entry {
    value: Value,
    /// The value of its password's `${VAR}` reference (go2rtc), if it has one.
    password: Option<String>,
    preload: bool,
}

impl YamlFile {
    pub fn new(config: &TargetConfig) -> Result<YamlFile, TargetError> {
        let flavor = match config.kind {
            TargetKind::Go2rtcFile => Flavor::Go2rtc,
            TargetKind::MediamtxFile => Flavor::Mediamtx,
            _ => {
                return Err(TargetError::Config {
                    target: config.name.clone(),
                    reason: "not a file kind (go2rtc-file or mediamtx-file)",
                });
            }
        };
        let path = config.path.clone().ok_or_else(|| TargetError::Config {
            target: config.name.clone(),
            reason: "no `path` configured",
        })?;
        let observer = match (&config.api, flavor) {
            (None, _) => None,
            (Some(_), Flavor::Go2rtc) => {
                Some(Observer::Go2rtc(super::go2rtc::Go2rtc::new(config)?))
            }
            (Some(_), Flavor::Mediamtx) => Some(Observer::Mediamtx(Mediamtx::new(config)?)),
        };
        Ok(YamlFile {
            name: config.name.clone(),
            flavor,
            path,
            inline_credentials: config.inline_credentials,
            env_file: config.env_file.clone(),
            last_write: Mutex::new(None),
            observer,
        })
    }

    fn file_error(&self, detail: impl std::fmt::Display) -> TargetError {
        TargetError::File {
            target: self.name.clone(),
            detail: detail.to_string(),
        }
    }

    fn file_access(
        &self,
        what: impl std::fmt::Display,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> TargetError {
        TargetError::FileAccess {
            target: self.name.clone(),
            what: what.to_string(),
            source: source.into(),
        }
    }

    fn write_error(&self, source: atomic_file::AtomicWriteError) -> TargetError {
        TargetError::Write {
            target: self.name.clone(),
            source,
        }
    }

    fn read(&self) -> Result<String, TargetError> {
        bounded_read::read_target_file(&self.path)
            .map_err(|e| self.file_access(format_args!("cannot read {}", self.path.display()), e))
    }

    fn document(&self, text: &str) -> Result<Document, TargetError> {
        Document::parse(text).map_err(|e| self.file_access(self.path.display(), e))
    }

    /// The entry for `camera`, or why this file cannot hold it.
    fn entry(&self, camera: &Camera) -> Result<Entry, String> {
        Ok(match self.flavor {
            Flavor::Go2rtc => {
                let (value, password) = go2rtc::entry(camera, self.inline_credentials);
                Entry {
                    value,
                    password,
                    preload: camera.preload,
                }
            }
            Flavor::Mediamtx => Entry {
                value: mediamtx::entry(camera, self.inline_credentials, &self.name)?,
                password: None,
                preload: false,
            },
        })
    }

    /// Applies `changes` to the text in memory: the new text, one result per change, and the
    /// env updates.
    fn edit(&self, text: &str, changes: &[Change<'_>]) -> Result<Edited, TargetError> {
        let mut doc = self.document(text)?;
        let mut edited = Edited::default();
        // The entries first: a camera this file cannot hold fails on its own.
        let mut values: Vec<(&str, Option<Value>)> = Vec::new();
        let mut preloads: Vec<(&str, bool)> = Vec::new();
        for change in changes {
            let result = match change {
                Change::Upsert(camera) => self.entry(camera).map(|entry| {
                    if self.flavor == Flavor::Go2rtc {
                        let var = go2rtc::env_var_name(&camera.name);
                        edited.env.insert(var, entry.password);
                        preloads.push((&camera.name, entry.preload));
                    }
                    edited
                        .expected
                        .insert(camera.name.clone(), Some(entry.value.clone()));
                    values.push((&camera.name, Some(entry.value)));
                }),
                Change::Delete(name) => {
                    if self.flavor == Flavor::Go2rtc {
                        edited.env.insert(go2rtc::env_var_name(name), None);
                        preloads.push((name, false));
                    }
                    edited.expected.insert((*name).to_owned(), None);
                    values.push((name, None));
                    Ok(())
                }
            };
            let name = match change {
                Change::Upsert(camera) => camera.name.as_str(),
                Change::Delete(name) => name,
            };
            edited.results.push(
                result
                    .map(|()| Applied::Done)
                    .map_err(|reason| self.rejected(name, reason)),
            );
        }
        // Then one edit per section, checked once: linear in the number of changes.
        let edits: Vec<EditChange<'_>> = values
            .iter()
            .map(|(name, value)| match value {
                Some(value) => EditChange::Upsert(name, value),
                None => EditChange::Remove(name),
            })
            .collect();
        let edit_error = |e| {
            self.file_access(
                format_args!("cannot edit {} (nothing was written)", self.path.display()),
                e,
            )
        };
        doc.apply(self.flavor.section(), &edits)
            .map_err(edit_error)?;
        go2rtc::edit_preloads(&mut doc, &preloads).map_err(edit_error)?;
        edited.text = doc.text().to_owned();
        Ok(edited)
    }

    fn rejected(&self, name: &str, detail: String) -> TargetError {
        TargetError::Rejected {
            target: self.name.clone(),
            op: format!("write {name:?} to {}", self.path.display()),
            detail,
        }
    }

    /// Parses `text` back and checks the section holds exactly what was intended.
    fn verify(&self, edited: &Edited) -> Result<(), TargetError> {
        let parsed: Value = if edited.text.trim().is_empty() {
            Value::Null
        } else {
            camsync_formats::yaml::from_str(&edited.text).map_err(|e| {
                self.file_access(
                    format_args!(
                        "the edited {} does not parse (nothing was written)",
                        self.path.display()
                    ),
                    e,
                )
            })?
        };
        let section = parsed.get(self.flavor.section());
        for (name, want) in &edited.expected {
            let have = section.and_then(|s| s.get(name));
            if have != want.as_ref() {
                return Err(self.file_error(format!(
                    "the edited {} does not hold the intended entry {name:?}; nothing was written",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }

    async fn write_changes(
        &self,
        changes: &[Change<'_>],
    ) -> Result<Vec<Result<Applied, TargetError>>, TargetError> {
        let mut last_write = self.last_write.lock().await;
        if self.flavor == Flavor::Mediamtx && !changes.is_empty() {
            // Waited before reading, so what changed meanwhile goes out in this write.
            mediamtx::quiet(&self.path, *last_write).await;
        }
        let old = self.read()?;
        let edited = self.edit(&old, changes)?;
        self.verify(&edited)?;
        // The file never references a variable the env file does not hold: new and changed
        // passwords go in before the file that uses them, removed ones after it stops using them.
        let (set, unset): (BTreeMap<_, _>, BTreeMap<_, _>) = edited
            .env
            .clone()
            .into_iter()
            .partition(|(_, v)| v.is_some());
        self.update_env(&set)?;
        if edited.text != old {
            let write = if self.inline_credentials {
                atomic_file::write_private(&self.path, edited.text.as_bytes())
            } else {
                atomic_file::write(&self.path, edited.text.as_bytes())
            };
            if write.map_err(|e| self.write_error(e))? == WriteOutcome::Written {
                *last_write = Some(Instant::now());
            }
        }
        if let Some(Observer::Mediamtx(api)) = &self.observer
            && !changes.is_empty()
        {
            let written = mediamtx::Written {
                target: &self.name,
                path: &self.path,
                text: &edited.text,
                private: self.inline_credentials,
                expected: &edited.expected,
            };
            mediamtx::confirm_loaded(api, &written, &mut last_write)
                .await
                .map_err(|e| self.file_error(e))?;
        }
        self.update_env(&unset)?;
        Ok(edited.results)
    }

    fn update_env(&self, updates: &BTreeMap<String, Option<String>>) -> Result<(), TargetError> {
        match &self.env_file {
            Some(env_file) => go2rtc::update_env_file(env_file, updates).map_err(|e| {
                self.file_access(
                    format_args!("cannot update the env file {}", env_file.display()),
                    e,
                )
            }),
            None => Ok(()),
        }
    }

    fn names(&self) -> Result<BTreeSet<String>, TargetError> {
        let text = self.read()?;
        Ok(self
            .document(&text)?
            .keys(self.flavor.section())
            .into_iter()
            .collect())
    }
}

#[derive(Default)]
struct Edited {
    text: String,
    results: Vec<Result<Applied, TargetError>>,
    /// Each touched entry: its value, or `None` for removed.
    expected: BTreeMap<String, Option<Value>>,
    /// Env variables to set (`Some`) or remove (`None`).
    env: BTreeMap<String, Option<String>>,
}

impl Target for YamlFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn render(&self, camera: &Camera) -> String {
        // The exposed sources are part of it so that a changed password (which only changes
        // the env file for go2rtc) still counts as a change.
        let sources: Vec<String> = camera.sources.iter().map(|s| s.expose()).collect();
        let entry = self.entry(camera).map(|e| (e.value, e.preload)).ok();
        serde_json::json!({ "entry": entry, "sources": sources }).to_string()
    }

    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        Box::pin(async { self.names() })
    }

    /// The server's own view through its API when configured; otherwise a file says nothing
    /// of whether a stream flows: every entry, with no signal.
    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        Box::pin(async {
            if let Some(observer) = &self.observer {
                return observer.target().observe().await;
            }
            let names = self.names()?;
            Ok(names
                .into_iter()
                .map(|n| (n, StreamObservation::default()))
                .collect())
        })
    }

    fn can_recover(&self) -> bool {
        matches!(self.observer, Some(Observer::Mediamtx(_)))
    }

    fn observes(&self) -> bool {
        self.observer.is_some()
    }

    /// Through the server's API, never the file: rewriting the file would make MediaMTX reload
    /// every path. Only MediaMTX, and only when `api:` is configured.
    fn recover<'a>(
        &'a self,
        camera: &'a Camera,
        restart: bool,
    ) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move {
            match &self.observer {
                Some(Observer::Mediamtx(api)) => {
                    // The API path must be exactly what the file says, or a reload would replace it.
                    self.entry(camera).map_err(|reason| self.rejected(&camera.name, reason))?;
                    api.recover(camera, restart).await
                }
                Some(Observer::Go2rtc(_)) => Err(self.rejected(
                    &camera.name,
                    "go2rtc-file streams are not recovered through go2rtc's API, which would write the \
                     expanded credentials into its file; restart go2rtc, or use a go2rtc API target"
                        .into(),
                )),
                None => Err(self.rejected(
                    &camera.name,
                    "set the target's `api:` to let camsync recover streams through the server's API".into(),
                )),
            }
        })
    }

    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move { single(self.write_changes(&[Change::Upsert(camera)]).await) })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        Box::pin(async move { single(self.write_changes(&[Change::Delete(name)]).await) })
    }

    /// The file holds the truth: if camsync's canary entry is gone, someone edited it away.
    fn run_check<'a>(
        &'a self,
        canary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        Box::pin(async move {
            let canary_missing = match canary {
                Some(name) => !self.names()?.contains(name),
                None => false,
            };
            Ok(RunCheck {
                epoch: None,
                canary_missing,
            })
        })
    }

    fn as_batch(&self) -> Option<&dyn BatchTarget> {
        Some(self)
    }
}

impl BatchTarget for YamlFile {
    fn preview<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Preview, TargetError>> {
        Box::pin(async move {
            let before = self.read()?;
            let edited = self.edit(&before, changes)?;
            self.verify(&edited)?;
            Ok(Preview {
                path: self.path.clone(),
                before,
                after: edited.text,
            })
        })
    }

    fn write_batch<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Vec<Result<Applied, TargetError>>, TargetError>> {
        Box::pin(self.write_changes(changes))
    }
}

fn single(
    results: Result<Vec<Result<Applied, TargetError>>, TargetError>,
) -> Result<Applied, TargetError> {
    results?.pop().unwrap_or(Ok(Applied::Done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKind;

    fn target(kind: TargetKind, api: Option<&str>) -> YamlFile {
        let config = TargetConfig {
            name: "file".into(),
            kind,
            api: api.map(|a| a.parse().expect("a test URL")),
            rtsp: None,
            username: None,
            password: None,
            timeout: std::time::Duration::from_secs(1),
            path: Some("/nonexistent/server.yaml".into()),
            inline_credentials: true,
            env_file: None,
            max_writes_per_minute: None,
            max_in_flight: 1,
        };
        YamlFile::new(&config).expect("a valid file target")
    }

    #[test]
    fn only_with_the_servers_api_can_a_file_target_check_what_was_loaded() {
        let api = Some("http://127.0.0.1:9997");
        for (kind, api, observes, recovers) in [
            (TargetKind::MediamtxFile, None, false, false),
            (TargetKind::MediamtxFile, api, true, true),
            (TargetKind::Go2rtcFile, None, false, false),
            // Not re-added through go2rtc's API: a PUT would rewrite the file camsync edits.
            (TargetKind::Go2rtcFile, api, true, false),
        ] {
            let t = target(kind, api);
            assert_eq!(
                (t.observes(), t.can_recover()),
                (observes, recovers),
                "{kind:?} {api:?}"
            );
        }
    }
}
