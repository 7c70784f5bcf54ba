//! HTTP answers' bodies for every HTTP client camsync runs (the targets' APIs, the
//! resolvers): read with a bound (an endless body costs no unbounded memory), and shown in an
//! error redacted and cut.

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Announced or found longer than the limit.
    TooLarge,
    Transport(reqwest::Error),
}

/// The body of `response` as text (invalid UTF-8 replaced), refused once longer than `limit`
/// bytes.
pub(crate) async fn read(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<String, BodyError> {
    if response
        .content_length()
        .is_some_and(|announced| announced > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(match String::from_utf8(body) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A server's answer as shown in an error: credentials redacted, escaped and cut (a server
/// cannot forge a line of camsync's output).
pub(crate) fn detail(body: &str) -> String {
    let text = body.trim();
    if text.is_empty() {
        "(empty answer)".into()
    } else {
        crate::echo::Message(&crate::secret::redact(text)).to_string()
    }
}
