//! The JSON bodies go2rtc answers: `GET /api`, and the streams of `GET /api/streams` with their
//! producers (a preload's connected one in go2rtc's full shape, its counters computed for the
//! moment of reading) and consumers, sources masked where they hold a value from the
//! environment. No I/O.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::producer::{Link, StreamObject};
use super::{Shared, State, VERSION};
use crate::rtsp;

/// `GET /api`.
pub(super) fn info_json(shared: &Shared) -> Value {
    let config_path = shared.state().file.path();
    json!({
        "config_path": config_path,
        "host": format!("127.0.0.1:{}", shared.api_port),
        "pid": std::process::id(),
        "revision": "sim",
        "rtsp": {"listen": format!(":{}", shared.rtsp_port), "default_query": "video&audio"},
        "version": VERSION,
    })
}

/// Every stream as `GET /api/streams` lists them.
pub(super) fn list_json(state: &State) -> Value {
    let now = Instant::now();
    Value::Object(
        state
            .streams
            .keys()
            .filter_map(|name| Some((name.clone(), stream_json(state, name, now)?)))
            .collect(),
    )
}

/// One stream as `GET /api/streams` shows it; `None` if unknown.
pub(super) fn stream_json(state: &State, name: &str, now: Instant) -> Option<Value> {
    let sources = state.streams.get(name)?;
    let preloaded = state.preloads.contains_key(name);
    let mut json = match state.objects.get(name) {
        Some(object) => object.json(sources, preloaded, now),
        None => StreamObject::default().json(sources, preloaded, now),
    };
    let urls = json["producers"].as_array_mut().into_iter().flatten();
    for url in urls.filter_map(|producer| producer.get_mut("url")) {
        if let Some(text) = url.as_str() {
            *url = Value::from(mask_secrets(text, &state.secrets));
        }
    }
    Some(json)
}

impl StreamObject {
    /// What `GET /api/streams` shows for this object's producers (`sources` as configured)
    /// and consumers.
    fn json(&self, sources: &[String], preloaded: bool, now: Instant) -> Value {
        // go2rtc stops an unused producer (showing its URL only); a preloaded one keeps its
        // last connection, frozen counters included, while it redials.
        let link = self.link.as_ref().filter(|_| preloaded);
        let mut linked = false;
        let producers = if sources.is_empty() {
            Value::Null
        } else {
            sources
                .iter()
                .map(|source| match link {
                    Some(link) if !linked && link.source == *source => {
                        linked = true;
                        producer_json(link, now)
                    }
                    _ => json!({ "url": source }),
                })
                .collect()
        };
        let consumers = if preloaded {
            let id = self.worker.as_ref().map_or(0, |(id, _)| *id);
            json!([{
                "id": id,
                "format_name": "preload",
                "medias": ["video, sendonly, ANY", "audio, sendonly, ANY"],
            }])
        } else {
            Value::Null
        };
        json!({ "producers": producers, "consumers": consumers })
    }
}

/// A connected RTSP producer, in the shape of the fixture `g2r-api-streams-src-active.json`.
fn producer_json(link: &Link, now: Instant) -> Value {
    let bytes = link.bytes_at(now);
    json!({
        "id": link.id,
        "format_name": "rtsp",
        "protocol": "rtsp+tcp",
        "remote_addr": link.remote_addr,
        "url": link.source,
        "sdp": rtsp::h264_sdp("camsync sim camera"),
        "user_agent": format!("go2rtc/{VERSION}"),
        "medias": ["video, recvonly, H264"],
        "receivers": [{
            "id": link.id + 1,
            "codec": {
                "codec_name": "h264",
                "codec_type": "video",
                "level": 22,
                "profile": "Baseline",
            },
            "bytes": bytes,
            "packets": bytes / 1_200,
        }],
        "bytes_recv": bytes,
    })
}

/// Every occurrence of a secret (a value from the environment) replaced by `***`, as go2rtc
/// shows sources; credentials written in the source itself are shown as they are.
fn mask_secrets(source: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(source.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_from_the_environment_are_masked() {
        let secrets = ["pw-1".to_owned(), String::new()];
        let cases = [
            (
                "rtsp://admin:pw-1@10.0.0.5/s1",
                "rtsp://admin:***@10.0.0.5/s1",
            ),
            (
                "rtsp://admin:other@10.0.0.5/s1",
                "rtsp://admin:other@10.0.0.5/s1",
            ),
            (
                "ffmpeg:rtsp://u:pw-1@127.0.0.1/x#video=h264",
                "ffmpeg:rtsp://u:***@127.0.0.1/x#video=h264",
            ),
        ];
        for (source, masked) in cases {
            assert_eq!(mask_secrets(source, &secrets), masked, "{source}");
        }
    }
}
