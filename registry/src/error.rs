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

    /// `HKEY_CLASSES_ROOT` where one key path is needed: it is a merged view of two keys,
    /// which the store's and handles' operations open, not a path to one key.
    #[error(
        "{path:?} is in HKEY_CLASSES_ROOT, the merged view of the caller's and the machine's Software\\Classes, not one key path"
    )]
    ClassesView {
        /// The path as given.
        path: String,
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

    /// A read before the oldest retained sequence number: history up to there was compacted.
    #[error("sequence number {seq} was compacted away: the oldest readable is {oldest}")]
    Compacted {
        /// The sequence number asked for.
        seq: Seq,
        /// The oldest one still readable.
        oldest: Seq,
    },

    /// Too many distinct sequence numbers are held by snapshots at once.
    #[error("too many snapshots at distinct sequence numbers (at most {max})")]
    TooManySnapshots {
        /// The limit.
        max: usize,
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

    /// `flush` on a store with no persistence hook.
    #[error("the store has no persistence hook to flush to (open it with Store::in_memory_with)")]
    NoPersistence,

    /// An operation that needs the store's directory, on an in-memory store.
    #[error("an in-memory store has no {what}")]
    NotOnDisk {
        /// What it lacks.
        what: &'static str,
    },

    /// A watch was asked to report nothing.
    #[error("a watch filter must name subkeys, values or security changes")]
    EmptyWatchFilter,

    /// A count limit was reached.
    #[error("too many {what}: the limit is {max}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        max: usize,
    },

    /// A layer name is empty, too long or holds a character layer names may not hold.
    #[error(
        "invalid layer name {name:?}: 1 to {max} ASCII letters, digits, '-', '_' or '.' (LAYER_NAME_MAX_BYTES is {max})"
    )]
    InvalidLayerName {
        /// The name (cut to 64 characters).
        name: String,
        /// The limit on its length.
        max: usize,
    },

    /// No layer of that name exists.
    #[error("layer {name:?} does not exist (layers: {known})")]
    LayerNotFound {
        /// The name asked for.
        name: String,
        /// The layers there are.
        known: String,
    },

    /// A history filter named a kind of change that does not exist.
    #[error("unknown kind of change {kind:?} (kinds: {known})")]
    UnknownHistoryKind {
        /// The kind asked for.
        kind: String,
        /// The kinds there are.
        known: String,
    },

    /// A layer of that name exists already.
    #[error("layer {name:?} exists already")]
    LayerExists {
        /// The name.
        name: String,
    },

    /// Another layer has that precedence.
    #[error("precedence {precedence} belongs to layer {layer:?}; precedences are unique")]
    PrecedenceTaken {
        /// The precedence asked for.
        precedence: u16,
        /// The layer that has it.
        layer: String,
    },

    /// `base` and `policy` exist for the life of the store.
    #[error("layer {name:?} is built in and cannot be dropped")]
    BuiltinLayer {
        /// The layer.
        name: String,
    },

    /// A chain of link keys is longer than LINK_HOPS_MAX (or loops).
    #[error("opening {path} follows more than {max} links (LINK_HOPS_MAX); is there a loop?")]
    TooManyLinks {
        /// The path being opened.
        path: String,
        /// The limit.
        max: usize,
    },

    /// A link key whose target is not a valid key path.
    #[error("link {path} has an invalid target: {reason}")]
    BadLink {
        /// The link key.
        path: String,
        /// What is wrong with its target.
        reason: String,
    },

    /// A key below a link, in an offline hive: a link has no subkeys, and an offline hive
    /// does not follow links (their targets are store paths, outside the hive).
    #[error(
        "{path} would be below the link {link}: a link has no subkeys, and an offline hive does not follow links"
    )]
    BelowLink {
        /// The key that was to be created.
        path: String,
        /// The link on its way.
        link: String,
    },

    /// A non-volatile key cannot live under a volatile one.
    #[error("{path} would be a non-volatile key under the volatile key {parent}")]
    VolatileParent {
        /// The key that was to be created.
        path: String,
        /// Its volatile ancestor.
        parent: String,
    },

    /// The key's security descriptor does not grant the caller what it asked for; nothing was
    /// changed.
    #[error("access denied: {principal} lacks {missing} on {path}")]
    AccessDenied {
        /// The key.
        path: String,
        /// The caller.
        principal: String,
        /// The rights that were not granted (`KEY_SET_VALUE | DELETE`).
        missing: String,
    },

    /// A key class is empty, too long or holds NUL.
    #[error("invalid key class {class:?}: 1 to {max} characters without NUL (KEY_CLASS_MAX_CHARS)")]
    InvalidClass {
        /// The class (cut to 64 characters).
        class: String,
        /// The limit.
        max: usize,
    },

    /// A key exists where a new one was to be created (a link, which cannot replace a key).
    #[error("key {path} exists already")]
    KeyExists {
        /// The key.
        path: String,
    },

    /// Reading or writing a stream (a backup's output or input) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint could not be written (the journal still holds everything).
    #[error("checkpoint failed: {reason}")]
    Checkpoint {
        /// What went wrong.
        reason: String,
    },

    /// A stream is a valid stream but not a valid backup.
    #[error("not a valid backup: {reason}")]
    BadBackup {
        /// What is wrong.
        reason: String,
    },

    /// Volatile keys are never backed up.
    #[error("key {path} is volatile: it lives in memory only and is never backed up")]
    VolatileBackup {
        /// The key.
        path: String,
    },

    /// A value of the store's own configuration is not what it must be.
    #[error("configuration value {value:?} of {key} {reason}")]
    BadConfig {
        /// The configuration key.
        key: String,
        /// The value name.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A privileged operation by a caller without the privilege.
    #[error("{principal} does not hold {privilege}, which {what} requires")]
    PrivilegeRequired {
        /// The caller.
        principal: String,
        /// The privilege (its Windows name).
        privilege: &'static str,
        /// What was attempted.
        what: String,
    },

    /// An index entry points at journal data that is not there: a bug or damage after open.
    #[error("journal data for {what} is missing or malformed")]
    Damaged {
        /// What was being read.
        what: String,
    },

    // --- .reg files ---
    /// A `.reg` file is malformed; nothing was applied.
    #[error("{file}:{line}: {reason}")]
    RegSyntax {
        /// The file, as the caller named it.
        file: String,
        /// The line (1-based).
        line: u64,
        /// What is wrong there.
        reason: String,
    },

    /// A line of a `.reg` file is longer than REG_LINE_MAX_BYTES; nothing was applied.
    #[error("{file}:{line}: the line is {len} bytes long; REG_LINE_MAX_BYTES is {max}")]
    RegLineTooLong {
        /// The file.
        file: String,
        /// The line (1-based).
        line: u64,
        /// Its length in bytes of the file.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A `.reg` file is larger than REG_FILE_MAX_BYTES; nothing was read.
    #[error("{file} is {len} bytes or more; REG_FILE_MAX_BYTES is {max}")]
    RegFileTooLarge {
        /// The file.
        file: String,
        /// Its size (or as much of it as was read).
        len: u64,
        /// The limit.
        max: u64,
    },

    /// The store refused a change of a `.reg` file; nothing was applied.
    #[error("{file}:{line}: {source}")]
    RegImport {
        /// The file.
        file: String,
        /// The line of the change.
        line: u64,
        /// Why the store refused it.
        #[source]
        source: Box<Error>,
    },

    /// A key or value that a `.reg` file cannot hold (a name with a line break, which no
    /// reader could tell from the next line); nothing more was written.
    #[error("cannot export {what}: {reason}")]
    RegUnwritable {
        /// The key, or the value and its key.
        what: String,
        /// Why.
        reason: &'static str,
    },

    /// A `.reg` file names a key outside the offline hive it is imported into.
    #[error("key {key} is outside the hive, which stands for {mount}")]
    OutsideHive {
        /// The key, as the file names it.
        key: String,
        /// The key the hive's root stands for.
        mount: String,
    },

    /// An offline hive stands for no key, so a `.reg` file's keys have no place in it.
    #[error(
        "the hive stands for no key (its source path is {source_path:?}): give it one \
         (OfflineHive::set_source_path, or hivelog --mount KEY) to import or export .reg files"
    )]
    HiveUnmounted {
        /// What the hive's file says it came from.
        source_path: String,
    },

    // --- security ---
    /// A principal (a SID or a plain name) is malformed.
    #[error("invalid principal {principal:?}: {reason}")]
    InvalidPrincipal {
        /// The principal (cut to 64 characters).
        principal: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A principal is longer than PRINCIPAL_MAX_BYTES.
    #[error("principal {principal:?} is {len} bytes; PRINCIPAL_MAX_BYTES is {max}")]
    PrincipalTooLong {
        /// The principal (cut to 64 characters).
        principal: String,
        /// Its length in UTF-8 bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// More distinct principals than PRINCIPALS_MAX were named.
    #[error("more than {max} distinct principals; PRINCIPALS_MAX is {max}")]
    TooManyPrincipals {
        /// The limit.
        max: usize,
    },

    /// A caller is in more groups than CALLER_GROUPS_MAX.
    #[error("caller {principal:?} is in {count} groups; CALLER_GROUPS_MAX is {max}")]
    TooManyGroups {
        /// The caller's principal (cut to 64 characters).
        principal: String,
        /// How many groups it named.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A DACL holds more entries than ACES_MAX.
    #[error("DACL has {count} entries; ACES_MAX is {max}")]
    TooManyAces {
        /// How many entries it has.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// An ACE's mask holds bits outside KEY_ALL_ACCESS (generic rights must be mapped).
    #[error(
        "ACE for {principal:?} has mask {mask:#x}, outside KEY_ALL_ACCESS (0xf003f); map generic rights first"
    )]
    BadAccessMask {
        /// Whom the ACE is for (cut to 64 characters).
        principal: String,
        /// The mask.
        mask: u32,
    },

    /// An ACE's flags hold bits other than the five inheritance flags.
    #[error("ACE for {principal:?} has flags {flags:#x}, outside the inheritance flags (0x1f)")]
    BadAceFlags {
        /// Whom the ACE is for (cut to 64 characters).
        principal: String,
        /// The flags.
        flags: u8,
    },

    /// A security descriptor encodes to more than SECURITY_DESCRIPTOR_MAX_BYTES.
    #[error("security descriptor is {len} bytes encoded; SECURITY_DESCRIPTOR_MAX_BYTES is {max}")]
    DescriptorTooLarge {
        /// Its encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Text is not SDDL of the supported subset.
    #[error("invalid SDDL {sddl:?} at byte {at}: {reason}")]
    BadSddl {
        /// The text (cut to 64 characters).
        sddl: String,
        /// The byte offset where it goes wrong.
        at: usize,
        /// What is wrong there.
        reason: String,
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
