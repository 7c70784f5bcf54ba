//! Prometheus metrics: every series camsync exports at `GET /metrics`, and the text encoding.
//!
//! Invariants: labels hold only target names, route templates and fixed words (operation,
//! action, outcome, state): never a camera name (thousands of cameras must not mean thousands
//! of series), a URL or a credential. Recording a value never blocks on a scrape for longer
//! than one family's lock.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::queue::Level;
use crate::resolve::account::{Command, CommandStats, StreamState};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::health::state::State;
use crate::reconcile::report::{Convergence, SyncReport};
use crate::target::Target;
use crate::target::timed::{CallRecorder, TimedTarget};

/// The content type of [`Metrics::encode`]'s output (Prometheus scrapes OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every health state name, so a state no pair is in reads 0 rather than going stale.
const STATES: [&str; 7] = [
    "unverified",
    "healthy",
    "failing",
    "recovering",
    "camera-offline",
    "target-down",
    "disabled",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConvergenceLabels {
    target: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    target: String,
    action: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    target: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetOutcomeLabels {
    target: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    target: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabels {
    target: String,
    priority: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    target: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolverLabels {
    resolver: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type SecondsGauge = Gauge<f64, AtomicU64>;

fn call_buckets() -> Histogram {
    // 0.5 ms … 16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn recovery_buckets() -> Histogram {
    // 0.1 s … 27 min
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

fn sync_buckets() -> Histogram {
    // 1 ms … 65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The registry and every family in it.
pub struct Metrics {
    registry: Registry,
    syncs: Family<OutcomeLabels, Counter>,
    sync_duration: Histogram,
    target_syncs: Family<ConvergenceLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    last_success: Family<TargetLabels, SecondsGauge>,
    calls: HistogramFamily<CallLabels>,
    streams: Family<StateLabels, Gauge>,
    transitions: Family<StateLabels, Counter>,
    recoveries: Family<TargetLabels, Counter>,
    recovery_time: HistogramFamily<TargetLabels>,
    probes: HistogramFamily<TargetOutcomeLabels>,
    reconnects: Family<TargetOutcomeLabels, Counter>,
    restarts: Family<TargetLabels, Counter>,
    inventory_loads: Counter,
    source_errors: Counter,
    cameras: Gauge,
    rejected: Gauge,
    requests: Family<RequestLabels, Counter>,
    lagged_events: Counter,
    queue_depth: Family<PriorityLabels, Gauge>,
    queue_wait: HistogramFamily<PriorityLabels>,
    queue_items: Family<ItemLabels, Gauge>,
    degraded: Family<TargetLabels, Gauge>,
    resolver_depth: Family<ResolverLabels, Gauge>,
    resolver_commands: Family<ResolverLabels, Gauge>,
    resolver_streams: Family<ResolverLabels, Gauge>,
    resolver_wait: Family<ResolverLabels, SecondsGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            syncs: Family::default(),
            sync_duration: sync_buckets(),
            target_syncs: Family::default(),
            writes: Family::default(),
            last_success: Family::default(),
            calls: Family::new_with_constructor(call_buckets),
            streams: Family::default(),
            transitions: Family::default(),
            recoveries: Family::default(),
            recovery_time: Family::new_with_constructor(recovery_buckets),
            probes: Family::new_with_constructor(call_buckets),
            reconnects: Family::default(),
            restarts: Family::default(),
            inventory_loads: Counter::default(),
            source_errors: Counter::default(),
            cameras: Gauge::default(),
            rejected: Gauge::default(),
            requests: Family::default(),
            lagged_events: Counter::default(),
            queue_depth: Family::default(),
            queue_wait: Family::new_with_constructor(call_buckets),
            queue_items: Family::default(),
            degraded: Family::default(),
            resolver_depth: Family::default(),
            resolver_commands: Family::default(),
            resolver_streams: Family::default(),
            resolver_wait: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "camsync_syncs",
            "Completed syncs (every target), by outcome: ok or failed",
            m.syncs.clone(),
        );
        r.register_with_unit(
            "camsync_sync_duration",
            "Wall time of one sync of every target",
            Unit::Seconds,
            m.sync_duration.clone(),
        );
        r.register(
            "camsync_target_syncs",
            "Syncs per target, by status: converged, failed or refused (mass-deletion guard)",
            m.target_syncs.clone(),
        );
        r.register(
            "camsync_writes",
            "Writes to servers per target, by action (create, adopt, update, delete) and outcome (done, partial, failed)",
            m.writes.clone(),
        );
        r.register_with_unit(
            "camsync_last_successful_sync_timestamp",
            "When a sync last converged the target, as a Unix time",
            Unit::Seconds,
            m.last_success.clone(),
        );
        r.register_with_unit(
            "camsync_target_call_duration",
            "Latency of calls to a server's API or file, per target, operation and outcome (ok or error)",
            Unit::Seconds,
            m.calls.clone(),
        );
        r.register(
            "camsync_streams",
            "Streams camsync owns per target and health state, as of the health monitor's last round",
            m.streams.clone(),
        );
        r.register(
            "camsync_health_transitions",
            "Health state changes of (camera, target) pairs, per target and new state",
            m.transitions.clone(),
        );
        r.register(
            "camsync_recoveries",
            "Pairs that went from failing back to healthy, per target",
            m.recoveries.clone(),
        );
        r.register_with_unit(
            "camsync_recovery_duration",
            "Time from a pair's first failed check to healthy again",
            Unit::Seconds,
            m.recovery_time.clone(),
        );
        r.register_with_unit(
            "camsync_probe_duration",
            "Latency of RTSP DESCRIBE probes through a server's proxy, per target and outcome",
            Unit::Seconds,
            m.probes.clone(),
        );
        r.register(
            "camsync_reconnects",
            "Forced re-registrations through the API, per target and outcome",
            m.reconnects.clone(),
        );
        r.register(
            "camsync_server_restarts",
            "Times a server was seen to have lost what camsync wrote (restart or reload)",
            m.restarts.clone(),
        );
        r.register(
            "camsync_inventory_loads",
            "Successful reads of the camera inventory",
            m.inventory_loads.clone(),
        );
        r.register(
            "camsync_source_errors",
            "Failed reads of the camera inventory (the last good one stayed in force)",
            m.source_errors.clone(),
        );
        r.register(
            "camsync_cameras",
            "Valid cameras in the inventory",
            m.cameras.clone(),
        );
        r.register(
            "camsync_rejected_cameras",
            "Camera records the last inventory read rejected",
            m.rejected.clone(),
        );
        r.register(
            "camsync_http_requests",
            "Requests to camsync's HTTP API, by route template and status code",
            m.requests.clone(),
        );
        r.register(
            "camsync_queue_depth",
            "Work items waiting in a target's queue, by priority (recover, change, resync)",
            m.queue_depth.clone(),
        );
        r.register_with_unit(
            "camsync_queue_wait",
            "Time a work item waited in its target's queue before it ran, by priority",
            Unit::Seconds,
            m.queue_wait.clone(),
        );
        r.register(
            "camsync_queue_items",
            "Work items of a target's queue since start, by result: done, failed (each failed try), merged (into one already waiting)",
            m.queue_items.clone(),
        );
        r.register(
            "camsync_degraded_streams",
            "Streams a target's worker failed to write again and again (still retried)",
            m.degraded.clone(),
        );
        r.register(
            "camsync_resolver_queue_depth",
            "Commands waiting in a Nest account's or resolver's queue, by kind (extend, generate, stop)",
            m.resolver_depth.clone(),
        );
        r.register(
            "camsync_resolver_commands",
            "Commands a Nest account or resolver sent since start, by kind (extend, generate, stop), and its failures (failed, rate_limited)",
            m.resolver_commands.clone(),
        );
        r.register(
            "camsync_resolver_streams",
            "Wanted cameras of a Nest account or resolver, by the state of their stream (pending, live, degraded, over-quota)",
            m.resolver_streams.clone(),
        );
        r.register_with_unit(
            "camsync_resolver_queue_wait",
            "How long a command waited past its due time: the longest (kind=max) and the sum (kind=total) since start",
            Unit::Seconds,
            m.resolver_wait.clone(),
        );
        r.register(
            "camsync_events_missed",
            "Events an event-stream client missed because it read too slowly",
            m.lagged_events.clone(),
        );
        m
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Wraps `target` so that every call to its server is timed.
    pub fn timed(self: &Arc<Self>, target: Arc<dyn Target>) -> Arc<dyn Target> {
        Arc::new(TimedTarget::new(target, self.clone()))
    }

    pub fn sync_done(&self, report: &SyncReport, elapsed: Duration) {
        let outcome = if report.ok() { "ok" } else { "failed" };
        self.syncs.get_or_create(&OutcomeLabels { outcome }).inc();
        self.sync_duration.observe(elapsed.as_secs_f64());
        for t in &report.targets {
            self.target_syncs
                .get_or_create(&ConvergenceLabels {
                    target: t.target.clone(),
                    status: t.status.name(),
                })
                .inc();
            if t.status == Convergence::Converged {
                self.last_success
                    .get_or_create(&TargetLabels {
                        target: t.target.clone(),
                    })
                    .set(unix_seconds(SystemTime::now()));
            }
        }
    }

    /// One step of a target's worker.
    pub fn step(&self, target: &str, step: &crate::reconcile::report::StepReport) {
        if step.action.writes() {
            self.writes
                .get_or_create(&WriteLabels {
                    target: target.to_owned(),
                    action: step.action.name(),
                    outcome: step.outcome.name(),
                })
                .inc();
        }
    }

    /// A target's queue now; `waited`: an item left it after waiting that long.
    pub fn queue(
        &self,
        target: &str,
        stats: &crate::reconcile::worker::QueueStats,
        waited: Option<(crate::reconcile::queue::Priority, Duration)>,
    ) {
        use crate::reconcile::queue::Priority;
        for (priority, depth) in Priority::ALL.into_iter().zip(stats.waiting) {
            self.queue_depth
                .get_or_create(&PriorityLabels {
                    target: target.to_owned(),
                    priority: priority.name(),
                })
                .set(depth as i64);
        }
        for (result, count) in [
            ("done", stats.done),
            ("failed", stats.failed),
            ("merged", stats.merged),
        ] {
            self.queue_items
                .get_or_create(&ItemLabels {
                    target: target.to_owned(),
                    result,
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        if let Some((priority, waited)) = waited {
            self.queue_wait
                .get_or_create(&PriorityLabels {
                    target: target.to_owned(),
                    priority: priority.name(),
                })
                .observe(waited.as_secs_f64());
        }
    }

    /// A Nest account's or resolver's queue figures and its cameras' states, as they are now.
    pub fn resolver(&self, resolver: &str, stats: &CommandStats, states: &[StreamState]) {
        let labels = |kind| ResolverLabels {
            resolver: resolver.to_owned(),
            kind,
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (command, depth) in Command::ORDER.into_iter().zip(stats.depth) {
            self.resolver_depth
                .get_or_create(&labels(command.name()))
                .set(depth as i64);
        }
        for (command, sent) in Command::ORDER.into_iter().zip(stats.executed) {
            self.resolver_commands
                .get_or_create(&labels(command.name()))
                .set(count(sent));
        }
        self.resolver_commands
            .get_or_create(&labels("failed"))
            .set(count(stats.failed));
        self.resolver_commands
            .get_or_create(&labels("rate_limited"))
            .set(count(stats.rate_limited));
        for (kind, ms) in [("max", stats.max_wait_ms), ("total", stats.total_wait_ms)] {
            self.resolver_wait
                .get_or_create(&labels(kind))
                .set(ms as f64 / 1000.0);
        }
        for state in StreamState::ALL {
            let n = states.iter().filter(|s| **s == state).count();
            self.resolver_streams
                .get_or_create(&labels(state.name()))
                .set(n as i64);
        }
    }

    /// A stream of `target` became degraded (or no longer is).
    pub fn degraded(&self, target: &str, degraded: bool) {
        let gauge = self.degraded.get_or_create(&TargetLabels {
            target: target.to_owned(),
        });
        if degraded {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    /// The health monitor's view of one target after a round.
    pub fn health_states(&self, target: &str, states: &[State]) {
        for name in STATES {
            let count = states.iter().filter(|s| s.name() == name).count();
            self.streams
                .get_or_create(&StateLabels {
                    target: target.to_owned(),
                    state: name,
                })
                .set(count as i64);
        }
    }

    pub fn transition(&self, target: &str, to: &State, recovered_after: Option<Duration>) {
        self.transitions
            .get_or_create(&StateLabels {
                target: target.to_owned(),
                state: to.name(),
            })
            .inc();
        if let Some(after) = recovered_after {
            let labels = TargetLabels {
                target: target.to_owned(),
            };
            self.recoveries.get_or_create(&labels).inc();
            self.recovery_time
                .get_or_create(&labels)
                .observe(after.as_secs_f64());
        }
    }

    pub fn probe(&self, target: &str, ok: bool, elapsed: Duration) {
        self.probes
            .get_or_create(&TargetOutcomeLabels {
                target: target.to_owned(),
                outcome: ok_or_error(ok),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn reconnect(&self, target: &str, outcome: &'static str) {
        self.reconnects
            .get_or_create(&TargetOutcomeLabels {
                target: target.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn server_restarted(&self, target: &str) {
        self.restarts
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
            })
            .inc();
    }

    pub fn inventory_loaded(&self, cameras: usize, rejected: usize) {
        self.inventory_loads.inc();
        self.cameras.set(cameras as i64);
        self.rejected.set(rejected as i64);
    }

    pub fn source_error(&self) {
        self.source_errors.inc();
    }

    /// One answered API request; `route` is the matched template, never the raw path.
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    pub fn events_missed(&self, count: u64) {
        self.lagged_events.inc_by(count);
    }
}

fn ok_or_error(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl CallRecorder for Metrics {
    fn call(&self, target: &str, operation: &'static str, ok: bool, took: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                target: target.to_owned(),
                operation,
                outcome: ok_or_error(ok),
            })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_use_conventional_names_and_units() {
        let m = Metrics::new();
        m.call("go2rtc", "list", true, Duration::from_millis(3));
        m.health_states("go2rtc", &[State::Healthy, State::CameraOffline]);
        m.transition("go2rtc", &State::Healthy, Some(Duration::from_secs(2)));
        let text = m.encode();
        for expected in [
            "# TYPE camsync_source_errors counter",
            "camsync_source_errors_total 0",
            "# TYPE camsync_sync_duration_seconds histogram",
            "camsync_target_call_duration_seconds_count{target=\"go2rtc\",operation=\"list\",outcome=\"ok\"} 1",
            "camsync_streams{target=\"go2rtc\",state=\"camera-offline\"} 1",
            "camsync_streams{target=\"go2rtc\",state=\"failing\"} 0",
            "camsync_recoveries_total{target=\"go2rtc\"} 1",
            "camsync_recovery_duration_seconds_sum{target=\"go2rtc\"} 2.0",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
