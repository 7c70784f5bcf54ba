//! The text formats camsync and its simulators both speak, so the two agree by construction:
//!
//! - [`yaml`]: reading YAML into typed values, bounded, with errors that never quote the input.
//! - [`yaml_edit`]: comment-preserving edits of one section of a YAML file (go2rtc's
//!   `streams:`, MediaMTX's `paths:`), as camsync's file targets and go2rtc's own config
//!   writer make them.
//! - [`rtsp_wire`]: reading RTSP messages off a connection, bounded.

pub mod rtsp_wire;
#[cfg(test)]
#[path = "../../../src/test_support.rs"]
mod test_support;
pub mod yaml;
pub mod yaml_edit;
