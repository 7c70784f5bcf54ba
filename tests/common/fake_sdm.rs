//! Google's SDM API in memory, for tests and benchmarks under tokio's paused clock: Google's
//! quota (10 commands in any 60 s), streams of five minutes, extension tokens used once; it
//! records every command and when each device had a valid stream.
#![allow(dead_code)] // the tests and the benchmark use different parts

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camsync::resolve::account::Command;
use camsync::resolve::live::{LiveStreams, ResolveError, StreamGrant};
use camsync::secret::Secret;
use tokio::time::Instant;

pub const LIFETIME: Duration = Duration::from_secs(300);

/// One command as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub device: String,
    pub command: Command,
    pub at: Instant,
    /// Answered 429.
    pub limited: bool,
}

#[derive(Default)]
pub struct FakeState {
    seen: Vec<Seen>,
    /// Device → when its stream expires.
    pub streams: HashMap<String, Instant>,
    /// Extension token → device.
    extensions: HashMap<String, String>,
    next: u64,
    /// Commands still to answer with 429.
    pub limit_next: usize,
    pub revoked: bool,
    /// Devices whose every command fails (a camera Google cannot reach).
    pub failing: Vec<String>,
    /// A stream found expired when it was extended or renewed: (device, expired at, seen at).
    pub lapses: Vec<(String, Instant, Instant)>,
    /// Per device, the times its streams were valid: (from, until).
    pub valid: HashMap<String, Vec<(Instant, Instant)>>,
}

/// Google's SDM API in memory: 10 commands in any 60 s (else 429), streams of five minutes,
/// extension tokens used once.
#[derive(Clone, Default)]
pub struct FakeSdm(Arc<Mutex<FakeState>>);

impl FakeSdm {
    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    pub fn count(&self, command: Command) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.command == command && !s.limited)
            .count()
    }

    /// Every command that Google would have refused for the quota (10 in any 60 s).
    pub fn over_quota(&self) -> Vec<Seen> {
        let seen = self.seen();
        seen.iter()
            .enumerate()
            .filter(|(i, s)| {
                seen[..*i]
                    .iter()
                    .filter(|e| s.at.duration_since(e.at) < Duration::from_secs(60))
                    .count()
                    >= 10
            })
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Records the command; `Err` when it is refused before reaching the device.
    fn arrive(&self, device: &str, command: Command) -> Result<(), ResolveError> {
        let mut state = self.state();
        if state.revoked {
            return Err(ResolveError::Revoked {
                account: "home".into(),
                error: "invalid_grant".into(),
            });
        }
        if state.failing.iter().any(|d| d == device) {
            state.seen.push(Seen {
                device: device.to_owned(),
                command,
                at: Instant::now(),
                limited: false,
            });
            return Err(ResolveError::Http {
                account: "home".into(),
                op: "GenerateRtspStream",
                status: 500,
                detail: "the device did not answer".into(),
            });
        }
        let limited = state.limit_next > 0;
        state.limit_next = state.limit_next.saturating_sub(1);
        state.seen.push(Seen {
            device: device.to_owned(),
            command,
            at: Instant::now(),
            limited,
        });
        if limited {
            return Err(ResolveError::RateLimited {
                account: "home".into(),
            });
        }
        Ok(())
    }

    /// The fraction of `from..until` during which `device` had a valid stream.
    pub fn valid_fraction(&self, device: &str, from: Instant, until: Instant) -> f64 {
        let state = self.state();
        let valid: Duration = state.valid.get(device).map_or(Duration::ZERO, |spans| {
            spans
                .iter()
                .map(|(a, b)| (*b).min(until).saturating_duration_since((*a).max(from)))
                .sum()
        });
        valid.as_secs_f64() / until.duration_since(from).as_secs_f64()
    }

    /// A new grant for `device`; `extends` continues its current span of validity.
    fn grant(state: &mut FakeState, device: &str, extends: bool) -> StreamGrant {
        state.next += 1;
        let n = state.next;
        let now = Instant::now();
        let expires = now + LIFETIME;
        let spans = state.valid.entry(device.to_owned()).or_default();
        match spans.last_mut() {
            Some(span) if extends => span.1 = expires,
            _ => spans.push((now, expires)),
        }
        state.streams.insert(device.to_owned(), expires);
        state
            .extensions
            .insert(format!("ext-{n}"), device.to_owned());
        StreamGrant {
            url: Secret::new(format!("rtsp://127.0.0.1:1/{device}?auth=tok-{n}")),
            extension_token: Secret::new(format!("ext-{n}")),
            expires,
        }
    }
}

impl LiveStreams for FakeSdm {
    async fn generate(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        self.arrive(device, Command::Generate)?;
        let mut state = self.state();
        let now = Instant::now();
        if let Some(expired) = state.streams.get(device).copied().filter(|e| *e <= now) {
            state.lapses.push((device.to_owned(), expired, now));
        }
        Ok(Self::grant(&mut state, device, false))
    }

    async fn extend(&self, device: &str, grant: &StreamGrant) -> Result<StreamGrant, ResolveError> {
        self.arrive(device, Command::Extend)?;
        let mut state = self.state();
        let now = Instant::now();
        let known = state.extensions.remove(grant.extension_token.expose());
        let expires = state.streams.get(device).copied();
        match (known, expires) {
            (Some(d), Some(expires)) if d == device && expires > now => {
                Ok(Self::grant(&mut state, device, true))
            }
            (_, expires) => {
                if let Some(expires) = expires {
                    state.lapses.push((device.to_owned(), expires, now));
                }
                Err(ResolveError::StreamGone {
                    device: device.to_owned(),
                    status: 400,
                    detail: "Invalid or expired stream extension token.".into(),
                })
            }
        }
    }

    async fn stop(&self, device: &str, grant: &StreamGrant) -> Result<(), ResolveError> {
        self.arrive(device, Command::Stop)?;
        let mut state = self.state();
        state.extensions.remove(grant.extension_token.expose());
        state.streams.remove(device);
        let now = Instant::now();
        if let Some(span) = state.valid.get_mut(device).and_then(|s| s.last_mut()) {
            span.1 = span.1.min(now);
        }
        Ok(())
    }
}
