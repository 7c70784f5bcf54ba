//! Showing a value that came from outside (a camera name or URL, a config value) in an error,
//! a report or a log line.
//!
//! Invariant: what [`Echo`] prints is one line of printable text of bounded length, whatever the
//! value holds: control characters (CR, LF, ESC, …) are escaped as in Rust string literals
//! (`\r`, `\n`, `\u{1b}`), so a value cannot forge a line or recolour a terminal; a value
//! longer than [`MAX_CHARS`] characters is cut there and followed by `… (N bytes)`.
//! It does not redact: credentials must be removed before a value is echoed.
//!
//! [`Message`] does the same for a whole message that may quote values it does not mark (a
//! parser's "unknown field `…`" or "invalid type: string …"): escaped, unquoted, cut after
//! [`MAX_MESSAGE_CHARS`].

use std::fmt::{self, Write};

/// How many characters of a value are shown.
pub const MAX_CHARS: usize = 200;
/// How many characters of a message are shown.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// A value shown quoted, escaped and truncated: `"rtsp://h/x\r\nX: 1"`.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let cut = escaped(f, self.0, MAX_CHARS, true)?;
        f.write_char('"')?;
        if cut {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A message shown escaped and cut, unquoted.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a>(pub &'a str);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if escaped(f, self.0, MAX_MESSAGE_CHARS, false)? {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Writes at most `max` characters of `text`, escaped (and `"`, `\` too when `quoted`);
/// whether it was cut.
fn escaped(
    f: &mut fmt::Formatter<'_>,
    text: &str,
    max: usize,
    quoted: bool,
) -> Result<bool, fmt::Error> {
    for (shown, c) in text.chars().enumerate() {
        if shown == max {
            return Ok(true);
        }
        match c {
            '"' | '\\' if quoted => write!(f, "\\{c}")?,
            c if c.is_control() || is_invisible_format(c) => {
                write!(f, "{}", c.escape_debug())?;
            }
            c => f.write_char(c)?,
        }
    }
    Ok(false)
}

/// Characters that change how a line reads without being control characters: bidirectional
/// overrides and line/paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn echo(value: &str) -> String {
        Echo(value).to_string()
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            echo("rtsp://h/x\r\nX-Injected: 1\u{1b}[31m\t\0"),
            r#""rtsp://h/x\r\nX-Injected: 1\u{1b}[31m\t\0""#
        );
        assert_eq!(echo("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(echo("\u{202e}evil"), r#""\u{202e}evil""#);
        assert_eq!(echo("café/カメラ"), "\"café/カメラ\"");
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let value = "x".repeat(50 * 1024 * 1024);
        let shown = echo(&value);
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with("\"… (52428800 bytes)"), "{shown}");
        assert_eq!(
            echo(&"y".repeat(MAX_CHARS)),
            format!("\"{}\"", "y".repeat(MAX_CHARS))
        );
    }

    #[test]
    fn messages_are_escaped_and_cut_but_not_quoted() {
        let message = format!("unknown field `a\r\nb{}`", "y".repeat(5000));
        let shown = Message(&message).to_string();
        assert!(shown.starts_with("unknown field `a\\r\\nb"), "{shown}");
        assert!(
            shown.ends_with(&format!("… ({} bytes)", message.len())),
            "{shown}"
        );
        assert!(shown.chars().count() < MAX_MESSAGE_CHARS + 40);
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(256))]

        #[test]
        fn an_echo_is_one_short_printable_line(value in ".*") {
            let shown = echo(&value);
            prop_assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
            prop_assert!(shown.chars().count() <= 2 + MAX_CHARS * 10 + 40);
        }
    }
}
