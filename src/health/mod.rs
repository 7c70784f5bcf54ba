//! Stream health: finding out whether each camera's stream is really served, and deciding when
//! to re-register it.
//!
//! - [`probe`]: the active check, one RTSP `OPTIONS` or `DESCRIBE` against a server's proxied
//!   path or a camera, bounded in time and memory, that never disturbs a playing stream and
//!   never reveals a credential.
//! - [`state`]: the per-(camera, target) state machine that turns checks into actions.
//! - [`sweep`]: many streams looked at through a server's proxy (and their cameras), bounded;
//!   the one observation path of the monitor and `camsync probe`, behind the [`sweep::Prober`]
//!   seam.
//! - [`check`]: one check of every path now, for `camsync probe`.
//! - [`monitor`]: rounds over each target that judge every pair and act on the verdicts.

pub mod check;
#[cfg(test)]
mod fakes;
pub mod monitor;
pub mod probe;
pub mod runner;
pub mod state;
pub mod sweep;
