//! Helpers shared by the benchmarks.

use std::str::FromStr;
use std::time::Duration;

/// The number in environment variable `name`, or `default` when it is unset or not a number.
pub fn env_number<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The nearest-rank `p` quantile (0 < p ≤ 1) of `sorted`; `None` when it is empty.
#[allow(dead_code)] // sync.rs reports no quantiles
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}
