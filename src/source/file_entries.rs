//! Re-reading the inventory file parses only the entries that changed.
//!
//! A webhook or a file change makes camsync read the whole inventory again, and with thousands
//! of cameras parsing the YAML is most of that read. When the file has the plain layout —
//! comments, `cameras:`, then one block-sequence entry after another — each entry's text is
//! parsed on its own (as `cameras:` followed by that entry, so the parser sees it exactly as in
//! the file) and remembered; the next read parses only the entries whose text is new.
//!
//! The split is a shortcut, never a second grammar: any file it does not recognise (flow style,
//! another top-level key, tabs, document markers), any entry that does not parse alone (an
//! alias to another entry's anchor, a quoted scalar cut at an entry boundary) and any file whose
//! entries together exceed the parser's node budget is parsed whole, as before, with the whole
//! document's errors and bounds.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::camera::CameraSpec;
use camsync_formats::yaml::MAX_NODES;

/// One entry of the `cameras:` sequence: its line in the file, its value and the camera spec
/// it reads as (or why it is none).
pub struct Entry {
    pub line: u64,
    pub value: Arc<serde_json::Value>,
    pub spec: Spec,
}

/// An entry as a camera spec, shared by every read that finds the entry's text unchanged (the
/// validation of an unchanged spec is skipped too: see [`crate::camera::Validated`]).
pub type Spec = Result<Arc<CameraSpec>, String>;

impl Entry {
    pub fn new(line: u64, value: serde_json::Value) -> Entry {
        Entry {
            line,
            spec: spec_of(&value),
            value: Arc::new(value),
        }
    }
}

fn spec_of(value: &serde_json::Value) -> Spec {
    CameraSpec::deserialize(value)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The top level of an inventory document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub cameras: Vec<Spanned<serde_json::Value>>,
}

/// What the last read parsed, by each entry's text.
#[derive(Default)]
pub struct EntryCache {
    parsed: HashMap<Box<str>, Parsed>,
}

#[derive(Clone)]
struct Parsed {
    /// The value's line counted from the entry's first line (0 for `- name: …`).
    line_offset: u64,
    value: Arc<serde_json::Value>,
    spec: Spec,
    nodes: usize,
}

impl EntryCache {
    /// The entries of `text`, parsing only those not seen at the last read; `None` when the
    /// file must be parsed whole.
    pub fn entries(&mut self, text: &str) -> Option<Vec<Entry>> {
        let mut last = std::mem::take(&mut self.parsed);
        let mut entries = Vec::new();
        let mut nodes = 0usize;
        for (first_line, chunk) in split(text)? {
            let (key, parsed) = match last.remove_entry(chunk) {
                Some(known) => known,
                None => match self.parsed.get(chunk) {
                    Some(twin) => (chunk.into(), twin.clone()),
                    None => (
                        chunk.into(),
                        parse_alone(chunk, MAX_NODES.saturating_sub(nodes))?,
                    ),
                },
            };
            nodes = nodes.saturating_add(parsed.nodes);
            if nodes > MAX_NODES {
                return None;
            }
            entries.push(Entry {
                line: first_line + parsed.line_offset,
                value: parsed.value.clone(),
                spec: parsed.spec.clone(),
            });
            self.parsed.insert(key, parsed);
        }
        last.clear();
        Some(entries)
    }
}

/// Parses one entry's text as the only entry of an inventory.
fn parse_alone(chunk: &str, max_nodes: usize) -> Option<Parsed> {
    let document = format!("cameras:\n{chunk}");
    let raw: RawInventory = camsync_formats::yaml::from_str_within(&document, max_nodes).ok()?;
    let [entry] = <[_; 1]>::try_from(raw.cameras).ok()?;
    let line_offset = entry.referenced.line().checked_sub(2)?;
    Some(Parsed {
        line_offset,
        nodes: count_nodes(&entry.value),
        spec: spec_of(&entry.value),
        value: Arc::new(entry.value),
    })
}

fn count_nodes(value: &serde_json::Value) -> usize {
    1 + match value {
        serde_json::Value::Array(items) => items.iter().map(count_nodes).sum(),
        serde_json::Value::Object(map) => map.values().map(count_nodes).sum::<usize>() + map.len(),
        _ => 0,
    }
}

/// The text of each entry of the top-level `cameras:` block sequence with its first line
/// (1-based), or `None` when the file is not in the plain layout.
fn split(text: &str) -> Option<Vec<(u64, &str)>> {
    let mut chunks: Vec<(u64, usize)> = Vec::new(); // (first line, byte offset)
    let mut seen_key = false;
    let mut item_indent = None;
    let mut offset = 0;
    for (index, raw_line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue; // a blank or comment line belongs to whatever it is in
        }
        let indent = line.len() - content.len();
        if content.starts_with('\t') {
            return None;
        }
        if !seen_key {
            if indent != 0 || !is_cameras_key(content) {
                return None;
            }
            seen_key = true;
            continue;
        }
        let is_item = content == "-" || content.starts_with("- ");
        match item_indent {
            None if is_item => item_indent = Some(indent),
            None => return None,
            Some(k) if indent < k => return None,
            Some(_) => {}
        }
        if Some(indent) == item_indent {
            if !is_item {
                return None;
            }
            chunks.push((index as u64 + 1, start));
        }
    }
    if chunks.is_empty() {
        return None; // `cameras: []`, `cameras:` alone and the like: the whole parse says what
    }
    let ends = chunks.iter().skip(1).map(|c| c.1).chain([text.len()]);
    Some(
        chunks
            .iter()
            .zip(ends)
            .map(|(&(line, start), end)| (line, &text[start..end]))
            .collect(),
    )
}

/// `cameras:`, alone or followed by a comment.
fn is_cameras_key(content: &str) -> bool {
    match content.strip_prefix("cameras:") {
        Some("") => true,
        Some(rest) => {
            rest.starts_with(' ')
                && matches!(
                    rest.trim_start_matches(' ').chars().next(),
                    None | Some('#')
                )
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> Vec<(u64, serde_json::Value)> {
        let raw: RawInventory = camsync_formats::yaml::from_str(text).unwrap();
        raw.cameras
            .into_iter()
            .map(|e| (e.referenced.line(), e.value))
            .collect()
    }

    fn by_entries(cache: &mut EntryCache, text: &str) -> Option<Vec<(u64, serde_json::Value)>> {
        cache.entries(text).map(|entries| {
            entries
                .into_iter()
                .map(|e| (e.line, Arc::unwrap_or_clone(e.value)))
                .collect()
        })
    }

    #[test]
    fn the_plain_layout_reads_as_the_whole_document_does() {
        for text in [
            "cameras:\n  - name: a\n    url: rtsp://192.0.2.1/a\n  - name: b\n    url: x\n",
            "# site\n\ncameras: # all of them\n- name: a\n  urls:\n    - u1\n    - u2\n# between\n-\n  name: b\n",
            "cameras:\r\n  - name: a\r\n    note: |\r\n      two\r\n      lines\r\n  - name: b\r\n",
            "cameras:\n  - name: a\n    anchor: &x {k: v}\n    again: *x\n  - name: 'b # not a comment'\n",
            "cameras:\n    - name: a\n      mediamtx:\n        runOnReady: \"x\"\n\n\n    - name: b",
        ] {
            let mut cache = EntryCache::default();
            assert_eq!(by_entries(&mut cache, text), Some(whole(text)), "{text:?}");
            assert_eq!(by_entries(&mut cache, text), Some(whole(text)), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_whole_parse() {
        for text in [
            "cameras: []\n",
            "cameras:\n",
            "---\ncameras:\n  - name: a\n",
            "cameras:\n  - name: a\nother: 1\n",
            "cameras:\n  - name: a\n cut: 1\n",
            "cameras:\n  - &e {name: a}\n  - *e\n",
            "cameras:\n  - name: \"a\n  - b\"\n",
            "cameras:\n\t- name: a\n",
            "cameras:\n  - name: a\n  name: b\n",
            "{\"cameras\": [{\"name\": \"a\"}]}",
            "\u{feff}cameras:\n  - name: a\n",
            "cameras: #\n  - [unclosed\n",
        ] {
            assert!(
                by_entries(&mut EntryCache::default(), text).is_none(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_reread_parses_only_the_entries_that_changed() {
        let text = |b: &str| format!("cameras:\n  - name: a\n  - name: {b}\n  - name: c\n");
        let mut cache = EntryCache::default();
        by_entries(&mut cache, &text("b")).unwrap();
        // An entry the cache holds is not parsed again: poison its cached value to see.
        cache.parsed.get_mut("  - name: a\n").unwrap().value = Arc::new("cached".into());
        let got = by_entries(&mut cache, &text("b2")).unwrap();
        assert_eq!(got[0], (2, serde_json::Value::from("cached")));
        assert_eq!(got[1], (3, serde_json::json!({"name": "b2"})));
        // Entries gone from the file leave the cache.
        assert_eq!(cache.parsed.len(), 3);
        assert!(!cache.parsed.contains_key("  - name: b\n"));
    }

    #[test]
    fn entries_together_stay_within_the_node_budget() {
        let mut cache = EntryCache::default();
        let entry = "  - name: a\n    k: v\n";
        let text = format!("cameras:\n{}", entry.repeat(10));
        assert!(by_entries(&mut cache, &text).is_some());
        assert_eq!(cache.parsed[entry].nodes, 5);
        // Ten entries of five nodes each: refused when the budget holds fewer.
        cache.parsed.get_mut(entry).unwrap().nodes = MAX_NODES / 9;
        assert!(by_entries(&mut cache, &text).is_none());
    }

    /// Lines an inventory is made of, tricky ones included: each document built from them
    /// reads the same through the entries as whole, or is left to the whole parse.
    const LINES: &[&str] = &[
        "  - name: a",
        "  - name: b",
        "  -",
        "- name: c",
        "    name: d",
        "    url: rtsp://192.0.2.1/x?a=1&b=*2",
        "    note: |",
        "      kept # as text",
        "    note: \"open",
        "  - close\"",
        "    anchor: &x {k: v}",
        "    alias: *x",
        "  - *x",
        "    urls: [u1,",
        "      u2]",
        "      - nested",
        "# comment",
        "",
        "   odd: indent",
        "other: key",
    ];

    proptest::proptest! {
        #![proptest_config(crate::test_support::cases(2048))]

        #[test]
        fn entries_never_read_differently_from_the_whole_document(
            picks in proptest::collection::vec(0..LINES.len(), 1..12),
            crlf in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("cameras:{eol}");
            for i in picks {
                text.push_str(LINES[i]);
                text.push_str(eol);
            }
            let mut cache = EntryCache::default();
            if let Some(entries) = by_entries(&mut cache, &text) {
                let raw: Result<RawInventory, _> = camsync_formats::yaml::from_str(&text);
                let whole: Vec<_> = raw
                    .map_err(|e| format!("the whole parse failed: {e}"))
                    .map_err(proptest::test_runner::TestCaseError::fail)?
                    .cameras
                    .into_iter()
                    .map(|e| (e.referenced.line(), e.value))
                    .collect();
                proptest::prop_assert_eq!(entries, whole, "{:?}", text);
            }
        }
    }
}
