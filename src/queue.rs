//! A keyed work queue with three levels of urgency, and the schedules that pace one: pure
//! bookkeeping, with the clock passed in. Each target's writes (`reconcile`) and each resolver
//! account's commands (`resolve`) go through one.
//!
//! - **Keyed.** One waiting entry per key. A new item for a key that is already waiting merges
//!   with it ([`Merge`]): the more urgent level and the earlier due time win. A key handed out
//!   is *in flight* until [`WorkQueue::done`]; an item for it meanwhile waits, parked, so one
//!   key is never worked on twice at once.
//! - **Levels.** Items of the first [`Level`] always go first. Between the second and the third
//!   the higher goes first, except that every [`FAIR_EVERY`]-th pick takes whichever has waited
//!   longest, so a low item never waits forever behind a steady stream of middle ones.
//! - **Exclusive keys** ([`QueueKey::exclusive`]) are handed out only when nothing is in
//!   flight, and nothing else while one is.
//!
//! [`RateLimit`] is a sliding window of so many per minute; [`Backoff`] a requeue schedule;
//! [`sleep_until`] the one await a queue's runner needs: until its next wake, if any.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// What a queue's items are keyed by.
pub trait QueueKey: Clone + Eq + Hash + Ord {
    /// Whether work on this key runs alone.
    fn exclusive(&self) -> bool {
        false
    }
}

impl QueueKey for String {}

/// A queue's three levels of urgency.
pub trait Level: Copy + Eq {
    /// The levels, most urgent first.
    const ORDER: [Self; 3];

    /// This level's place in [`Level::ORDER`].
    fn index(self) -> usize;
}

/// Every this many picks between the second and third levels, the longest-waiting one goes
/// first.
pub const FAIR_EVERY: u32 = 4;

/// Work that can absorb another item for the same key.
pub trait Merge {
    fn merge(&mut self, other: Self);
}

struct Entry<P, W> {
    priority: P,
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
pub struct Popped<K, P, W> {
    pub key: K,
    pub priority: P,
    pub work: W,
    /// From its first enqueueing to now.
    pub waited: Duration,
    /// From when it fell due to now.
    pub overdue: Duration,
}

/// Whether [`WorkQueue::push`] made a new entry or merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    New,
    Merged,
}

pub struct WorkQueue<K, P, W> {
    waiting: HashMap<K, Entry<P, W>>,
    /// Entries that may be handed out once due, by priority, then due time, then arrival.
    ready: [BTreeSet<(Instant, u64, K)>; 3],
    in_flight: HashSet<K>,
    exclusive_in_flight: bool,
    seq: u64,
    picks: u32,
    depth: [usize; 3],
}

impl<K, P, W> Default for WorkQueue<K, P, W> {
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

impl<K: QueueKey, P: Level, W: Merge> WorkQueue<K, P, W> {
    /// Adds an item due at `due` (`now` or later), or merges it into the waiting one.
    pub fn push(&mut self, key: K, priority: P, due: Instant, now: Instant, work: W) -> Pushed {
        if let Some(entry) = self.waiting.get_mut(&key) {
            if !entry.parked {
                self.ready[entry.priority.index()].remove(&(entry.due, entry.seq, key.clone()));
            }
            self.depth[entry.priority.index()] -= 1;
            entry.work.merge(work);
            if priority.index() < entry.priority.index() {
                entry.priority = priority;
            }
            entry.due = entry.due.min(due);
            self.depth[entry.priority.index()] += 1;
            if !entry.parked {
                self.ready[entry.priority.index()].insert((entry.due, entry.seq, key));
            }
            return Pushed::Merged;
        }
        self.seq += 1;
        let parked = self.in_flight.contains(&key);
        if !parked {
            self.ready[priority.index()].insert((due, self.seq, key.clone()));
        }
        self.depth[priority.index()] += 1;
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
    pub fn pop(&mut self, now: Instant, max_in_flight: usize) -> Option<Popped<K, P, W>> {
        if self.exclusive_in_flight || self.in_flight.len() >= max_in_flight {
            return None;
        }
        let head = |set: &BTreeSet<(Instant, u64, K)>| {
            set.first().filter(|(due, ..)| *due <= now).cloned()
        };
        let [recover, change, resync] = [0, 1, 2].map(|p| head(&self.ready[p]));
        let fair_turn = self.picks + 1 >= FAIR_EVERY;
        let [first, second, third] = P::ORDER;
        let (priority, chosen) = match (recover, change, resync) {
            (Some(r), _, _) => (first, r),
            (None, Some(c), Some(s)) => {
                let older = self.waiting[&s.2].since < self.waiting[&c.2].since;
                if fair_turn && older {
                    (third, s)
                } else {
                    (second, c)
                }
            }
            (None, Some(c), None) => (second, c),
            (None, None, Some(s)) => (third, s),
            (None, None, None) => return None,
        };
        let key = chosen.2.clone();
        if key.exclusive() && !self.in_flight.is_empty() {
            return None;
        }
        if priority != first {
            self.picks = if fair_turn { 0 } else { self.picks + 1 };
        }
        self.ready[priority.index()].remove(&chosen);
        let entry = self.waiting.remove(&key)?;
        self.depth[priority.index()] -= 1;
        self.exclusive_in_flight = key.exclusive();
        self.in_flight.insert(key.clone());
        Some(Popped {
            key,
            priority,
            work: entry.work,
            waited: now.saturating_duration_since(entry.since),
            overdue: now.saturating_duration_since(entry.due),
        })
    }

    /// The work on `key` is over; an item that waited for it may now be handed out.
    pub fn done(&mut self, key: &K) {
        self.in_flight.remove(key);
        if key.exclusive() {
            self.exclusive_in_flight = false;
        }
        if let Some(entry) = self.waiting.get_mut(key).filter(|e| e.parked) {
            entry.parked = false;
            self.ready[entry.priority.index()].insert((entry.due, entry.seq, key.clone()));
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

/// A per-minute limit as a sliding window: at most `limit` in any 60 s.
#[derive(Debug, Default)]
pub struct RateLimit {
    limit: Option<usize>,
    writes: VecDeque<Instant>,
}

/// Sleeps until `at` (a queue's next due time or the rate limit's next slot); for `None`,
/// forever (the runner wakes on its other events).
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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

/// A random value in [0, 1), for backoff jitter.
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u16::from_le_bytes(bytes)) / 65_536.0
}
