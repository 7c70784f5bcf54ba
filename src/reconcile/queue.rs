//! One target's work queue: pure bookkeeping, with the clock passed in.
//!
//! - **Keyed.** One waiting entry per [`Key`]: a stream, or the whole target. A new item for a
//!   key that is already waiting merges with it ([`Merge`]): the higher priority and the earlier
//!   due time win. A key handed out is *in flight* until [`WorkQueue::done`]; an item for it
//!   meanwhile waits, parked, so one key is never worked on twice at once.
//! - **Priorities.** [`Priority::Recover`] items always go first. Between
//!   [`Priority::Change`] and [`Priority::Resync`] the higher goes first, except that every
//!   [`FAIR_EVERY`]-th pick takes whichever has waited longest, so a low item never waits
//!   forever behind a steady stream of changes.
//! - **Target-wide keys are exclusive.** [`Key::All`] and [`Key::Server`] are handed out only
//!   when nothing is in flight, and nothing else while one is.
//!
//! [`RateLimit`] is the sliding window of `max_writes_per_minute`; [`Backoff`] the requeue
//! schedule. Both are pure too.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

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

impl Key {
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

/// Every this many picks between changes and resyncs, the longest-waiting one goes first.
pub const FAIR_EVERY: u32 = 4;

/// Work that can absorb another item for the same key.
pub trait Merge {
    fn merge(&mut self, other: Self);
}

struct Entry<W> {
    priority: Priority,
    due: Instant,
    /// When the key started waiting (kept through merges).
    since: Instant,
    seq: u64,
    work: W,
    /// Waiting for the same key to finish.
    parked: bool,
}

/// An item handed out by [`WorkQueue::pop`].
#[derive(Debug)]
pub struct Popped<W> {
    pub key: Key,
    pub priority: Priority,
    pub work: W,
    /// From its first enqueueing to now.
    pub waited: Duration,
}

/// Whether [`WorkQueue::push`] made a new entry or merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    New,
    Merged,
}

pub struct WorkQueue<W> {
    waiting: HashMap<Key, Entry<W>>,
    /// Entries that may be handed out once due, by priority, then due time, then arrival.
    ready: [BTreeSet<(Instant, u64, Key)>; 3],
    in_flight: HashSet<Key>,
    exclusive_in_flight: bool,
    seq: u64,
    picks: u32,
    depth: [usize; 3],
}

impl<W> Default for WorkQueue<W> {
    fn default() -> Self {
        WorkQueue {
            waiting: HashMap::new(),
            ready: Default::default(),
            in_flight: HashSet::new(),
            exclusive_in_flight: false,
            seq: 0,
            picks: 0,
            depth: [0; 3],
        }
    }
}

impl<W: Merge> WorkQueue<W> {
    /// Adds an item due at `due` (`now` or later), or merges it into the waiting one.
    pub fn push(
        &mut self,
        key: Key,
        priority: Priority,
        due: Instant,
        now: Instant,
        work: W,
    ) -> Pushed {
        if let Some(entry) = self.waiting.get_mut(&key) {
            if !entry.parked {
                self.ready[entry.priority as usize].remove(&(entry.due, entry.seq, key.clone()));
            }
            self.depth[entry.priority as usize] -= 1;
            entry.work.merge(work);
            entry.priority = entry.priority.min(priority);
            entry.due = entry.due.min(due);
            self.depth[entry.priority as usize] += 1;
            if !entry.parked {
                self.ready[entry.priority as usize].insert((entry.due, entry.seq, key));
            }
            return Pushed::Merged;
        }
        self.seq += 1;
        let parked = self.in_flight.contains(&key);
        if !parked {
            self.ready[priority as usize].insert((due, self.seq, key.clone()));
        }
        self.depth[priority as usize] += 1;
        self.waiting.insert(
            key,
            Entry {
                priority,
                due,
                since: now,
                seq: self.seq,
                work,
                parked,
            },
        );
        Pushed::New
    }

    /// The next item to work on now, if any may start with `max_in_flight` at once.
    pub fn pop(&mut self, now: Instant, max_in_flight: usize) -> Option<Popped<W>> {
        if self.exclusive_in_flight || self.in_flight.len() >= max_in_flight {
            return None;
        }
        let head = |set: &BTreeSet<(Instant, u64, Key)>| {
            set.first().filter(|(due, ..)| *due <= now).cloned()
        };
        let [recover, change, resync] = [0, 1, 2].map(|p| head(&self.ready[p]));
        let fair_turn = self.picks + 1 >= FAIR_EVERY;
        let (priority, chosen) = match (recover, change, resync) {
            (Some(r), _, _) => (Priority::Recover, r),
            (None, Some(c), Some(s)) => {
                let older = self.waiting[&s.2].since < self.waiting[&c.2].since;
                if fair_turn && older {
                    (Priority::Resync, s)
                } else {
                    (Priority::Change, c)
                }
            }
            (None, Some(c), None) => (Priority::Change, c),
            (None, None, Some(s)) => (Priority::Resync, s),
            (None, None, None) => return None,
        };
        let key = chosen.2.clone();
        if key.exclusive() && !self.in_flight.is_empty() {
            return None;
        }
        if priority != Priority::Recover {
            self.picks = if fair_turn { 0 } else { self.picks + 1 };
        }
        self.ready[priority as usize].remove(&chosen);
        let entry = self.waiting.remove(&key)?;
        self.depth[priority as usize] -= 1;
        self.exclusive_in_flight = key.exclusive();
        self.in_flight.insert(key.clone());
        Some(Popped {
            key,
            priority,
            work: entry.work,
            waited: now.saturating_duration_since(entry.since),
        })
    }

    /// The work on `key` is over; an item that waited for it may now be handed out.
    pub fn done(&mut self, key: &Key) {
        self.in_flight.remove(key);
        if key.exclusive() {
            self.exclusive_in_flight = false;
        }
        if let Some(entry) = self.waiting.get_mut(key).filter(|e| e.parked) {
            entry.parked = false;
            self.ready[entry.priority as usize].insert((entry.due, entry.seq, key.clone()));
        }
    }

    /// When the earliest waiting item falls due (it may still wait for the work in flight).
    pub fn next_due(&self) -> Option<Instant> {
        self.ready
            .iter()
            .filter_map(|set| set.first().map(|(due, ..)| *due))
            .min()
    }

    /// Waiting items by priority (parked ones included).
    pub fn depth(&self) -> [usize; 3] {
        self.depth
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Every waiting item, taken out (for shutdown).
    pub fn drain(&mut self) -> Vec<W> {
        self.ready = Default::default();
        self.depth = [0; 3];
        self.waiting.drain().map(|(_, e)| e.work).collect()
    }
}

/// `max_writes_per_minute` as a sliding window: at most `limit` writes in any 60 s.
#[derive(Debug, Default)]
pub struct RateLimit {
    limit: Option<usize>,
    writes: VecDeque<Instant>,
}

pub const RATE_WINDOW: Duration = Duration::from_secs(60);

impl RateLimit {
    pub fn new(per_minute: Option<u32>) -> RateLimit {
        RateLimit {
            limit: per_minute.map(|n| n.max(1) as usize),
            writes: VecDeque::new(),
        }
    }

    /// When `1 + reserved` more writes fit in the window: `None` for now.
    pub fn ready_at(&mut self, now: Instant, reserved: usize) -> Option<Instant> {
        let limit = self.limit?;
        while self
            .writes
            .front()
            .is_some_and(|at| *at + RATE_WINDOW <= now)
        {
            self.writes.pop_front();
        }
        let used = self.writes.len() + reserved;
        if used < limit {
            return None;
        }
        // The write that must leave the window first.
        let index = used - limit;
        Some(match self.writes.get(index) {
            Some(at) => *at + RATE_WINDOW,
            None => now + RATE_WINDOW,
        })
    }

    /// A write was sent at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.limit.is_some() {
            self.writes.push_back(now);
        }
    }
}

/// The requeue schedule of a failed item: exponential from `min`, capped at `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` failures in a row; `jitter` in [0, 1) takes up to half off,
    /// so many items that failed together do not come back together.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let capped = self.min.saturating_mul(1 << exponent).min(self.max);
        capped.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut q = WorkQueue::default();
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
        let mut q = WorkQueue::default();
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
        let mut q = WorkQueue::default();
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
        let mut q = WorkQueue::default();
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
        let mut q = WorkQueue::default();
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
