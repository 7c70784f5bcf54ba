//! `camsync status`: asks a running daemon (`GET /v1/cameras`) and shows its answer as a table
//! or as the JSON document itself.
//!
//! Exit codes: 0 the daemon is ready and every camera is synced and healthy on every target
//! meant for it; 1 otherwise; 2 the config is unusable or the daemon cannot be asked.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
#[error("cannot ask camsync at {url}: {detail}")]
pub struct StatusError {
    pub url: String,
    pub detail: String,
}

/// The API base URL for a daemon listening on `listen` (an unspecified address such as
/// 0.0.0.0 is asked on loopback).
pub fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Fetches `GET /v1/cameras` from the daemon at `base`.
pub async fn fetch(
    base: &str,
    token: Option<&Secret>,
    timeout: Duration,
) -> Result<Value, StatusError> {
    let url = format!("{}/v1/cameras", base.trim_end_matches('/'));
    let error = |detail: String| StatusError {
        url: url.clone(),
        detail,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| error(e.without_url().to_string()))?;
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| {
        error(format!(
            "{}; is `camsync run` running, and is --api (or the config's api.listen) right?",
            e.without_url()
        ))
    })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| {
        error(format!(
            "HTTP {status}: not the JSON of camsync: {}",
            e.without_url()
        ))
    })?;
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no reason given");
        return Err(error(format!("HTTP {status}: {message}")));
    }
    Ok(body)
}

/// Whether everything is as it should be: ready, every resolved camera's stream live, and
/// every wanted pair synced, healthy and not degraded.
pub fn all_well(doc: &Value) -> bool {
    doc["daemon"]["ready"] == true
        && resolved(doc).all(|(_, r)| r["state"] == "live")
        && pairs(doc).all(|(_, t)| {
            t["wanted"] != true
                || (t["degraded"] != true
                    && matches!(
                        t["last_sync"]["outcome"].as_str(),
                        Some("done" | "partial" | "unchanged")
                    )
                    && (t["health"].is_null() || t["health"]["state"] == "healthy"))
        })
}

fn pairs(doc: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    doc["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (c, t))
        })
}

/// The cameras whose URL is resolved (Nest, `resolve:`), with their stream.
fn resolved(doc: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    doc["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["resolved"].is_object())
        .map(|c| (c, &c["resolved"]))
}

fn text<'a>(v: &'a Value, fallback: &'a str) -> &'a str {
    v.as_str().unwrap_or(fallback)
}

/// The table: a summary line, then one row per (camera, target) the camera is meant for.
pub fn render_text(doc: &Value) -> String {
    let d = &doc["daemon"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "camsync: {}; {} camera(s), {} rejected; {} sync(s){}{}",
        if d["ready"] == true {
            "ready"
        } else {
            "NOT READY"
        },
        d["cameras"],
        d["rejected"].as_array().map_or(0, Vec::len),
        d["syncs"],
        match (d["last_sync_ok"].as_bool(), d["last_sync_at"].as_str()) {
            (Some(true), Some(at)) => format!(", the last converged at {at}"),
            (Some(false), Some(at)) => format!(", the last FAILED at {at}"),
            _ => String::new(),
        },
        d["last_source_error"]
            .as_str()
            .map_or(String::new(), |e| format!("\n  source error: {e}")),
    );
    for (target, q) in doc["queues"].as_object().into_iter().flatten() {
        out.push_str(&queue_line(target, q));
    }
    for (resolver, q) in doc["resolvers"].as_object().into_iter().flatten() {
        let n = |v: &Value, i: usize| v[i].as_u64().unwrap_or_default();
        let _ = writeln!(
            out,
            "  resolver {resolver}: {} waiting (extend {}, generate {}, stop {}); sent {}, failed {}, 429s {}, longest wait {:.1}s",
            n(&q["depth"], 0) + n(&q["depth"], 1) + n(&q["depth"], 2),
            n(&q["depth"], 0),
            n(&q["depth"], 1),
            n(&q["depth"], 2),
            n(&q["executed"], 0) + n(&q["executed"], 1) + n(&q["executed"], 2),
            q["failed"],
            q["rate_limited"],
            q["max_wait_ms"].as_f64().unwrap_or_default() / 1000.0
        );
    }
    for (camera, r) in resolved(doc).filter(|(_, r)| r["state"] != "live") {
        let _ = writeln!(
            out,
            "  stream of {} (resolver {}): {}{}",
            text(&camera["name"], "?"),
            text(&r["resolver"], "?"),
            text(&r["state"], "unknown").to_uppercase(),
            r["error"]
                .as_str()
                .map_or(String::new(), |e| format!(": {e}"))
        );
    }
    for target in doc["unverified_targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  target {}: camsync writes its file but cannot check that the server loaded it (give the target the server's api:)",
            text(target, "?")
        );
    }
    let header = [
        "CAMERA",
        "TARGET",
        "OWNED",
        "LAST SYNC",
        "HEALTH",
        "LAST CHANGE",
        "LAST RECOVERY",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(String::from)];
    for (camera, t) in pairs(doc).filter(|(_, t)| t["wanted"] == true) {
        let sync = &t["last_sync"];
        let last_sync = match (sync["action"].as_str(), sync["outcome"].as_str()) {
            (None, _) => "-".to_owned(),
            // Nothing to write: `unchanged`, or why not (`failed`, `refused`).
            (Some("unchanged"), outcome) => outcome.unwrap_or("?").to_owned(),
            (Some(action), outcome) => format!("{action} {}", outcome.unwrap_or("?")),
        };
        let last_sync = if t["degraded"] == true {
            format!("{last_sync} DEGRADED")
        } else {
            last_sync
        };
        let health = match &t["health"] {
            Value::Null => "-".to_owned(),
            h => match h["attempt"].as_u64() {
                Some(n) => format!("{} #{n}", text(&h["state"], "?")),
                None => text(&h["state"], "?").to_owned(),
            },
        };
        let change = match &t["last_transition"] {
            Value::Null => "-".to_owned(),
            c => format!(
                "{} -> {} at {} ({})",
                text(&c["from"], "?"),
                text(&c["to"], "?"),
                text(&c["at"], "?"),
                text(&c["reason"], "")
            ),
        };
        let recovery = match &t["last_recovery"] {
            Value::Null => "-".to_owned(),
            r => format!(
                "{:.1}s at {}",
                r["seconds"].as_f64().unwrap_or_default(),
                text(&r["at"], "?")
            ),
        };
        let owned = match (t["owned"] == true, t["confirmed"] == true) {
            (true, true) => "yes",
            (true, false) => "unconfirmed",
            _ => "no",
        };
        rows.push([
            text(&camera["name"], "?").to_owned(),
            text(&t["target"], "?").to_owned(),
            owned.to_owned(),
            last_sync,
            health,
            change,
            recovery,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for r in d["rejected"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "rejected {}: {}",
            text(&r["location"], "?"),
            text(&r["reason"], "?")
        );
    }
    out
}

/// `queue go2rtc: 3 waiting (recover 0, change 3, resync 0), 1 in flight; ...`, and the
/// streams that keep failing.
fn queue_line(target: &str, q: &Value) -> String {
    let w = &q["waiting"];
    let count = |v: &Value| v.as_u64().unwrap_or_default();
    let waiting = count(&w["recover"]) + count(&w["change"]) + count(&w["resync"]);
    let mut line = format!(
        "  queue {target}: {waiting} waiting (recover {}, change {}, resync {}), {} in flight; done {}, failed {}, merged {}\n",
        w["recover"], w["change"], w["resync"], q["in_flight"], q["done"], q["failed"], q["merged"]
    );
    let degraded: Vec<&str> = q["degraded"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !degraded.is_empty() {
        line.push_str(&format!(
            "  DEGRADED on {target} (failing again and again, still retried): {}\n",
            degraded.join(", ")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unspecified_listener_is_asked_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:9180".parse().unwrap()),
            "http://127.0.0.1:9180"
        );
        assert_eq!(base_url("[::]:9180".parse().unwrap()), "http://[::1]:9180");
        assert_eq!(
            base_url("192.0.2.5:80".parse().unwrap()),
            "http://192.0.2.5:80"
        );
    }

    #[test]
    fn the_table_has_a_row_per_wanted_pair_and_says_what_is_wrong() {
        let doc = json!({
            "daemon": {"ready": true, "cameras": 1, "rejected": [], "syncs": 2,
                       "last_sync_ok": true, "last_sync_at": "2026-01-01T00:00:00Z"},
            "queues": {"go2rtc": {"waiting": {"recover": 1, "change": 2, "resync": 0},
                                  "in_flight": 1, "done": 9, "failed": 3, "merged": 4,
                                  "degraded": ["front"]}},
            "unverified_targets": ["recorder-file"],
            "cameras": [{"name": "front", "targets": [
                {"target": "go2rtc", "wanted": true, "owned": true, "confirmed": true,
                 "last_sync": {"action": "create", "outcome": "done"},
                 "health": {"state": "recovering", "attempt": 2},
                 "last_transition": {"from": "failing", "to": "recovering", "at": "T1", "reason": "stuck"},
                 "last_recovery": null},
                {"target": "mediamtx", "wanted": false, "owned": false, "confirmed": false}
            ]}]
        });
        let table = render_text(&doc);
        assert!(table.starts_with("camsync: ready; 1 camera(s)"), "{table}");
        assert!(
            table.contains(
                "queue go2rtc: 3 waiting (recover 1, change 2, resync 0), 1 in flight; done 9, failed 3, merged 4"
            ),
            "{table}"
        );
        assert!(
            table.contains("DEGRADED on go2rtc (failing again and again, still retried): front"),
            "{table}"
        );
        assert!(
            table.contains("target recorder-file: camsync writes its file but cannot check"),
            "{table}"
        );
        assert!(
            table.contains("front   go2rtc  yes    create done  recovering #2"),
            "{table}"
        );
        assert!(!table.contains("mediamtx"), "{table}");
        assert!(!all_well(&doc), "a recovering stream is not all well");
    }

    #[test]
    fn a_resolved_stream_that_is_not_live_is_not_all_well_and_says_why() {
        let mut doc = json!({
            "daemon": {"ready": true, "cameras": 1, "rejected": [], "syncs": 1},
            "resolvers": {"home": {"depth": [1, 0, 0], "executed": [7, 1, 0], "failed": 2,
                                   "rate_limited": 1, "max_wait_ms": 2500}},
            "cameras": [{"name": "porch", "targets": [],
                         "resolved": {"resolver": "home", "state": "live"}}],
        });
        assert!(all_well(&doc));
        let text = render_text(&doc);
        assert!(
            text.contains(
                "resolver home: 1 waiting (extend 1, generate 0, stop 0); sent 8, failed 2, 429s 1"
            ),
            "{text}"
        );
        assert!(!text.contains("stream of porch"), "{text}");
        doc["cameras"][0]["resolved"]["state"] = json!("degraded");
        doc["cameras"][0]["resolved"]["error"] = json!("nest account home: sign in again");
        assert!(!all_well(&doc));
        let text = render_text(&doc);
        assert!(
            text.contains(
                "stream of porch (resolver home): DEGRADED: nest account home: sign in again"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_degraded_stream_is_not_all_well_and_says_so_in_its_row() {
        let mut doc = json!({
            "daemon": {"ready": true, "cameras": 1, "rejected": [], "syncs": 1},
            "cameras": [{"name": "front", "targets": [
                {"target": "go2rtc", "wanted": true, "owned": true, "confirmed": false,
                 "degraded": false,
                 "last_sync": {"action": "create", "outcome": "failed"}, "health": null}
            ]}]
        });
        doc["cameras"][0]["targets"][0]["last_sync"]["outcome"] = json!("done");
        assert!(all_well(&doc));
        doc["cameras"][0]["targets"][0]["degraded"] = json!(true);
        assert!(!all_well(&doc));
        assert!(
            render_text(&doc).contains("create done DEGRADED"),
            "{}",
            render_text(&doc)
        );
    }
}
