//! Stream health: finding out whether each camera's stream is really served, and (later) the
//! per-(camera, target) state machine that decides when to re-register a stream.
//!
//! - [`probe`]: the active check, one RTSP `OPTIONS` or `DESCRIBE` against a server's proxied
//!   path or a camera, bounded in time and memory, that never disturbs a playing stream and
//!   never reveals a credential.

pub mod probe;
