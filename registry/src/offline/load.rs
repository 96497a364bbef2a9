//! Opening a hive file: the stream verified whole, as a restore verifies it (frames, trailer,
//! every record's codec and the structure), before a key is built; then the checks a store
//! would make when the hive is restored into it, so a hive that opens is one that restores.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use hivelog_index::KeyId;

use crate::attrs::KeyFlags;
use crate::backup::BackupInfo;
use crate::error::{Error, Result};
use crate::layers::{BASE, Layers, POLICY};
use crate::links::{LINK_VALUE_NAME, target_in};
use crate::op::{Op, decode_descriptor};
use crate::path::DEPTH_MAX;
use crate::restore::Verified;
use crate::security::{SYSTEM, SecurityDescriptor, inherited, machine_default};
use crate::store::VALUE_SIZE_LIMIT_BYTES;
use crate::value::Value;

use super::tree::{Entry, Folded, NodeIx, ROOT, Tree, shown_path, versions};
use super::{OFFLINE_KEYS_MAX, OFFLINE_VALUES_MAX, OfflineHive};

fn bad(reason: String) -> Error {
    Error::BadBackup { reason }
}

pub(super) fn open(path: &Path) -> Result<OfflineHive> {
    let verified = Verified::open(path)?;
    if verified.keys + 1 > OFFLINE_KEYS_MAX {
        return Err(Error::TooMany {
            what: "keys in an offline hive",
            max: OFFLINE_KEYS_MAX,
        });
    }
    // The root is one level, as a hive root.
    if 1 + verified.depth > DEPTH_MAX {
        return Err(bad(format!(
            "its keys reach {} levels below its root; DEPTH_MAX is {DEPTH_MAX}, the root counting as one",
            verified.depth
        )));
    }
    let mut hive = OfflineHive {
        // A stream that sets no descriptor for its anchor (a whole-registry copy) leaves
        // the root with a new hive's.
        tree: Tree::new(machine_default()),
        layers: layers(&verified.info)?,
        principal: SYSTEM.to_string(),
        source_path: verified.info.source_path.clone(),
    };
    let mut build = Build {
        hive: &mut hive,
        ids: HashMap::from([(verified.info.anchor, ROOT)]),
        descriptors: HashMap::new(),
        created: Vec::new(),
        secured: HashSet::new(),
    };
    for op in verified.ops() {
        build.op(op?)?;
    }
    build.inherit_where_unset()?;
    check_links(&hive)?;
    Ok(hive)
}

/// The header's layer table, checked as a restore's target store would check it: `base` at
/// 0 and `policy` at 65535, names and precedences unique, at most LAYERS_MAX.
fn layers(info: &BackupInfo) -> Result<Layers> {
    let mut layers = Layers::new();
    for (precedence, name) in &info.layers {
        if *precedence == BASE || *precedence == POLICY {
            let builtin = layers.name_at(*precedence, 0);
            if !builtin.eq_ignore_ascii_case(name) {
                return Err(bad(format!(
                    "its header names layer {precedence} {name:?}, which is {builtin:?}"
                )));
            }
            continue;
        }
        layers
            .check_new(name, *precedence, 0)
            .map_err(|error| bad(format!("its header's layer table: {error}")))?;
        layers.create(*precedence, name, 0);
    }
    Ok(layers)
}

/// The tree being built from a verified stream's records.
struct Build<'h, 'b> {
    hive: &'h mut OfflineHive,
    ids: HashMap<KeyId, NodeIx>,
    /// Each distinct encoded descriptor, decoded once: a subtree's keys share a few.
    descriptors: HashMap<&'b [u8], Arc<SecurityDescriptor>>,
    /// Keys created, in creation order (so parents first).
    created: Vec<NodeIx>,
    /// Keys a SetSecurity record named.
    secured: HashSet<NodeIx>,
}

impl<'b> Build<'_, 'b> {
    fn key(&self, id: KeyId) -> Result<NodeIx> {
        // The structure pass checked that every record names a key created before it.
        self.ids
            .get(&id)
            .copied()
            .ok_or_else(|| bad(format!("a record names key id {id} before creating it")))
    }

    fn op(&mut self, op: Op<'b>) -> Result<()> {
        match op {
            // The header's table is the layers'.
            Op::CreateLayer { .. } => {}
            Op::CreateKey { id, parent, name } => {
                let parent = self.key(parent)?;
                let tree = &mut self.hive.tree;
                // Until its own SetSecurity comes (every backup has one), its parent's.
                let sd = tree.node(parent).descriptor.clone();
                let ix = tree.add(parent, name, sd);
                self.ids.insert(id, ix);
                self.created.push(ix);
            }
            Op::SetSecurity { id, descriptor } => {
                let ix = self.key(id)?;
                let sd = self.descriptor(descriptor)?;
                self.hive.tree.node_mut(ix).descriptor = sd;
                self.secured.insert(ix);
            }
            Op::SetKeyFlags { id, flags } => {
                let ix = self.key(id)?;
                self.hive.tree.node_mut(ix).link = flags & KeyFlags::LINK.0 != 0;
            }
            Op::SetKeyClass { id, class } => {
                let ix = self.key(id)?;
                self.hive.tree.node_mut(ix).class = (!class.is_empty()).then(|| class.to_string());
            }
            Op::SetValue {
                key,
                layer,
                ty,
                name,
                data,
            } => self.value(key, layer, name, Value::new(ty, data.to_vec()))?,
            other => return Err(bad(format!("a backup holds no record like {other:?}"))),
        }
        Ok(())
    }

    fn descriptor(&mut self, encoded: &'b [u8]) -> Result<Arc<SecurityDescriptor>> {
        if let Some(sd) = self.descriptors.get(encoded) {
            return Ok(sd.clone());
        }
        // Validated by the structure pass.
        let decoded = decode_descriptor(encoded)
            .map_err(|short| bad(format!("a descriptor: {}", short.0)))?;
        let sd = self.hive.tree.intern(decoded);
        self.descriptors.insert(encoded, sd.clone());
        Ok(sd)
    }

    fn value(&mut self, key: KeyId, layer: u16, name: &str, value: Value) -> Result<()> {
        let ix = self.key(key)?;
        if value.data.len() > VALUE_SIZE_LIMIT_BYTES as usize {
            return Err(bad(format!(
                "value {name:?} is {} bytes; no store holds values over VALUE_SIZE_LIMIT_BYTES ({VALUE_SIZE_LIMIT_BYTES})",
                value.data.len()
            )));
        }
        let tree = &mut self.hive.tree;
        // A later record of the same value replaces it, as it would in a restore.
        let entry = Entry {
            name: name.to_string(),
            value,
        };
        if tree
            .node_mut(ix)
            .values
            .insert((Folded::of(name), layer), entry)
            .is_none()
        {
            tree.values += 1;
            if tree.values > OFFLINE_VALUES_MAX {
                return Err(Error::TooMany {
                    what: "values in an offline hive",
                    max: OFFLINE_VALUES_MAX,
                });
            }
        }
        Ok(())
    }

    /// Keys no SetSecurity record named get their parent's inheritance by the hive's
    /// principal, as a restore would give them the restorer's; parents first, so a parent's
    /// own is final before its subkeys inherit it.
    fn inherit_where_unset(&mut self) -> Result<()> {
        let tree = &mut self.hive.tree;
        for &ix in self.created.iter().filter(|ix| !self.secured.contains(ix)) {
            let parent = tree.node(ix).parent.expect("a created key has a parent");
            let sd = inherited(&tree.node(parent).descriptor, &self.hive.principal);
            sd.validate()?;
            tree.node_mut(ix).descriptor = tree.intern(sd);
        }
        Ok(())
    }
}

/// Links as a store keeps them: no subkeys, a valid target.
fn check_links(hive: &OfflineHive) -> Result<()> {
    let tree = &hive.tree;
    for ix in tree.preorder() {
        let node = tree.node(ix);
        if !node.link {
            continue;
        }
        let path = shown_path(&tree.path_of(ix));
        if !node.subkeys.is_empty() {
            return Err(bad(format!("link {path} has subkeys")));
        }
        let target = versions(&node.values, &Folded::of(LINK_VALUE_NAME)).next_back();
        let Some((_, target)) = target else {
            return Err(bad(format!("link {path} has no {LINK_VALUE_NAME}")));
        };
        target_in(&path, &target.value).map_err(|error| bad(error.to_string()))?;
    }
    Ok(())
}
