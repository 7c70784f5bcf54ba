//! `camsync run` in-process, with its progress to wait on.

use std::time::Duration;

use camsync::config::Config;
use camsync::daemon::{Progress, Wiring, run_with};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct Running {
    pub progress: watch::Receiver<Progress>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), camsync::app::AppError>>,
}

pub fn start(config: Config) -> Running {
    start_with(config, None)
}

/// The daemon with its HTTP API on `api`, when given.
pub fn start_with(config: Config, api: Option<TcpListener>) -> Running {
    let (tx, progress) = watch::channel(Progress::default());
    let shutdown = CancellationToken::new();
    let wiring = Wiring { progress: tx, api };
    let task = tokio::spawn(run_with(config, shutdown.clone(), wiring));
    Running {
        progress,
        shutdown,
        task,
    }
}

impl Running {
    /// Waits (up to [`DEADLINE`]) until the progress satisfies `condition`.
    pub async fn until(&self, what: &str, condition: impl Fn(&Progress) -> bool) {
        let mut progress = self.progress.clone();
        let waited = tokio::time::timeout(DEADLINE, progress.wait_for(|s| condition(s)))
            .await
            .map(|r| r.is_ok());
        assert!(
            matches!(waited, Ok(true)),
            "timed out waiting for {what}: {:?}",
            *self.progress.borrow()
        );
    }

    pub fn current(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Stops the daemon and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(DEADLINE, self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "the daemon stops cleanly on shutdown"
        );
    }
}
