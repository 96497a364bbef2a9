//! The one error type of the benchmark: which engine or check failed, with what it said.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("hivelog: {0}")]
    Hivelog(#[from] hivelog::Error),
    /// Boxed: redb's error is large, and every result of the benchmark carries this type.
    #[error("redb: {0}")]
    Redb(Box<redb::Error>),
    #[error("LMDB: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("writing {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A value read back differs from the one written, or is missing.
    #[error("{workload} on {engine}: {what}")]
    Check {
        workload: &'static str,
        engine: &'static str,
        what: String,
    },
    /// An engine refused a setting or a step the benchmark relies on.
    #[error("{engine}: {what}")]
    Engine { engine: &'static str, what: String },
    #[error("{engine}: a stored value of {len} bytes is shorter than its 4-byte type")]
    ShortValue { engine: &'static str, len: usize },
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
    #[error("{0}")]
    Usage(String),
}

/// redb returns one error type per operation; each converts into `redb::Error`.
macro_rules! from_redb {
    ($($error:ty),*) => {
        $(impl From<$error> for Error {
            fn from(error: $error) -> Error {
                Error::Redb(Box::new(error.into()))
            }
        })*
    };
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, Error>;
