//! Writing a file so that readers only ever see the old or the new content.
//!
//! The new content goes to a temporary file in the same directory, is fsynced, gets the old
//! file's mode and owner (or mode 0600 for a new file: it may hold credentials), and is renamed
//! over the old one; then the directory is fsynced so the rename itself survives a crash. The
//! target is never opened for writing, so it can never be seen truncated. Unchanged content is
//! not written at all: MediaMTX reloads, and drops readers, on every change of its file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Mode of a file camsync creates.
pub const NEW_FILE_MODE: u32 = 0o600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Unchanged,
    Written,
}

#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot replace {path}: it looks like a single-file bind mount ({source}); \
         mount its directory instead, so the file can be replaced atomically"
    )]
    SingleFileMount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Replaces `path` with `contents` atomically; creates it (mode 0600) if it does not exist.
pub fn write(path: &Path, contents: &[u8]) -> Result<WriteOutcome, AtomicWriteError> {
    write_with(path, contents, None, false)
}

/// As [`write`](fn@write), and the file ends up mode 0600 whatever it was: it holds credentials.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<WriteOutcome, AtomicWriteError> {
    write_with(path, contents, Some(NEW_FILE_MODE), false)
}

/// As [`write`](fn@write) (or [`write_private`] when `private`), but replaces the file even when its
/// content is already `contents`: a watcher that missed the last change (MediaMTX) sees a new
/// file and loads it.
pub fn replace(path: &Path, contents: &[u8], private: bool) -> Result<(), AtomicWriteError> {
    write_with(path, contents, private.then_some(NEW_FILE_MODE), true).map(drop)
}

fn write_with(
    path: &Path,
    contents: &[u8],
    mode: Option<u32>,
    even_unchanged: bool,
) -> Result<WriteOutcome, AtomicWriteError> {
    let io_error = |source| AtomicWriteError::Io {
        path: path.to_owned(),
        source,
    };
    let existing = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(e)),
    };
    // Read back only when the sizes match, and no more than the new contents' size.
    let same = match &existing {
        Some(meta) if !even_unchanged && meta.len() == contents.len() as u64 => {
            crate::bounded_read::read(path, meta.len()).map_err(io_error)? == contents
        }
        _ => false,
    };
    if same {
        if let Some(mode) = mode {
            set_mode(path, mode).map_err(io_error)?;
        }
        return Ok(WriteOutcome::Unchanged);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".camsync-tmp")
        .tempfile_in(dir)
        .map_err(io_error)?;
    temp.write_all(contents).map_err(io_error)?;
    copy_ownership(temp.as_file(), existing.as_ref(), mode).map_err(io_error)?;
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(path)
        .map_err(|e| rename_error(path, e.error))?;
    sync_dir(dir).map_err(io_error)?;
    Ok(WriteOutcome::Written)
}

/// A rename over a single-file bind mount fails with EBUSY (or EXDEV across mounts).
fn rename_error(path: &Path, source: io::Error) -> AtomicWriteError {
    let single_file_mount = matches!(source.raw_os_error(), Some(16 | 18));
    if single_file_mount {
        AtomicWriteError::SingleFileMount {
            path: path.to_owned(),
            source,
        }
    } else {
        AtomicWriteError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Gives the new file the old one's owner, and `mode` or else the old mode (0600 when new).
#[cfg(unix)]
fn copy_ownership(
    file: &fs::File,
    existing: Option<&fs::Metadata>,
    mode: Option<u32>,
) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = mode.unwrap_or_else(|| existing.map_or(NEW_FILE_MODE, |m| m.mode() & 0o7777));
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some(meta) = existing {
        let mine = file.metadata()?;
        if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn copy_ownership(
    _file: &fs::File,
    _existing: Option<&fs::Metadata>,
    _mode: Option<u32>,
) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("go2rtc.yaml");
        assert_eq!(write(&path, b"streams:\n").unwrap(), WriteOutcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"streams:\n");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_existing_file_keeps_its_mode_and_is_replaced_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediamtx.yml");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        assert_eq!(write(&path, b"new\n").unwrap(), WriteOutcome::Written);
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(mode(&path), 0o640);
        assert_ne!(
            fs::metadata(&path).unwrap().ino(),
            inode,
            "renamed over, not written in place"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn a_private_write_tightens_the_mode_even_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediamtx.yml");
        fs::write(&path, "same\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            write_private(&path, b"same\n").unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(mode(&path), 0o600);
        write_private(&path, b"new\n").unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn unchanged_content_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediamtx.yml");
        fs::write(&path, "same\n").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        assert_eq!(write(&path, b"same\n").unwrap(), WriteOutcome::Unchanged);
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    }

    #[test]
    fn a_busy_rename_is_explained_as_a_single_file_mount() {
        let e = rename_error(
            Path::new("/config/go2rtc.yaml"),
            io::Error::from_raw_os_error(16),
        );
        assert!(e.to_string().contains("mount its directory"), "{e}");
        let e = rename_error(
            Path::new("/config/go2rtc.yaml"),
            io::Error::from_raw_os_error(13),
        );
        assert!(!e.to_string().contains("mount"), "{e}");
    }
}
