use hivelog_log::{LogError, Seq};

/// Everything the registry can fail with. Every variant names what was wrong, with the data a
/// user needs to act; every limit names itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The journal failed (I/O, corruption, lock, size limits).
    #[error(transparent)]
    Log(#[from] LogError),

    /// A path was empty.
    #[error("empty key path")]
    EmptyPath,

    /// A path does not start with a known hive.
    #[error(
        "unknown root key {name:?} (expected Machine, Users, or HKLM/HKU/HKCU/HKCC and their long names)"
    )]
    UnknownHive {
        /// The first component given.
        name: String,
    },

    /// A root name that names no part of this store yet.
    #[error("{what} is not supported")]
    Unsupported {
        /// What was asked for.
        what: String,
    },

    /// A key name is empty (two backslashes in a row, or a leading backslash).
    #[error("empty key name in path {path:?}")]
    EmptyKeyName {
        /// The path as given.
        path: String,
    },

    /// A key name is longer than KEY_NAME_MAX_CHARS.
    #[error("key name {name:?} is {len} characters long; KEY_NAME_MAX_CHARS is {max}")]
    KeyNameTooLong {
        /// The name (cut to 64 characters).
        name: String,
        /// Its length in UTF-16 code units.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value name is longer than VALUE_NAME_MAX_CHARS.
    #[error("value name {name:?} is {len} characters long; VALUE_NAME_MAX_CHARS is {max}")]
    ValueNameTooLong {
        /// The name (cut to 64 characters).
        name: String,
        /// Its length in UTF-16 code units.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A name holds a character names may not hold.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name (cut to 64 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A path is deeper than DEPTH_MAX.
    #[error("key path {path:?} is {depth} levels deep; DEPTH_MAX is {max}")]
    TooDeep {
        /// The path (cut to 64 characters).
        path: String,
        /// Its depth, the hive counting as one.
        depth: usize,
        /// The limit.
        max: usize,
    },

    /// Value data is larger than the store's value_size_max_bytes.
    #[error("value {name:?} is {len} bytes; value_size_max_bytes is {max}")]
    ValueTooLarge {
        /// The value name.
        name: String,
        /// Its size.
        len: usize,
        /// The limit in force.
        max: u32,
    },

    /// No key exists at the path.
    #[error("key {path} does not exist")]
    KeyNotFound {
        /// The path.
        path: String,
    },

    /// The key a handle refers to was deleted since it was opened.
    #[error("key {path} was deleted")]
    KeyDeleted {
        /// The path it had.
        path: String,
    },

    /// No value of that name exists in the key.
    #[error("value {name:?} does not exist in key {path}")]
    ValueNotFound {
        /// The key.
        path: String,
        /// The value name.
        name: String,
    },

    /// Delete of a key that has subkeys (use delete_tree).
    #[error("key {path} has subkeys; delete the tree instead")]
    HasSubkeys {
        /// The key.
        path: String,
    },

    /// Hive roots exist for the life of the store.
    #[error("{path} is a hive root and cannot be deleted")]
    HiveRoot {
        /// The hive.
        path: String,
    },

    /// A value does not convert to the type asked for.
    #[error("value {name:?} is {found}, not {expected}")]
    WrongType {
        /// The value name.
        name: String,
        /// What the caller asked for.
        expected: &'static str,
        /// What the value is.
        found: String,
    },

    /// Value data is malformed for its type (odd-length UTF-16, a DWORD of 3 bytes).
    #[error("value {name:?} holds malformed {ty} data: {reason}")]
    BadData {
        /// The value name.
        name: String,
        /// Its type.
        ty: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A snapshot was asked for beyond the last committed sequence number.
    #[error("sequence number {seq} is not committed (last committed: {last})")]
    FutureSeq {
        /// The sequence number asked for.
        seq: Seq,
        /// The last committed one.
        last: Seq,
    },

    /// A store option is out of range.
    #[error("invalid option {name}={value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Its allowed range.
        reason: &'static str,
    },

    /// A write on a store opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,

    /// An index entry points at journal data that is not there: a bug or damage after open.
    #[error("journal data for {what} is missing or malformed")]
    Damaged {
        /// What was being read.
        what: String,
    },
}

/// Results of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cuts a name for an error message so a 16,000-character name does not flood a terminal.
pub(crate) fn clip(name: &str) -> String {
    const SHOWN_CHARS: usize = 64;
    if name.chars().count() <= SHOWN_CHARS {
        return name.to_string();
    }
    let mut out: String = name.chars().take(SHOWN_CHARS).collect();
    out.push('…');
    out
}
