//! Backup: a point-in-time copy of a key and its whole subtree, as a stream
//! (`hivelog_log::stream`): one transaction's records that recreate the subtree as it was at
//! the cut sequence number. Full fidelity: every key with its descriptor, class and flags,
//! every layer's values byte for byte; volatile keys are left out.
//!
//! The records are the journal's own op records with the source store's key ids: CreateKey
//! for every key below the anchor (parents first), then its SetKeyFlags, SetKeyClass,
//! SetSecurity and SetValue records; the anchor's own attributes and values come first, with
//! its id named in the header. A SetValue record is copied from the journal as it is. So a
//! backup of the whole registry replays, unchanged, as the base of a journal.
//!
//! The walk reads one snapshot, so writers neither wait for it nor leak into it: it takes the
//! state's read lock for one key at a time (its attributes, value locations and children),
//! then copies that key's records out of the mapped journal with the lock released (one key
//! behind, so the records it needs are prefetched while the next key is read). Memory is
//! bounded by two keys' values and the ids of the keys still to visit.

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use hivelog_index::{KeyId, NodeId, Seq, prefetch};
use hivelog_log::codec::{Put, Reader, Short};
use hivelog_log::stream::{StreamInfo, StreamWriter};
use hivelog_log::{Records, unix_nanos_now};

use crate::attrs::{KeyAttrs, KeyFlags, SdId};
use crate::error::{Error, Result};
use crate::layers::{BASE, POLICY};
use crate::links::locate;
use crate::op::{AuditEvent, Op, encode_descriptor};
use crate::path::KeyPath;
use crate::retention::Pinned;
use crate::security::Privileges;
use crate::store::{Inner, State, Store, read_state};
use crate::stored::Stored;

/// The version of the description a backup's header carries.
const BACKUP_INFO_VERSION: u8 = 1;

/// What a backup's header says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The key the backup was taken of, its path at the cut.
    pub source_path: String,
    /// The cut: the backup holds the subtree as it was right after this sequence number.
    pub seq: Seq,
    /// The anchor key's id in the source store.
    pub anchor: KeyId,
    /// The layers that existed at the cut, highest precedence first: (precedence, name).
    pub layers: Vec<(u16, String)>,
    /// Who took the backup.
    pub principal: String,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Records in the stream.
    pub records: u64,
    /// The stream's length in bytes.
    pub bytes: u64,
}

fn put_str(buf: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("paths and layer names are shorter than 64 KiB");
    buf.put_u16(len);
    buf.put_bytes(text.as_bytes());
}

fn get_str(r: &mut Reader<'_>, what: &'static str) -> Result<String, Short> {
    let len = usize::from(r.u16(what)?);
    Ok(r.str(len, what)?.to_string())
}

impl BackupInfo {
    /// The header bytes: `version u8 | anchor id u64 | source path | time i64 | principal |
    /// layer count u16 | (precedence u16 | name)...`, strings UTF-8 with a u16 length. Time
    /// and principal are the Commit record's too, so a reader has them before the records.
    pub(crate) fn encode(
        anchor: KeyId,
        source_path: &str,
        time_unix_nanos: i64,
        principal: &str,
        layers: &[(u16, String)],
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.put_u8(BACKUP_INFO_VERSION);
        buf.put_u64(anchor);
        put_str(&mut buf, source_path);
        buf.put_i64(time_unix_nanos);
        put_str(&mut buf, principal);
        buf.put_u16(u16::try_from(layers.len()).expect("LAYERS_MAX is far below 64 Ki"));
        for (precedence, name) in layers {
            buf.put_u16(*precedence);
            put_str(&mut buf, name);
        }
        buf
    }

    /// Reads a verified stream's description back.
    pub(crate) fn decode(stream: &StreamInfo) -> Result<BackupInfo> {
        let bad = |short: Short| Error::BadBackup {
            reason: format!("its header: {}", short.0),
        };
        let mut r = Reader::new(&stream.info);
        if r.u8("backup info version").map_err(bad)? != BACKUP_INFO_VERSION {
            return Err(Error::BadBackup {
                reason: "its header has an unknown version".into(),
            });
        }
        let anchor = r.u64("anchor id").map_err(bad)?;
        let source_path = get_str(&mut r, "source path").map_err(bad)?;
        let time_unix_nanos = r.i64("time").map_err(bad)?;
        let principal = get_str(&mut r, "principal").map_err(bad)?;
        if time_unix_nanos != stream.time_unix_nanos || principal != stream.principal {
            return Err(Error::BadBackup {
                reason: "its header and its commit record name different times or principals"
                    .into(),
            });
        }
        let count = r.u16("layer count").map_err(bad)?;
        let mut layers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let precedence = r.u16("layer precedence").map_err(bad)?;
            let name = get_str(&mut r, "layer name").map_err(bad)?;
            crate::layers::check_layer_name(&name).map_err(|e| Error::BadBackup {
                reason: format!("its header: {e}"),
            })?;
            layers.push((precedence, name));
        }
        r.finish("trailing bytes in the backup header")
            .map_err(bad)?;
        Ok(BackupInfo {
            source_path,
            seq: stream.seq,
            anchor,
            layers,
            principal,
            time_unix_nanos,
            records: stream.records,
            bytes: stream.bytes,
        })
    }
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// The cut sequence number.
    pub seq: Seq,
    /// Keys written, the anchor included.
    pub keys: u64,
    /// Values written, every layer's.
    pub values: u64,
    /// Bytes of the stream.
    pub bytes: u64,
}

/// One key of the walk, as read under the lock; one buffer is filled again for each key, so
/// the walk allocates nothing per key.
struct KeyCopy {
    node: NodeId,
    id: KeyId,
    /// Its parent's id (none for the anchor, which is not created).
    parent: Option<KeyId>,
    name: String,
    attrs: KeyAttrs,
    /// Its class, if it has one.
    class: Option<String>,
    values: Vec<Stored>,
}

impl KeyCopy {
    fn new(node: NodeId) -> KeyCopy {
        KeyCopy {
            node,
            id: 0,
            parent: None,
            name: String::new(),
            attrs: KeyAttrs::default(),
            class: None,
            values: Vec::new(),
        }
    }

    /// Reads the key `visit` names as of `at` and queues its subkeys, in name order, on
    /// `stack`. `false` if it is volatile: it and everything below it (all volatile too) are
    /// left out.
    fn fill(&mut self, state: &State, visit: &ToVisit, at: Seq, stack: &mut Vec<ToVisit>) -> bool {
        let index = &state.index;
        let attrs = index.attrs_at(visit.node, at);
        if attrs.is_volatile() {
            return false;
        }
        self.node = visit.node;
        self.id = visit.id;
        self.parent = visit.parent;
        self.attrs = attrs;
        self.name.clear();
        if visit.parent.is_some() {
            let key = index
                .key_at(visit.node, at)
                .expect("a subkey listed at the cut exists at the cut");
            self.name.push_str(key.name);
        }
        match (state.classes.get(attrs.class), &mut self.class) {
            (Some(class), Some(kept)) => {
                kept.clear();
                kept.push_str(class);
            }
            (Some(class), kept) => *kept = Some(class.to_string()),
            (None, kept) => *kept = None,
        }
        self.values.clear();
        self.values.extend(index.stored_values_at(visit.node, at));
        index.prefetch_children(visit.node);
        let first = stack.len();
        stack.extend(index.children_at(visit.node, at).map(|child| ToVisit {
            node: child.node,
            id: child.id,
            parent: Some(visit.id),
        }));
        // Reversed, so the stack hands them out in name order.
        stack[first..].reverse();
        true
    }
}

/// Bytes the prefetch of a record reaches past its start: records of small values span one or
/// two cache lines.
const CACHE_LINE_BYTES: usize = 64;

/// What a backup starts from.
#[derive(Clone, Copy)]
pub(crate) enum Anchor<'a> {
    /// A key and its subtree.
    Key(&'a KeyPath),
    /// The whole registry: both hives, under the root above them (id 0).
    Registry,
}

fn io(source: std::io::Error) -> Error {
    Error::Io {
        what: "writing the backup".into(),
        source,
    }
}

impl Store {
    /// Writes a backup of the key at `path` and its whole subtree as they were right after
    /// sequence number `at` to `out`, and returns what it wrote. Needs SeBackupPrivilege and
    /// reads every key whatever its descriptor; every backup is audited (a journal record
    /// naming the key and the cut, by this handle's principal). Writers neither wait for it
    /// nor leak into it.
    pub fn backup(&self, path: &str, at: Seq, out: impl Write) -> Result<BackupReport> {
        let key_path = self.parse(path)?;
        self.audited_backup(Anchor::Key(&key_path), &key_path.to_string(), at, out)
    }

    /// As [`Store::backup`], of the whole registry (both hives): the stream a recovery
    /// from a backup and archives starts from.
    pub fn backup_registry(&self, at: Seq, out: impl Write) -> Result<BackupReport> {
        self.audited_backup(Anchor::Registry, "", at, out)
    }

    fn audited_backup(
        &self,
        anchor: Anchor<'_>,
        path: &str,
        at: Seq,
        out: impl Write,
    ) -> Result<BackupReport> {
        let what = if path.is_empty() {
            "the registry"
        } else {
            path
        };
        self.session_ref()
            .require(Privileges::BACKUP, &format!("a backup of {what}"))?;
        let last = self.seq();
        if at > last {
            return Err(Error::FutureSeq { seq: at, last });
        }
        // A backup that cannot start (no such key then, a volatile key) takes nothing and
        // leaves no audit record; one that starts is audited before it writes a byte.
        let start = start_backup(self.inner(), anchor, at)?;
        self.commit(&[crate::txn::Intent::Audit {
            event: AuditEvent::Backup,
            path: path.to_string(),
            source: String::new(),
            seq: at,
        }])?;
        start.write(self.inner(), at, out, self.principal())
    }
}

/// Writes the backup of `anchor` at `at` to `out`, as `principal` (no privilege check, no
/// audit: the callers do both).
pub(crate) fn write_backup(
    inner: &Inner,
    anchor: Anchor<'_>,
    at: Seq,
    out: impl Write,
    principal: &str,
) -> Result<BackupReport> {
    start_backup(inner, anchor, at)?.write(inner, at, out, principal)
}

/// A backup's anchor as found at the cut, with what its header says.
struct Start {
    /// Holds the cut readable while the backup is written.
    _pin: Pinned,
    node: NodeId,
    anchor_id: KeyId,
    source: String,
    layers: Vec<(u16, String)>,
}

/// Finds the anchor at `at`: a key that existed then and is not volatile.
fn start_backup(inner: &Inner, anchor: Anchor<'_>, at: Seq) -> Result<Start> {
    let pin = inner.retention.pin(at)?;
    let (node, anchor_id, source, layers) = {
        let state = read_state(&inner.state);
        let (node, anchor_id, source) = match anchor {
            Anchor::Registry => (state.index.root(), 0, String::new()),
            Anchor::Key(key_path) => {
                let not_found = || Error::KeyNotFound {
                    path: key_path.to_string(),
                };
                let node = locate(&state, key_path, at, true)?.ok_or_else(not_found)?;
                let key = state.index.key_at(node, at).ok_or_else(not_found)?;
                if state.index.attrs_at(node, at).is_volatile() {
                    return Err(Error::VolatileBackup {
                        path: key_path.to_string(),
                    });
                }
                let source = state
                    .index
                    .display_path(node, at)
                    .unwrap_or_else(|| key_path.to_string());
                (node, key.id, source)
            }
        };
        (node, anchor_id, source, layers_at(&state, at))
    };
    Ok(Start {
        _pin: pin,
        node,
        anchor_id,
        source,
        layers,
    })
}

impl Start {
    /// Writes the stream: header, records, trailer.
    fn write(
        self,
        inner: &Inner,
        at: Seq,
        out: impl Write,
        principal: &str,
    ) -> Result<BackupReport> {
        let Start {
            _pin,
            node,
            anchor_id,
            source,
            layers,
        } = self;
        let time = unix_nanos_now();
        let info = BackupInfo::encode(anchor_id, &source, time, principal, &layers);
        let out = BufWriter::with_capacity(1 << 20, out);
        let writer = StreamWriter::new(out, at, &info).map_err(io)?;
        let walked = walk(inner, node, anchor_id, at, &layers, writer)?;
        let (mut out, bytes) = walked.sink.finish(principal, time)?;
        out.flush().map_err(io)?;
        Ok(BackupReport {
            seq: at,
            keys: walked.keys,
            values: walked.values,
            bytes,
        })
    }
}

/// Where a walk's records go: a backup's stream, or a compaction's base (compact.rs), each
/// record in the order the walk makes them.
pub(crate) trait Sink {
    /// An Op record whose payload `encode` writes.
    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()>;
    /// A value's SetValue record: `payload`, as the journal holds it at `stored.loc`.
    fn value(&mut self, stored: Stored, payload: &[u8]) -> Result<()>;
    /// Every record of the key at `node` has been handed over.
    fn key_done(&mut self, _node: NodeId) -> Result<()> {
        Ok(())
    }
}

impl<W: Write> Sink for StreamWriter<W> {
    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        Ok(StreamWriter::push(self, encode)?)
    }

    fn value(&mut self, _stored: Stored, payload: &[u8]) -> Result<()> {
        Ok(StreamWriter::push(self, |buf| {
            buf.extend_from_slice(payload)
        })?)
    }
}

/// What a walk handed its sink.
pub(crate) struct Walked<S> {
    pub sink: S,
    pub keys: u64,
    pub values: u64,
}

/// Hands `sink` the records that recreate the key at `node` (id `anchor_id`; the root, 0,
/// for the whole registry) and its subtree as of `at`: the layers the registry had then
/// (all but the two every store has), then the anchor's records, then every key below it,
/// parents first, subkeys in name order. The same state walked twice gives the same
/// records in the same order.
pub(crate) fn walk<S: Sink>(
    inner: &Inner,
    node: NodeId,
    anchor_id: KeyId,
    at: Seq,
    layers: &[(u16, String)],
    mut sink: S,
) -> Result<Walked<S>> {
    for (precedence, name) in layers.iter().filter(|(p, _)| *p != BASE && *p != POLICY) {
        sink.push(|buf| {
            Op::CreateLayer {
                id: *precedence,
                name,
            }
            .encode(buf)
        })?;
    }
    let mut walk = Walk {
        inner,
        // Every record the walk copies is at or before the cut, so in a segment that exists
        // now, or (moved by a compaction meanwhile) in a base: see `Walk::value`.
        records: inner.journal.records(),
        at,
        sink,
        descriptors: HashMap::new(),
        keys: 0,
        values: 0,
    };
    walk.subtree(node, anchor_id)?;
    Ok(Walked {
        sink: walk.sink,
        keys: walk.keys,
        values: walk.values,
    })
}

/// The layers that existed at `at`: (precedence, name), highest precedence first.
pub(crate) fn layers_at(state: &State, at: Seq) -> Vec<(u16, String)> {
    state
        .layers
        .list_at(at)
        .into_iter()
        .map(|layer| (layer.precedence, layer.name))
        .collect()
}

/// A key the walk has still to write.
struct ToVisit {
    node: NodeId,
    id: KeyId,
    /// Its parent's id (none for the anchor).
    parent: Option<KeyId>,
}

struct Walk<'a, S: Sink> {
    inner: &'a Inner,
    records: Records,
    at: Seq,
    sink: S,
    /// Descriptors already encoded, by id: a subtree usually shares a few.
    descriptors: HashMap<SdId, Vec<u8>>,
    keys: u64,
    values: u64,
}

impl<S: Sink> Walk<'_, S> {
    /// Writes the anchor's records, then every key below it, parents before children. Each
    /// key is read from the index one step ahead of being written, with its values' journal
    /// records prefetched: they lie wherever the journal put them, each a cache miss that
    /// would otherwise be waited for one at a time.
    fn subtree(&mut self, anchor: NodeId, anchor_id: KeyId) -> Result<()> {
        let mut stack = vec![ToVisit {
            node: anchor,
            id: anchor_id,
            parent: None,
        }];
        let (mut next, mut ready) = (KeyCopy::new(anchor), KeyCopy::new(anchor));
        let mut have_ready = false;
        while let Some(visit) = stack.pop() {
            // Under the lock only what the snapshot holds; the output (a pipe, maybe slow)
            // is written with the lock released.
            let kept = {
                self.inner.yield_to_committers();
                let state = read_state(&self.inner.state);
                let kept = next.fill(&state, &visit, self.at, &mut stack);
                if kept {
                    self.descriptor(&state, next.attrs.sd);
                }
                kept
            };
            if !kept {
                continue;
            }
            for stored in &next.values {
                if let Some(payload) = self.records.op(stored.loc) {
                    prefetch(payload.as_ptr());
                    prefetch(payload.as_ptr().wrapping_add(CACHE_LINE_BYTES));
                }
            }
            if have_ready {
                self.key(&ready)?;
            }
            std::mem::swap(&mut next, &mut ready);
            have_ready = true;
        }
        if have_ready {
            self.key(&ready)?;
        }
        Ok(())
    }

    /// Writes one key's records: its creation, attributes and values.
    fn key(&mut self, copy: &KeyCopy) -> Result<()> {
        let id = copy.id;
        if let Some(parent) = copy.parent {
            let name = copy.name.as_str();
            self.sink
                .push(|buf| Op::CreateKey { id, parent, name }.encode(buf))?;
        }
        // The root above the hives has nothing of its own to keep.
        if id != 0 {
            self.attributes(id, copy.attrs, copy.class.as_deref())?;
            self.keys += 1;
        }
        for stored in &copy.values {
            self.value(*stored)?;
        }
        self.sink.key_done(copy.node)
    }

    fn descriptor(&mut self, state: &State, sd: SdId) {
        self.descriptors
            .entry(sd)
            .or_insert_with(|| encode_descriptor(state.descriptors.get(sd)));
    }

    fn attributes(&mut self, id: KeyId, attrs: KeyAttrs, class: Option<&str>) -> Result<()> {
        let flags = attrs.flags.0 & KeyFlags::LINK.0;
        if flags != 0 {
            self.sink
                .push(|buf| Op::SetKeyFlags { id, flags }.encode(buf))?;
        }
        if let Some(class) = class {
            self.sink
                .push(|buf| Op::SetKeyClass { id, class }.encode(buf))?;
        }
        let descriptor = &self.descriptors[&attrs.sd];
        self.sink
            .push(|buf| Op::SetSecurity { id, descriptor }.encode(buf))?;
        Ok(())
    }

    /// Copies a value's SetValue record from the journal: the record names the key by its
    /// id, which the backup keeps, so it is the backup's record byte for byte.
    fn value(&mut self, stored: Stored) -> Result<()> {
        // A compaction that installed its base since the walk began may have moved the
        // record there: the journal as it is now has it.
        if self.records.op(stored.loc).is_none() {
            self.records = self.inner.journal.records();
        }
        let payload = self.records.op(stored.loc).ok_or_else(|| Error::Damaged {
            what: format!(
                "value record at segment {}, offset {}",
                stored.loc.segment, stored.loc.offset
            ),
        })?;
        self.sink.value(stored, payload)?;
        self.values += 1;
        Ok(())
    }
}
