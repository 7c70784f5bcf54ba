//! Where a top-level section and its entries sit in the text: which lines hold the section's
//! header, each entry (with its leading comment) and the end of the section.
//!
//! Positions come from the parser (the tree's byte offsets); this module only reads the text
//! around them. Line rules:
//! - the section's region runs from its header to the next top-level key (or `---`/`...`,
//!   or the end of the file);
//! - an entry runs from its key line to its last line that is content or a comment indented
//!   deeper than the key; later blank lines and shallower comments are not part of it;
//! - an entry's leading comment is the run of comment lines directly above its key (no blank
//!   line between), indented no deeper than the key, and not part of the previous entry.

use super::error::EditError;
use super::lines::{self, Lines};
use super::tree::{Entry, Kind, Node};

/// The header line `section: …` of a section that exists.
#[derive(Debug)]
pub(super) struct Header {
    pub line: usize,
    /// The header's content up to the value: the key, `:` and any anchor or tag.
    pub prefix: String,
    /// What follows the value on its last line: whitespace and a comment, or nothing.
    pub tail: String,
    /// First line after the section's region.
    pub region_end: usize,
}

#[derive(Debug)]
pub(super) enum Section<'n> {
    Absent,
    /// `section:` with no entries, or `section: ~` / `null`.
    Null(Header),
    Block(Block<'n>),
    /// `section: {…}`, its closing brace on line `close_line`.
    Flow {
        header: Header,
        close_line: usize,
        entries: &'n [Entry],
    },
}

#[derive(Debug)]
pub(super) struct Block<'n> {
    pub header: Header,
    pub indent: usize,
    pub entries: Vec<BlockEntry<'n>>,
    /// Keys brought in by merge keys (`<<: *x`) of the section, with the merge key's line.
    pub merged: Vec<(String, usize)>,
}

#[derive(Debug)]
pub(super) struct BlockEntry<'n> {
    pub entry: &'n Entry,
    /// The key as written, through its `:` (e.g. `'cam 1':`).
    pub raw_key: String,
    /// First line of the leading comment (the key line when there is none).
    pub first: usize,
    pub key_line: usize,
    pub last: usize,
    /// Whitespace and comment after a one-line value on the key line, if any.
    pub comment: String,
}

impl BlockEntry<'_> {
    pub fn is_merge(&self) -> bool {
        self.raw_key.trim_end_matches(':').trim_end() == "<<"
    }
}

/// Finds `section` in the top-level mapping of `root`.
pub(super) fn locate<'n>(
    text: &str,
    lines: &Lines,
    root: &'n Node,
    section: &str,
) -> Result<Section<'n>, EditError> {
    let top = match &root.kind {
        Kind::Scalar(serde_json::Value::Null) => return Ok(Section::Absent),
        Kind::Map(top) if !text[root.span.at..].starts_with('{') => top,
        Kind::Map(_) => {
            return Err(EditError::Unsupported {
                section: section.to_owned(),
                line: lines.index_of(root.span.at) + 1,
                reason: "a flow-style top level",
            });
        }
        _ => {
            return Err(EditError::TopLevelNotMapping {
                line: lines.index_of(root.span.at) + 1,
            });
        }
    };
    let Some(index) = top.iter().position(|e| e.key == section) else {
        return Ok(Section::Absent);
    };
    let entry = &top[index];
    let shared = |s: &super::tree::Span| s.is_alias() && s.def == entry.value.span.def;
    if entry.value.span.is_alias() || any_span(root, shared) {
        return Err(EditError::SharedSection {
            section: section.to_owned(),
            line: lines.index_of(entry.key_span.at) + 1,
        });
    }
    let ctx = Ctx {
        text,
        lines,
        section,
    };
    let header_line = ctx.line_of_key(entry)?;
    let region_end = ctx.region_end(header_line, top.get(index + 1));
    ctx.classify(entry, header_line, region_end)
}

struct Ctx<'a> {
    text: &'a str,
    lines: &'a Lines,
    section: &'a str,
}

impl Ctx<'_> {
    fn unsupported(&self, line: usize, reason: &'static str) -> EditError {
        EditError::Unsupported {
            section: self.section.to_owned(),
            line: line + 1,
            reason,
        }
    }

    /// The line of `entry`'s key, which must be the first thing on it.
    fn line_of_key(&self, entry: &Entry) -> Result<usize, EditError> {
        let line = self.lines.index_of(entry.key_span.at);
        let content = self.lines.content(self.text, line);
        let body = self.lines.span(line).body;
        if entry.key_span.at != body + lines::indent(content) {
            return Err(self.unsupported(line, "a key that does not start its line"));
        }
        Ok(line)
    }

    /// The byte just after the `:` that follows `entry`'s key on the key's line.
    fn colon_after_key(&self, entry: &Entry, line: usize) -> Result<usize, EditError> {
        let key_end = entry.key_span.at + entry.key_span.len;
        let content_end = self.lines.span(line).content_end;
        let after = self.text.get(key_end..content_end).unwrap_or("");
        let gap = after.len() - after.trim_start_matches([' ', '\t']).len();
        if after[gap..].starts_with(':') {
            Ok(key_end + gap + 1)
        } else {
            Err(self.unsupported(line, "a key not followed by `:` on its line"))
        }
    }

    fn region_end(&self, header_line: usize, next: Option<&Entry>) -> usize {
        let next_key = next.map_or(self.lines.len(), |e| self.lines.index_of(e.key_span.at));
        (header_line + 1..next_key)
            .find(|&l| lines::is_document_marker(self.lines.content(self.text, l)))
            .unwrap_or(next_key)
    }

    fn classify<'n>(
        &self,
        entry: &'n Entry,
        header_line: usize,
        region_end: usize,
    ) -> Result<Section<'n>, EditError> {
        let value = &entry.value;
        let colon = self.colon_after_key(entry, header_line)?;
        let header_end = self.lines.span(header_line).content_end;
        let props_end = colon + properties_len(&self.text[colon..header_end]);
        let header = |tail_start: usize, tail_line: usize| Header {
            line: header_line,
            prefix: self.text[self.lines.span(header_line).body..props_end]
                .trim_end()
                .to_owned(),
            tail: self.text[tail_start..self.lines.span(tail_line).content_end].to_owned(),
            region_end,
        };
        match &value.kind {
            Kind::Map(entries) if self.text[value.span.at..].starts_with('{') => {
                let close = self.flow_close(value.span.at, header_line, region_end)?;
                let close_line = self.lines.index_of(close);
                Ok(Section::Flow {
                    header: header(close + 1, close_line),
                    close_line,
                    entries,
                })
            }
            Kind::Map(entries) => self.block(header(props_end, header_line), entries),
            Kind::Scalar(serde_json::Value::Null) => {
                let tail_start = if value.span.len > 0 {
                    value.span.at + value.span.len
                } else {
                    props_end
                };
                if self.lines.index_of(tail_start) != header_line {
                    return Err(self.unsupported(header_line, "a null written on another line"));
                }
                Ok(Section::Null(header(tail_start, header_line)))
            }
            _ => Err(EditError::SectionNotMapping {
                section: self.section.to_owned(),
                line: header_line + 1,
            }),
        }
    }

    /// The byte of the `}` closing the flow mapping opened at `open`, checked to end the
    /// value: only a comment may follow it, and a mapping spanning lines must hold none.
    fn flow_close(
        &self,
        open: usize,
        header_line: usize,
        region_end: usize,
    ) -> Result<usize, EditError> {
        let scan = scan_flow(self.text, open)
            .ok_or_else(|| self.unsupported(header_line, "an unterminated flow mapping"))?;
        let close_line = self.lines.index_of(scan.close);
        let rest = &self.text[scan.close + 1..self.lines.span(close_line).content_end];
        let rest = rest.trim_start_matches([' ', '\t']);
        if close_line >= region_end || !(rest.is_empty() || rest.starts_with('#')) {
            return Err(self.unsupported(close_line, "text after a flow mapping"));
        }
        if scan.has_comment && close_line > header_line {
            return Err(self.unsupported(
                header_line,
                "comments inside a multi-line flow mapping would be lost",
            ));
        }
        Ok(scan.close)
    }

    fn block<'n>(&self, header: Header, entries: &'n [Entry]) -> Result<Section<'n>, EditError> {
        let mut located = Vec::with_capacity(entries.len());
        let mut indent = None;
        for entry in entries {
            let key_line = self.line_of_key(entry)?;
            let col = lines::indent(self.lines.content(self.text, key_line));
            if key_line <= header.line
                || key_line >= header.region_end
                || *indent.get_or_insert(col) != col
            {
                return Err(
                    self.unsupported(key_line, "entries not in one block at one indentation")
                );
            }
            let colon = self.colon_after_key(entry, key_line)?;
            located.push((entry, key_line, colon));
        }
        let indent = indent.unwrap_or(0);
        let mut out: Vec<BlockEntry<'n>> = Vec::with_capacity(located.len());
        for (i, &(entry, key_line, colon)) in located.iter().enumerate() {
            let boundary = located.get(i + 1).map_or(header.region_end, |n| n.1);
            let floor = out.last().map_or(header.line, |p| p.last);
            let last = self.last_line(key_line, boundary, indent);
            out.push(BlockEntry {
                entry,
                raw_key: self.text[entry.key_span.at..colon].to_owned(),
                first: self.first_line(key_line, floor, indent),
                key_line,
                last,
                comment: trailing_comment(&self.text[colon..self.lines.span(key_line).content_end])
                    .to_owned(),
            });
        }
        let merged = merged_keys(&out, self.lines);
        Ok(Section::Block(Block {
            header,
            indent,
            entries: out,
            merged,
        }))
    }

    /// The last line of the entry whose key is on `key_line`, looking no further than
    /// `boundary` (exclusive).
    fn last_line(&self, key_line: usize, boundary: usize, indent: usize) -> usize {
        (key_line + 1..boundary)
            .rev()
            .find(|&l| {
                let c = self.lines.content(self.text, l);
                !lines::is_blank(c) && (!lines::is_comment(c) || lines::indent(c) > indent)
            })
            .unwrap_or(key_line)
    }

    /// The first line of the leading comment of the key on `key_line`; `floor` is the last line
    /// that belongs to something else (the header or the previous entry).
    fn first_line(&self, key_line: usize, floor: usize, indent: usize) -> usize {
        let mut first = key_line;
        while first > floor + 1 {
            let c = self.lines.content(self.text, first - 1);
            if !lines::is_comment(c) || lines::indent(c) > indent {
                break;
            }
            first -= 1;
        }
        first
    }
}

/// Whether any node or key under `root` satisfies `pred`.
fn any_span(root: &Node, pred: impl Fn(&super::tree::Span) -> bool) -> bool {
    let mut found = false;
    root.for_each_span(&mut |s| found = found || pred(s));
    found
}

/// The keys each merge entry of the section brings in, with the merge entry's line (1-based).
fn merged_keys(entries: &[BlockEntry<'_>], lines: &Lines) -> Vec<(String, usize)> {
    let mut merged = Vec::new();
    for e in entries.iter().filter(|e| e.is_merge()) {
        let line = lines.index_of(e.entry.key_span.at) + 1;
        let sources = match &e.entry.value.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![&e.entry.value],
        };
        for source in sources {
            if let Kind::Map(m) = &source.kind {
                merged.extend(m.iter().map(|x| (x.key.clone(), line)));
            }
        }
    }
    merged
}

/// Length of the anchor and tag properties (with surrounding blanks) at the start of `s`.
fn properties_len(s: &str) -> usize {
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !trimmed.starts_with(['&', '!']) {
            return s.len() - rest.len();
        }
        let token = trimmed.find([' ', '\t']).unwrap_or(trimmed.len());
        rest = &trimmed[token..];
    }
}

/// The comment (with the blanks before it) after a value that fits on this line: `s` is the
/// text after the key's `:`. Empty when there is no comment or the value continues on later
/// lines.
fn trailing_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    let props = properties_len(s);
    let start = props + (s[props..].len() - s[props..].trim_start_matches([' ', '\t']).len());
    let value_end = match bytes.get(start) {
        Some(b'"' | b'\'') => skip_quoted(bytes, start).map(|i| i + 1),
        Some(b'[' | b'{') => scan_flow(s, start).map(|f| f.close + 1),
        _ => Some(start),
    };
    let Some(from) = value_end else {
        return "";
    };
    (from.max(1)..bytes.len())
        .find(|&i| bytes[i] == b'#' && matches!(bytes[i - 1], b' ' | b'\t'))
        .map_or("", |i| &s[s[..i].trim_end_matches([' ', '\t']).len()..])
}

/// The end of a flow collection: the byte of its closing bracket, and whether a comment was
/// seen inside.
struct FlowScan {
    close: usize,
    has_comment: bool,
}

/// Scans the flow collection opened at byte `open` to its matching close, skipping quoted
/// scalars and comments. `None` if it does not close.
fn scan_flow(text: &str, open: usize) -> Option<FlowScan> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut has_comment = false;
    let mut last_significant = b'{';
    let mut i = open;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(FlowScan {
                        close: i,
                        has_comment,
                    });
                }
            }
            b'"' | b'\'' if matches!(last_significant, b'{' | b'[' | b',' | b':') => {
                i = skip_quoted(bytes, i)?;
            }
            b'#' if matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                has_comment = true;
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |n| i + n);
                continue;
            }
            _ => {}
        }
        if !b.is_ascii_whitespace() {
            last_significant = b;
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the quoted scalar opened at `open`.
fn skip_quoted(bytes: &[u8], open: usize) -> Option<usize> {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 1,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            b if b == quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_comments() {
        assert_eq!(trailing_comment(" rtsp://a  # front"), "  # front");
        assert_eq!(trailing_comment(" ffmpeg:a#video=h264"), "");
        assert_eq!(trailing_comment(" \"a # b\" # c"), " # c");
        assert_eq!(trailing_comment(" 'it''s # x'"), "");
        assert_eq!(trailing_comment(" # only"), " # only");
        assert_eq!(trailing_comment(""), "");
    }

    #[test]
    fn flow_scan() {
        let t = "s: {a: '}', b: [c, \"d}\"], e: it's} # x";
        let scan = scan_flow(t, 3).map(|s| (s.close, s.has_comment));
        assert_eq!(scan, Some((t.len() - 5, false)));
        assert!(scan_flow("s: {a: b", 3).is_none());
    }

    #[test]
    fn properties() {
        assert_eq!(properties_len(" &a !!map # c"), 9);
        assert_eq!(properties_len(" {}"), 0);
    }
}
