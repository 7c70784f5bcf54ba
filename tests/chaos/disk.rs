//! The ledger's directory on a small file system of its own (a tmpfs), which the soak can fill
//! up and free again: "the ledger's disk is full for a while". Mounting needs the privilege to
//! mount; without it the soak keeps the ledger on the temp directory and says that this fault
//! is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct LedgerDisk {
    dir: PathBuf,
    filler: PathBuf,
}

impl LedgerDisk {
    /// Mounts a 64 MiB tmpfs on `dir` (created); why not, if it cannot.
    pub fn mount(dir: &Path) -> Result<LedgerDisk, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "camsync-soak"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(LedgerDisk {
            dir: dir.to_path_buf(),
            filler: dir.join("filler"),
        })
    }

    /// Writes a file until the file system has no space left.
    pub fn fill(&self) {
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        // The last partial blocks too, so that even a one-page write fails.
        while file.write_all(&chunk[..512]).is_ok() {}
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for LedgerDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
