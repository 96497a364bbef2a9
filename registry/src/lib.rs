//! hivelog: a registry store. A tree of keys holding typed values (the Windows registry's
//! model), kept in an append-only, memory-mapped journal and served from an in-memory trie.
//!
//! ```no_run
//! use hivelog::{Options, Store};
//! # fn main() -> hivelog::Result<()> {
//! let store = Store::open("/var/lib/hivelog", Options::default())?;
//! let app = store.create_key(r"HKLM\Software\Contoso\App")?;
//! app.set_value("Version", "2.1")?;
//! app.set_value("Retries", &3u32)?;
//! let retries: u32 = app.get_value("Retries")?;
//! let before = store.snapshot_at(store.seq() - 1)?; // read the past
//! # Ok(()) }
//! ```
//!
//! Every committed transaction gets the next sequence number; a commit returns once it is
//! durable (by default). Reads see the newest committed state, or any earlier one through a
//! [`Snapshot`]. Architecture invariant: only this crate knows both keys and journal bytes;
//! `hivelog-log` stores opaque records, `hivelog-index` never opens a file.

#![warn(missing_docs)]

mod attrs;
mod backup;
mod checkpoint;
mod classes;
mod compact;
mod config;
mod descriptors;
mod error;
mod follow;
mod grants;
mod history;
mod key;
mod layers;
mod links;
mod memory;
mod offline;
mod op;
mod parameters;
mod path;
mod pitr;
mod reader;
mod reg;
mod replay;
mod resolver;
mod restore;
mod retention;
mod security;
mod staged;
mod store;
mod stored;
mod txn;
mod value;
mod verify;
mod watch;

pub use attrs::{KEY_CLASS_MAX_CHARS, check_class};
pub use backup::{BackupInfo, BackupReport};
pub use checkpoint::{CHECKPOINT_DIR, CHECKPOINT_MAX_BYTES, CheckpointInfo, CheckpointReport};
pub use compact::{CompactReport, HISTORY_KEEP_COMMITS_DEFAULT, HISTORY_KEEP_SECONDS_DEFAULT};
pub use config::{GROUPS_KEY, PRIVILEGES_KEY};
pub use error::{Error, Result};
pub use follow::FOLLOW_INTERVAL;
pub use history::{HISTORY_KINDS, HistoryFilter, HistoryOp, HistoryTxn};
pub use hivelog_index::KeyId;
pub use hivelog_log::archive::SegmentSummary;
#[cfg(feature = "sim")]
pub use hivelog_log::sim;
pub use hivelog_log::{
    LogError, RecoveryReport, SEGMENT_SIZE_DEFAULT_BYTES, SEGMENT_SIZE_MAX_BYTES,
    SEGMENT_SIZE_MIN_BYTES, SEGMENT_SIZE_OPTION_MAX_BYTES, Seq, SyncPolicy, vfs,
};
pub use key::{Key, LayeredValue};
pub use layers::{
    BASE_LAYER, LAYER_NAME_MAX_BYTES, LAYERS_MAX, Layer, POLICY_LAYER, check_layer_name,
};
pub use links::{LINK_HOPS_MAX, LINK_VALUE_NAME};
pub use memory::{FileImage, FlushReport, IMAGE_MAX_BYTES, Persistence, VecImage};
pub use offline::{
    HiveMount, OFFLINE_HIVE_SOURCE, OFFLINE_KEYS_MAX, OFFLINE_VALUES_MAX, OfflineHive, OfflineKey,
};
pub use op::AuditEvent;
pub use parameters::{FLUSH_INTERVAL_MAX_MS, PARAMETERS_KEY, ParameterReport};
pub use path::{DEPTH_MAX, Hive, KEY_NAME_MAX_CHARS, KeyPath, VALUE_NAME_MAX_CHARS};
pub use pitr::{VerifiedFile, recover_from_backup, verify_archive_file, verify_file};
pub use reg::{
    ExportReport, ImportReport, REG_FILE_MAX_BYTES, REG_LINE_MAX_BYTES, RegEncoding, RegFormat,
    RegHeader,
};
pub use restore::{RestoreReport, verify_backup_file};
pub use retention::PINNED_SEQS_MAX;
pub use security::{
    ACES_MAX, Access, Ace, AceFlags, AceKind, CALLER_GROUPS_MAX, Caller, PRINCIPAL_MAX_BYTES,
    PRINCIPALS_MAX, Privileges, SDDL_MAX_BYTES, SECURITY_DESCRIPTOR_MAX_BYTES, Sddl,
    SecurityDescriptor, principals, sddl,
};
pub use staged::STAGED_RESTORE_FILE;
pub use store::{
    CHECKPOINT_EVERY_BYTES_DEFAULT, CHECKPOINT_EVERY_COMMITS_DEFAULT, Options, SYSTEM_PRINCIPAL,
    Snapshot, Stats, Store, VALUE_SIZE_DEFAULT_MAX_BYTES, VALUE_SIZE_LIMIT_BYTES,
};
pub use txn::{CreateOptions, Transaction};
pub use value::{FromRegValue, ToRegValue, Value, ValueType, parse_u64};
pub use verify::VerifyReport;
pub use watch::{
    WATCH_QUEUE_DEPTH_DEFAULT, WATCH_QUEUE_DEPTH_MAX, WATCHES_MAX, Watch, WatchEvent,
    WatchEventKind, WatchFilter,
};

#[cfg(test)]
mod tests;
