//! A target wrapper that times every call to its server and tells a [`CallRecorder`] (the
//! daemon's metrics), and otherwise passes everything through unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Applied, BatchTarget, BoxFuture, Change, Preview, RunCheck, StreamObservation, Target,
    TargetError,
};
use crate::camera::Camera;

/// Where a [`TimedTarget`] reports each call.
pub trait CallRecorder: Send + Sync {
    /// One call to `target`'s server: which, whether it succeeded, and how long it took.
    fn call(&self, target: &str, operation: &'static str, ok: bool, took: Duration);
}

pub struct TimedTarget {
    inner: Arc<dyn Target>,
    recorder: Arc<dyn CallRecorder>,
}

impl TimedTarget {
    pub fn new(inner: Arc<dyn Target>, recorder: Arc<dyn CallRecorder>) -> TimedTarget {
        TimedTarget { inner, recorder }
    }

    fn time<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        call: BoxFuture<'a, Result<T, TargetError>>,
    ) -> BoxFuture<'a, Result<T, TargetError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = call.await;
            self.recorder.call(
                self.inner.name(),
                operation,
                result.is_ok(),
                started.elapsed(),
            );
            result
        })
    }
}

impl Target for TimedTarget {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn render(&self, camera: &Camera) -> String {
        self.inner.render(camera)
    }

    fn list(&self) -> BoxFuture<'_, Result<BTreeSet<String>, TargetError>> {
        self.time("list", self.inner.list())
    }

    fn observe(&self) -> BoxFuture<'_, Result<BTreeMap<String, StreamObservation>, TargetError>> {
        self.time("observe", self.inner.observe())
    }

    fn upsert<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        self.time("upsert", self.inner.upsert(camera))
    }

    fn create<'a>(&'a self, camera: &'a Camera) -> BoxFuture<'a, Result<Applied, TargetError>> {
        self.time("create", self.inner.create(camera))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Applied, TargetError>> {
        self.time("delete", self.inner.delete(name))
    }

    fn run_check<'a>(
        &'a self,
        canary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<RunCheck, TargetError>> {
        self.time("run_check", self.inner.run_check(canary))
    }

    fn recover<'a>(
        &'a self,
        camera: &'a Camera,
        restart: bool,
    ) -> BoxFuture<'a, Result<Applied, TargetError>> {
        let operation = if restart { "restart" } else { "re_add" };
        self.time(operation, self.inner.recover(camera, restart))
    }

    fn can_recover(&self) -> bool {
        self.inner.can_recover()
    }

    fn observes(&self) -> bool {
        self.inner.observes()
    }

    fn restart_server(&self) -> Option<BoxFuture<'_, Result<(), TargetError>>> {
        let restart = self.inner.restart_server()?;
        Some(self.time("restart_server", restart))
    }

    fn as_batch(&self) -> Option<&dyn BatchTarget> {
        self.inner.as_batch().map(|_| self as &dyn BatchTarget)
    }
}

impl BatchTarget for TimedTarget {
    fn preview<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Preview, TargetError>> {
        match self.inner.as_batch() {
            Some(batch) => self.time("preview", batch.preview(changes)),
            None => Box::pin(async { Err(not_batch(self.inner.name())) }),
        }
    }

    fn write_batch<'a>(
        &'a self,
        changes: &'a [Change<'a>],
    ) -> BoxFuture<'a, Result<Vec<Result<Applied, TargetError>>, TargetError>> {
        match self.inner.as_batch() {
            Some(batch) => self.time("write_batch", batch.write_batch(changes)),
            None => Box::pin(async { Err(not_batch(self.inner.name())) }),
        }
    }
}

/// Unreachable in practice: `as_batch` offers the batch view only when the inner target has one.
fn not_batch(target: &str) -> TargetError {
    TargetError::Config {
        target: target.to_owned(),
        reason: "this target takes no batch writes",
    }
}
