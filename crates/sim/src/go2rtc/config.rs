//! go2rtc's YAML file: where it lives (simulated in memory or a real file), how a process loads
//! it (`streams:` and `preload:`, after go2rtc's textual `${VAR}` expansion) and how API writes
//! persist to it, entry by entry, as go2rtc's `app.PatchConfig` does. A real file is read only at
//! a load and edited in place, every other byte kept; nothing here watches it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use camsync_formats::yaml_edit::{Change, Document};
use serde_json::Value;

use super::{Env, State, Streams};

/// Where go2rtc says its simulated config lives (`GET /api`), and the path in its file errors.
const CONFIG_PATH: &str = "/config/go2rtc.yaml";

/// What go2rtc stores for a preload without a query (`AddPreload`).
const DEFAULT_PRELOAD: &str = "video&audio";

/// What go2rtc's YAML file holds (or a process loaded from it).
#[derive(Clone, Default)]
pub(super) struct ConfigFile {
    pub(super) streams: Streams,
    /// Stream name → preload query.
    pub(super) preloads: BTreeMap<String, String>,
    /// Values that `${VAR}` references were replaced with: go2rtc shows them as `***`.
    pub(super) secrets: Vec<String>,
}

/// Where go2rtc's YAML file lives.
pub(super) enum ConfigStore {
    /// In memory only.
    Simulated(ConfigFile),
    /// A real file.
    Disk(PathBuf),
}

impl ConfigStore {
    /// The path go2rtc reports (`GET /api`) and names in its errors.
    pub(super) fn path(&self) -> String {
        match self {
            ConfigStore::Simulated(_) => CONFIG_PATH.to_owned(),
            ConfigStore::Disk(path) => path.display().to_string(),
        }
    }

    /// The file's streams and preloads; a real file's `${VAR}`s expanded from `env` if given,
    /// as written otherwise.
    pub(super) fn read(&self, env: Option<&Env>) -> ConfigFile {
        match self {
            ConfigStore::Simulated(file) => file.clone(),
            ConfigStore::Disk(path) => read_config(path, env),
        }
    }

    /// Sets or removes one entry, as go2rtc's `app.PatchConfig` does.
    fn patch(&mut self, edit: &FileEdit<'_>) -> Result<(), String> {
        match self {
            ConfigStore::Simulated(file) => {
                edit.apply(file);
                Ok(())
            }
            ConfigStore::Disk(path) => patch_config(path, edit),
        }
    }
}

/// One entry of the YAML file to set (`Some`) or remove (`None`).
pub(super) enum FileEdit<'a> {
    Stream(&'a str, Option<&'a [String]>),
    Preload(&'a str, Option<&'a str>),
}

impl FileEdit<'_> {
    fn apply(&self, file: &mut ConfigFile) {
        match *self {
            FileEdit::Stream(name, Some(sources)) => {
                file.streams.insert(name.to_owned(), sources.to_vec());
            }
            FileEdit::Stream(name, None) => {
                file.streams.remove(name);
            }
            FileEdit::Preload(name, Some(query)) => {
                file.preloads.insert(name.to_owned(), query.to_owned());
            }
            FileEdit::Preload(name, None) => {
                file.preloads.remove(name);
            }
        }
    }

    /// The section, the key, and the value as the file holds it (one source as a string,
    /// several as a list; `None`: removed).
    fn entry(&self) -> (&'static str, &str, Option<Value>) {
        match *self {
            FileEdit::Stream(name, sources) => {
                let value = sources.map(|sources| match sources {
                    [one] => Value::from(one.as_str()),
                    many => Value::from(many.to_vec()),
                });
                ("streams", name, value)
            }
            FileEdit::Preload(name, query) => ("preload", name, query.map(Value::from)),
        }
    }
}

impl State {
    /// Edits the file as go2rtc's `PatchConfig` does; the error is go2rtc's text (or the OS's
    /// for a real file).
    pub(super) fn patch_file(&mut self, edit: FileEdit<'_>) -> Result<(), String> {
        if !self.writable {
            return Err(format!("open {}: read-only file system", self.file.path()));
        }
        self.file.patch(&edit)
    }
}

/// Reads a real go2rtc file as go2rtc loads it: `${VAR}`s expanded first when `env` is given;
/// a file that cannot be read or parsed holds nothing (go2rtc logs a warning and goes on).
fn read_config(path: &Path, env: Option<&Env>) -> ConfigFile {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "go2rtc sim: cannot read its config");
            }
            return ConfigFile::default();
        }
    };
    let (text, secrets) = match env {
        Some(env) => expand_env(&text, env),
        None => (text, Vec::new()),
    };
    let file = parse_config(&text).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), error = %e, "go2rtc sim: config does not parse");
        ConfigFile::default()
    });
    ConfigFile { secrets, ..file }
}

/// The `streams:` and `preload:` sections of a go2rtc file.
fn parse_config(text: &str) -> Result<ConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    let doc: Value = camsync_formats::yaml::from_str(text)?;
    let section = |key: &str| {
        doc.get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    };
    let streams = section("streams")
        .map(|(name, value)| (name.clone(), sources_of(value)))
        .collect();
    let preloads = section("preload")
        .map(|(name, query)| {
            let query = query.as_str().filter(|q| !q.is_empty());
            (name.clone(), query.unwrap_or(DEFAULT_PRELOAD).to_owned())
        })
        .collect();
    Ok(ConfigFile {
        streams,
        preloads,
        secrets: Vec::new(),
    })
}

/// go2rtc's `NewStream`: a string is one source, a list several; anything else (`null`) makes
/// a stream without sources.
fn sources_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(source) => vec![source.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// go2rtc's `shell.ReplaceEnvVars`: each `${KEY}` or `${KEY:default}` (no braces inside)
/// becomes the variable's value, else the default, else stays as written. Textual: the value
/// is not quoted or escaped. Also returns the non-empty values put in (go2rtc's secrets).
fn expand_env(text: &str, env: &Env) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let (before, reference) = rest.split_at(start);
        out.push_str(before);
        let inner = &reference[2..];
        match inner.find(['{', '}']) {
            Some(end) if end > 0 && inner[end..].starts_with('}') => {
                match lookup_env(&inner[..end], env) {
                    Some(value) => {
                        out.push_str(value);
                        if !value.is_empty() {
                            secrets.push(value.to_owned());
                        }
                    }
                    None => out.push_str(&reference[..end + 3]),
                }
                rest = &inner[end + 1..];
            }
            // Not a reference: keep the `$` and look again from the next character.
            _ => {
                out.push('$');
                rest = &reference[1..];
            }
        }
    }
    out.push_str(rest);
    (out, secrets)
}

/// The value of `KEY` or `KEY:default` (a `:` at the start is part of the name).
fn lookup_env<'a>(key: &'a str, env: &'a Env) -> Option<&'a str> {
    let (name, default) = match key.find(':') {
        Some(colon) if colon > 0 => (&key[..colon], Some(&key[colon + 1..])),
        _ => (key, None),
    };
    env.get(name).map(String::as_str).or(default)
}

/// go2rtc's `app.PatchConfig` on a real file: the entry is set or removed in the file's text
/// (every other byte kept) and the text written back in place. A missing file counts as
/// empty; the error is the OS's (or why the text cannot be edited).
fn patch_config(path: &Path, edit: &FileEdit<'_>) -> Result<(), String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("open {shown}: {e}")),
    };
    let mut doc = Document::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    let (section, key, value) = edit.entry();
    let change = match &value {
        Some(value) => Change::Upsert(key, value),
        None => Change::Remove(key),
    };
    doc.apply(section, &[change])
        .map_err(|e| format!("{shown}: {e}"))?;
    std::fs::write(path, doc.text()).map_err(|e| format!("open {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_textually_like_go2rtc() {
        let env = Env::from([
            ("PASS".to_owned(), "p%40ss".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        let cases = [
            ("rtsp://admin:${PASS}@h/s", "rtsp://admin:p%40ss@h/s"),
            ("${UNSET}", "${UNSET}"),
            ("${UNSET:viewer}", "viewer"),
            ("${UNSET:a:b}", "a:b"),
            ("${PASS:other}", "p%40ss"),
            // Set but empty is set (Go's LookupEnv).
            ("${EMPTY:other}", ""),
            ("${:x} ${} $ {PASS}", "${:x} ${} $ {PASS}"),
            ("${a${PASS}}", "${ap%40ss}"),
            ("${a{b}", "${a{b}"),
            ("é${PASS}é", "ép%40ssé"),
        ];
        for (text, expanded) in cases {
            assert_eq!(expand_env(text, &env).0, expanded, "{text}");
        }
    }

    #[test]
    fn file_streams_are_strings_or_lists_and_preloads_default() {
        let file = parse_config(
            "api:\n  listen: ':1984'\nstreams:\n  one: rtsp://h/1\n  two:\n    - rtsp://h/2\n    - ffmpeg:two#audio=opus\n  none:\npreload:\n  one:\n  two: video\n",
        )
        .unwrap();
        assert_eq!(file.streams["one"], ["rtsp://h/1"]);
        assert_eq!(file.streams["two"], ["rtsp://h/2", "ffmpeg:two#audio=opus"]);
        assert!(file.streams["none"].is_empty());
        assert_eq!(file.preloads["one"], DEFAULT_PRELOAD);
        assert_eq!(file.preloads["two"], "video");
        assert!(parse_config("# nothing yet\n").unwrap().streams.is_empty());
        assert!(parse_config("streams: [").is_err());
    }
}
