//! Stream health: finding out whether each camera's stream is really served, and deciding when
//! to re-register it.
//!
//! - [`probe`]: the active check, one RTSP `OPTIONS` or `DESCRIBE` against a server's proxied
//!   path or a camera, bounded in time and memory, that never disturbs a playing stream and
//!   never reveals a credential.
//! - [`state`]: the per-(camera, target) state machine that turns checks into actions.
//! - [`check`]: one check of every path now, for `camsync probe`.
//! - [`monitor`]: rounds over each target that judge every pair and act on the verdicts.

pub mod check;
pub mod monitor;
pub mod probe;
pub mod runner;
pub mod state;
