//! Crash safety of `atomic_file::write`: a writer killed with SIGKILL at arbitrary moments leaves
//! the file holding exactly one complete version, never a truncated or mixed one.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use camsync::atomic_file;

const CHILD_ENV: &str = "CAMSYNC_ATOMIC_CHILD_FILE";

/// Version `n` of the file: large enough that a non-atomic write would be seen half-done.
fn version(n: u64) -> Vec<u8> {
    let line = format!("# version {n:020}\n");
    line.repeat(20_000).into_bytes()
}

/// The version number if `bytes` is exactly one whole version.
fn whole_version(bytes: &[u8]) -> Option<u64> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    let n = std::str::from_utf8(first)
        .ok()?
        .strip_prefix("# version ")?
        .parse()
        .ok()?;
    (bytes == version(n).as_slice()).then_some(n)
}

/// In the child: write versions forever, until killed.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when spawned by the test below
    };
    for n in 1.. {
        atomic_file::write(Path::new(&path), &version(n)).unwrap();
    }
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mediamtx.yml");
    atomic_file::write(&path, &version(0)).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has replaced the file at least once (it restarts from version
        // 1), then kill it a varying few milliseconds later, mid-way through some write.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let seen = whole_version(&std::fs::read(&path).unwrap());
            assert!(seen.is_some(), "round {round}: a reader saw a torn file");
            if seen != Some(0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child never wrote"
            );
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(round * 3));
        child.kill().unwrap();
        child.wait().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            whole_version(&bytes).is_some(),
            "round {round}: the file is torn ({} bytes)",
            bytes.len()
        );
        atomic_file::write(&path, &version(0)).unwrap();
    }
}
