//! An `exec` resolver: a command, run without a shell, that prints a camera's current stream
//! URL and its expiry as JSON (see [`StreamGrant::from_answer`]).
//!
//! - `{device}` in its arguments becomes the camera's `device`; nothing else is interpolated.
//! - Bounded: a command that runs past the resolver's `timeout` is killed, and at most
//!   [`MAX_OUTPUT_BYTES`] of its output is read.
//! - Its output and its standard error are never shown (either may hold a token); an error
//!   says what went wrong: the exit status, the timeout, the shape of the answer.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::live::{ResolveError, StreamGrant, UrlSource};
use crate::config::RESOLVER_DEVICE as DEVICE;

/// The most read from a command's output.
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

pub struct ExecResolver {
    pub name: String,
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl ExecResolver {
    async fn run(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        let failed = |detail: String| ResolveError::Failed {
            account: self.name.clone(),
            device: device.to_owned(),
            detail,
        };
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|a| a.replace(DEVICE, device))
            .collect();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", argv[0])))?;
        let mut output = Vec::new();
        let stdout = child.stdout.take();
        let run = async {
            if let Some(stdout) = stdout {
                stdout
                    .take(MAX_OUTPUT_BYTES + 1)
                    .read_to_end(&mut output)
                    .await?;
            }
            child.wait().await
        };
        let status = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                return Err(failed(format!(
                    "no answer within {:?} (the resolver's `timeout`); the command was stopped",
                    self.timeout
                )));
            }
            Ok(Err(e)) => return Err(failed(format!("cannot read the command's output: {e}"))),
            Ok(Ok(status)) => status,
        };
        if !status.success() {
            return Err(failed(format!(
                "the command failed ({status}); its output is not shown, it may hold a token"
            )));
        }
        if output.len() as u64 > MAX_OUTPUT_BYTES {
            return Err(failed(format!(
                "the command printed more than {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        StreamGrant::from_answer(&String::from_utf8_lossy(&output), failed)
    }
}

impl UrlSource for ExecResolver {
    async fn ask(&self, device: &str) -> Result<StreamGrant, ResolveError> {
        self.run(device).await
    }
}
