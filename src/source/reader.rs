//! What one kind of inventory (a file, an SQLite or a Postgres database) offers the source:
//! its records as read, a signal when they may have changed, and why it could not be read.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::camera::CameraSpec;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read camera inventory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("camera inventory {path}: {message}; the last good inventory stays in force")]
    Parse { path: PathBuf, message: String },
    #[error("cannot watch camera inventory {path}: {message}")]
    Watch { path: PathBuf, message: String },
    #[error("camera database {database}: {message}; the last good inventory stays in force")]
    Database { database: String, message: String },
    #[error(
        "camera database {database}: {reason}; the last good inventory stays in force (query: {query})"
    )]
    Query {
        database: String,
        reason: String,
        query: String,
    },
    #[error(
        "camera database {database} stayed locked by a writer through {tries} reads; the last good inventory stays in force and the read is tried again at the next poll"
    )]
    Busy { database: String, tries: usize },
    #[error(
        "camera inventory {inventory}: {count} cameras, more than `max_cameras` ({max}) in {config}; \
         the last good inventory stays in force. Raise `max_cameras` if the site is that large, \
         or share the cameras out with `shard:`"
    )]
    TooMany {
        inventory: String,
        count: usize,
        max: usize,
        config: String,
    },
}

/// One kind of inventory (a file, an SQLite or a Postgres database): it reads the records as
/// they are and says when they may have changed. `Source` validates what every kind reads
/// the same way. A new kind is one module implementing this, and one arm in `Source::new`.
pub trait Reader: Send + Sync {
    /// The inventory as messages name it (a path, a database without its password).
    fn label(&self) -> String;

    /// Reads every record. An error means the inventory could not be read at all.
    fn read(&self) -> BoxFuture<'_, Result<Vec<Record>, SourceError>>;

    /// Starts watching until `cancel`: one `()` per change (bursts may coalesce). `None` for an
    /// inventory that signals nothing (Postgres without `listen`; the periodic resync reads it).
    fn watch(&self, cancel: CancellationToken) -> Result<Option<mpsc::Receiver<()>>, SourceError>;
}

/// A record as read: where it is, the name if one could be read, and the spec or why not.
pub struct Record {
    pub location: String,
    pub name: Option<String>,
    pub spec: Result<Arc<CameraSpec>, String>,
}
