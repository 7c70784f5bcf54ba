//! What the commands share: their error ([`AppError`]) and the wiring from a config to an
//! inventory and to a reconciler (targets, ledger, one worker per target).

use std::sync::Arc;

use crate::config::Config;
use crate::ledger::{Ledger, LedgerError};
use crate::reconcile::Reconciler;
use crate::reconcile::worker::WorkerSettings;
use crate::source::{Inventory, Source, SourceError};
use crate::target::{self, Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    #[error(transparent)]
    File(#[from] crate::atomic_file::AtomicWriteError),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::live::ResolveError),
    #[error(
        "cannot serve the HTTP API on {addr} (config `api.listen`): {source}; choose a free address and port"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Loads and validates the camera inventory the config points at, once, keeping this
/// instance's shard of it (all of it when not sharded).
pub async fn load_inventory(config: &Config) -> Result<Inventory, SourceError> {
    let inventory = Source::new(config).load().await?;
    Ok(Arc::unwrap_or_clone(inventory))
}

/// How the ledger is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerMode {
    /// Open or create the state file.
    ReadWrite,
    /// Never create anything: an absent state file reads as "camsync owns nothing yet".
    DryRun,
}

/// Builds the reconciler for `config`.
pub fn reconciler(config: &Config, mode: LedgerMode) -> Result<Reconciler, AppError> {
    reconciler_wrapping(config, mode, |target| target)
}

/// [`reconciler`], with each target passed through `wrap` (the daemon times every call).
pub fn reconciler_wrapping(
    config: &Config,
    mode: LedgerMode,
    wrap: impl Fn(Arc<dyn Target>) -> Arc<dyn Target>,
) -> Result<Reconciler, AppError> {
    let ledger = if mode == LedgerMode::DryRun && !config.state.exists() {
        Ledger::in_memory()?
    } else {
        Ledger::open(&config.state)?
    };
    let targets = target::from_config(&config.targets)?
        .into_iter()
        .map(wrap)
        .zip(&config.targets)
        .map(|(target, c)| (target, WorkerSettings::from_config(config, c)))
        .collect();
    Ok(Reconciler::with_settings(
        targets,
        Arc::new(ledger),
        config.allow_mass_delete,
    ))
}
