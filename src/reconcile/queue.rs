//! What a target's work queue ([`crate::queue`]) is keyed and ordered by.
//!
//! - **Keys**: a stream, or the whole target ([`Key::All`], [`Key::Server`]: exclusive, handed
//!   out only when nothing else is in flight).
//! - **Priorities**: [`Priority::Recover`] first; between [`Priority::Change`] and
//!   [`Priority::Resync`] the higher, except every [`crate::queue::FAIR_EVERY`]-th pick.

use crate::queue::{Level, QueueKey, WorkQueue};

/// What an item is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// One stream (or path) of the target.
    Stream(String),
    /// Every stream of the target: list once, plan, then per-stream items (or one file write).
    All,
    /// The server itself (the opt-in restart).
    Server,
}

impl QueueKey for Key {
    fn exclusive(&self) -> bool {
        !matches!(self, Key::Stream(_))
    }
}

/// How urgent an item is; lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A health recovery or a forced reconnect.
    Recover = 0,
    /// A change from the source, a webhook, a server seen restarted.
    Change = 1,
    /// The periodic resync and what it finds.
    Resync = 2,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Recover, Priority::Change, Priority::Resync];

    /// The name used in metrics and status (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Recover => "recover",
            Priority::Change => "change",
            Priority::Resync => "resync",
        }
    }
}

impl Level for Priority {
    const ORDER: [Priority; 3] = Priority::ALL;

    fn index(self) -> usize {
        self as usize
    }
}

/// A target's queue.
pub type TargetQueue<W> = WorkQueue<Key, Priority, W>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::queue::{Backoff, FAIR_EVERY, Merge, Pushed, RATE_WINDOW, RateLimit};

    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    struct Tags(Vec<&'static str>);

    impl Merge for Tags {
        fn merge(&mut self, other: Self) {
            self.0.extend(other.0);
        }
    }

    fn stream(name: &str) -> Key {
        Key::Stream(name.into())
    }

    fn tag(t: &'static str) -> Tags {
        Tags(vec![t])
    }

    #[test]
    fn an_item_for_a_waiting_key_merges_and_the_more_urgent_wins() {
        let now = Instant::now();
        let mut q = TargetQueue::default();
        let later = now + Duration::from_secs(5);
        assert_eq!(
            q.push(stream("a"), Priority::Resync, later, now, tag("x")),
            Pushed::New
        );
        assert_eq!(
            q.push(
                stream("a"),
                Priority::Recover,
                later + Duration::from_secs(1),
                now,
                tag("y")
            ),
            Pushed::Merged
        );
        assert_eq!(
            q.push(stream("a"), Priority::Change, now, now, tag("z")),
            Pushed::Merged
        );
        assert_eq!(q.depth(), [1, 0, 0]);
        let popped = q.pop(now, 1).unwrap();
        assert_eq!(
            (popped.key, popped.priority),
            (stream("a"), Priority::Recover)
        );
        assert_eq!(popped.work, Tags(vec!["x", "y", "z"]));
        assert!(q.pop(now, 1).is_none());
    }

    #[test]
    fn a_key_in_flight_is_never_handed_out_twice() {
        let now = Instant::now();
        let mut q = TargetQueue::default();
        q.push(stream("a"), Priority::Change, now, now, tag("1"));
        q.push(stream("b"), Priority::Change, now, now, tag("b"));
        let first = q.pop(now, 4).unwrap();
        assert_eq!(first.key, stream("a"));
        q.push(stream("a"), Priority::Recover, now, now, tag("2"));
        // "a" waits for itself; "b" may go.
        assert_eq!(q.pop(now, 4).unwrap().key, stream("b"));
        assert!(q.pop(now, 4).is_none());
        q.done(&stream("a"));
        let again = q.pop(now, 4).unwrap();
        assert_eq!((again.key, again.work), (stream("a"), tag("2")));
    }

    #[test]
    fn recoveries_go_first_and_items_wait_until_due() {
        let now = Instant::now();
        let mut q = TargetQueue::default();
        q.push(stream("resync"), Priority::Resync, now, now, tag("r"));
        q.push(stream("change"), Priority::Change, now, now, tag("c"));
        q.push(
            stream("later"),
            Priority::Recover,
            now + Duration::from_secs(1),
            now,
            tag("l"),
        );
        q.push(stream("recover"), Priority::Recover, now, now, tag("v"));
        let order: Vec<Key> = std::iter::from_fn(|| {
            let p = q.pop(now, 1)?;
            q.done(&p.key);
            Some(p.key)
        })
        .collect();
        assert_eq!(
            order,
            [stream("recover"), stream("change"), stream("resync")]
        );
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(1)));
        assert_eq!(
            q.pop(now + Duration::from_secs(1), 1).unwrap().key,
            stream("later")
        );
    }

    #[test]
    fn a_low_item_is_not_starved_by_a_steady_stream_of_changes() {
        let start = Instant::now();
        let mut q = TargetQueue::default();
        q.push(stream("low"), Priority::Resync, start, start, tag("low"));
        let mut picked_at = None;
        for i in 0..100u64 {
            let now = start + Duration::from_millis(i + 1);
            q.push(
                stream(&format!("c{i}")),
                Priority::Change,
                now,
                now,
                tag("c"),
            );
            let p = q.pop(now, 1).unwrap();
            q.done(&p.key);
            if p.key == stream("low") {
                picked_at = Some(i);
                break;
            }
        }
        assert!(
            picked_at.is_some_and(|i| i < u64::from(FAIR_EVERY)),
            "{picked_at:?}"
        );
    }

    #[test]
    fn target_wide_work_runs_alone() {
        let now = Instant::now();
        let mut q = TargetQueue::default();
        q.push(stream("a"), Priority::Change, now, now, tag("a"));
        q.push(Key::All, Priority::Change, now, now, tag("all"));
        q.push(stream("b"), Priority::Change, now, now, tag("b"));
        let a = q.pop(now, 4).unwrap();
        assert_eq!(a.key, stream("a"));
        // The whole-target item is next in line, and waits for "a" to finish.
        assert!(q.pop(now, 4).is_none());
        q.done(&a.key);
        assert_eq!(q.pop(now, 4).unwrap().key, Key::All);
        assert!(
            q.pop(now, 4).is_none(),
            "nothing beside a whole-target item"
        );
        q.done(&Key::All);
        assert_eq!(q.pop(now, 4).unwrap().key, stream("b"));
    }

    #[test]
    fn the_rate_limit_holds_in_every_window() {
        let start = Instant::now();
        let mut limit = RateLimit::new(Some(3));
        let mut now = start;
        let mut sent = Vec::new();
        for _ in 0..10 {
            if let Some(at) = limit.ready_at(now, 0) {
                assert!(at > now);
                now = at;
            }
            assert_eq!(limit.ready_at(now, 0), None);
            limit.record(now);
            sent.push(now);
        }
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().filter(|t| **t < *at + RATE_WINDOW).count();
            assert!(in_window <= 3, "{in_window} writes within a minute");
        }
        // Writes in flight count too.
        let mut limit = RateLimit::new(Some(2));
        limit.record(start);
        assert!(limit.ready_at(start, 1).is_some());
        assert_eq!(RateLimit::new(None).ready_at(start, 100), None);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_jitter_only_shortens() {
        let b = Backoff {
            min: Duration::from_millis(200),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay(30, 0.0), Duration::from_secs(10));
        assert_eq!(b.delay(30, 0.999_999).as_millis(), 5_000);
    }
}
