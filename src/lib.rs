//! camsync keeps go2rtc and MediaMTX in step with a camera database and heals broken streams
//! without restarting either server. See README.md for users and
//! `ARCHITECTURE.md` (design notes) for the shape: source → inventory → reconciler → targets,
//! with a ledger of what camsync owns.

pub mod activity;
pub mod api;
pub mod app;
pub mod atomic_file;
pub mod bounded_read;
pub mod camera;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod echo;
pub mod events;
pub mod health;
pub mod ledger;
pub mod metrics;
mod output;
pub mod profile;
pub mod reconcile;
mod rtsp_wire;
pub mod secret;
pub mod sim;
pub mod source;
pub mod status;
pub mod stream_name;
pub mod target;
#[cfg(test)]
mod test_support;
mod yaml;
pub mod yaml_edit;
