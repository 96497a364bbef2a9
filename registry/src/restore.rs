//! Restore: replace a key's subtree with a backup's, in one transaction.
//!
//! The stream is read whole and verified first (every frame's checksum, the trailer's count
//! and checksum, then every record's structure: it decodes, it is a kind a backup holds, it
//! names only keys created before it, no two keys share a name under one parent, no layer
//! outside the header's table), into a spool file beside the journal; a stream that fails any
//! of it changes nothing. Then one transaction, in a journal segment of its own: a subtree
//! tombstone at the key (ClearSubtree), the backup's records for the key and its subtree
//! under new ids, and an audit record. Readers see the old subtree until it commits and the
//! new one after; a crash before the Commit record means it never happened.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use hivelog_index::fold::{fold, fold_into};
use hivelog_index::{KeyId, LayerId, NodeId, Seq};
use hivelog_log::stream::{stream_ops, verify_stream};
use memmap2::Mmap;

use crate::attrs::{KeyAttrs, KeyFlags, SdId};
use crate::backup::BackupInfo;
use crate::error::{Error, Result};
use crate::layers::{BASE, POLICY};
use crate::links::{LINK_VALUE_NAME, target_in};
use crate::op::{AuditEvent, JOURNALED_KEY_FLAGS, Op, decode_descriptor, set_value_data_at};
use crate::path::{DEPTH_MAX, Hive, KeyPath};
use crate::resolver::Resolver;
use crate::security::Privileges;
use crate::store::Store;
use crate::stored::Stored;
use crate::txn::{Create, Intent};

/// A backup's bytes: a mapped file, or (for an in-memory store) the stream in memory.
enum Image {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Image {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Image::Mapped(map) => map,
            Image::Owned(bytes) => bytes,
        }
    }
}

/// A backup read whole and verified, kept aside (mapped) for the commit to apply.
pub(crate) struct Verified {
    map: Image,
    pub info: BackupInfo,
    /// Levels below the anchor of the deepest key.
    pub depth: usize,
    /// Keys it creates (the anchor aside).
    pub keys: usize,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("info", &self.info)
            .finish()
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

fn bad(reason: String) -> Error {
    Error::BadBackup { reason }
}

impl Verified {
    /// Reads `input` to its end into a spool file in `dir`, checking every byte and every
    /// record.
    pub(crate) fn read(dir: &Path, input: impl Read) -> Result<Verified> {
        let spool = tempfile::tempfile_in(dir).map_err(io("creating the restore's spool file"))?;
        let mut copy = BufWriter::with_capacity(1 << 20, &spool);
        let stream = verify_stream(input, &mut copy)?;
        copy.into_inner()
            .map_err(|e| Error::Io {
                what: "writing the restore's spool file".into(),
                source: e.into_error(),
            })?
            .sync_data()
            .map_err(io("syncing the restore's spool file"))?;
        Self::checked(&spool, &stream)
    }

    /// Maps and checks a backup file in place.
    pub(crate) fn open(path: &Path) -> Result<Verified> {
        let file = File::open(path).map_err(io(&format!("opening {}", path.display())))?;
        Self::from_file(&file)
    }

    /// Maps and checks an open backup file.
    pub(crate) fn from_file(file: &File) -> Result<Verified> {
        // SAFETY: the mapping is only read; a backup file changed under it is at worst read
        // wrong, and every record is checked again as it is decoded.
        let map = unsafe { Mmap::map(file) }.map_err(io("mapping the backup"))?;
        let stream = verify_stream(&map[..], std::io::sink())?;
        drop(map);
        Self::checked(file, &stream)
    }

    /// Checks a stream held in memory (an in-memory store's restore or boot image).
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Verified> {
        let stream = verify_stream(&bytes[..], std::io::sink())?;
        Self::checked_image(Image::Owned(bytes), &stream)
    }

    /// The stream's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn checked(file: &File, stream: &hivelog_log::stream::StreamInfo) -> Result<Verified> {
        // SAFETY: the file is this process's own spool (or a backup file checked just now);
        // it is only read, and every record is decoded with its lengths checked.
        let map = unsafe { Mmap::map(file) }.map_err(io("mapping the backup"))?;
        Self::checked_image(Image::Mapped(map), stream)
    }

    fn checked_image(map: Image, stream: &hivelog_log::stream::StreamInfo) -> Result<Verified> {
        let info = BackupInfo::decode(stream)?;
        let Shape { depth, keys } = check_records(&map[..], &info)?;
        Ok(Verified {
            map,
            info,
            depth,
            keys,
        })
    }

    /// The records, decoded.
    pub(crate) fn ops(&self) -> impl Iterator<Item = Result<Op<'_>>> {
        let ops = stream_ops(&self.map);
        let ops: Box<dyn Iterator<Item = _>> = match ops {
            Ok(ops) => Box::new(ops),
            Err(error) => Box::new(std::iter::once(Err(error))),
        };
        // Descriptors are decoded once each by `restore_descriptor`.
        ops.map(|payload| {
            let payload = payload?;
            Op::decode_shallow(payload).map_err(|short| bad(format!("a record: {}", short.0)))
        })
    }
}

/// What the structure pass learns of a backup's subtree.
struct Shape {
    /// Levels below the anchor of the deepest key.
    depth: usize,
    /// Keys created.
    keys: usize,
}

/// Checks every record of a backup.
fn check_records(map: &[u8], info: &BackupInfo) -> Result<Shape> {
    let layers: HashSet<u16> = info
        .layers
        .iter()
        .map(|(precedence, _)| *precedence)
        .collect();
    let mut depth_of: HashMap<KeyId, usize> = HashMap::default();
    depth_of.insert(info.anchor, 0);
    let mut names: HashSet<(KeyId, String)> = HashSet::default();
    let mut descriptors: HashSet<&[u8]> = HashSet::default();
    let mut deepest = 0;
    let mut keys_started = false;
    let known = |id: KeyId, depth_of: &HashMap<KeyId, usize>| {
        depth_of
            .contains_key(&id)
            .then_some(())
            .ok_or_else(|| bad(format!("a record names key id {id} before creating it")))
    };
    for payload in stream_ops(map)? {
        let op =
            Op::decode_shallow(payload?).map_err(|short| bad(format!("a record: {}", short.0)))?;
        match op {
            Op::CreateLayer { id, .. } if !keys_started => {
                if !layers.contains(&id) {
                    return Err(bad(format!("layer {id} is not in the header's table")));
                }
            }
            Op::CreateKey { id, parent, name } => {
                keys_started = true;
                let depth =
                    depth_of.get(&parent).copied().ok_or_else(|| {
                        bad(format!("key id {id}'s parent {parent} comes after it"))
                    })? + 1;
                if depth_of.insert(id, depth).is_some() || id == 0 {
                    return Err(bad(format!("key id {id} is created twice")));
                }
                if !names.insert((parent, fold(name))) {
                    return Err(bad(format!("two keys named {name:?} under one parent")));
                }
                deepest = deepest.max(depth);
            }
            Op::SetSecurity { id, descriptor } => {
                keys_started = true;
                known(id, &depth_of)?;
                // Each distinct descriptor once: a subtree's keys share a few.
                if descriptors.insert(descriptor) {
                    decode_descriptor(descriptor)
                        .map_err(|short| bad(format!("a descriptor: {}", short.0)))?
                        .validate()
                        .map_err(|error| bad(format!("a descriptor: {error}")))?;
                }
            }
            Op::SetKeyFlags { id, .. } | Op::SetKeyClass { id, .. } => {
                keys_started = true;
                known(id, &depth_of)?;
            }
            Op::SetValue { key, layer, .. } => {
                keys_started = true;
                known(key, &depth_of)?;
                if !layers.contains(&layer) {
                    return Err(bad(format!(
                        "a value is in layer {layer}, not in the header's table"
                    )));
                }
            }
            other => return Err(bad(format!("a backup holds no record like {other:?}"))),
        }
    }
    Ok(Shape {
        depth: deepest,
        keys: depth_of.len() - 1,
    })
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The restore's sequence number.
    pub seq: Seq,
    /// What the backup said of itself.
    pub backup: BackupInfo,
}

impl Store {
    /// Replaces the key at `path` (created if it does not exist) and everything below it
    /// with the backup `input` holds, as one transaction: not a merge, whatever was below
    /// the key is gone, and the key keeps its id and place while its values, descriptor,
    /// class and descendants come from the backup. The stream is verified whole first; a
    /// truncated, damaged or foreign one is refused and the store is untouched. Needs
    /// SeRestorePrivilege (it rewrites owners and DACLs throughout the subtree); audited.
    pub fn restore(&self, path: &str, input: impl Read) -> Result<RestoreReport> {
        self.require_restore(path)?;
        let backup = if self.inner().in_memory {
            // Nothing of an in-memory store touches the file system: the stream is kept in
            // memory while it is verified and applied.
            let mut bytes = Vec::new();
            input
                .take(crate::memory::IMAGE_MAX_BYTES)
                .read_to_end(&mut bytes)
                .map_err(io("reading the backup"))?;
            Verified::from_bytes(bytes)?
        } else {
            Verified::read(self.dir(), input)?
        };
        self.apply_backup(path, backup, AuditEvent::Restore)
    }

    /// As [`Store::restore`], from a backup file (checked where it lies, without a copy).
    pub fn restore_file(&self, path: &str, file: impl AsRef<Path>) -> Result<RestoreReport> {
        self.require_restore(path)?;
        let backup = Verified::open(file.as_ref())?;
        self.apply_backup(path, backup, AuditEvent::Restore)
    }

    fn require_restore(&self, path: &str) -> Result<()> {
        self.session_ref()
            .require(Privileges::RESTORE, &format!("a restore into {path}"))
    }

    pub(crate) fn apply_backup(
        &self,
        path: &str,
        backup: Verified,
        event: AuditEvent,
    ) -> Result<RestoreReport> {
        let target = Arc::new(self.parse(path)?);
        if target.depth() + backup.depth > DEPTH_MAX {
            return Err(Error::TooDeep {
                path: target.to_string(),
                depth: target.depth() + backup.depth,
                max: DEPTH_MAX,
            });
        }
        let info = backup.info.clone();
        let seq = self.commit(&[Intent::Restore {
            target: RestoreTarget::Key(target),
            source: info.source_path.clone(),
            backup: Arc::new(backup),
            event,
        }])?;
        Ok(RestoreReport { seq, backup: info })
    }
}

/// Checks a backup file without a store (`hivelog verify FILE`): the stream and every record.
pub fn verify_backup_file(file: impl AsRef<Path>) -> Result<BackupInfo> {
    Ok(Verified::open(file.as_ref())?.info)
}

/// Records a restore applies between two turns of the readers waiting for the state lock:
/// a few milliseconds of work, so a restore of any size holds up readers for about that long.
const RESTORE_STEP_RECORDS: usize = 4096;
/// Keys of the replaced subtree ended between two turns of the readers: about as much work
/// (a key has a few values).
const RESTORE_STEP_KEYS: usize = 1024;
/// What ending a key of the replaced subtree changes, as an estimate: its life and its
/// values (the data set of WORKLOADS.md has five a key on average).
const OLD_CHANGES_PER_KEY: usize = 8;

/// The descriptor a key ends up with, by the descriptor it inherited and the bytes the
/// backup recorded for it.
type DescriptorCache<'b> = HashMap<(SdId, &'b [u8]), SdId>;

/// What a restore replaces.
#[derive(Debug, Clone)]
pub(crate) enum RestoreTarget {
    /// A key and its subtree.
    Key(Arc<KeyPath>),
    /// Both hives, from a backup of the whole registry (a staged restore).
    Registry,
}

/// A key of the backup as restored: its new id and node.
#[derive(Clone, Copy)]
struct Restored {
    id: KeyId,
    node: NodeId,
}

impl Resolver<'_, '_> {
    /// Applies a verified backup to `target`; see the module documentation.
    pub(crate) fn restore(
        &mut self,
        target: &RestoreTarget,
        backup: &Verified,
        event: AuditEvent,
        source: &str,
    ) -> Result<()> {
        // Sized up front: growing it would rehash it all with the state locked.
        let mut keys: HashMap<KeyId, Restored> =
            HashMap::with_capacity_and_hasher(backup.keys + 1, Default::default());
        let mut hives = Vec::new();
        let path = match target {
            RestoreTarget::Key(target) => {
                let node = self.restore_anchor(target)?;
                let id = self.clear(node, backup)?;
                keys.insert(backup.info.anchor, Restored { id, node });
                target.to_string()
            }
            RestoreTarget::Registry => {
                if backup.info.anchor != 0 {
                    return Err(bad(format!(
                        "it is of {}, not of the whole registry",
                        backup.info.source_path
                    )));
                }
                // The hives keep their ids and places, as a restored key does; the backup's
                // records that create them map onto them instead.
                for hive in Hive::ALL {
                    let node = self.hive_root(hive);
                    let id = self.clear(node, backup)?;
                    hives.push((fold(hive.name()), Restored { id, node }));
                }
                String::new()
            }
        };
        let layers = self.restore_layers(&backup.info)?;
        let mut descriptors = DescriptorCache::default();
        for (i, op) in backup.ops().enumerate() {
            if i % RESTORE_STEP_RECORDS == RESTORE_STEP_RECORDS - 1 {
                self.state.let_readers_in();
            }
            match op? {
                Op::CreateKey {
                    id,
                    parent: 0,
                    name,
                } if !hives.is_empty() => {
                    let folded = fold(name);
                    let hive = hives
                        .iter()
                        .find(|(hive, _)| *hive == folded)
                        .map(|&(_, hive)| hive)
                        .ok_or_else(|| bad(format!("it holds a hive named {name:?}")))?;
                    keys.insert(id, hive);
                }
                op => self.restore_op(op, &mut keys, &layers, &mut descriptors)?,
            }
        }
        self.push(Op::Audit {
            event,
            path: &path,
            source,
            seq: backup.info.seq,
        })?;
        Ok(())
    }

    /// The key a restore into `target` replaces: created if it does not exist.
    fn restore_anchor(&mut self, target: &KeyPath) -> Result<NodeId> {
        let node = match crate::links::locate(self.state, target, self.seq, true)? {
            Some(node) => node,
            None => {
                self.create_key(target, &Create::default())?;
                crate::links::locate(self.state, target, self.seq, true)?
                    .expect("a key just created exists")
            }
        };
        if self.attrs(node).is_volatile() {
            return Err(Error::VolatileBackup {
                path: target.to_string(),
            });
        }
        Ok(node)
    }

    /// Empties the key at `node` for `backup` to fill: its subtree and values go (ended in
    /// steps, letting readers in), its journaled flags and class are reset (the backup's
    /// records set them again if it has them), its descriptor stays until the backup's
    /// replaces it. Returns its id.
    fn clear(&mut self, node: NodeId, backup: &Verified) -> Result<KeyId> {
        let attrs = self.attrs(node);
        let id = self.alive_id(node);
        self.push(Op::ClearSubtree { id })?;
        let below = self.state.index.live_subtree(node);
        // At most two changes per record (a key created: its node and its path), and a
        // few per key of the old subtree: room reserved now is only touched as it is used.
        let records = usize::try_from(backup.info.records).unwrap_or(usize::MAX);
        let changes = records
            .saturating_mul(2)
            .saturating_add(below.len().saturating_mul(OLD_CHANGES_PER_KEY));
        self.state.index.reserve_changes(changes);
        for keys in below.chunks(RESTORE_STEP_KEYS) {
            self.state.index.end_lives(keys);
            self.state.let_readers_in();
        }
        self.state.index.tombstone(node);
        if attrs.flags.0 & JOURNALED_KEY_FLAGS != 0 {
            self.push(Op::SetKeyFlags { id, flags: 0 })?;
        }
        if attrs.class.0 != 0 {
            self.push(Op::SetKeyClass { id, class: "" })?;
        }
        self.state.index.set_attrs(
            node,
            KeyAttrs {
                sd: attrs.sd,
                ..KeyAttrs::default()
            },
        );
        Ok(id)
    }

    /// The layers of this store that the backup's layers go to, by name: an existing layer
    /// of that name, or a new one with the backup's precedence.
    fn restore_layers(&mut self, info: &BackupInfo) -> Result<HashMap<u16, LayerId>> {
        let mut map = HashMap::default();
        for (precedence, name) in &info.layers {
            let here = match self.state.layers.id_at(name, self.seq) {
                Some(id) => id,
                None if *precedence == BASE || *precedence == POLICY => *precedence,
                None => {
                    self.state.layers.check_new(name, *precedence, self.seq)?;
                    self.push(Op::CreateLayer {
                        id: *precedence,
                        name,
                    })?;
                    self.state.layers.create(*precedence, name, self.seq);
                    *precedence
                }
            };
            map.insert(*precedence, here);
        }
        Ok(map)
    }

    fn restore_op<'b>(
        &mut self,
        op: Op<'b>,
        keys: &mut HashMap<KeyId, Restored>,
        layers: &HashMap<u16, LayerId>,
        descriptors: &mut DescriptorCache<'b>,
    ) -> Result<()> {
        let key = |id: KeyId| {
            keys.get(&id)
                .copied()
                .ok_or_else(|| bad(format!("a record names key id {id} before creating it")))
        };
        match op {
            // The layers were mapped from the header's table.
            Op::CreateLayer { .. } => {}
            Op::CreateKey { id, parent, name } => {
                let parent = key(parent)?;
                let created = self.restore_key(parent, name)?;
                keys.insert(id, created);
            }
            Op::SetSecurity { id, descriptor } => {
                let restored = key(id)?;
                self.restore_descriptor(restored, descriptor, descriptors)?;
            }
            Op::SetKeyFlags { id, flags } => {
                let restored = key(id)?;
                self.push(Op::SetKeyFlags {
                    id: restored.id,
                    flags,
                })?;
                let attrs = self.attrs(restored.node);
                let flags = KeyFlags((attrs.flags.0 & !JOURNALED_KEY_FLAGS) | flags);
                if flags.contains(KeyFlags::LINK) {
                    self.state.links = true;
                }
                self.state
                    .index
                    .set_attrs(restored.node, KeyAttrs { flags, ..attrs });
            }
            Op::SetKeyClass { id, class } => {
                let restored = key(id)?;
                self.push(Op::SetKeyClass {
                    id: restored.id,
                    class,
                })?;
                let class = self.state.classes.intern_or_none(class)?;
                let attrs = self.attrs(restored.node);
                self.state
                    .index
                    .set_attrs(restored.node, KeyAttrs { class, ..attrs });
            }
            Op::SetValue {
                key: id,
                layer,
                ty,
                name,
                data,
            } => {
                let restored = key(id)?;
                let layer = *layers
                    .get(&layer)
                    .ok_or_else(|| bad(format!("a value is in unknown layer {layer}")))?;
                self.restore_value(restored, layer, ty, name, data)?;
            }
            other => return Err(bad(format!("a backup holds no record like {other:?}"))),
        }
        Ok(())
    }

    /// Gives `key` the descriptor a backup recorded for it (`encoded`), journaled only when
    /// it differs from what the key got by inheritance: a subtree restored by its owner
    /// usually inherits exactly what it had. Most keys of a subtree share their descriptor,
    /// so each (inherited, recorded) pair is decoded and compared once.
    fn restore_descriptor<'b>(
        &mut self,
        key: Restored,
        encoded: &'b [u8],
        cache: &mut DescriptorCache<'b>,
    ) -> Result<()> {
        let attrs = self.attrs(key.node);
        let sd = match cache.get(&(attrs.sd, encoded)) {
            Some(&sd) => sd,
            None => {
                let descriptor = decode_descriptor(encoded)
                    .map_err(|short| bad(format!("a descriptor: {}", short.0)))?;
                let sd = if *self.state.descriptors.get(attrs.sd) == descriptor {
                    attrs.sd
                } else {
                    descriptor.validate()?;
                    self.state.descriptors.intern(descriptor)?
                };
                cache.insert((attrs.sd, encoded), sd);
                sd
            }
        };
        if sd == attrs.sd {
            return Ok(());
        }
        // The recorded bytes are the source's encoding of a descriptor this store decoded
        // and validated above: journaled as they are.
        self.push(Op::SetSecurity {
            id: key.id,
            descriptor: encoded,
        })?;
        self.state
            .index
            .set_attrs(key.node, KeyAttrs { sd, ..attrs });
        Ok(())
    }

    /// Creates key `name` under `parent` with a new id and the descriptor it inherits.
    fn restore_key(&mut self, parent: Restored, name: &str) -> Result<Restored> {
        let id = self.new_id(false);
        self.push(Op::CreateKey {
            id,
            parent: parent.id,
            name,
        })?;
        let creator = self.session.principal();
        let parent_sd = self.attrs(parent.node).sd;
        let sd = self.state.descriptors.inherit(parent_sd, creator)?;
        let node = self.state.index.create_key(
            parent.node,
            name,
            id,
            KeyAttrs {
                sd,
                ..KeyAttrs::default()
            },
        );
        Ok(Restored { id, node })
    }

    fn restore_value(
        &mut self,
        key: Restored,
        layer: LayerId,
        ty: crate::value::ValueType,
        name: &str,
        data: &[u8],
    ) -> Result<()> {
        let loc = self.push(Op::SetValue {
            key: key.id,
            layer,
            ty,
            name,
            data,
        })?;
        let mut folded = std::mem::take(&mut self.folded_name);
        folded.clear();
        fold_into(name, &mut folded);
        if self.attrs(key.node).is_link() && folded == fold(LINK_VALUE_NAME) {
            let value = crate::value::Value::new(ty, data.to_vec());
            let target = target_in(&self.display_node(key.node), &value)?;
            self.state.link_targets.insert(key.id, Arc::new(target));
        }
        let stored = Stored::new(loc, ty, data, set_value_data_at(name.len()));
        self.state.index.set_value(key.node, layer, &folded, stored);
        self.folded_name = folded;
        Ok(())
    }
}
