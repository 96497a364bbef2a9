//! Offline hives: a key's subtree edited without a store, held entirely in memory, read from
//! and saved to one file in the backup format (FORMAT.md, "Backup stream"). So a backup is a
//! hive file, and `hivelog restore` (or [`crate::Store::restore_file`]) accepts a hive file.
//!
//! - `tree` — the keys, their values per (layer, name), descriptors shared between keys.
//! - `key` — [`OfflineKey`], a read-only view of one key.
//! - `load` — reading a file: verified whole first, as a restore verifies it, then built.
//! - `save` — writing the records in a backup's order, and the atomic file replacement.
//!
//! The rules are the store's: names case-insensitive and case-preserving, the same name and
//! depth limits, a new key inherits its parent's descriptor with the hive's principal as
//! creator, a key with subkeys is deleted only as a tree, reads see the effective value (the
//! highest layer's), enumeration in Windows' order. What the store has and a hive does not:
//! access checks (whoever can write the file owns the hive, as with Windows' offline registry
//! library), volatile keys (never in a file), and link resolution (a link's target is a store
//! path, outside the hive; a link key is kept, with its target, and nothing is created below
//! it).

mod key;
mod load;
mod reg;
mod save;
mod tree;

use std::io::Write;
use std::path::Path;

use hivelog_index::LayerId;

use crate::backup::BackupReport;
use crate::error::{Error, Result, clip};
use crate::layers::{BASE, BASE_LAYER, Layer, Layers};
use crate::links::{LINK_VALUE_NAME, link_value, parse_target, target_in};
use crate::path::{Hive, KeyPath, check_value_name};
use crate::security::principals::check_principal;
use crate::security::{
    SYSTEM, Sddl, SecurityDescriptor, inherited, machine_default, with_explicit,
};
use crate::store::VALUE_SIZE_DEFAULT_MAX_BYTES;
use crate::txn::CreateOptions;
use crate::value::{ToRegValue, Value};

pub use key::OfflineKey;
use tree::{Entry, Folded, NodeIx, Tree, parse, shown};

/// Most keys an offline hive holds, its root included. With OFFLINE_VALUES_MAX it keeps every
/// hive's save within one stream's record limit (asserted below).
pub const OFFLINE_KEYS_MAX: usize = 4_000_000;
/// Most values an offline hive holds, every layer's counted.
pub const OFFLINE_VALUES_MAX: usize = 16_000_000;
/// The source path of a hive created empty: it stands for no key until it is given one
/// ([`OfflineHive::set_source_path`]).
pub const OFFLINE_HIVE_SOURCE: &str = "(offline hive)";

/// Where a hive's root sits in a registry, as its source path says: what the key paths of a
/// `.reg` file it imports or exports are below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveMount {
    /// A whole-registry copy (source path `""`): the root is above the hives, and its
    /// subkeys are `Machine` and `Users`.
    Registry,
    /// A backup of a key's subtree: the root is that key.
    Key(KeyPath),
    /// Created empty and given no key ([`OFFLINE_HIVE_SOURCE`]).
    Unmounted,
}

// A key saves at most four records (CreateKey, SetKeyFlags, SetKeyClass, SetSecurity), a
// value one, a layer one.
const _: () = assert!(
    4 * OFFLINE_KEYS_MAX + OFFLINE_VALUES_MAX + crate::layers::LAYERS_MAX
        <= hivelog_log::RECORDS_PER_TRANSACTION_MAX as usize
);

/// A hive edited without a store: a tree of keys under a root, held in memory. Nothing
/// reaches a disk before [`save`](OfflineHive::save), which replaces the file atomically.
///
/// Paths are relative to the root: `""` is the root, `A\B` a key two levels below it. The
/// root counts as one level towards DEPTH_MAX, as a hive root does (so a hive restored under a
/// hive root keeps within the store's limit). Values are written to the `base` layer unless a
/// layer is named; layers are those of the file opened (`base` and `policy` for a new hive).
///
/// ```no_run
/// use hivelog::{OfflineHive, Value};
/// # fn main() -> hivelog::Result<()> {
/// let mut hive = OfflineHive::create();
/// hive.create_key(r"Software\Contoso")?;
/// hive.set_value(r"Software\Contoso", "Version", "2.1")?;
/// hive.save("contoso.hive")?;
/// let hive = OfflineHive::open("contoso.hive")?;
/// assert_eq!(hive.get_value(r"software\contoso", "version")?, Value::string("2.1"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OfflineHive {
    tree: Tree,
    layers: Layers,
    /// Who edits the hive: the creator (and owner) of the keys it creates, and who a save
    /// records as having written the file.
    principal: String,
    /// The key the hive came from, as its file says (OFFLINE_HIVE_SOURCE if none).
    source_path: String,
}

impl Default for OfflineHive {
    fn default() -> OfflineHive {
        OfflineHive::create()
    }
}

impl OfflineHive {
    /// An empty hive: a root with the descriptor a new store gives `Machine` (owned by
    /// SYSTEM; SYSTEM and Administrators hold everything, Users may read, a key's creator
    /// holds everything on it), edited by SYSTEM.
    pub fn create() -> OfflineHive {
        OfflineHive {
            tree: Tree::new(machine_default()),
            layers: Layers::new(),
            principal: SYSTEM.to_string(),
            source_path: OFFLINE_HIVE_SOURCE.to_string(),
        }
    }

    /// Reads a hive file (or any backup): verified whole first, every byte and every record,
    /// as a restore verifies a backup; a damaged, truncated or foreign file is refused with
    /// the error that says what is wrong, and nothing is repaired. The backup's anchor becomes
    /// the root; every key, descriptor, class, link and every layer's values are kept. The
    /// file is not held open. The hive is edited by SYSTEM whoever wrote the file.
    pub fn open(path: impl AsRef<Path>) -> Result<OfflineHive> {
        load::open(path.as_ref())
    }

    /// Writes the hive to `path`, atomically: to a temporary file in the same directory,
    /// synced, read back and verified, then renamed over `path` (and the directory synced).
    /// A save that fails at any step leaves whatever was at `path` as it was.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        save::save(self, path.as_ref())
    }

    /// Writes the hive to `out` as a backup stream of its root (see FORMAT.md): anchor id 1,
    /// the source path, the hive's principal and the time now in the header, cut sequence
    /// number 0 (a hive file is no store's state at any sequence number).
    pub fn save_to(&self, out: impl Write) -> Result<BackupReport> {
        save::write(self, out)
    }

    /// Who edits the hive: new keys are created (and owned) by this principal, and a save
    /// records it as the file's writer.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Makes `principal` (a SID or a plain name) the hive's editor from now on.
    pub fn set_principal(&mut self, principal: &str) -> Result<()> {
        check_principal(principal)?;
        self.principal = principal.to_string();
        Ok(())
    }

    /// The key the hive was backed up from (`Machine\Software\App`), `""` for a
    /// whole-registry copy, or OFFLINE_HIVE_SOURCE. A save writes it in the file's header.
    pub fn source_path(&self) -> &str {
        &self.source_path
    }

    /// Makes the hive stand for the key at `path` (any of the store's spellings of it, as
    /// `HKLM\Software\App`), or for the whole registry if `path` is `""`: what its `.reg`
    /// imports and exports are relative to, and what a save records as its source.
    pub fn set_source_path(&mut self, path: &str) -> Result<()> {
        self.source_path = match path {
            "" => String::new(),
            path => KeyPath::parse(path, &self.principal)?.to_string(),
        };
        Ok(())
    }

    /// Where the hive's root sits, as its source path says.
    pub fn mount(&self) -> HiveMount {
        match self.source_path.as_str() {
            "" => HiveMount::Registry,
            // A source path that is no store path (a hive created empty, or a file written
            // by another tool) places the hive nowhere.
            path => match KeyPath::parse(path, &self.principal) {
                Ok(key) => HiveMount::Key(key),
                Err(_) => HiveMount::Unmounted,
            },
        }
    }

    /// The key at `path` (relative to the root) as the registry it is mounted in names it,
    /// with the Windows root name (`HKEY_LOCAL_MACHINE\Software\App\Sub`); a hive that is
    /// not mounted shows the path from its root (`\Sub`).
    pub fn windows_path(&self, path: &str) -> Result<String> {
        let names = parse(path)?;
        let relative = names.join("\\");
        Ok(match self.mount() {
            HiveMount::Key(key) => key.join(&relative)?.windows(),
            HiveMount::Registry => {
                let hive = names.first().and_then(|first| {
                    Hive::ALL
                        .into_iter()
                        .find(|hive| hive.name().eq_ignore_ascii_case(first))
                });
                match hive {
                    Some(hive) => KeyPath::hive_root(hive)
                        .join(&names[1..].join("\\"))?
                        .windows(),
                    None => shown(&names),
                }
            }
            HiveMount::Unmounted => shown(&names),
        })
    }

    /// The layers, highest precedence first.
    pub fn layers(&self) -> Vec<Layer> {
        self.layers.list_at(0)
    }

    /// Keys in the hive, the root included.
    pub fn key_count(&self) -> usize {
        self.tree.keys()
    }

    /// Creates the key at `path` and any missing key above it; an existing key is left as
    /// it is. A new key's descriptor is its parent's inheritable entries, owned by the
    /// hive's principal, as in a store.
    pub fn create_key(&mut self, path: &str) -> Result<()> {
        self.create_key_with(path, &CreateOptions::default())
    }

    /// As [`create_key`](OfflineHive::create_key), with a class, an explicit descriptor or
    /// a link target for the key at `path` itself when it is new (as a store does). A link
    /// must not exist yet; a volatile key cannot be kept in a hive. Every check is made
    /// before anything changes.
    pub fn create_key_with(&mut self, path: &str, options: &CreateOptions) -> Result<()> {
        let names = parse(path)?;
        if options.volatile {
            return Err(Error::VolatileBackup {
                path: shown(&names),
            });
        }
        let (found, depth) = self.tree.walk(&names);
        let missing = &names[depth..];
        if missing.is_empty() {
            if options.link.is_some() {
                return Err(Error::KeyExists {
                    path: shown(&names),
                });
            }
            return Ok(());
        }
        let plan = self.plan_create(found, &names, depth, options)?;
        let mut parent = found;
        for (name, sd) in missing.iter().zip(plan.descriptors) {
            let sd = self.tree.intern(sd);
            parent = self.tree.add(parent, name, sd);
        }
        let node = self.tree.node_mut(parent);
        node.class = plan.class;
        if let Some(target) = plan.link {
            node.link = true;
            self.put_value(parent, BASE, LINK_VALUE_NAME, target);
        }
        Ok(())
    }

    /// Checks a create of `names[depth..]` below `found` and computes what the new keys get.
    fn plan_create(
        &self,
        found: NodeIx,
        names: &[&str],
        depth: usize,
        options: &CreateOptions,
    ) -> Result<Plan> {
        if self.tree.node(found).link {
            return Err(Error::BelowLink {
                path: shown(names),
                link: shown(&names[..depth]),
            });
        }
        let new_keys = names.len() - depth;
        if self.tree.keys() + new_keys > OFFLINE_KEYS_MAX {
            return Err(Error::TooMany {
                what: "keys in an offline hive",
                max: OFFLINE_KEYS_MAX,
            });
        }
        if let Some(class) = &options.class {
            crate::attrs::check_class(class)?;
        }
        let link = match &options.link {
            Some(target) => {
                let value = link_value(&parse_target(&shown(names), target)?);
                self.check_new_values(1)?;
                Some(value)
            }
            None => None,
        };
        let mut descriptors = Vec::with_capacity(new_keys);
        let mut parent = self.tree.node(found).descriptor.as_ref().clone();
        for i in depth..names.len() {
            let sd = match &options.security {
                Some(explicit) if i + 1 == names.len() => {
                    explicit.validate()?;
                    with_explicit(explicit.clone(), &parent, &self.principal)
                }
                _ => inherited(&parent, &self.principal),
            };
            sd.validate()?;
            descriptors.push(sd.clone());
            parent = sd;
        }
        Ok(Plan {
            descriptors,
            class: options.class.clone(),
            link,
        })
    }

    /// A read-only view of the key at `path`.
    pub fn open_key(&self, path: &str) -> Result<OfflineKey<'_>> {
        let names = parse(path)?;
        let ix = self.find(&names)?;
        Ok(OfflineKey::new(self, ix))
    }

    /// Whether a key exists at `path` (an error only if `path` is not a valid path).
    pub fn key_exists(&self, path: &str) -> Result<bool> {
        let names = parse(path)?;
        Ok(self.tree.walk(&names).1 == names.len())
    }

    /// Deletes the key at `path`, which must have no subkeys (delete its tree instead). The
    /// root cannot be deleted.
    pub fn delete_key(&mut self, path: &str) -> Result<()> {
        let (names, ix) = self.below_root(path)?;
        if !self.tree.node(ix).subkeys.is_empty() {
            return Err(Error::HasSubkeys {
                path: shown(&names),
            });
        }
        self.tree.remove_tree(ix);
        Ok(())
    }

    /// Deletes the key at `path` and everything below it. The root cannot be deleted.
    pub fn delete_tree(&mut self, path: &str) -> Result<()> {
        let (_, ix) = self.below_root(path)?;
        self.tree.remove_tree(ix);
        Ok(())
    }

    fn below_root<'p>(&self, path: &'p str) -> Result<(Vec<&'p str>, NodeIx)> {
        let names = parse(path)?;
        if names.is_empty() {
            return Err(Error::HiveRoot {
                path: shown(&names),
            });
        }
        let ix = self.find(&names)?;
        Ok((names, ix))
    }

    /// The subkeys' names of the key at `path`, as written, in Windows' order.
    pub fn enum_keys(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.open_key(path)?.enum_keys())
    }

    /// Sets value `name` of the key at `path` in the `base` layer. An existing value keeps
    /// the name as first written.
    pub fn set_value<T: ToRegValue + ?Sized>(
        &mut self,
        path: &str,
        name: &str,
        value: &T,
    ) -> Result<()> {
        self.set_value_in(BASE_LAYER, path, name, value)
    }

    /// Sets value `name` of the key at `path` in `layer` (one of [`layers`](Self::layers)).
    /// The data is at most the store's default value_size_max_bytes. A link's target (its
    /// `SymbolicLinkValue`) may be changed only to another valid target.
    pub fn set_value_in<T: ToRegValue + ?Sized>(
        &mut self,
        layer: &str,
        path: &str,
        name: &str,
        value: &T,
    ) -> Result<()> {
        let value = value.to_reg_value();
        let names = parse(path)?;
        check_value_name(name)?;
        if value.data.len() > VALUE_SIZE_DEFAULT_MAX_BYTES as usize {
            return Err(Error::ValueTooLarge {
                name: clip(name),
                len: value.data.len(),
                max: VALUE_SIZE_DEFAULT_MAX_BYTES,
            });
        }
        let layer = self.layers.require(layer, 0)?;
        let ix = self.find(&names)?;
        if self.is_link_target(ix, name) {
            target_in(&shown(&names), &value)?;
        }
        let folded = Folded::of(name);
        if !self.tree.node(ix).values.contains_key(&(folded, layer)) {
            self.check_new_values(1)?;
        }
        self.put_value(ix, layer, name, value);
        Ok(())
    }

    fn check_new_values(&self, new: usize) -> Result<()> {
        if self.tree.values + new > OFFLINE_VALUES_MAX {
            return Err(Error::TooMany {
                what: "values in an offline hive",
                max: OFFLINE_VALUES_MAX,
            });
        }
        Ok(())
    }

    /// Sets a value whose checks passed.
    fn put_value(&mut self, ix: NodeIx, layer: LayerId, name: &str, value: Value) {
        let entries = &mut self.tree.node_mut(ix).values;
        match entries.get_mut(&(Folded::of(name), layer)) {
            Some(entry) => entry.value = value,
            None => {
                let entry = Entry {
                    name: name.to_string(),
                    value,
                };
                entries.insert((Folded::of(name), layer), entry);
                self.tree.values += 1;
            }
        }
    }

    /// Whether value `name` of key `ix` holds the key's link target.
    fn is_link_target(&self, ix: NodeIx, name: &str) -> bool {
        self.tree.node(ix).link && Folded::of(name) == Folded::of(LINK_VALUE_NAME)
    }

    /// The effective value `name` of the key at `path` (the highest layer's).
    pub fn get_value(&self, path: &str, name: &str) -> Result<Value> {
        self.open_key(path)?.get_value(name)
    }

    /// Deletes value `name` of the key at `path` in the `base` layer.
    pub fn delete_value(&mut self, path: &str, name: &str) -> Result<()> {
        self.delete_value_in(BASE_LAYER, path, name)
    }

    /// Deletes value `name` of the key at `path` in `layer`. A link keeps its target: delete
    /// the link key instead.
    pub fn delete_value_in(&mut self, layer: &str, path: &str, name: &str) -> Result<()> {
        let names = parse(path)?;
        check_value_name(name)?;
        let layer = self.layers.require(layer, 0)?;
        let ix = self.find(&names)?;
        if self.is_link_target(ix, name) {
            return Err(Error::BadLink {
                path: shown(&names),
                reason: format!("a link keeps its {LINK_VALUE_NAME}; delete the link instead"),
            });
        }
        let removed = self
            .tree
            .node_mut(ix)
            .values
            .remove(&(Folded::of(name), layer));
        if removed.is_none() {
            return Err(Error::ValueNotFound {
                path: shown(&names),
                name: name.to_string(),
            });
        }
        self.tree.values -= 1;
        Ok(())
    }

    /// Every effective value of the key at `path`, in Windows' order, names as written.
    pub fn enum_values(&self, path: &str) -> Result<Vec<(String, Value)>> {
        Ok(self.open_key(path)?.enum_values())
    }

    /// The descriptor of the key at `path`.
    pub fn security(&self, path: &str) -> Result<SecurityDescriptor> {
        Ok(self.open_key(path)?.security().clone())
    }

    /// Replaces the parts of the key's descriptor that `change` names (as a store does:
    /// subkeys keep theirs).
    pub fn set_security(&mut self, path: &str, change: &Sddl) -> Result<()> {
        let names = parse(path)?;
        let ix = self.find(&names)?;
        let descriptor = self.tree.node(ix).descriptor.apply(change);
        descriptor.validate()?;
        let sd = self.tree.intern(descriptor);
        self.tree.node_mut(ix).descriptor = sd;
        Ok(())
    }

    /// The class of the key at `path`, if it has one.
    pub fn class(&self, path: &str) -> Result<Option<String>> {
        Ok(self.open_key(path)?.class().map(str::to_string))
    }

    fn find(&self, names: &[&str]) -> Result<NodeIx> {
        match self.tree.walk(names) {
            (ix, depth) if depth == names.len() => Ok(ix),
            _ => Err(Error::KeyNotFound { path: shown(names) }),
        }
    }
}

/// What a create gives the keys it adds, checked.
struct Plan {
    /// One for each new key, top down.
    descriptors: Vec<SecurityDescriptor>,
    class: Option<String>,
    /// The new key's target value, if it is a link.
    link: Option<Value>,
}
