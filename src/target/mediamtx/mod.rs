//! MediaMTX, everything camsync knows of it in one place: its control API ([`Mediamtx`]), its
//! YAML file as a `mediamtx-file` target writes it and its file watcher
//! ([`file`](mod@file)), and what it accepts of a camera and its path fields ([`rules`]).

mod api;
pub mod file;
pub mod rules;

pub use api::Mediamtx;
