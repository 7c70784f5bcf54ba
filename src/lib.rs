//! camsync keeps go2rtc and MediaMTX in step with a camera database and heals broken streams
//! without restarting either server. See README.md for users and `ARCHITECTURE.md` (design
//! notes) for the shape: source → inventory → reconciler → targets, with a ledger of what
//! camsync owns.
//!
//! # Layout
//!
//! Modules import downwards only: each uses those listed below it, never one above.
//!
//! - Entry points: [`cli`] (the commands), [`daemon`] (`camsync run`), `demo`, [`status`]
//!   (`camsync status`), [`app`] (the wiring the commands share).
//! - Serving: [`api`] (the daemon's HTTP API), [`activity`] (what it did, for the API),
//!   [`events`], [`metrics`].
//! - Healing: [`health`] (observe, judge, decide: it never writes to a server itself).
//! - Converging: [`reconcile`] (plan, queue, one worker per target: the only writers),
//!   [`ledger`] (what camsync owns, crash-safe), [`target`] (the servers: one folder per kind,
//!   [`target::go2rtc`] and [`target::mediamtx`], each with its API client, its file flavour
//!   and the rules a camera must meet there — leaves that [`camera`] and [`profile`] read).
//! - Resolving: [`resolve`] (cameras whose URL expires: Nest streams kept alive through a
//!   rate-limited command queue per account).
//! - The desired state: [`source`] (file, SQLite, Postgres; validation; sharding),
//!   [`camera`] (what a validated camera is) and [`source_url`] (a camera's URL with its
//!   credentials kept apart).
//! - At the bottom: [`config`] (camsync.yaml), [`profile`] (lifecycle profiles),
//!   `stream_name`, [`secret`], `echo`, [`atomic_file`], `bounded_read`, `http_body`,
//!   `blocking`, `lock`, [`queue`] (a keyed work queue with levels, rate limit and backoff;
//!   pure).
//!
//! Beside this crate, in the workspace: `camsync-formats` (crates/formats: reading and editing
//! YAML, framing RTSP messages), which camsync and its simulators share, and `camsync-sim`
//! (crates/sim: go2rtc, MediaMTX and a camera, simulated), which the tests, the benchmarks and
//! `demo` (built in a checkout, see .cargo/config.toml) use.

pub mod activity;
pub mod api;
pub mod app;
pub mod atomic_file;
mod blocking;
mod bounded_read;
pub mod camera;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(camsync_demo)]
mod demo;
mod echo;
pub mod events;
pub mod health;
mod http_body;
pub mod ledger;
mod lock;
pub mod metrics;
mod output;
pub mod profile;
pub mod queue;
pub mod reconcile;
pub mod resolve;
pub mod secret;
pub mod source;
pub mod source_url;
pub mod status;
mod stream_name;
pub mod target;
#[cfg(test)]
mod test_support;
