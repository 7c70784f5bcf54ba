//! Secrets and redaction.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show `***`. [`redact`] masks
//! credentials in any text that may embed a source URL (ours, or one a server echoed back),
//! including URLs nested in go2rtc sources such as `ffmpeg:rtsp://user:pass@host/…`, so it scans
//! for `scheme://userinfo@` rather than parsing the whole string as one URL.

use std::fmt;

use serde::Deserialize;

/// A credential. Its value leaves this type only through [`Secret::expose`], at the moment a
/// request is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Accepts any scalar (`password: 12345` is a number in YAML) so that a type error can never
/// echo the value.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl serde::de::Visitor<'_> for ScalarVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces the userinfo of every `scheme://userinfo@host` in `text` with `***`, keeping the
/// user name when one is followed by a password (`rtsp://admin:***@host`).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) if !user.is_empty() => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    _ => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redacts_password_keeps_user_and_host() {
        assert_eq!(
            redact("rtsp://admin:hunter2@192.0.2.10:554/s1"),
            "rtsp://admin:***@192.0.2.10:554/s1"
        );
    }

    #[test]
    fn redacts_nested_and_repeated_urls() {
        let text = "ffmpeg:rtsp://u:p%40ss@h/a#video=copy and http://x:y@z/ and rtsp://h/nouser";
        assert_eq!(
            redact(text),
            "ffmpeg:rtsp://u:***@h/a#video=copy and http://x:***@z/ and rtsp://h/nouser"
        );
    }

    #[test]
    fn redacts_token_only_userinfo_and_at_signs_in_passwords() {
        assert_eq!(redact("rtsp://tok@h/x"), "rtsp://***@h/x");
        assert_eq!(redact("rtsp://a:b@c@h/x"), "rtsp://a:***@h/x");
        assert_eq!(redact("no url here"), "no url here");
    }
}
