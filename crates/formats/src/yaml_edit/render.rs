//! Writing `serde_json` values as block YAML, and quoting scalars.
//!
//! Invariant: every line written ends with the file's line ending, is indented with spaces
//! only, and reads back (with serde-saphyr, and with YAML 1.1 readers such as MediaMTX's) as
//! exactly the value rendered: a string is written plain only when no reader could take it
//! for anything else, and double-quoted otherwise.

use serde_json::Value;

/// Where and how to write: the column of the entry, the indentation step below it, the line
/// ending.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub unit: usize,
    pub eol: &'static str,
}

/// Appends `key: value` at column `indent` to `out`. `key` is written as given (already quoted
/// if it needs to be); `comment` (whitespace then `# …`, or empty) stays on the key's line.
pub(super) fn entry(
    out: &mut String,
    key: &str,
    comment: &str,
    value: &Value,
    indent: usize,
    style: Style,
) {
    let pad = " ".repeat(indent);
    if let Some(inline) = inline(value) {
        out.push_str(&format!("{pad}{key}: {inline}{comment}{}", style.eol));
        return;
    }
    out.push_str(&format!("{pad}{key}:{comment}{}", style.eol));
    match value {
        Value::Array(items) => {
            for item in items {
                seq_item(out, item, indent + style.unit, style);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                entry(out, &scalar(k), "", v, indent + style.unit, style);
            }
        }
        _ => {}
    }
}

/// Appends one `- item` of a block sequence at column `indent`.
fn seq_item(out: &mut String, value: &Value, indent: usize, style: Style) {
    let pad = " ".repeat(indent);
    if let Some(inline) = inline(value) {
        out.push_str(&format!("{pad}- {inline}{}", style.eol));
        return;
    }
    match value {
        Value::Array(items) => {
            out.push_str(&format!("{pad}-{}", style.eol));
            for item in items {
                seq_item(out, item, indent + style.unit, style);
            }
        }
        Value::Object(map) => {
            // Compact form: the first key shares the line with the dash, the others align
            // with it.
            let mut nested = String::new();
            for (k, v) in map {
                entry(&mut nested, &scalar(k), "", v, indent + 2, style);
            }
            out.push_str(&pad);
            out.push_str("- ");
            out.push_str(&nested[indent + 2..]);
        }
        _ => {}
    }
}

/// The value on one line, if it fits on one: scalars and empty collections.
fn inline(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".to_owned()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(scalar(s)),
        Value::Array(a) if a.is_empty() => Some("[]".to_owned()),
        Value::Object(m) if m.is_empty() => Some("{}".to_owned()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// `s` as a YAML scalar (key or value): plain when that is unambiguous, double-quoted
/// otherwise.
pub(super) fn scalar(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s.chars().any(is_special_char)
        && !s.contains(": ")
        && !s.ends_with(':')
        && !s.contains(" #")
        && !is_reserved(s)
        && !looks_numeric(s)
        && reads_back_as_itself(s)
}

/// Characters a plain scalar must not hold: line breaks (YAML 1.1 counts U+0085, U+2028 and
/// U+2029), tabs, a byte order mark, and anything outside YAML's printable set.
fn is_special_char(c: char) -> bool {
    let printable = matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        || c >= '\u{10000}';
    !printable || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Words YAML 1.1 or 1.2 readers resolve to null, booleans, special floats, merge or value keys.
fn is_reserved(s: &str) -> bool {
    const WORDS: [&str; 16] = [
        "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "<<", "=", ".inf",
        "-.inf", "+.inf", ".nan",
    ];
    WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// Anything a reader might take for a number, a date or a sexagesimal: a string starting like
/// a number is plain only if it holds a letter that no numeric form uses (`10s`, `1080p`).
fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digit_at = |i: usize| t.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    if !(digit_at(0) || (t.starts_with('.') && digit_at(1))) {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    let radix = ["0x", "0o", "0b"].iter().any(|p| lower.starts_with(p));
    let date = (0..4).all(digit_at) && t.as_bytes().get(4) == Some(&b'-');
    radix
        || date
        || !t
            .chars()
            .any(|c| c.is_alphabetic() && !matches!(c, 'e' | 'E'))
}

/// The last word: serde-saphyr itself reads `k: s` back as the string `s`.
fn reads_back_as_itself(s: &str) -> bool {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let parsed = serde_saphyr::from_str_with_options::<Value>(&format!("k: {s}\n"), options);
    matches!(parsed, Ok(Value::Object(m)) if m.len() == 1 && m.get("k") == Some(&Value::String(s.to_owned())))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_special_char(c) && u32::from(c) <= 0xffff => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c if is_special_char(c) => out.push_str(&format!("\\U{:08X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_where_unambiguous() {
        for s in [
            "rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101",
            "ffmpeg:cam1#video=h264#hardware",
            "cam_1",
            "site/cam.2",
            "10s",
            "1080p",
            "publisher",
            "~^cam(\\d+)$",
            "it's",
        ] {
            assert_eq!(scalar(s), s, "{s}");
        }
    }

    #[test]
    fn quoted_where_ambiguous() {
        for (s, q) in [
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("on", "\"on\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("", "\"\""),
            ("123", "\"123\""),
            ("1.5", "\"1.5\""),
            ("0x1F", "\"0x1F\""),
            ("1e3", "\"1e3\""),
            ("2024-01-02", "\"2024-01-02\""),
            ("192.168.1.10", "\"192.168.1.10\""),
            ("*alias", "\"*alias\""),
            ("&anchor", "\"&anchor\""),
            ("!tag", "\"!tag\""),
            ("%x", "\"%x\""),
            ("@x", "\"@x\""),
            ("`x", "\"`x\""),
            (":8554", "\":8554\""),
            ("a: b", "\"a: b\""),
            ("a #b", "\"a #b\""),
            ("#a", "\"#a\""),
            (" lead", "\" lead\""),
            ("trail ", "\"trail \""),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\n\""),
            ("tab\there", "\"tab\\there\""),
            ("<<", "\"<<\""),
        ] {
            assert_eq!(scalar(s), q, "{s}");
        }
    }

    #[test]
    fn renders_nested_values() {
        let style = Style { unit: 2, eol: "\n" };
        let value = serde_json::json!({
            "source": "rtsp://a",
            "list": ["x", ["z"], {"k": 1, "l": [true]}],
            "empty": {},
        });
        let mut out = String::new();
        entry(&mut out, "cam", "  # c", &value, 2, style);
        assert_eq!(
            out,
            "  cam:  # c\n    empty: {}\n    list:\n      - x\n      -\n        - z\n      - k: 1\n        l:\n          - true\n    source: rtsp://a\n"
        );
    }
}
