//! The per-(camera, target) health state machine: what one check saw ⇒ the next state and what
//! to do about it. Pure and clock-driven (the caller passes `now`), so every branch is tested
//! without sockets, in tokio's paused time or with plain instants.
//!
//! A 404 from a server's RTSP proxy does not say why (SERVERS.md), so a verdict combines three
//! views: the server's API (is the stream listed? is it flowing?), the proxy probe, and the
//! camera itself. The decisions:
//! - the API does not answer → `TargetDown`: nothing is touched; when it answers again, the
//!   target is resynced first and the stream is `Unverified` again (with a new grace): a
//!   camera that went down meanwhile is found by the next probes, not taken for healthy;
//! - not listed → re-added at once;
//! - listed, the camera does not answer → `CameraOffline`: nothing is churned; the moment the
//!   camera answers, the stream is restarted (delete + add, re-armed preload) and verified;
//! - listed, the camera answers, yet the proxy fails (or counters stay frozen while consumers
//!   exist) → stuck: delete + add, with exponential backoff and jitter between attempts;
//! - a stream in its grace period (new, or just re-registered) is not judged.
//!
//! Every change of state is a [`Transition`]; the time from the first failure to healthy again
//! is its `recovered_after`.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Where a (camera, target) pair stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Registered, not yet seen serving: the first probe comes soon after the grace period.
    Unverified,
    Healthy,
    /// Failed `checks` checks in a row, not yet acted on (or in its grace period).
    Failing {
        checks: u32,
    },
    /// Re-registered `attempt` times; the next attempt, if it is still failing, not before
    /// `next_at`.
    Recovering {
        attempt: u32,
        #[serde(skip)]
        next_at: Instant,
    },
    CameraOffline,
    TargetDown,
    Disabled,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Unverified => "unverified",
            State::Healthy => "healthy",
            State::Failing { .. } => "failing",
            State::Recovering { .. } => "recovering",
            State::CameraOffline => "camera-offline",
            State::TargetDown => "target-down",
            State::Disabled => "disabled",
        }
    }
}

/// What the server's API says of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The API did not answer.
    Unreachable,
    NotListed,
    /// Listed; `flowing` when the API shows data moving (go2rtc counters growing, MediaMTX
    /// `ready`), `frozen` when it should and does not: consumers are attached but the counters
    /// stand still, or the stream is kept connected (a preload, an always-on path) and idle.
    Listed {
        flowing: bool,
        frozen: bool,
    },
}

/// What the proxied RTSP path answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAnswer {
    /// Not probed: the API's passive signals sufficed.
    NotProbed,
    Ok,
    /// 404 or 400, or a timeout or refused connection to the proxy.
    Failed,
}

/// Whether the camera itself answers (a cheap connect or OPTIONS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraReach {
    Answers,
    Down,
    /// camsync cannot reach the camera from where it runs: decide on the server's views alone.
    Unknown,
}

/// One check of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub listing: Listing,
    pub proxy: ProxyAnswer,
    pub camera: CameraReach,
}

/// What the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// The server lost the stream: add it again (an upsert).
    ReAdd,
    /// The stream is registered but stuck, or its camera just came back: delete and add it
    /// (then re-arm a preload), which gives new consumers a fresh stream at once.
    Restart,
    /// The server's API answers again after being down: resync the whole target first.
    ResyncTarget,
}

/// Tunables, with defaults for a household and a site alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A new or re-registered stream is not judged for this long (dial time, on-demand start).
    pub grace: Duration,
    /// Delay before the second restart of a stuck stream; doubles each time up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            grace: crate::config::HealthConfig::default().grace,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(120),
        }
    }
}

/// A change of state, as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: &'static str,
    pub action: Action,
    /// Set on the transition to healthy that ends a failure.
    pub recovered_after: Option<Duration>,
}

/// The health of one (camera, target) pair.
#[derive(Debug, Clone)]
pub struct PairHealth {
    state: State,
    first_failure: Option<Instant>,
    grace_until: Option<Instant>,
}

impl PairHealth {
    /// A pair whose stream was just registered: unverified, in its grace period.
    pub fn new(now: Instant, policy: &Policy) -> PairHealth {
        PairHealth {
            state: State::Unverified,
            first_failure: None,
            grace_until: Some(now + policy.grace),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The camera was disabled or left the inventory, or came back.
    pub fn set_disabled(
        &mut self,
        disabled: bool,
        now: Instant,
        policy: &Policy,
    ) -> Option<Transition> {
        match (disabled, self.state == State::Disabled) {
            (true, false) => self.go(State::Disabled, "disabled", Action::None, now),
            (false, true) => {
                self.grace_until = Some(now + policy.grace);
                self.go(State::Unverified, "enabled", Action::None, now)
            }
            _ => None,
        }
    }

    /// Feeds one check; returns the transition, if the state changed, and the action to take.
    /// `jitter` in [0, 1) spreads restart times of many streams (pass a random value).
    pub fn observe(
        &mut self,
        now: Instant,
        seen: Observation,
        policy: &Policy,
        jitter: f64,
    ) -> (Option<Transition>, Action) {
        if self.state == State::Disabled {
            return (None, Action::None);
        }
        let (to, reason, action) = self.decide(now, seen, policy, jitter);
        if self.state == State::TargetDown && to == State::Unverified {
            // The server is back (often restarted) and its resync may register the stream
            // again: a new grace, then a verdict from probes, never "healthy" unseen.
            self.grace_until = Some(now + policy.grace);
        }
        let transition = self.go(to, reason, action, now);
        (transition, action)
    }

    fn decide(
        &self,
        now: Instant,
        seen: Observation,
        policy: &Policy,
        jitter: f64,
    ) -> (State, &'static str, Action) {
        let in_grace = self.grace_until.is_some_and(|until| now < until);
        let (flowing, frozen) = match seen.listing {
            Listing::Unreachable => {
                return (
                    State::TargetDown,
                    "the server's API does not answer",
                    Action::None,
                );
            }
            // What this round saw of the stream predates the resync: it is judged afresh.
            _ if self.state == State::TargetDown => {
                return (
                    State::Unverified,
                    "the server's API answers again",
                    Action::ResyncTarget,
                );
            }
            Listing::NotListed => {
                return self.recover(
                    now,
                    policy,
                    jitter,
                    "the server no longer lists the stream",
                    Action::ReAdd,
                );
            }
            Listing::Listed { flowing, frozen } => (flowing, frozen),
        };
        let serving = (flowing || seen.proxy == ProxyAnswer::Ok) && !frozen;
        if serving {
            return (State::Healthy, "serving", Action::None);
        }
        if seen.camera == CameraReach::Down {
            return (
                State::CameraOffline,
                "the camera does not answer",
                Action::None,
            );
        }
        if self.state == State::CameraOffline && seen.camera == CameraReach::Answers {
            return self.recover(
                now,
                policy,
                jitter,
                "the camera answers again",
                Action::Restart,
            );
        }
        if seen.proxy == ProxyAnswer::NotProbed && !frozen {
            // Idle and unprobed: nothing says it is broken.
            return (self.state, "no verdict", Action::None);
        }
        if in_grace {
            let checks = match self.state {
                State::Failing { checks } => checks + 1,
                _ => 1,
            };
            return (
                State::Failing { checks },
                "failing in its grace period",
                Action::None,
            );
        }
        let reason = if frozen {
            "no data moves although the stream is in use or kept connected"
        } else {
            "the camera answers but the server does not serve the stream"
        };
        self.recover(now, policy, jitter, reason, Action::Restart)
    }

    /// Re-registers now, unless the previous attempt's backoff is still running.
    fn recover(
        &self,
        now: Instant,
        policy: &Policy,
        jitter: f64,
        reason: &'static str,
        action: Action,
    ) -> (State, &'static str, Action) {
        let attempt = match self.state {
            State::Recovering { next_at, .. } if now < next_at => {
                return (self.state, "waiting for the next attempt", Action::None);
            }
            State::Recovering { attempt, .. } => attempt + 1,
            _ => 1,
        };
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = policy
            .base_backoff
            .saturating_mul(1 << exponent)
            .min(policy.max_backoff);
        let next_at = now + backoff.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 2.0);
        (State::Recovering { attempt, next_at }, reason, action)
    }

    fn go(
        &mut self,
        to: State,
        reason: &'static str,
        action: Action,
        now: Instant,
    ) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        let recovered_after = match to {
            State::Healthy => self.first_failure.take().map(|at| now - at),
            State::Unverified => None,
            State::Disabled => {
                self.first_failure = None;
                None
            }
            _ => {
                self.first_failure.get_or_insert(now);
                None
            }
        };
        self.state = to;
        Some(Transition {
            from,
            to,
            reason,
            action,
            recovered_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTED_IDLE: Listing = Listing::Listed {
        flowing: false,
        frozen: false,
    };
    const FLOWING: Listing = Listing::Listed {
        flowing: true,
        frozen: false,
    };
    const FROZEN: Listing = Listing::Listed {
        flowing: false,
        frozen: true,
    };

    fn seen(listing: Listing, proxy: ProxyAnswer, camera: CameraReach) -> Observation {
        Observation {
            listing,
            proxy,
            camera,
        }
    }

    /// A pair past its grace period, seen serving once.
    fn settled(policy: &Policy) -> (PairHealth, Instant) {
        let start = Instant::now();
        let mut pair = PairHealth::new(start, policy);
        let serving = seen(FLOWING, ProxyAnswer::NotProbed, CameraReach::Unknown);
        pair.observe(start, serving, policy, 0.0);
        (pair, start + policy.grace + Duration::from_secs(1))
    }

    #[test]
    fn a_new_stream_is_unverified_until_seen_serving_and_never_called_healthy_before() {
        let policy = Policy::default();
        let start = Instant::now();
        let idle = seen(LISTED_IDLE, ProxyAnswer::NotProbed, CameraReach::Unknown);
        let mut pair = PairHealth::new(start, &policy);
        assert_eq!(pair.state(), State::Unverified);
        assert_eq!(
            pair.observe(start, idle, &policy, 0.0),
            (None, Action::None)
        );
        assert_eq!(pair.state(), State::Unverified, "no verdict yet");
        let refused = seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Down);
        let (t, _) = pair.observe(start, refused, &policy, 0.0);
        assert_eq!(t.unwrap().to, State::CameraOffline);

        let mut pair = PairHealth::new(start, &policy);
        let ok = seen(LISTED_IDLE, ProxyAnswer::Ok, CameraReach::Unknown);
        let (t, _) = pair.observe(start, ok, &policy, 0.0);
        let t = t.unwrap();
        assert_eq!((t.from, t.to), (State::Unverified, State::Healthy));
        assert_eq!(t.recovered_after, None, "a first verdict is not a recovery");
    }

    #[test]
    fn a_stream_that_serves_is_healthy_and_an_idle_unprobed_one_is_left_alone() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        assert_eq!(
            pair.observe(
                now,
                seen(FLOWING, ProxyAnswer::NotProbed, CameraReach::Unknown),
                &policy,
                0.0
            ),
            (None, Action::None)
        );
        assert_eq!(
            pair.observe(
                now,
                seen(LISTED_IDLE, ProxyAnswer::NotProbed, CameraReach::Unknown),
                &policy,
                0.0
            ),
            (None, Action::None)
        );
        assert_eq!(
            pair.observe(
                now,
                seen(LISTED_IDLE, ProxyAnswer::Ok, CameraReach::Unknown),
                &policy,
                0.0
            ),
            (None, Action::None)
        );
        assert_eq!(pair.state(), State::Healthy);
    }

    #[test]
    fn a_stream_the_server_lost_is_re_added_at_once_and_its_recovery_timed() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        let (t, action) = pair.observe(
            now,
            seen(
                Listing::NotListed,
                ProxyAnswer::Failed,
                CameraReach::Unknown,
            ),
            &policy,
            0.0,
        );
        assert_eq!(action, Action::ReAdd);
        assert!(matches!(
            t.unwrap().to,
            State::Recovering { attempt: 1, .. }
        ));
        let later = now + Duration::from_millis(800);
        let (t, action) = pair.observe(
            later,
            seen(LISTED_IDLE, ProxyAnswer::Ok, CameraReach::Answers),
            &policy,
            0.0,
        );
        let t = t.unwrap();
        assert_eq!((t.to, action), (State::Healthy, Action::None));
        assert_eq!(t.recovered_after, Some(Duration::from_millis(800)));
    }

    #[test]
    fn a_down_camera_is_waited_for_then_its_stream_restarted_the_moment_it_answers() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        let down = seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Down);
        let (t, action) = pair.observe(now, down, &policy, 0.0);
        assert_eq!(
            (t.unwrap().to, action),
            (State::CameraOffline, Action::None)
        );
        // However long it stays down, nothing is churned.
        for minutes in 1..30 {
            assert_eq!(
                pair.observe(now + Duration::from_secs(60 * minutes), down, &policy, 0.0),
                (None, Action::None)
            );
        }
        let back = now + Duration::from_secs(1800);
        let (t, action) = pair.observe(
            back,
            seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Answers),
            &policy,
            0.0,
        );
        assert_eq!(action, Action::Restart);
        assert_eq!(t.unwrap().reason, "the camera answers again");
        let (t, _) = pair.observe(
            back + Duration::from_millis(200),
            seen(FLOWING, ProxyAnswer::NotProbed, CameraReach::Answers),
            &policy,
            0.0,
        );
        assert_eq!(
            t.unwrap().recovered_after,
            Some(Duration::from_millis(1_800_200))
        );
    }

    #[test]
    fn a_camera_back_with_the_stream_already_served_needs_no_restart() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        pair.observe(
            now,
            seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Down),
            &policy,
            0.0,
        );
        let (t, action) = pair.observe(
            now,
            seen(FLOWING, ProxyAnswer::Ok, CameraReach::Answers),
            &policy,
            0.0,
        );
        assert_eq!((t.unwrap().to, action), (State::Healthy, Action::None));
    }

    #[test]
    fn a_stuck_stream_is_restarted_with_growing_backoff() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        let stuck = seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Answers);
        assert_eq!(pair.observe(now, stuck, &policy, 0.0).1, Action::Restart);
        // Within the backoff: wait.
        assert_eq!(
            pair.observe(now + Duration::from_secs(1), stuck, &policy, 0.0),
            (None, Action::None)
        );
        let mut at = now;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let State::Recovering { next_at, .. } = pair.state() else {
                panic!("{:?}", pair.state())
            };
            gaps.push(next_at - at);
            at = next_at;
            assert_eq!(pair.observe(at, stuck, &policy, 0.0).1, Action::Restart);
        }
        assert_eq!(gaps[0], policy.base_backoff);
        assert_eq!(gaps[1], policy.base_backoff * 2);
        assert_eq!(*gaps.last().unwrap(), policy.max_backoff, "{gaps:?}");
        assert!(matches!(pair.state(), State::Recovering { attempt: 9, .. }));
    }

    #[test]
    fn jitter_spreads_attempts_by_up_to_half_the_backoff() {
        let policy = Policy::default();
        let (mut a, now) = settled(&policy);
        let mut b = a.clone();
        let stuck = seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Answers);
        a.observe(now, stuck, &policy, 0.0);
        b.observe(now, stuck, &policy, 0.99);
        let (State::Recovering { next_at: na, .. }, State::Recovering { next_at: nb, .. }) =
            (a.state(), b.state())
        else {
            panic!()
        };
        assert!(nb > na && nb - now < policy.base_backoff.mul_f64(1.5));
    }

    #[test]
    fn frozen_counters_with_consumers_count_as_stuck_but_not_in_the_grace_period() {
        let policy = Policy::default();
        let start = Instant::now();
        let mut pair = PairHealth::new(start, &policy);
        let frozen = seen(FROZEN, ProxyAnswer::NotProbed, CameraReach::Answers);
        let (t, action) = pair.observe(start + Duration::from_secs(1), frozen, &policy, 0.0);
        assert_eq!(
            (t.unwrap().to, action),
            (State::Failing { checks: 1 }, Action::None)
        );
        let (t, _) = pair.observe(start + Duration::from_secs(2), frozen, &policy, 0.0);
        assert_eq!(t.unwrap().to, State::Failing { checks: 2 });
        let (t, action) = pair.observe(start + policy.grace, frozen, &policy, 0.0);
        assert_eq!(action, Action::Restart);
        assert_eq!(
            t.unwrap().reason,
            "no data moves although the stream is in use or kept connected"
        );
    }

    #[test]
    fn a_down_server_api_churns_nothing_and_its_return_resyncs_the_target() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        let api_down = seen(
            Listing::Unreachable,
            ProxyAnswer::Failed,
            CameraReach::Answers,
        );
        let (t, action) = pair.observe(now, api_down, &policy, 0.0);
        assert_eq!((t.unwrap().to, action), (State::TargetDown, Action::None));
        assert_eq!(
            pair.observe(now + Duration::from_secs(60), api_down, &policy, 0.0),
            (None, Action::None)
        );
        let (t, action) = pair.observe(
            now + Duration::from_secs(90),
            seen(
                Listing::NotListed,
                ProxyAnswer::Failed,
                CameraReach::Answers,
            ),
            &policy,
            0.0,
        );
        assert_eq!(
            (t.unwrap().to, action),
            (State::Unverified, Action::ResyncTarget)
        );
    }

    /// Found by the chaos soak: go2rtc's API failed for a while, a camera rebooted meanwhile
    /// and its stream got stuck; the API's return called every stream healthy unseen, so the
    /// stuck one waited for its next idle probe (minutes).
    #[test]
    fn back_from_a_down_api_a_stuck_stream_is_judged_by_its_probes_after_a_new_grace() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        let api_down = seen(
            Listing::Unreachable,
            ProxyAnswer::NotProbed,
            CameraReach::Unknown,
        );
        pair.observe(now, api_down, &policy, 0.0);
        let stuck = seen(LISTED_IDLE, ProxyAnswer::Failed, CameraReach::Answers);
        let back = now + Duration::from_secs(5);
        let (t, action) = pair.observe(back, stuck, &policy, 0.0);
        assert_eq!(
            (t.unwrap().to, action),
            (State::Unverified, Action::ResyncTarget)
        );

        let (t, action) = pair.observe(back + Duration::from_secs(1), stuck, &policy, 0.0);
        assert_eq!(
            action,
            Action::None,
            "the resync's re-registration gets its grace"
        );
        assert_eq!(t.unwrap().to, State::Failing { checks: 1 });
        let (t, action) = pair.observe(back + policy.grace, stuck, &policy, 0.0);
        assert_eq!(action, Action::Restart);
        assert!(matches!(
            t.unwrap().to,
            State::Recovering { attempt: 1, .. }
        ));
    }

    #[test]
    fn a_disabled_pair_is_not_judged_until_enabled_again() {
        let policy = Policy::default();
        let (mut pair, now) = settled(&policy);
        assert_eq!(
            pair.set_disabled(true, now, &policy).unwrap().to,
            State::Disabled
        );
        assert_eq!(pair.set_disabled(true, now, &policy), None);
        let lost = seen(
            Listing::NotListed,
            ProxyAnswer::Failed,
            CameraReach::Answers,
        );
        assert_eq!(pair.observe(now, lost, &policy, 0.0), (None, Action::None));
        assert_eq!(
            pair.set_disabled(false, now, &policy).unwrap().to,
            State::Unverified
        );
        assert_eq!(
            pair.observe(now, lost, &policy, 0.0).1,
            Action::ReAdd,
            "a lost stream is re-added even in grace"
        );
    }

    #[test]
    fn states_serialize_with_the_documented_names() {
        for (state, name) in [
            (State::Unverified, "unverified"),
            (State::Healthy, "healthy"),
            (State::Failing { checks: 2 }, "failing"),
            (State::CameraOffline, "camera-offline"),
            (State::TargetDown, "target-down"),
            (State::Disabled, "disabled"),
        ] {
            assert_eq!(state.name(), name);
            assert_eq!(serde_json::to_value(state).unwrap()["state"], name);
        }
    }
}
