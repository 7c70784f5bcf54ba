//! Reading YAML into typed values. Errors carry line and column but never quote the input:
//! a camera inventory may hold passwords.
//!
//! Bounded by the parser's budget: serde-saphyr's defaults (at most 50,000
//! aliases, with a cap on how far aliases may multiply what they name, nesting 64 deep, 64 MiB
//! of scalar text), except the counts of nodes and events, raised so that an inventory of
//! `max_cameras`' default (100,000 cameras) or a server file of as many streams parses.

use serde::de::DeserializeOwned;

/// The most YAML nodes (maps, sequences and scalars) in one document: 20 per camera at the
/// default `max_cameras`.
pub const MAX_NODES: usize = 2_000_000;
/// The most parser events in one document.
pub const MAX_EVENTS: usize = 5_000_000;

/// The parser's budget: its defaults, with `max_nodes` and [`MAX_EVENTS`].
fn budget(max_nodes: usize) -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = max_nodes;
    budget.max_events = MAX_EVENTS;
    budget
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    from_str_within(text, MAX_NODES)
}

/// [`from_str`] for a part of a document, which may hold at most `max_nodes` of the whole
/// document's [`MAX_NODES`].
pub fn from_str_within<T: DeserializeOwned>(text: &str, max_nodes: usize) -> Result<T, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options.budget = Some(budget(max_nodes));
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let message = e.to_string();
        if message.contains("budget breached") {
            format!(
                "{message}: the document is larger or more deeply nested, or uses more aliases, \
                 than camsync reads (at most {MAX_NODES} nodes); split it or remove aliases"
            )
        } else {
            message
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_thousand_cameras_parse() {
        let mut text = String::from("cameras:\n");
        for i in 0..60_000 {
            text.push_str(&format!("  - name: c{i}\n    url: rtsp://192.0.2.1/{i}\n"));
        }
        let doc: serde_json::Value = from_str(&text).unwrap();
        assert_eq!(doc["cameras"].as_array().map(Vec::len), Some(60_000));
    }

    #[test]
    fn an_alias_bomb_is_refused_with_advice() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let e = from_str::<serde_json::Value>(&text).unwrap_err();
        assert!(e.contains("budget") && e.contains("aliases"), "{e}");
    }
}
