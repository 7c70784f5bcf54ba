//! A camera's source URL with its credentials kept apart: a password (and a resolved stream's
//! path and query, which may hold a token) is sent only in the request that needs it, and
//! shown as `***` everywhere else.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::secret::Secret;
use crate::target::go2rtc::rules as go2rtc;

/// A source URL with its credentials kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    /// The source without userinfo, e.g. `rtsp://192.0.2.10:554/stream1`.
    template: String,
    /// Byte offset just after the `://` where userinfo belongs.
    authority_at: Option<usize>,
    username: Option<String>,
    password: Option<Secret>,
    /// Everything after a resolved stream's host (its path and query), kept apart like the
    /// password because a vendor may put the token anywhere in it (Google: `?auth=…`; others:
    /// the path). Appended only by [`SourceUrl::expose`]; shown as `/***`.
    secret_tail: Option<Secret>,
}

/// Characters kept as they are in userinfo; everything else is percent-encoded, so a password
/// with `@`, `:` or `/` cannot break the URL.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

pub(crate) enum CredentialError {
    Twice,
    NoAuthority,
}

impl SourceUrl {
    /// Parses a source. Credentials inside the URL are moved out of it into a [`Secret`].
    pub fn parse(raw: &str) -> Result<SourceUrl, String> {
        if raw.is_empty() {
            return Err("the url is empty".into());
        }
        go2rtc::check_source(raw)?;
        let has_scheme = raw.find(':').is_some_and(|i| {
            raw[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && raw[..i].chars().all(is_scheme_char)
        });
        if !has_scheme {
            return Err("no scheme (expected e.g. rtsp://host/path)".into());
        }
        let Some(sep) = raw.find("://") else {
            return Ok(SourceUrl {
                template: raw.to_owned(),
                authority_at: None,
                username: None,
                password: None,
                secret_tail: None,
            });
        };
        let inner_start = raw[..sep]
            .rfind(|c: char| !is_scheme_char(c))
            .map_or(0, |i| i + 1);
        let inner_end = raw[sep..].find('#').map_or(raw.len(), |i| sep + i);
        let parsed = url::Url::parse(&raw[inner_start..inner_end])
            .map_err(|e| format!("not a valid URL: {e}"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let authority_at = sep + 3;
        let authority_end = raw[authority_at..]
            .find(['/', '?', '#'])
            .map_or(raw.len(), |i| authority_at + i);
        let (template, username, password) = match raw[authority_at..authority_end].rfind('@') {
            None => (raw.to_owned(), None, None),
            Some(at) => {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                let userinfo = &raw[authority_at..authority_at + at];
                let (user, pass) = match userinfo.split_once(':') {
                    Some((u, p)) => (decode(u), Some(Secret::new(decode(p)))),
                    None => (decode(userinfo), None),
                };
                let template = format!("{}{}", &raw[..authority_at], &raw[authority_at + at + 1..]);
                (template, Some(user), pass)
            }
        };
        Ok(SourceUrl {
            template,
            authority_at: Some(authority_at),
            username,
            password,
            secret_tail: None,
        })
    }

    /// A resolved stream's URL: only its scheme and host are shown (`rtsps://host:443/***`),
    /// since a token may be anywhere after the host.
    pub fn resolved(url: &Secret) -> Result<SourceUrl, String> {
        let raw = url.expose();
        let source = SourceUrl::parse(raw)?;
        if source.username.is_some() {
            return Err("a resolved URL carries no user or password".into());
        }
        let Some(authority_at) = source.authority_at else {
            return Err("a resolved URL needs a host (expected e.g. rtsps://host/path)".into());
        };
        let authority_end = raw[authority_at..]
            .find(['/', '?', '#'])
            .map_or(raw.len(), |i| authority_at + i);
        let (base, tail) = raw.split_at(authority_end);
        Ok(SourceUrl {
            template: base.to_owned(),
            secret_tail: (!tail.is_empty()).then(|| Secret::new(tail)),
            ..source
        })
    }

    pub(crate) fn with_credentials(
        mut self,
        username: Option<String>,
        password: Option<Secret>,
    ) -> Result<SourceUrl, CredentialError> {
        if self.authority_at.is_none() {
            return Err(CredentialError::NoAuthority);
        }
        if self.username.is_some() {
            return Err(CredentialError::Twice);
        }
        self.username = username;
        self.password = password;
        Ok(self)
    }

    /// The scheme, e.g. `rtsp` (for `ffmpeg:rtsp://…`, `ffmpeg`).
    pub fn scheme(&self) -> &str {
        self.template.split(':').next().unwrap_or_default()
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The source with its password replaced by `placeholder` (e.g. `${VAR}`), for a file a
    /// server expands at start. (A resolved URL never goes into a file: its token expires.)
    pub fn with_password_placeholder(&self, placeholder: &str) -> String {
        self.assemble(|_| placeholder.to_owned(), "/***")
    }

    /// The source with credentials in it: only for the request that sends it.
    pub fn expose(&self) -> String {
        let tail = self.secret_tail.as_ref().map_or("", Secret::expose);
        self.assemble(
            |p| utf8_percent_encode(p.expose(), USERINFO).to_string(),
            tail,
        )
    }

    /// The source with the password (and a resolved URL's path and query) shown as `***`: for
    /// logs, errors and output.
    pub fn redacted(&self) -> String {
        self.assemble(|_| "***".to_owned(), "/***")
    }

    fn assemble(&self, password: impl Fn(&Secret) -> String, tail: &str) -> String {
        let mut assembled = self.with_userinfo(password);
        if self.secret_tail.is_some() {
            assembled.push_str(tail);
        }
        assembled
    }

    fn with_userinfo(&self, password: impl Fn(&Secret) -> String) -> String {
        let (Some(at), Some(user)) = (self.authority_at, &self.username) else {
            return self.template.clone();
        };
        let mut userinfo = utf8_percent_encode(user, USERINFO).to_string();
        if let Some(p) = &self.password {
            userinfo.push(':');
            userinfo.push_str(&password(p));
        }
        format!(
            "{}{userinfo}@{}",
            &self.template[..at],
            &self.template[at..]
        )
    }
}

impl std::fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_url_shows_its_scheme_and_host_alone() {
        for (url, shown) in [
            // Google's: the token in the query, a stream id in the path.
            (
                "rtsps://stream-ue1.example.com:443/sdm_live_stream/CiUA?auth=g.0.tok",
                "rtsps://stream-ue1.example.com:443/***",
            ),
            // Another vendor's: the token in the path.
            ("rtsp://192.0.2.40/live/tok-123", "rtsp://192.0.2.40/***"),
            ("rtsp://192.0.2.40?auth=tok-123", "rtsp://192.0.2.40/***"),
            ("rtsp://192.0.2.40:8554", "rtsp://192.0.2.40:8554"),
        ] {
            let source = SourceUrl::resolved(&Secret::new(url)).unwrap();
            assert_eq!(source.expose(), url, "sent as given");
            assert_eq!(source.redacted(), shown);
            assert_eq!(source.to_string(), shown);
            assert!(!format!("{source:?}").contains("tok"), "{source:?}");
        }
        for refused in ["rtsp://user:pw@192.0.2.40/live", "no-host", "rtsp://"] {
            let error = SourceUrl::resolved(&Secret::new(refused)).unwrap_err();
            assert!(!error.contains("pw@"), "{error}");
        }
    }

    #[test]
    fn inline_credentials_are_moved_out_of_the_url() {
        let src = SourceUrl::parse("ffmpeg:rtsp://u:s%40cret@192.0.2.1/x#video=h264").unwrap();
        assert_eq!(src.redacted(), "ffmpeg:rtsp://u:***@192.0.2.1/x#video=h264");
        assert_eq!(
            src.expose(),
            "ffmpeg:rtsp://u:s%40cret@192.0.2.1/x#video=h264"
        );
    }

    #[test]
    fn sources_go2rtc_refuses_are_rejected_up_front() {
        for bad in [
            "exec:ffmpeg -i x",
            "echo:rtsp://x",
            "expr:1",
            "rtsp://h/a b",
            "",
            "nohost",
            "rtsp://",
        ] {
            assert!(SourceUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(SourceUrl::parse("onvif://192.0.2.1").is_ok());
    }
}
