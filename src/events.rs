//! The event bus: what the daemon did and saw, as typed events, for `GET /v1/events`.
//!
//! Invariants:
//! - Events carry a sequence number assigned under the same lock as the send, so every
//!   subscriber sees them in sequence order.
//! - Publishing never blocks and never fails: the bus is a bounded ring
//!   ([`tokio::sync::broadcast`]). A subscriber that falls more than [`CAPACITY`] events behind
//!   loses the oldest ones and is told how many ([`Received::Missed`]); the daemon never waits
//!   for a reader.
//! - No event holds a credential: sources are shown redacted and free text from servers passes
//!   through [`crate::secret::redact`].
//! - The last [`HISTORY_PER_CAMERA`] events about each camera are kept for
//!   `GET /v1/cameras/{name}/events` (the status page's timeline), under the same lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for subscribers that fall behind.
pub const CAPACITY: usize = 1024;
/// Events kept per camera for its history; a nightly reboot and its recovery take a handful.
pub const HISTORY_PER_CAMERA: usize = 100;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A sync began; it serves every request (webhook, `POST /v1/sync`) up to `requests_up_to`.
    SyncStarted { sync: u64, requests_up_to: u64 },
    /// One write (or forget, or held deletion) for a camera on a target: part of sync `sync`,
    /// or on its own (`sync` null: a recovery, a re-apply after a server restart).
    SyncAction {
        sync: Option<u64>,
        camera: String,
        target: String,
        action: String,
        outcome: String,
        reason: String,
        detail: Option<String>,
    },
    /// A sync ended.
    SyncFinished {
        sync: u64,
        ok: bool,
        seconds: f64,
        targets: Vec<TargetSummary>,
    },
    /// A (camera, target) pair changed health state.
    Health {
        camera: String,
        target: String,
        from: String,
        to: String,
        reason: String,
        /// The re-registration attempt, in `recovering`.
        attempt: Option<u32>,
        /// How long the pair was in `from` (unknown for the first change camsync saw).
        seconds_in_previous: Option<f64>,
    },
    /// A pair is healthy again after a failure.
    Recovery {
        camera: String,
        target: String,
        /// From the first failed check to healthy again.
        recovery_seconds: f64,
    },
    /// A forced re-registration (`POST /v1/cameras/{name}/reconnect`) on one target.
    Reconnect {
        camera: String,
        target: String,
        outcome: String,
        detail: Option<String>,
    },
    /// A stream failed to be written again and again (`degraded: true`; camsync keeps
    /// retrying at its longest backoff), or was written again (`false`).
    Degraded {
        camera: String,
        target: String,
        degraded: bool,
        detail: String,
    },
    /// A resolved camera's stream (Nest, `resolve:`) changed state: `pending`, `live`,
    /// `degraded` or `over-quota`; `generation` counts the streams generated for it.
    Stream {
        camera: String,
        resolver: String,
        state: String,
        generation: u64,
        detail: Option<String>,
    },
    /// The inventory was read.
    InventoryLoaded { cameras: usize, rejected: usize },
    /// A server lost what camsync wrote there (restart or reload); a sync follows.
    ServerRestarted { target: String },
    /// Something failed: the source could not be read, a target could not be synced.
    Error {
        scope: ErrorScope,
        target: Option<String>,
        camera: Option<String>,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorScope {
    Source,
    Sync,
}

/// A target's line in [`Event::SyncFinished`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub status: String,
    pub written: usize,
    pub failed: usize,
    pub unchanged: usize,
}

/// An event as published: its place in the sequence and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

/// The bus. Cheap to share behind an `Arc`.
pub struct EventBus {
    sender: broadcast::Sender<Envelope>,
    /// Held while sending, so that order and numbering agree.
    published: Mutex<Published>,
}

#[derive(Default)]
struct Published {
    /// The last sequence number.
    seq: u64,
    /// The newest events about each camera, oldest first.
    history: BTreeMap<String, VecDeque<Envelope>>,
}

impl Event {
    /// The camera the event is about, if it is about one.
    pub fn camera(&self) -> Option<&str> {
        match self {
            Event::SyncAction { camera, .. }
            | Event::Health { camera, .. }
            | Event::Recovery { camera, .. }
            | Event::Reconnect { camera, .. }
            | Event::Degraded { camera, .. }
            | Event::Stream { camera, .. } => Some(camera),
            Event::Error { camera, .. } => camera.as_deref(),
            Event::SyncStarted { .. }
            | Event::SyncFinished { .. }
            | Event::InventoryLoaded { .. }
            | Event::ServerRestarted { .. } => None,
        }
    }
}

/// What a subscriber gets next.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event(Box<Envelope>),
    /// The subscriber fell behind and these many events were dropped for it.
    Missed(u64),
    /// The bus is gone (the daemon stopped).
    Closed,
}

pub struct Subscription(broadcast::Receiver<Envelope>);

impl Subscription {
    pub async fn next(&mut self) -> Received {
        match self.0.recv().await {
            Ok(envelope) => Received::Event(Box::new(envelope)),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Missed(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::with_capacity(CAPACITY)
    }
}

impl EventBus {
    pub fn with_capacity(capacity: usize) -> EventBus {
        EventBus {
            sender: broadcast::channel(capacity.max(1)).0,
            published: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        crate::lock::lock(&self.published)
    }

    /// Publishes `event`; returns its sequence number. Never blocks on subscribers.
    pub fn publish(&self, event: Event) -> u64 {
        let mut published = self.lock();
        published.seq += 1;
        let envelope = Envelope {
            seq: published.seq,
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
        };
        if let Some(camera) = envelope.event.camera() {
            let kept = published.history.entry(camera.to_owned()).or_default();
            if kept.len() == HISTORY_PER_CAMERA {
                kept.pop_front();
            }
            kept.push_back(envelope.clone());
        }
        // No subscriber is not an error: events are for whoever listens now.
        let _ = self.sender.send(envelope);
        published.seq
    }

    /// The newest events about `camera`, oldest first.
    pub fn history(&self, camera: &str) -> Vec<Envelope> {
        self.lock()
            .history
            .get(camera)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the history of cameras for which `keep` is false (gone from the inventory).
    pub fn retain_history(&self, keep: impl Fn(&str) -> bool) {
        self.lock().history.retain(|camera, _| keep(camera));
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription(self.sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(n: usize) -> Event {
        Event::InventoryLoaded {
            cameras: n,
            rejected: 0,
        }
    }

    #[tokio::test]
    async fn subscribers_get_events_in_order_with_increasing_numbers() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe();
        for n in 0..5 {
            bus.publish(loaded(n));
        }
        for n in 0..5 {
            match sub.next().await {
                Received::Event(e) => {
                    assert_eq!(e.seq, n as u64 + 1);
                    assert_eq!(e.event, loaded(n));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_it_missed_and_goes_on() {
        let bus = EventBus::with_capacity(4);
        let mut slow = bus.subscribe();
        for n in 0..10 {
            bus.publish(loaded(n));
        }
        assert_eq!(slow.next().await, Received::Missed(6));
        let Received::Event(e) = slow.next().await else {
            panic!("the newest events are still there");
        };
        assert_eq!((e.seq, &e.event), (7, &loaded(6)));
    }

    #[test]
    fn events_serialize_flat_with_their_type() {
        let envelope = Envelope {
            seq: 3,
            time: "2026-01-01T00:00:00.000Z".into(),
            event: Event::Recovery {
                camera: "front".into(),
                target: "go2rtc".into(),
                recovery_seconds: 1.5,
            },
        };
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "time": "2026-01-01T00:00:00.000Z", "type": "recovery",
                "camera": "front", "target": "go2rtc", "recovery_seconds": 1.5})
        );
    }

    fn reconnect(camera: &str, n: usize) -> Event {
        Event::Reconnect {
            camera: camera.into(),
            target: "go2rtc".into(),
            outcome: "done".into(),
            detail: Some(n.to_string()),
        }
    }

    #[test]
    fn each_camera_keeps_its_newest_events_and_forgets_them_when_it_leaves() {
        let bus = EventBus::default();
        for n in 0..HISTORY_PER_CAMERA + 5 {
            bus.publish(reconnect("door", n));
        }
        bus.publish(reconnect("yard", 0));
        bus.publish(loaded(1));
        let door = bus.history("door");
        assert_eq!(door.len(), HISTORY_PER_CAMERA);
        assert_eq!(door[0].event, reconnect("door", 5), "the oldest go first");
        assert_eq!(
            door.last().unwrap().event,
            reconnect("door", HISTORY_PER_CAMERA + 4)
        );
        assert!(door.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            bus.history("yard").len(),
            1,
            "events about no camera are not kept"
        );
        bus.retain_history(|camera| camera == "yard");
        assert!(bus.history("door").is_empty());
        assert_eq!(bus.history("yard").len(), 1);
    }
}
