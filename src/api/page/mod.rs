//! The status page (`GET /`): one HTML page with its script and style sheet, embedded in the
//! binary and served under a Content-Security-Policy that allows nothing else (no inline code,
//! no other origin, no framing). The page reads the token-guarded API with the token the
//! operator types in, which it keeps in the tab's `sessionStorage` and sends as a header only,
//! so a page on another origin can neither read it nor make the API act.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// What the page may load and where it may connect: itself only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // A new camsync binary brings a new page: never serve a stale one.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline code or style, or anything from another origin, would be refused by the
    /// Content-Security-Policy (or would need it loosened).
    #[test]
    fn the_page_loads_nothing_inline_and_nothing_from_elsewhere() {
        let lower = INDEX.to_ascii_lowercase();
        for forbidden in [
            "<script>",
            "<style",
            "style=",
            "javascript:",
            "http:",
            "https:",
        ] {
            assert!(!lower.contains(forbidden), "index.html has {forbidden:?}");
        }
        let handler = lower.split_whitespace().find(|word| {
            word.strip_prefix("on")
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase()))
        });
        assert_eq!(handler, None, "index.html has an inline event handler");
        assert!(INDEX.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(INDEX.contains(r#"<link rel="stylesheet" href="/ui/app.css">"#));
        assert!(
            !SCRIPT.contains("innerHTML"),
            "the script builds nodes, it never parses HTML"
        );
        assert!(!SCRIPT.contains("eval("));
        assert!(
            !SCRIPT.contains("localStorage"),
            "the token is kept for the tab only"
        );
        assert!(!SCRIPT.contains("document.cookie"));
    }
}
