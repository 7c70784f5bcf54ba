//! The file as a table of lines: byte ranges with and without their line ending, and the few
//! lexical facts the editor needs about a line (indentation, blank, comment, document marker).
//!
//! Invariant: the line ranges tile the text exactly, so splicing whole lines keeps every other
//! byte. A UTF-8 byte order mark is kept out of the first line's content.

/// Byte ranges of one line: `start..end` includes the line ending, `body..content_end` is the
/// content (after a byte order mark on the first line, before `\r\n` or `\n`).
#[derive(Debug, Clone, Copy)]
pub(super) struct LineSpan {
    pub start: usize,
    pub body: usize,
    pub content_end: usize,
    pub end: usize,
}

pub(super) struct Lines {
    spans: Vec<LineSpan>,
    /// The file's line ending, taken from its first line break (`\n` when there is none).
    pub eol: &'static str,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut spans = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let end = text[start..]
                .find('\n')
                .map_or(text.len(), |i| start + i + 1);
            let mut content_end = if text[..end].ends_with('\n') {
                end - 1
            } else {
                end
            };
            if text[..content_end].ends_with('\r') && content_end < end {
                content_end -= 1;
            }
            let body = if start == 0 && text.starts_with('\u{feff}') {
                '\u{feff}'.len_utf8()
            } else {
                start
            };
            spans.push(LineSpan {
                start,
                body,
                content_end,
                end,
            });
            start = end;
        }
        Lines {
            spans,
            eol: eol_of(text),
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn span(&self, line: usize) -> LineSpan {
        self.spans[line]
    }

    /// The line holding byte `offset` (the last line for offsets at or past the end).
    pub fn index_of(&self, offset: usize) -> usize {
        let i = self.spans.partition_point(|l| l.end <= offset);
        i.min(self.spans.len().saturating_sub(1))
    }

    pub fn content<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let l = self.spans[line];
        &text[l.body..l.content_end]
    }
}

/// The file's line ending: that of its first line break (`\n` when there is none).
pub(super) fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if text[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// Number of leading spaces (YAML indentation never uses tabs).
pub(super) fn indent(content: &str) -> usize {
    content.len() - content.trim_start_matches(' ').len()
}

pub(super) fn is_blank(content: &str) -> bool {
    content.trim().is_empty()
}

pub(super) fn is_comment(content: &str) -> bool {
    content.trim_start().starts_with('#')
}

/// `---` or `...` at column 0, alone or followed by whitespace.
pub(super) fn is_document_marker(content: &str) -> bool {
    ["---", "..."].iter().any(|m| {
        content
            .strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

/// The 1-based number of the first line holding a carriage return that does not end a line.
pub(super) fn lone_carriage_return(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let at = bytes
        .iter()
        .enumerate()
        .position(|(i, b)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))?;
    Some(text[..at].matches('\n').count() + 1)
}
