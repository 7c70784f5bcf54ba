//! Comment-preserving edits of one top-level section of a YAML file: go2rtc's `streams:` and
//! MediaMTX's `paths:`. camsync adds, replaces and removes the entries it owns there and leaves
//! every other byte of the file as the operator wrote it.
//!
//! Owns: the text of a [`Document`] and the edits on it. Pure: no I/O, nothing blocks. Each
//! edit (or batch of edits, [`Document::apply`]) costs one parse of the whole file.
//!
//! Invariants:
//! - An edit splices whole lines: the touched entries (with their leading comments when
//!   removed), a rewritten section header (`streams: {}` or `streams: ~` becoming `streams:`),
//!   or a section appended at the end. All other bytes stay identical: comments, blank lines,
//!   quoting, key order, anchors, line endings (LF or CRLF), a missing final newline.
//! - After every edit the text is parsed again (serde-saphyr) and must read, as a
//!   `serde_json::Value`, as the old document with exactly the intended changes; otherwise the
//!   edit is refused and the document is left unchanged.
//! - Positions come from the parser, never from guessing at YAML syntax; the text is only read
//!   around them, and anything outside the supported subset is refused, not approximated.
//!
//! Supported: a block mapping at the top level (or an empty file), and a section that is a
//! block mapping at any indentation, a flow mapping (rewritten as block), empty or `null`.
//! Refused: a section that is an alias or is aliased elsewhere; replacing or removing an entry
//! that defines an anchor used outside it; an entry written with an alias key or supplied by a
//! merge key (`<<`); keys that do not start their line (explicit `? ` keys, anchored keys);
//! comments or aliases inside a flow-style section; carriage returns that do not end a line.

mod error;
mod layout;
mod lines;
mod render;
mod tree;

use std::borrow::Cow;
use std::ops::{Range, RangeInclusive};

use serde_json::{Map, Value};

pub use error::EditError;
use layout::{Block, BlockEntry, Header, Section};
use lines::Lines;
use render::Style;
use tree::{Entry, Kind, Node};

/// A YAML file being edited: its current text and what the parser made of it.
#[derive(Debug)]
pub struct Document {
    text: String,
    parsed: tree::Parsed,
}

/// One change to a section, for [`Document::apply`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Set `key` to the value (add or replace).
    Upsert(&'a str, &'a Value),
    /// Remove `key` (no-op if absent).
    Remove(&'a str),
}

impl<'a> Change<'a> {
    fn key(&self) -> &'a str {
        match self {
            Change::Upsert(key, _) | Change::Remove(key) => key,
        }
    }
}

impl Document {
    /// Reads `text`: any YAML document whose top level is a mapping, or empty (`""`, only
    /// comments).
    pub fn parse(text: &str) -> Result<Document, EditError> {
        if let Some(line) = lines::lone_carriage_return(text) {
            return Err(EditError::UnsupportedFile {
                line,
                reason: "a carriage return that does not end a line",
            });
        }
        let parsed = tree::parse(text).map_err(|f| EditError::NotYaml {
            line: f.line,
            message: f.message,
        })?;
        match &parsed.root.kind {
            Kind::Map(_) | Kind::Scalar(Value::Null) => Ok(Document {
                text: text.to_owned(),
                parsed,
            }),
            _ => Err(EditError::TopLevelNotMapping {
                line: Lines::new(text).index_of(parsed.root.span.at) + 1,
            }),
        }
    }

    /// The keys of the top-level mapping `section` (e.g. "streams"), in file order; empty if
    /// absent or not a mapping. Merge keys (`<<`) are not listed.
    pub fn keys(&self, section: &str) -> Vec<String> {
        let Some(Kind::Map(entries)) = self.section_node(section).map(|n| &n.kind) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|e| !self.is_merge_key(e))
            .map(|e| e.key.clone())
            .collect()
    }

    /// Adds `key` under `section`, or replaces its value if present. `value` is rendered as
    /// block YAML at the section's indentation (detected from its entries, else from the file,
    /// else 2 spaces), strings quoted whenever YAML would read them as something else.
    ///
    /// A missing section is appended at the end; a flow-style or null section becomes a block
    /// one. A new key goes after the section's last entry; a replaced entry keeps its key as
    /// written, its leading comment and its inline comment. Setting the value an entry already
    /// has changes nothing (MediaMTX reloads on every change of its file).
    pub fn upsert(&mut self, section: &str, key: &str, value: &Value) -> Result<(), EditError> {
        self.apply(section, &[Change::Upsert(key, value)])
    }

    /// Removes `key` and its value from `section`, together with the comment lines directly
    /// above it (its leading comment). No-op if absent. A flow-style section holding the key
    /// becomes a block one.
    pub fn remove(&mut self, section: &str, key: &str) -> Result<(), EditError> {
        self.apply(section, &[Change::Remove(key)])
    }

    /// Applies `changes` to `section` as one edit, with one parse to verify it: all of them or
    /// none. Same rules as [`Document::upsert`] and [`Document::remove`]; new keys go after the
    /// last entry in the order given; when a key appears more than once, its last change wins.
    pub fn apply(&mut self, section: &str, changes: &[Change<'_>]) -> Result<(), EditError> {
        let changes = last_change_per_key(changes);
        let work = self.text_with_final_newline();
        let planner = Planner::new(self, &work, section);
        let splices = planner.plan(&changes)?;
        if splices.is_empty() {
            return Ok(());
        }
        let mut text = splice_all(&work, splices);
        let eol = lines::eol_of(&work);
        if work.len() != self.text.len() && text.ends_with(eol) {
            // The file had no final line break: it keeps having none.
            text.truncate(text.len() - eol.len());
        }
        let expected = self.expected(section, &changes);
        let edited = verified(&text, &expected, section, &changes)?;
        *self = edited;
        Ok(())
    }

    /// The current text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, with a line break added at the end if it has none, so that every line ends
    /// with one while edits are planned. Offsets into the text stay valid.
    fn text_with_final_newline(&self) -> Cow<'_, str> {
        if self.text.is_empty() || self.text.ends_with('\n') {
            Cow::Borrowed(&self.text)
        } else {
            Cow::Owned(format!("{}{}", self.text, lines::eol_of(&self.text)))
        }
    }

    fn section_node(&self, section: &str) -> Option<&Node> {
        let Kind::Map(top) = &self.parsed.root.kind else {
            return None;
        };
        top.iter().find(|e| e.key == section).map(|e| &e.value)
    }

    fn is_merge_key(&self, entry: &Entry) -> bool {
        entry.key == "<<" && self.text[entry.key_span.at..].starts_with("<<")
    }

    /// The value of `section.key` as a consumer of the file reads it.
    fn current_value(&self, section: &str, key: &str) -> Option<&Value> {
        self.parsed.value.get(section)?.get(key)
    }

    /// The whole document as it should read after `changes`.
    fn expected(&self, section: &str, changes: &[Change<'_>]) -> Value {
        let mut top = match &self.parsed.value {
            Value::Object(top) => top.clone(),
            _ => Map::new(),
        };
        let slot = top.entry(section).or_insert(Value::Null);
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(entries) = slot {
            for change in changes {
                match change {
                    Change::Upsert(key, value) => {
                        entries.insert((*key).to_owned(), (*value).clone())
                    }
                    Change::Remove(key) => entries.remove(*key),
                };
            }
        }
        Value::Object(top)
    }
}

/// The changes with one per key (the last), in the order keys first appear.
fn last_change_per_key<'a>(changes: &[Change<'a>]) -> Vec<Change<'a>> {
    let mut out: Vec<Change<'a>> = Vec::with_capacity(changes.len());
    for change in changes {
        match out.iter_mut().find(|c| c.key() == change.key()) {
            Some(slot) => *slot = *change,
            None => out.push(*change),
        }
    }
    out
}

/// Parses the edited `text`, which must read as `expected` (a section left without entries
/// may read as null), and be a block mapping if anything was upserted.
fn verified(
    text: &str,
    expected: &Value,
    section: &str,
    changes: &[Change<'_>],
) -> Result<Document, EditError> {
    let unverified = |detail: String| EditError::Unverified {
        section: section.to_owned(),
        keys: changes
            .iter()
            .map(Change::key)
            .collect::<Vec<_>>()
            .join(", "),
        detail,
    };
    let edited = Document::parse(text).map_err(|e| unverified(e.to_string()))?;
    let mut actual = Cow::Borrowed(&edited.parsed.value);
    let empty = Value::Object(Map::new());
    if actual.get(section).is_some_and(Value::is_null) && expected.get(section) == Some(&empty) {
        actual.to_mut()[section] = empty;
    }
    if *actual != *expected {
        return Err(unverified("the edited file reads differently".to_owned()));
    }
    if changes.iter().any(|c| matches!(c, Change::Upsert(..))) {
        let lines = Lines::new(&edited.text);
        let section_is_block = matches!(
            layout::locate(&edited.text, &lines, &edited.parsed.root, section),
            Ok(Section::Block(_))
        );
        if !section_is_block {
            return Err(unverified("the section is not a block mapping".to_owned()));
        }
    }
    Ok(edited)
}

/// One replacement of a byte range of the text.
struct Splice {
    range: Range<usize>,
    insert: String,
}

/// Applies non-overlapping `splices` to `text`.
fn splice_all(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| std::cmp::Reverse((s.range.start, s.range.end)));
    let mut out = text.to_owned();
    for s in splices {
        out.replace_range(s.range, &s.insert);
    }
    out
}

/// Plans the splices of one edit on the document's text (which ends with a line break).
struct Planner<'a> {
    doc: &'a Document,
    text: &'a str,
    lines: Lines,
    section: &'a str,
    /// Every alias in the file: the line of its anchor and the line where it is used.
    aliases: Vec<(usize, usize)>,
}

impl<'a> Planner<'a> {
    fn new(doc: &'a Document, text: &'a str, section: &'a str) -> Planner<'a> {
        let lines = Lines::new(text);
        let mut aliases = Vec::new();
        doc.parsed.root.for_each_span(&mut |s| {
            if s.is_alias() {
                aliases.push((lines.index_of(s.def), lines.index_of(s.at)));
            }
        });
        Planner {
            doc,
            text,
            lines,
            section,
            aliases,
        }
    }

    fn plan(&self, changes: &[Change<'_>]) -> Result<Vec<Splice>, EditError> {
        let root = &self.doc.parsed.root;
        Ok(
            match layout::locate(self.text, &self.lines, root, self.section)? {
                Section::Absent => self.append_section(changes)?.into_iter().collect(),
                Section::Null(header) => self.fill_null(&header, changes).into_iter().collect(),
                Section::Flow {
                    header,
                    close_line,
                    entries,
                } => self
                    .rewrite_flow(&header, close_line, entries, changes)?
                    .into_iter()
                    .collect(),
                Section::Block(block) => self.change_block(&block, changes)?,
            },
        )
    }

    /// Appends `section:` and the upserted entries at the end of the file (before a `...`
    /// document end).
    fn append_section(&self, changes: &[Change<'_>]) -> Result<Option<Splice>, EditError> {
        if !changes.iter().any(|c| matches!(c, Change::Upsert(..))) {
            return Ok(None);
        }
        let root = &self.doc.parsed.root;
        if matches!(root.kind, Kind::Map(_)) && self.column(root.span.at) != 0 {
            return Err(self.unsupported(root.span.at, "an indented top-level mapping"));
        }
        let style = self.style(None);
        let mut insert = format!("{}:{}", render::scalar(self.section), style.eol);
        self.render_upserts(&mut insert, changes, style.unit, style);
        let end = (0..self.lines.len())
            .find(|&l| {
                self.content(l).starts_with("...") && lines::is_document_marker(self.content(l))
            })
            .unwrap_or(self.lines.len());
        Ok(Some(self.insert_after(end.checked_sub(1), insert)))
    }

    /// Puts the upserted entries under an empty or `null` section, dropping an explicit null.
    fn fill_null(&self, header: &Header, changes: &[Change<'_>]) -> Option<Splice> {
        let style = self.style(None);
        let mut entries = String::new();
        self.render_upserts(&mut entries, changes, style.unit, style);
        if entries.is_empty() {
            return None;
        }
        let new_header = header_line(header);
        Some(if new_header == self.content(header.line) {
            self.insert_after(Some(header.line), entries)
        } else {
            self.replace_lines(header.line..=header.line, new_header + style.eol + &entries)
        })
    }

    /// Rewrites a flow-style section as a block one with `changes` applied, the other entries
    /// kept in order. `None` when nothing would change.
    fn rewrite_flow(
        &self,
        header: &Header,
        close_line: usize,
        entries: &[Entry],
        changes: &[Change<'_>],
    ) -> Result<Option<Splice>, EditError> {
        let present = |key: &str| entries.iter().any(|e| e.key == key);
        if !changes
            .iter()
            .any(|c| matches!(c, Change::Upsert(..)) || present(c.key()))
        {
            return Ok(None);
        }
        let has_alias = |e: &Entry| {
            let mut found = e.key_span.is_alias() || self.doc.is_merge_key(e);
            e.value
                .for_each_span(&mut |s| found = found || s.is_alias());
            found
        };
        if entries.iter().any(has_alias) {
            return Err(self.unsupported(
                self.lines.span(header.line).start,
                "aliases or merge keys in a flow-style section",
            ));
        }
        self.check_anchors(changes[0].key(), header.line..=close_line)?;
        let mut kept: Vec<(String, Value)> = entries
            .iter()
            .map(|e| (e.key.clone(), e.value.to_json()))
            .collect();
        for change in changes {
            match (change, kept.iter_mut().find(|(k, _)| k == change.key())) {
                (Change::Upsert(_, v), Some(slot)) => slot.1 = (*v).clone(),
                (Change::Upsert(k, v), None) => kept.push(((*k).to_owned(), (*v).clone())),
                (Change::Remove(k), _) => kept.retain(|(key, _)| key != k),
            }
        }
        let style = self.style(None);
        let mut insert = header_line(header) + style.eol;
        for (k, v) in &kept {
            render::entry(&mut insert, &render::scalar(k), "", v, style.unit, style);
        }
        Ok(Some(self.replace_lines(header.line..=close_line, insert)))
    }

    /// Splices for `changes` on a block section: each existing entry replaced or removed in
    /// place, new entries together after the last entry.
    fn change_block(
        &self,
        block: &Block<'_>,
        changes: &[Change<'_>],
    ) -> Result<Vec<Splice>, EditError> {
        let style = self.style(Some(block.indent));
        let mut splices = Vec::new();
        let mut appended = String::new();
        for change in changes {
            let key = change.key();
            let found = block
                .entries
                .iter()
                .find(|e| e.entry.key == key && !e.is_merge());
            match (change, found) {
                (Change::Upsert(_, value), None) => {
                    self.reject_merged(block, key)?;
                    // A block section without entries (`streams: !!map`) has no indentation.
                    let indent = if block.entries.is_empty() {
                        style.unit
                    } else {
                        block.indent
                    };
                    render::entry(
                        &mut appended,
                        &render::scalar(key),
                        "",
                        value,
                        indent,
                        style,
                    );
                }
                (Change::Upsert(_, value), Some(found)) => {
                    splices.extend(self.replace_entry(block, found, key, value, style)?);
                }
                (Change::Remove(_), None) => self.reject_merged(block, key)?,
                (Change::Remove(_), Some(found)) => {
                    self.reject_alias_key(found, key)?;
                    // The merged value would show through once the entry is gone.
                    self.reject_merged(block, key)?;
                    self.check_anchors(key, found.key_line..=found.last)?;
                    splices.push(self.remove_lines(found.first..=found.last));
                }
            }
        }
        if !appended.is_empty() {
            let after = block.entries.last().map_or(block.header.line, |e| e.last);
            splices.push(self.insert_after(Some(after), appended));
        }
        Ok(splices)
    }

    /// Replaces the value of an existing block entry, keeping its key as written and its
    /// inline comment. `None` when it already has this value.
    fn replace_entry(
        &self,
        block: &Block<'_>,
        found: &BlockEntry<'_>,
        key: &str,
        value: &Value,
        style: Style,
    ) -> Result<Option<Splice>, EditError> {
        self.reject_alias_key(found, key)?;
        if self.doc.current_value(self.section, key) == Some(value) {
            return Ok(None);
        }
        self.check_anchors(key, found.key_line..=found.last)?;
        let written_key = found.raw_key.strip_suffix(':').unwrap_or(&found.raw_key);
        let mut insert = String::new();
        render::entry(
            &mut insert,
            written_key,
            &found.comment,
            value,
            block.indent,
            style,
        );
        Ok(Some(
            self.replace_lines(found.key_line..=found.last, insert),
        ))
    }

    fn render_upserts(
        &self,
        out: &mut String,
        changes: &[Change<'_>],
        indent: usize,
        style: Style,
    ) {
        for change in changes {
            if let Change::Upsert(key, value) = change {
                render::entry(out, &render::scalar(key), "", value, indent, style);
            }
        }
    }

    fn reject_merged(&self, block: &Block<'_>, key: &str) -> Result<(), EditError> {
        match block.merged.iter().find(|(k, _)| k == key) {
            None => Ok(()),
            Some((_, line)) => Err(EditError::MergedKey {
                section: self.section.to_owned(),
                key: key.to_owned(),
                line: *line,
            }),
        }
    }

    fn reject_alias_key(&self, found: &BlockEntry<'_>, key: &str) -> Result<(), EditError> {
        if !found.entry.key_span.is_alias() {
            return Ok(());
        }
        Err(EditError::AliasKey {
            section: self.section.to_owned(),
            key: key.to_owned(),
            line: found.key_line + 1,
        })
    }

    /// Refuses when an anchor defined on the lines `range` is used by an alias outside them.
    fn check_anchors(&self, key: &str, range: RangeInclusive<usize>) -> Result<(), EditError> {
        let used = self
            .aliases
            .iter()
            .find(|(def, at)| range.contains(def) && !range.contains(at));
        match used {
            None => Ok(()),
            Some((def, at)) => Err(EditError::AnchorInUse {
                section: self.section.to_owned(),
                key: key.to_owned(),
                line: def + 1,
                used_at: at + 1,
            }),
        }
    }

    fn unsupported(&self, offset: usize, reason: &'static str) -> EditError {
        EditError::Unsupported {
            section: self.section.to_owned(),
            line: self.lines.index_of(offset) + 1,
            reason,
        }
    }

    /// The rendering style: the file's line ending, and `indent` (a block section's entry
    /// column) or else the first indentation found in the file, or 2.
    fn style(&self, indent: Option<usize>) -> Style {
        let unit = indent
            .filter(|&i| i > 0)
            .or_else(|| self.file_indent())
            .unwrap_or(2);
        Style {
            unit,
            eol: self.lines.eol,
        }
    }

    /// The column of the first block collection nested under a top-level key.
    fn file_indent(&self) -> Option<usize> {
        let Kind::Map(top) = &self.doc.parsed.root.kind else {
            return None;
        };
        top.iter().find_map(|e| {
            let at = e.value.span.at;
            let block = match &e.value.kind {
                Kind::Map(m) => !m.is_empty() && !self.text[at..].starts_with('{'),
                Kind::Seq(s) => !s.is_empty() && self.text[at..].starts_with('-'),
                Kind::Scalar(_) => false,
            };
            let col = self.column(at);
            (block && !e.value.span.is_alias() && col > 0).then_some(col)
        })
    }

    fn column(&self, offset: usize) -> usize {
        offset - self.lines.span(self.lines.index_of(offset)).body
    }

    fn content(&self, line: usize) -> &str {
        self.lines.content(self.text, line)
    }

    /// Inserts `text` (whole lines) after line `after`, or at the start when `None`.
    fn insert_after(&self, after: Option<usize>, text: String) -> Splice {
        let at = after.map_or(0, |l| self.lines.span(l).end);
        Splice {
            range: at..at,
            insert: text,
        }
    }

    /// Replaces the lines `range` with `text` (whole lines).
    fn replace_lines(&self, range: RangeInclusive<usize>, text: String) -> Splice {
        Splice {
            range: self.lines.span(*range.start()).start..self.lines.span(*range.end()).end,
            insert: text,
        }
    }

    fn remove_lines(&self, range: RangeInclusive<usize>) -> Splice {
        self.replace_lines(range, String::new())
    }
}

/// The section header without its value: `section:` (with anchor, tag and comment if any).
fn header_line(header: &Header) -> String {
    if header.tail.trim().is_empty() {
        header.prefix.clone()
    } else {
        format!("{}{}", header.prefix, header.tail)
    }
}
