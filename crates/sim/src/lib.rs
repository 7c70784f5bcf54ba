//! Simulators of the servers camsync drives and of the cameras behind them, for integration
//! tests, benchmarks and `camsync demo`. They follow `SERVERS.md` (what the real servers were
//! seen to do), listen only on 127.0.0.1 ports chosen by the OS, and never contact anything off
//! this machine.
//!
//! - [`go2rtc`]: go2rtc's HTTP API and RTSP `DESCRIBE`, with its persistence and crash modes.
//! - [`camera`]: an RTSP camera that answers `DESCRIBE` and streams an H.264 test pattern
//!   after `SETUP`/`PLAY`, and can be stopped, hung and resumed.
//! - [`mediamtx`]: MediaMTX's control API v3 and RTSP `DESCRIBE`, with its path lifecycle.
//! - [`nest`]: Google's Smart Device Management API and OAuth token endpoint, with live
//!   streams that expire unless extended, a command quota, and their RTSP endpoint.

pub mod camera;
pub mod go2rtc;
mod h264;
pub mod mediamtx;
pub mod nest;
mod rtp;
mod rtsp;
