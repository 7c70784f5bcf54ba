//! go2rtc, everything camsync knows of it in one place: its HTTP API ([`Go2rtc`]), its YAML
//! file as a `go2rtc-file` target writes it ([`file`](mod@file)), and what it accepts of a camera
//! ([`rules`]).

mod api;
pub mod file;
pub mod rules;

pub use api::Go2rtc;
