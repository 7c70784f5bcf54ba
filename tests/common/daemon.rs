//! `camsync run` in-process, with its status to wait on.

use std::time::Duration;

use camsync::config::Config;
use camsync::daemon::{Status, run_with_status};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct Running {
    pub status: watch::Receiver<Status>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), camsync::app::AppError>>,
}

pub fn start(config: Config) -> Running {
    let (tx, status) = watch::channel(Status::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with_status(config, shutdown.clone(), tx));
    Running {
        status,
        shutdown,
        task,
    }
}

impl Running {
    /// Waits (up to [`DEADLINE`]) until the status satisfies `condition`.
    pub async fn until(&mut self, what: &str, condition: impl Fn(&Status) -> bool) {
        let waited = tokio::time::timeout(DEADLINE, self.status.wait_for(|s| condition(s)))
            .await
            .map(|r| r.is_ok());
        assert!(
            matches!(waited, Ok(true)),
            "timed out waiting for {what}: {:?}",
            *self.status.borrow()
        );
    }

    pub fn current(&self) -> Status {
        self.status.borrow().clone()
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
