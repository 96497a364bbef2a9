use std::io;
use std::path::PathBuf;

use crate::Seq;

/// Everything the journal can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// Data that was written and acknowledged does not read back as written.
    #[error("corrupt journal: segment {segment}, offset {offset}, {seq_desc}: {reason}", seq_desc = describe_seq(*.seq))]
    Corrupt {
        /// File name of the segment.
        segment: String,
        /// Offset of the bad frame (0: the header).
        offset: u64,
        /// The sequence number of the transaction that holds the bad data, when it is known.
        seq: Option<Seq>,
        /// What is wrong.
        reason: String,
    },

    /// The journal no longer holds what a checkpoint was taken after (it was replaced,
    /// salvaged or cut): the caller opens without the checkpoint.
    #[error("the checkpoint does not match the journal: {reason}")]
    ResumeRejected {
        /// What differs.
        reason: String,
    },

    /// History before the oldest retained transaction was compacted away.
    #[error("sequence number {seq} was compacted away: the oldest readable is {oldest}")]
    Compacted {
        /// What was asked for.
        seq: Seq,
        /// The oldest sequence number still readable.
        oldest: Seq,
    },

    /// A compaction could not proceed (its cut is no longer a sealed segment's end, or its
    /// base came out another size than planned); the journal is unchanged.
    #[error("compaction: {reason}")]
    Compaction {
        /// What went wrong.
        reason: String,
    },

    /// Another process (or another open in this one) owns the store.
    #[error("store {path} is in use by another process (lock file {lock} is held)")]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },

    /// One transaction does not fit in an empty segment.
    #[error(
        "transaction of {bytes} bytes does not fit in the largest segment, {max} bytes (SEGMENT_SIZE_MAX_BYTES)"
    )]
    TransactionTooLarge {
        /// Bytes the transaction needs.
        bytes: u64,
        /// The limit.
        max: u64,
    },

    /// A range of sequence numbers that is empty or reaches past the journal.
    #[error("sequence numbers ({from}, {to}] are not a range of this journal (last: {last})")]
    BadRange {
        /// The range's start (exclusive).
        from: Seq,
        /// Its end (inclusive).
        to: Seq,
        /// The last committed sequence number.
        last: Seq,
    },

    /// A journal is to be assembled where files exist already.
    #[error("{} is not empty", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },

    /// Archives that end before the sequence number asked for.
    #[error("the archives end at sequence number {last}, before {wanted}")]
    ArchiveShort {
        /// The sequence number asked for.
        wanted: Seq,
        /// The last one the archives hold.
        last: Seq,
    },

    /// A stream (a backup) is not what it must be: foreign, truncated, damaged.
    #[error("invalid stream at byte {offset}: {reason}")]
    BadStream {
        /// Where in the stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// One transaction holds more records than the limit.
    #[error("transaction has more than {max} records (records_per_transaction_max)")]
    TooManyRecords {
        /// The limit.
        max: u32,
    },

    /// The journal has used every segment number a location can name.
    #[error("the journal has reached SEGMENTS_MAX ({max}) segments")]
    TooManySegments {
        /// The limit.
        max: u32,
    },

    /// A commit's principal name is longer than the limit.
    #[error("principal of {len} bytes is longer than PRINCIPAL_MAX_BYTES ({max})")]
    PrincipalTooLong {
        /// Length given.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// An option is out of its range.
    #[error("invalid journal option {name}={value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Its allowed range.
        reason: &'static str,
    },

    /// A write failed earlier (for example fdatasync); the journal refuses further writes
    /// because what reached the disk is unknown. Reopen the store to recover.
    #[error("journal refuses writes after an earlier failure: {0}; reopen the store to recover")]
    Poisoned(String),

    /// The journal was opened read-only.
    #[error("journal is open read-only")]
    ReadOnly,

    /// A directory that must hold a store does not.
    #[error("no store at {0}")]
    NotFound(PathBuf),
}

fn describe_seq(seq: Option<Seq>) -> String {
    match seq {
        Some(seq) => format!("sequence number {seq}"),
        None => "sequence number unknown".to_string(),
    }
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
