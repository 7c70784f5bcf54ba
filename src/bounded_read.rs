//! Reading a file that a user names (the config, the camera inventory, a secret file, a target's
//! YAML or env file) with a bound: at most a given number of bytes, and only regular files.
//!
//! Invariant: [`read_to_string`] never blocks on a FIFO or device and never holds more than
//! `limit + 1` bytes of the file in memory: it opens with `O_NONBLOCK` (opening a FIFO with no
//! writer would otherwise wait forever), checks the opened file's type, then reads at most one
//! byte past the limit. The error says how large a file may be and what to do; callers add the
//! file's name and role.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most read from the config file (`camsync.yaml`).
pub const CONFIG_LIMIT: u64 = 4 * 1024 * 1024;
/// The most read from the camera inventory file.
pub const INVENTORY_LIMIT: u64 = 64 * 1024 * 1024;
/// The most read from a secret file (`password_file`, `token_file`, `webhook_secret_file`).
pub const SECRET_LIMIT: u64 = 64 * 1024;
/// The most read from a file target's YAML file or its env file.
pub const TARGET_FILE_LIMIT: u64 = 64 * 1024 * 1024;

/// A server's file as a file target reads it: at most [`TARGET_FILE_LIMIT`], and empty when
/// it does not exist yet.
pub fn read_target_file(path: &Path) -> io::Result<String> {
    match read_to_string(path, TARGET_FILE_LIMIT) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

/// Reads the regular file at `path` as UTF-8 text of at most `limit` bytes.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    let bytes = read(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (byte {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads the regular file at `path`, at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let expected = file.metadata()?.len();
    if expected > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    // One byte more than allowed tells a file that grew since the check from one that fits.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// Opens `path` for reading without blocking, if it is a regular file (after symlinks).
fn open_regular(path: &Path) -> io::Result<File> {
    // A FIFO or device is refused before it is opened: opening some of them has effects.
    refuse_unless_regular(&std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // Checked again on what was opened: the path may have changed in between.
    refuse_unless_regular(&file.metadata()?.file_type())?;
    Ok(file)
}

fn refuse_unless_regular(kind: &std::fs::FileType) -> io::Result<()> {
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not a regular file; name a regular file"),
    ))
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "it is larger than {}, the most camsync reads from such a file; check that the \
             path names the right file",
            human_size(limit)
        ),
    )
}

/// `4 MiB`, `64 KiB`, `100 bytes`.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "cameras: []\n").unwrap();
        assert_eq!(read_to_string(&path, 12).unwrap(), "cameras: []\n");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'a'; 2048 + 1]).unwrap();
        let e = read_to_string(&path, 2048).unwrap_err().to_string();
        assert!(
            e.contains("larger than 2 KiB") && e.contains("right file"),
            "{e}"
        );
    }

    #[test]
    fn dev_zero_is_refused_at_once() {
        let started = Instant::now();
        let e = read_to_string(Path::new("/dev/zero"), CONFIG_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a device"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_to_string(dir.path(), CONFIG_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn a_fifo_without_a_writer_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // On a thread, so that a regression fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_to_string(&reader, CONFIG_LIMIT).map_err(|e| e.to_string()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reading a FIFO returns at once");
        let e = result.unwrap_err();
        assert!(e.contains("named pipe"), "{e}");
    }

    #[test]
    fn invalid_utf8_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.yaml");
        std::fs::write(&path, b"name: caf\xe9\n").unwrap();
        let e = read_to_string(&path, CONFIG_LIMIT).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("byte 9"), "{e}");
    }
}
