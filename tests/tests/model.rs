//! Model-based property tests of `hivelog::Store`: random sequences of key and value changes,
//! layer changes, volatile keys, transactions, reopens and power cuts, checked after every
//! step against a plain in-memory model of the registry, at the newest sequence number and at
//! every earlier one.
//!
//! The model is a map from folded path (uppercased components below the `Machine` hive) to the
//! key's name as first written, whether it is volatile, and its values by layer, with the table
//! of layers (precedence -> name). It predicts every error (missing key, subkeys present, hive
//! root, missing value, missing, existing or built-in layer, precedence taken, a non-volatile
//! key under a volatile one), the sequence number of every commit, enumeration order
//! (uppercase, then UTF-16 code units), the names Windows would keep (the first spelling of a
//! key name, and of a value name in each layer), the effective value of each name (the highest
//! layer's) and its whole stack. A reopen forgets volatile keys, at the newest state and at
//! every earlier one (their history lived in memory only).
//!
//! Default run: 200 cases of up to 80 steps per property (a few seconds). Long run, 1,000
//! cases of up to 150 steps per property (a minute or two in release):
//!
//! ```text
//! HIVELOG_TORTURE=1 cargo test -p hivelog-tests --test model --release
//! ```

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use hivelog::sim::SimVfs;
use hivelog::{
    Access, CreateOptions, Error, Key, Layer, LayeredValue, Options, Seq, Snapshot, Store,
    SyncPolicy, Value, ValueType, VecImage,
};
use hivelog_index::fold::{cmp_utf16, fold};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use tempfile::TempDir;

/// Key names with case variants; folded they are `A`, `AA`, `A_`, `É`. `A_` sorts after `AA`
/// in Windows' (uppercase) order but before `aa` in lowercase order, so the order is tested.
const KEY_NAMES: &[&str] = &["a", "A", "aa", "AA", "a_", "A_", "é", "É"];
/// Value names with case variants, the default value (""), a Latin-1 letter whose uppercase
/// lies outside Latin-1, a fullwidth letter (U+FF41, above U+E000) and a character outside the
/// BMP (a surrogate pair in UTF-16 sorts below U+E000).
const VALUE_NAMES: &[&str] = &["", "v", "V", "vv", "V_", "ÿ", "Ÿ", "\u{FF41}", "😀"];
/// Spellings of the `Machine` hive the API accepts.
const ROOTS: &[&str] = &["HKLM", "Machine", "HKEY_LOCAL_MACHINE", "hklm"];
/// Layer names ops use: the built-in layers in other spellings (layer names are ASCII and
/// case-insensitive) and three role layers, one in two spellings. Few, so that creations
/// collide with existing layers.
const LAYER_NAMES: &[&str] = &["base", "Policy", "web", "WEB", "db", "ops"];
/// Precedences role layers are created with: few, so that creations collide.
const PRECEDENCES: &[u16] = &[1, 7, 100, 65534];
/// `base`'s precedence (no role layer can take it).
const BASE: u16 = 0;
/// `policy`'s precedence (no role layer can take it).
const POLICY: u16 = u16::MAX;
/// Small segments, so that cases roll over (large values are generated).
const SEGMENT_BYTES: u64 = 64 * 1024;
/// The largest value the stores take (and the largest generated).
const VALUE_MAX_BYTES: usize = 30 * 1024;

fn torture() -> bool {
    std::env::var_os("HIVELOG_TORTURE").is_some_and(|v| v == "1")
}

/// A key path below `Machine`, as written: the names below the hive and the root's spelling.
#[derive(Debug, Clone, PartialEq)]
struct KeyRef {
    root: &'static str,
    names: Vec<String>,
}

impl KeyRef {
    fn text(&self) -> String {
        let mut out = self.root.to_string();
        for name in &self.names {
            out.push('\\');
            out.push_str(name);
        }
        out
    }

    fn relative(&self) -> String {
        self.names.join("\\")
    }

    fn folded(&self) -> Folded {
        self.names.iter().map(|n| fold(n)).collect()
    }
}

/// Which key a generated op acts on. Random paths rarely exist, so most ops pick a key that
/// exists when the step runs, or one that ever existed (to recreate deleted keys, perhaps in
/// another spelling), spelled as written or in lower case, or a new or existing child of one.
#[derive(Debug, Clone)]
enum Target {
    Path(KeyRef),
    Existing(Pick),
    Known(Pick),
}

#[derive(Debug, Clone)]
struct Pick {
    root: &'static str,
    pick: Index,
    lower: bool,
    child: Option<&'static str>,
}

impl Pick {
    fn from(&self, paths: &[&Folded], model: &Model) -> KeyRef {
        let path = paths[self.pick.index(paths.len())];
        let mut names: Vec<String> = (1..=path.len())
            .map(|depth| {
                // Live keys as written, others (deleted) in their folded spelling.
                let name = model
                    .keys
                    .get(&path[..depth])
                    .map_or(&path[depth - 1], |key| &key.name);
                if self.lower {
                    name.to_lowercase()
                } else {
                    name.clone()
                }
            })
            .collect();
        names.extend(self.child.map(str::to_string));
        KeyRef {
            root: self.root,
            names,
        }
    }
}

impl Target {
    /// The key this target names when the op runs against `model`; `known` holds every path
    /// that ever existed.
    fn resolve(&self, model: &Model, known: &BTreeSet<Folded>) -> KeyRef {
        match self {
            Target::Path(key) => key.clone(),
            Target::Existing(pick) => pick.from(&model.keys.keys().collect::<Vec<_>>(), model),
            Target::Known(pick) => pick.from(&known.iter().collect::<Vec<_>>(), model),
        }
    }
}

/// Which layer a generated op names: one of LAYER_NAMES whether or not it exists, or (so that
/// role layers get values and drops succeed) one that exists when the step runs, as created
/// or in upper case.
#[derive(Debug, Clone)]
enum LayerPick {
    Named(&'static str),
    /// Any layer, `base` and `policy` included.
    Existing {
        pick: Index,
        upper: bool,
    },
    /// A role layer (`web` if there is none).
    Role {
        pick: Index,
        upper: bool,
    },
}

impl LayerPick {
    fn resolve(&self, model: &Model) -> String {
        let (pick, upper, roles) = match self {
            LayerPick::Named(name) => return name.to_string(),
            LayerPick::Existing { pick, upper } => (pick, upper, false),
            LayerPick::Role { pick, upper } => (pick, upper, true),
        };
        let names: Vec<&String> = model
            .layers
            .iter()
            .filter(|(precedence, _)| !roles || ![BASE, POLICY].contains(precedence))
            .map(|(_, (name, _))| name)
            .collect();
        let Some(name) = names.get(pick.index(names.len().max(1))) else {
            return "web".to_string();
        };
        if *upper {
            name.to_ascii_uppercase()
        } else {
            name.to_string()
        }
    }
}

/// Which value name a delete names: one of VALUE_NAMES, or (so that deletes succeed) one
/// the key holds in the op's layer when the step runs, in any of its spellings in
/// VALUE_NAMES (`v` or `V`).
#[derive(Debug, Clone)]
enum NamePick {
    Fixed(&'static str),
    Held(Index),
}

impl NamePick {
    fn resolve(&self, model: &Model, key: &KeyRef, layer: Option<&str>) -> &'static str {
        let pick = match self {
            NamePick::Fixed(name) => return name,
            NamePick::Held(pick) => pick,
        };
        let precedence = layer.map_or(Some(BASE), |layer| model.layer(layer));
        let values = model.keys.get(&key.folded()).map(|key| &key.values);
        let held: Vec<&'static str> = match (precedence, values) {
            (Some(precedence), Some(values)) => VALUE_NAMES
                .iter()
                .copied()
                .filter(|name| values.contains_key(&(precedence, fold(name))))
                .collect(),
            _ => Vec::new(),
        };
        let names = if held.is_empty() { VALUE_NAMES } else { &held };
        names[pick.index(names.len())]
    }
}

/// One change; `K` names a key, `L` a layer and `N` the name of a value to delete, as
/// generated (`Target`, `LayerPick`, `NamePick`) or as resolved against the model when the
/// step runs.
#[derive(Debug, Clone)]
enum Op<K = KeyRef, L = String, N = &'static str> {
    /// `via_handle`: through `create_subkey` of a handle on the hive root. `volatile`: through
    /// the `_with` form of the route, with `CreateOptions::volatile`.
    CreateKey {
        key: K,
        via_handle: bool,
        volatile: bool,
    },
    /// `via_handle`: through `delete_subkey` of a handle on the hive root.
    DeleteKey { key: K, via_handle: bool },
    /// `via_handle`: through `delete_subkey_all` of a handle on the hive root.
    DeleteTree { key: K, via_handle: bool },
    /// `via_handle`: through `open_key` + `set_raw_value`, else a transaction of one. `layer`:
    /// `None` through the plain form (which writes `base`), else the `_in` form naming it.
    SetValue {
        key: K,
        layer: Option<L>,
        name: &'static str,
        value: Value,
        via_handle: bool,
    },
    /// `via_handle`: through `open_key` + `delete_value`, else a transaction of one. `layer`
    /// as for `SetValue`.
    DeleteValue {
        key: K,
        layer: Option<L>,
        name: N,
        via_handle: bool,
    },
    /// Through `Store::create_layer` as a step of its own, `Transaction::create_layer` in one.
    CreateLayer { name: &'static str, precedence: u16 },
    /// Through `Store::drop_layer` as a step of its own, `Transaction::drop_layer` in one.
    DropLayer { layer: L },
}

impl Op<Target, LayerPick, NamePick> {
    fn resolve(&self, model: &Model, known: &BTreeSet<Folded>) -> Op {
        let key = |target: &Target| target.resolve(model, known);
        let layer = |pick: &Option<LayerPick>| pick.as_ref().map(|pick| pick.resolve(model));
        match self {
            Op::CreateKey {
                key: target,
                via_handle,
                volatile,
            } => Op::CreateKey {
                key: key(target),
                via_handle: *via_handle,
                volatile: *volatile,
            },
            Op::DeleteKey {
                key: target,
                via_handle,
            } => Op::DeleteKey {
                key: key(target),
                via_handle: *via_handle,
            },
            Op::DeleteTree {
                key: target,
                via_handle,
            } => Op::DeleteTree {
                key: key(target),
                via_handle: *via_handle,
            },
            Op::SetValue {
                key: target,
                layer: pick,
                name,
                value,
                via_handle,
            } => Op::SetValue {
                key: key(target),
                layer: layer(pick),
                name,
                value: value.clone(),
                via_handle: *via_handle,
            },
            Op::DeleteValue {
                key: target,
                layer: pick,
                name,
                via_handle,
            } => {
                let (key, layer) = (key(target), layer(pick));
                Op::DeleteValue {
                    name: name.resolve(model, &key, layer.as_deref()),
                    key,
                    layer,
                    via_handle: *via_handle,
                }
            }
            Op::CreateLayer { name, precedence } => Op::CreateLayer {
                name,
                precedence: *precedence,
            },
            Op::DropLayer { layer: pick } => Op::DropLayer {
                layer: pick.resolve(model),
            },
        }
    }
}

/// A generated op.
type GenOp = Op<Target, LayerPick, NamePick>;

#[derive(Debug, Clone)]
enum Step {
    One(GenOp),
    Transaction(Vec<GenOp>),
    /// Close and open again (on the simulated disk, `power_cut` cuts the power instead).
    Reopen {
        power_cut: bool,
    },
    /// A detailed read of one past sequence number (every value name in every layer, both
    /// handle kinds).
    ReadPast(Index),
    /// A checkpoint of the newest state (on disk; the in-memory store writes none), which
    /// the next reopen starts from.
    Checkpoint,
    /// A compaction keeping this many of the newest commits: reads from its cut on stay as
    /// they were, reads before it are refused.
    Compact(u8),
}

/// Folded names below the hive; the empty path is the hive root.
type Folded = Vec<String>;

/// A value's place in a key: its layer's precedence and its folded name.
type Slot = (u16, String);

/// A key's values: slot -> (name as first written in that layer, value).
type Values = BTreeMap<Slot, (String, Value)>;

#[derive(Debug, Clone, PartialEq)]
struct ModelKey {
    /// As first written.
    name: String,
    /// In memory only: gone at the next open.
    volatile: bool,
    values: Values,
}

/// The registry below `Machine` at one sequence number.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    keys: BTreeMap<Folded, ModelKey>,
    /// Precedence -> (name as created, the sequence number that created it).
    layers: BTreeMap<u16, (String, Seq)>,
}

/// The errors the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    KeyNotFound,
    HasSubkeys,
    HiveRoot,
    ValueNotFound,
    LayerNotFound,
    LayerExists,
    PrecedenceTaken,
    BuiltinLayer,
    VolatileParent,
}

fn kind_of(error: &Error) -> Expected {
    match error {
        Error::KeyNotFound { .. } => Expected::KeyNotFound,
        Error::HasSubkeys { .. } => Expected::HasSubkeys,
        Error::HiveRoot { .. } => Expected::HiveRoot,
        Error::ValueNotFound { .. } => Expected::ValueNotFound,
        Error::LayerNotFound { .. } => Expected::LayerNotFound,
        Error::LayerExists { .. } => Expected::LayerExists,
        Error::PrecedenceTaken { .. } => Expected::PrecedenceTaken,
        Error::BuiltinLayer { .. } => Expected::BuiltinLayer,
        Error::VolatileParent { .. } => Expected::VolatileParent,
        other => panic!("an error the model never predicts: {other:?} ({other})"),
    }
}

/// Values in enumeration order: by folded name, in UTF-16 code units.
fn in_name_order(mut values: Vec<(String, Value)>) -> Vec<(String, Value)> {
    values.sort_by(|a, b| cmp_utf16(&fold(&a.0), &fold(&b.0)));
    values
}

impl Model {
    fn new() -> Model {
        let root = ModelKey {
            name: "Machine".into(),
            volatile: false,
            values: BTreeMap::new(),
        };
        Model {
            keys: BTreeMap::from([(Vec::new(), root)]),
            layers: BTreeMap::from([
                (BASE, ("base".to_string(), 0)),
                (POLICY, ("policy".to_string(), 0)),
            ]),
        }
    }

    fn children(&self, path: &Folded) -> Vec<String> {
        let mut names: Vec<String> = self
            .keys
            .iter()
            .filter(|(p, _)| p.len() == path.len() + 1 && p.starts_with(path))
            .map(|(_, key)| key.name.clone())
            .collect();
        names.sort_by(|a, b| cmp_utf16(&fold(a), &fold(b)));
        names
    }

    /// The precedence of the layer named `name` (case-insensitively), if one exists.
    fn layer(&self, name: &str) -> Option<u16> {
        self.layers
            .iter()
            .find(|(_, (layer, _))| layer.eq_ignore_ascii_case(name))
            .map(|(&precedence, _)| precedence)
    }

    /// Each layer's name (as created, or in upper case) and precedence.
    fn layer_names(&self, upper: bool) -> Vec<(String, u16)> {
        let spell = |name: &String| {
            if upper {
                name.to_ascii_uppercase()
            } else {
                name.clone()
            }
        };
        self.layers
            .iter()
            .map(|(&precedence, (name, _))| (spell(name), precedence))
            .collect()
    }

    /// The layers, highest precedence first, as `Store::layers` lists them.
    fn layer_list(&self) -> Vec<Layer> {
        self.layers
            .iter()
            .rev()
            .map(|(&precedence, (name, created))| Layer {
                name: name.clone(),
                precedence,
                created: *created,
            })
            .collect()
    }

    /// The effective values of the key at `path`: for each name the highest layer's, named
    /// as that layer has it.
    fn values(&self, path: &Folded) -> Vec<(String, Value)> {
        let mut top = BTreeMap::new();
        // In ascending precedence: a higher layer's version replaces a lower one's.
        for ((_, folded), value) in &self.keys[path].values {
            top.insert(folded, value.clone());
        }
        in_name_order(top.into_values().collect())
    }

    /// The values layer `precedence` holds in the key at `path`.
    fn values_in(&self, path: &Folded, precedence: u16) -> Vec<(String, Value)> {
        let values = &self.keys[path].values;
        in_name_order(
            values
                .range((precedence, String::new())..)
                .take_while(|((layer, _), _)| *layer == precedence)
                .map(|(_, value)| value.clone())
                .collect(),
        )
    }

    /// Every layer's version of value `name` of the key at `path`, highest precedence first.
    fn stack(&self, path: &Folded, name: &str) -> Vec<LayeredValue> {
        let folded = fold(name);
        self.keys[path]
            .values
            .iter()
            .rev()
            .filter(|((_, value_name), _)| *value_name == folded)
            .map(|((precedence, _), (_, value))| LayeredValue {
                layer: self.layers[precedence].0.clone(),
                precedence: *precedence,
                value: value.clone(),
            })
            .collect()
    }

    /// The effective value `name` of the key at `path`.
    fn value(&self, path: &Folded, name: &str) -> Option<Value> {
        self.stack(path, name).into_iter().next().map(|v| v.value)
    }

    /// Value `name` of the key at `path` in layer `precedence`.
    fn value_in(&self, path: &Folded, precedence: u16, name: &str) -> Option<Value> {
        let values = &self.keys[path].values;
        values.get(&(precedence, fold(name))).map(|v| v.1.clone())
    }

    /// Applies `op`, as part of the transaction that would commit as `seq`; returns whether it
    /// writes a record (changes the store's sequence number).
    fn apply(&mut self, op: &Op, seq: Seq) -> Result<bool, Expected> {
        match op {
            Op::CreateKey { key, volatile, .. } => self.create(key, *volatile),
            Op::DeleteKey { key, .. } => {
                let path = self.existing_non_root(key)?;
                if !self.children(&path).is_empty() {
                    return Err(Expected::HasSubkeys);
                }
                self.keys.remove(&path);
                Ok(true)
            }
            Op::DeleteTree { key, .. } => {
                let path = self.existing_non_root(key)?;
                self.keys.retain(|p, _| !p.starts_with(&path));
                Ok(true)
            }
            Op::SetValue {
                key,
                layer,
                name,
                value,
                ..
            } => {
                let (values, slot) = self.slot(key, layer.as_deref(), name)?;
                let entry = values
                    .entry(slot)
                    .or_insert_with(|| (name.to_string(), value.clone()));
                entry.1 = value.clone();
                Ok(true)
            }
            Op::DeleteValue {
                key, layer, name, ..
            } => {
                let (values, slot) = self.slot(key, layer.as_deref(), name)?;
                values.remove(&slot).ok_or(Expected::ValueNotFound)?;
                Ok(true)
            }
            Op::CreateLayer { name, precedence } => {
                if self.layer(name).is_some() {
                    return Err(Expected::LayerExists);
                }
                if self.layers.contains_key(precedence) {
                    return Err(Expected::PrecedenceTaken);
                }
                self.layers.insert(*precedence, (name.to_string(), seq));
                Ok(true)
            }
            Op::DropLayer { layer } => {
                let precedence = self.layer(layer).ok_or(Expected::LayerNotFound)?;
                if precedence == BASE || precedence == POLICY {
                    return Err(Expected::BuiltinLayer);
                }
                self.layers.remove(&precedence);
                for key in self.keys.values_mut() {
                    key.values.retain(|(layer, _), _| *layer != precedence);
                }
                Ok(true)
            }
        }
    }

    /// Creates the key and its missing parents, volatile or not; a non-volatile key cannot be
    /// created under a volatile one (an existing key is no creation, whatever it is).
    fn create(&mut self, key: &KeyRef, volatile: bool) -> Result<bool, Expected> {
        let path = key.folded();
        let mut created = false;
        for depth in 1..=path.len() {
            if self.keys.contains_key(&path[..depth]) {
                continue;
            }
            if self.keys[&path[..depth - 1]].volatile && !volatile {
                return Err(Expected::VolatileParent);
            }
            let new = ModelKey {
                name: key.names[depth - 1].clone(),
                volatile,
                values: BTreeMap::new(),
            };
            self.keys.insert(path[..depth].to_vec(), new);
            created = true;
        }
        Ok(created)
    }

    /// The values of the key `key` names and the slot of value `name` in `layer` (`None`:
    /// `base`), checked in the store's order: the key, then the layer.
    fn slot(
        &mut self,
        key: &KeyRef,
        layer: Option<&str>,
        name: &str,
    ) -> Result<(&mut Values, Slot), Expected> {
        self.existing(key)?;
        let precedence = match layer {
            None => BASE,
            Some(layer) => self.layer(layer).ok_or(Expected::LayerNotFound)?,
        };
        Ok((&mut self.existing(key)?.values, (precedence, fold(name))))
    }

    fn existing(&mut self, key: &KeyRef) -> Result<&mut ModelKey, Expected> {
        self.keys
            .get_mut(&key.folded())
            .ok_or(Expected::KeyNotFound)
    }

    fn existing_non_root(&mut self, key: &KeyRef) -> Result<Folded, Expected> {
        if key.names.is_empty() {
            return Err(Expected::HiveRoot);
        }
        self.existing(key)?;
        Ok(key.folded())
    }

    /// Applies every op or none, as the transaction that would commit as `seq`; returns
    /// whether any wrote a record.
    fn apply_all(&mut self, ops: &[Op], seq: Seq) -> Result<bool, Expected> {
        let mut next = self.clone();
        let mut wrote = false;
        for op in ops {
            wrote |= next.apply(op, seq)?;
        }
        *self = next;
        Ok(wrote)
    }

    /// Forgets volatile keys (and their values), as an open of the store does.
    fn forget_volatile(&mut self) {
        self.keys.retain(|_, key| !key.volatile);
    }
}

fn volatile_options() -> CreateOptions {
    CreateOptions {
        volatile: true,
        ..CreateOptions::default()
    }
}

/// Runs one op on the store, by the route the op names.
fn run_one(store: &Store, op: &Op) -> Result<(), Error> {
    match op {
        Op::CreateKey {
            key,
            via_handle,
            volatile,
        } => create_key(store, key, *via_handle, *volatile),
        Op::DeleteKey { key, via_handle } => {
            if *via_handle && !key.names.is_empty() {
                store
                    .open_key_with(key.root, Access::KEY_ALL_ACCESS)?
                    .delete_subkey(&key.relative())?;
            } else {
                store.delete_key(&key.text())?;
            }
            Ok(())
        }
        Op::DeleteTree { key, via_handle } => {
            if *via_handle && !key.names.is_empty() {
                store
                    .open_key_with(key.root, Access::KEY_ALL_ACCESS)?
                    .delete_subkey_all(&key.relative())?;
            } else {
                store.delete_tree(&key.text())?;
            }
            Ok(())
        }
        Op::SetValue {
            key,
            layer,
            name,
            value,
            via_handle: true,
        } => {
            let handle = store.open_key_with(&key.text(), Access::KEY_ALL_ACCESS)?;
            match layer {
                None => handle.set_raw_value(name, value),
                Some(layer) => handle.set_raw_value_in(layer, name, value),
            }
            .map(drop)
        }
        Op::DeleteValue {
            key,
            layer,
            name,
            via_handle: true,
        } => {
            let handle = store.open_key_with(&key.text(), Access::KEY_ALL_ACCESS)?;
            match layer {
                None => handle.delete_value(name),
                Some(layer) => handle.delete_value_in(layer, name),
            }
            .map(drop)
        }
        Op::SetValue { .. } | Op::DeleteValue { .. } => {
            run_transaction(store, std::slice::from_ref(op)).map(drop)
        }
        Op::CreateLayer { name, precedence } => store.create_layer(name, *precedence).map(drop),
        Op::DropLayer { layer } => store.drop_layer(layer).map(drop),
    }
}

/// Creates a key through the store or a handle on the hive root, by the plain call or (for a
/// volatile key) its `_with` form.
fn create_key(store: &Store, key: &KeyRef, via_handle: bool, volatile: bool) -> Result<(), Error> {
    if via_handle {
        let root = store.open_key_with(key.root, Access::KEY_ALL_ACCESS)?;
        if volatile {
            root.create_subkey_with(&key.relative(), &volatile_options())
        } else {
            root.create_subkey(&key.relative())
        }
        .map(drop)
    } else if volatile {
        store
            .create_key_with(&key.text(), &volatile_options())
            .map(drop)
    } else {
        store.create_key(&key.text()).map(drop)
    }
}

fn run_transaction(store: &Store, ops: &[Op]) -> Result<Seq, Error> {
    let mut tx = store.transaction();
    for op in ops {
        match op {
            Op::CreateKey {
                key,
                volatile: false,
                ..
            } => tx.create_key(&key.text()),
            Op::CreateKey {
                key,
                volatile: true,
                ..
            } => tx.create_key_with(&key.text(), &volatile_options()),
            Op::DeleteKey { key, .. } => tx.delete_key(&key.text()),
            Op::DeleteTree { key, .. } => tx.delete_tree(&key.text()),
            Op::SetValue {
                key,
                layer: None,
                name,
                value,
                ..
            } => tx.set_value(&key.text(), name, value),
            Op::SetValue {
                key,
                layer: Some(layer),
                name,
                value,
                ..
            } => tx.set_value_in(layer, &key.text(), name, value),
            Op::DeleteValue {
                key,
                layer: None,
                name,
                ..
            } => tx.delete_value(&key.text(), name),
            Op::DeleteValue {
                key,
                layer: Some(layer),
                name,
                ..
            } => tx.delete_value_in(layer, &key.text(), name),
            Op::CreateLayer { name, precedence } => tx.create_layer(name, *precedence),
            Op::DropLayer { layer } => tx.drop_layer(layer),
        }
        .expect("names and paths of the model are valid");
    }
    assert_eq!(tx.len(), ops.len());
    tx.commit()
}

/// The model at every committed sequence number, and every path ever created.
struct History {
    /// `states[s]` is the registry after transaction `s` (the store creates the hives as
    /// transaction 1). `states[0]` only holds the place of the empty store, which
    /// `check_past` checks apart: nothing exists there, not even `Machine`.
    states: Vec<Model>,
    paths: BTreeSet<Folded>,
}

impl History {
    fn new() -> History {
        History {
            states: vec![Model::new(), Model::new()],
            paths: BTreeSet::from([Vec::new()]),
        }
    }

    fn now(&self) -> &Model {
        self.states.last().expect("states start with two entries")
    }

    fn seq(&self) -> Seq {
        self.states.len() as Seq - 1
    }

    fn record(&mut self, model: Model, wrote: bool) {
        self.paths.extend(model.keys.keys().cloned());
        if wrote {
            self.states.push(model);
        } else {
            assert_eq!(&model, self.now(), "the model changed without writing");
        }
    }

    /// A reopen: volatile keys are gone, now and at every earlier sequence number.
    fn reopened(&mut self) {
        for state in &mut self.states {
            state.forget_volatile();
        }
    }

    /// An in-memory store flushed and booted again from its image: the past is gone; the
    /// new store creates its hives (1), then restores the image (2), volatile keys left out.
    fn rebooted(&mut self) {
        let mut now = self.now().clone();
        now.forget_volatile();
        // The restore creates the image's role layers (base and policy always exist).
        for (_, created) in now.layers.values_mut().filter(|(_, created)| *created > 0) {
            *created = 2;
        }
        self.states = vec![Model::new(), Model::new(), now];
    }
}

/// The path as readers spell it: the hive's alias and every name in upper or lower case (the
/// store must not care).
fn spelled(path: &Folded, lower: bool) -> String {
    let mut out = String::from(if lower { "hklm" } else { "Machine" });
    for name in path {
        out.push('\\');
        if lower {
            out.push_str(&name.to_lowercase());
        } else {
            out.push_str(name);
        }
    }
    out
}

/// What reads go through: the store (its newest state) or a snapshot.
#[derive(Clone, Copy)]
enum Reader<'a> {
    Store(&'a Store),
    Snapshot(&'a Snapshot),
}

impl Reader<'_> {
    fn open(&self, path: &str) -> Result<Key, Error> {
        match self {
            Reader::Store(store) => store.open_key(path),
            Reader::Snapshot(snapshot) => snapshot.open_key(path),
        }
    }

    /// The sequence number handles read at (`None`: live handles).
    fn at(&self) -> Option<Seq> {
        match self {
            Reader::Store(_) => None,
            Reader::Snapshot(snapshot) => Some(snapshot.seq()),
        }
    }

    /// The effective value `name` of the key at `path`.
    fn get(&self, path: &str, name: &str) -> Result<Value, Error> {
        match self {
            Reader::Store(store) => store.get_raw_value(path, name),
            Reader::Snapshot(snapshot) => snapshot.get_raw_value(path, name),
        }
    }

    /// Value `name` of the key at `path` in `layer`, where the reader reads one layer by path
    /// (only the store does).
    fn get_in(&self, layer: &str, path: &str, name: &str) -> Option<Result<Value, Error>> {
        match self {
            Reader::Store(store) => Some(store.get_raw_value_in(layer, path, name)),
            Reader::Snapshot(_) => None,
        }
    }
}

/// Every path ever created reads through `reader` as in `model`: it exists or not, with its
/// subkeys and its values, effective and in each layer; with `reads`, every value name is
/// read one by one too. `flip` varies which paths (and layer names) are spelled in another
/// case.
fn check_keys(
    reader: Reader<'_>,
    model: &Model,
    paths: &BTreeSet<Folded>,
    flip: usize,
    reads: bool,
    at: &str,
) {
    for (i, path) in paths.iter().enumerate() {
        let other_case = (i + flip) % 2 == 1;
        let text = spelled(path, other_case);
        match (model.keys.get(path), reader.open(&text)) {
            (None, Err(Error::KeyNotFound { .. })) => {
                let got = reader.get(&text, "v");
                assert!(matches!(got, Err(Error::KeyNotFound { .. })), "{text} {at}");
            }
            (Some(_), Ok(key)) => {
                assert_eq!(key.snapshot_seq(), reader.at());
                let at = format!("{text} {at}");
                let layers = model.layer_names(other_case);
                if path.is_empty() {
                    check_missing_layers(reader, &key, model, &text, &at);
                }
                check_enumerations(&key, model, path, &layers, &at);
                if reads {
                    check_value_reads(reader, &key, model, path, &text, &layers, &at);
                }
            }
            (expected, got) => panic!("key {text} {at}: model {expected:?}, store {got:?}"),
        }
    }
}

/// Every name in LAYER_NAMES that names no layer in `model` is refused by every read of one
/// layer (of `key`, at `text`). Whether a layer exists depends on no key: one key checks it.
fn check_missing_layers(reader: Reader<'_>, key: &Key, model: &Model, text: &str, at: &str) {
    let refused = |got: Result<(), Error>| matches!(got, Err(Error::LayerNotFound { .. }));
    for layer in LAYER_NAMES
        .iter()
        .filter(|name| model.layer(name).is_none())
    {
        assert!(refused(key.enum_values_in(layer).map(drop)), "{at} {layer}");
        assert!(
            refused(key.get_raw_value_in(layer, "v").map(drop)),
            "{at} {layer}"
        );
        if let Some(got) = reader.get_in(layer, text, "v") {
            assert!(refused(got.map(drop)), "{at} {layer}");
        }
    }
}

/// The subkeys and values of `key` (at `path` in `model`): the effective values, and every
/// layer's (`layers`: each layer's name as spelled for reads, and its precedence).
fn check_enumerations(key: &Key, model: &Model, path: &Folded, layers: &[(String, u16)], at: &str) {
    assert_eq!(key.enum_keys().unwrap(), model.children(path), "{at}");
    assert_eq!(key.enum_values().unwrap(), model.values(path), "{at}");
    for (layer, precedence) in layers {
        let got = key.enum_values_in(layer).unwrap();
        assert_eq!(got, model.values_in(path, *precedence), "{at} in {layer}");
    }
}

/// Every value name of `key` (at `path`, spelled `text`), read by handle and by path: the
/// effective value, its stack, and each layer's version.
fn check_value_reads(
    reader: Reader<'_>,
    key: &Key,
    model: &Model,
    path: &Folded,
    text: &str,
    layers: &[(String, u16)],
    at: &str,
) {
    for name in VALUE_NAMES {
        let lower = name.to_lowercase();
        let expected = model.value(path, name);
        check_read(&expected, key.get_raw_value(name), at, name, "");
        check_read(&expected, reader.get(text, &lower), at, name, "");
        if let Reader::Store(store) = reader {
            let copied = store.with_value(text, name, |ty, data| Value::new(ty, data.to_vec()));
            check_read(&expected, copied, at, name, "by with_value");
        }
        let stack = key.value_stack(name).unwrap();
        assert_eq!(stack, model.stack(path, name), "{at} {name:?}");
        for (layer, precedence) in layers {
            let expected = model.value_in(path, *precedence, name);
            check_read(
                &expected,
                key.get_raw_value_in(layer, &lower),
                at,
                name,
                layer,
            );
            if let Some(got) = reader.get_in(layer, text, name) {
                check_read(&expected, got, at, name, layer);
            }
        }
    }
}

/// One read of value `name` (in `layer`, if not empty) agrees with the model.
fn check_read(
    expected: &Option<Value>,
    got: Result<Value, Error>,
    at: &str,
    name: &str,
    layer: &str,
) {
    match (expected, got) {
        (Some(value), Ok(got)) => assert_eq!(&got, value, "{at} {name:?} {layer}"),
        (None, Err(Error::ValueNotFound { .. })) => {}
        (expected, got) => {
            panic!("{at} value {name:?} {layer}: model {expected:?}, store {got:?}")
        }
    }
}

/// The store at its newest state equals the model: every key ever created exists or not as
/// predicted, with its subkeys and values in order, and every single read agrees.
fn check_now(store: &Store, history: &History) {
    let model = history.now();
    let seq = history.seq();
    assert_eq!(store.seq(), seq, "sequence number");
    let stats = store.stats();
    let values: usize = model.keys.values().map(|key| key.values.len()).sum();
    // The model holds `Machine`'s keys; `Users` is one more key, without values. Each
    // layer's version of a value counts.
    assert_eq!(
        (stats.seq, stats.keys, stats.values),
        (seq, model.keys.len() as u64 + 1, values as u64),
        "stats"
    );
    assert_eq!(store.layers(), model.layer_list(), "layers");
    check_keys(Reader::Store(store), model, &history.paths, 0, true, "now");
}

/// Every past sequence number reads as the model's state at that number: existence, subkeys
/// and values (effective and each layer's) of every path ever created.
fn check_past(store: &Store, history: &History) {
    let last = history.seq();
    assert!(matches!(
        store.snapshot_at(last + 1),
        Err(Error::FutureSeq { .. })
    ));
    if store.oldest_seq() == 0 {
        let before_hives = store.snapshot_at(0).unwrap();
        assert!(matches!(
            before_hives.open_key("HKLM"),
            Err(Error::KeyNotFound { .. })
        ));
    }
    let oldest = store.oldest_seq();
    if oldest > 0 {
        assert!(matches!(
            store.snapshot_at(oldest - 1),
            Err(Error::Compacted { seq, oldest: named }) if seq == oldest - 1 && named == oldest
        ));
    }
    for seq in oldest.max(1)..=last {
        let snapshot = store.snapshot_at(seq).unwrap();
        assert_eq!(snapshot.seq(), seq);
        let model = &history.states[seq as usize];
        let at = format!("at sequence number {seq} (last {last})");
        let reader = Reader::Snapshot(&snapshot);
        check_keys(reader, model, &history.paths, seq as usize, false, &at);
    }
}

/// Reads every value name of every key at `seq`, in every layer, through the snapshot, by
/// path and by handle.
fn check_reads_at(store: &Store, history: &History, seq: Seq) {
    let snapshot = store.snapshot_at(seq).unwrap();
    let model = &history.states[seq as usize];
    let at = format!("at sequence number {seq}");
    check_keys(
        Reader::Snapshot(&snapshot),
        model,
        &history.paths,
        1,
        true,
        &at,
    );
}

/// Applies one change step to the store and the model and checks they agree on the outcome.
fn change(store: &Store, history: &mut History, ops: &[GenOp], as_transaction: bool) {
    let seq_before = store.seq();
    let mut model = history.now().clone();
    let ops = resolve_all(&model, &history.paths, ops);
    let ops = &ops[..];
    let predicted = model.apply_all(ops, seq_before + 1);
    let got = if as_transaction {
        run_transaction(store, ops).map(Some)
    } else {
        run_one(store, &ops[0]).map(|()| None)
    };
    match (predicted, got) {
        (Ok(wrote), Ok(returned)) => {
            let expected_seq = seq_before + u64::from(wrote);
            if let Some(returned) = returned {
                assert_eq!(returned, expected_seq, "commit's sequence number: {ops:?}");
            }
            assert_eq!(store.seq(), expected_seq, "{ops:?}");
            history.record(model, wrote);
        }
        (Err(expected), Err(error)) => {
            assert_eq!(kind_of(&error), expected, "{ops:?}: {error}");
            assert_eq!(
                store.seq(),
                seq_before,
                "a failed change moved the sequence"
            );
        }
        (predicted, got) => panic!("{ops:?}: model {predicted:?}, store {got:?}"),
    }
}

/// Resolves the ops of one step in order, each against the state the ones before it leave
/// (as far as they succeed), so that a transaction can act on keys and layers it creates.
fn resolve_all(model: &Model, known: &BTreeSet<Folded>, ops: &[GenOp]) -> Vec<Op> {
    let mut tentative = model.clone();
    let mut known = known.clone();
    ops.iter()
        .map(|op| {
            let op = op.resolve(&tentative, &known);
            let _ = tentative.apply(&op, 0);
            known.extend(tentative.keys.keys().cloned());
            op
        })
        .collect()
}

/// Where a property's store lives.
enum Disk {
    Real(TempDir),
    Sim(SimVfs),
    /// An in-memory store; a reopen is a flush and a boot from the image.
    Memory(VecImage),
}

impl Disk {
    fn dir(&self) -> PathBuf {
        match self {
            Disk::Real(dir) => dir.path().to_path_buf(),
            Disk::Sim(_) | Disk::Memory(_) => PathBuf::from("/store"),
        }
    }

    fn options(&self) -> Options {
        let base = Options {
            segment_size_bytes: SEGMENT_BYTES,
            value_size_max_bytes: VALUE_MAX_BYTES as u32,
            sync: SyncPolicy::Always,
            ..Options::default()
        };
        match self {
            Disk::Real(_) | Disk::Memory(_) => base,
            Disk::Sim(vfs) => Options {
                vfs: Arc::new(vfs.clone()),
                ..base
            },
        }
    }

    fn open(&self) -> Store {
        match self {
            Disk::Memory(image) => Store::in_memory_with(image.clone(), self.options())
                .expect("the in-memory store boots"),
            _ => Store::open(self.dir(), self.options()).expect("the store opens"),
        }
    }
}

fn run(steps: &[Step], mut disk: Disk) {
    let mut store = disk.open();
    // A snapshot held across compactions, until the next reopen.
    let mut held: Option<hivelog::Snapshot> = None;
    let mut history = History::new();
    check_now(&store, &history);
    for step in steps {
        match step {
            Step::One(op) => change(&store, &mut history, std::slice::from_ref(op), false),
            Step::Transaction(ops) => change(&store, &mut history, ops, true),
            Step::Reopen { power_cut } => {
                held = None;
                if let Disk::Memory(_) = disk {
                    store.flush().expect("the flush succeeds");
                    drop(store);
                    store = disk.open();
                    history.rebooted();
                    let report = store.verify().expect("the booted store verifies");
                    assert_eq!(report.last_seq, history.seq());
                    check_now(&store, &history);
                    check_past(&store, &history);
                    continue;
                }
                store = match (&mut disk, power_cut) {
                    (Disk::Sim(vfs), true) => {
                        // Every commit returned under SyncPolicy::Always: nothing may be lost.
                        let reborn = vfs.cut_power();
                        drop(store);
                        *vfs = reborn;
                        disk.open()
                    }
                    _ => {
                        store.close().expect("close");
                        disk.open()
                    }
                };
                history.reopened();
                assert!(store.recovery_report().salvage.is_none());
                assert_eq!(
                    store.checkpoint_report().ignored,
                    [],
                    "every checkpoint loads"
                );
                let report = store.verify().expect("the reopened store verifies");
                assert_eq!(report.last_seq, history.seq());
                assert_eq!(report.transactions, retained(&store, &history));
            }
            Step::ReadPast(index) => {
                let first = store.oldest_seq().max(1);
                let seq = first + index.index((history.seq() + 1 - first) as usize) as Seq;
                check_reads_at(&store, &history, seq);
            }
            Step::Compact(keep) => {
                let before = store.oldest_seq();
                // With an odd `keep`, a snapshot of the middle of the readable history is held
                // across the compaction (until the next reopen), and must read the same after.
                if keep % 2 == 1 && history.seq() > 0 {
                    let middle = (before.max(1) + history.seq()) / 2;
                    held = Some(store.snapshot_at(middle).expect("a readable snapshot"));
                }
                match store.compact_keeping(u64::from(*keep), 0) {
                    Ok(Some(report)) => {
                        assert!(
                            report.seq > before && report.seq + u64::from(*keep) <= history.seq()
                        );
                        assert_eq!(store.oldest_seq(), report.seq);
                        if held.is_none() {
                            assert!(!report.waiting_for_readers, "no snapshot is held");
                        }
                    }
                    Ok(None) => assert_eq!(store.oldest_seq(), before),
                    Err(error) => panic!("compaction failed: {error}"),
                }
                if let Some(snapshot) = &held {
                    let seq = snapshot.seq();
                    let at = format!("held across a compaction at sequence number {seq}");
                    let model = &history.states[seq as usize];
                    check_keys(
                        Reader::Snapshot(snapshot),
                        model,
                        &history.paths,
                        1,
                        true,
                        &at,
                    );
                }
            }
            Step::Checkpoint => {
                if !matches!(disk, Disk::Memory(_)) {
                    let written = store.checkpoint().expect("the checkpoint is written");
                    if let Some(info) = written {
                        assert_eq!(info.seq, history.seq());
                    }
                }
            }
        }
        check_now(&store, &history);
        check_past(&store, &history);
    }
    let report = store.verify().expect("the store verifies");
    assert_eq!(report.transactions, retained(&store, &history));
    store.close().expect("close");
}

/// Transactions the journal holds: all of them, or after a compaction its base and what
/// followed.
fn retained(store: &Store, history: &History) -> Seq {
    match store.oldest_seq() {
        0 => history.seq(),
        oldest => history.seq() - oldest + 1,
    }
}

fn key_ref() -> impl Strategy<Value = KeyRef> {
    let names = prop_oneof![
        1 => Just(0usize),
        5 => Just(1usize),
        4 => Just(2usize),
        2 => Just(3usize),
    ]
    .prop_flat_map(|depth| proptest::collection::vec(select(KEY_NAMES), depth));
    (select(ROOTS), names).prop_map(|(root, names)| KeyRef {
        root,
        names: names.into_iter().map(str::to_string).collect(),
    })
}

/// A target; `child_weight` (of 4) is how often an existing key's new or existing child.
fn target(child_weight: u32) -> impl Strategy<Value = Target> {
    let child = prop_oneof![
        4 - child_weight => Just(None),
        child_weight => select(KEY_NAMES).prop_map(Some),
    ];
    let pick = (select(ROOTS), any::<Index>(), any::<bool>(), child).prop_map(
        |(root, pick, lower, child)| Pick {
            root,
            pick,
            lower,
            child,
        },
    );
    prop_oneof![
        1 => key_ref().prop_map(Target::Path),
        4 => pick.clone().prop_map(Target::Existing),
        2 => pick.prop_map(Target::Known),
    ]
}

fn layer_pick() -> impl Strategy<Value = LayerPick> {
    prop_oneof![
        3 => (any::<Index>(), any::<bool>())
            .prop_map(|(pick, upper)| LayerPick::Existing { pick, upper }),
        1 => select(LAYER_NAMES).prop_map(LayerPick::Named),
    ]
}

/// The layer a drop names: mostly a role layer that exists.
fn drop_pick() -> impl Strategy<Value = LayerPick> {
    prop_oneof![
        3 => (any::<Index>(), any::<bool>())
            .prop_map(|(pick, upper)| LayerPick::Role { pick, upper }),
        1 => layer_pick(),
    ]
}

/// The name a value delete names: mostly one the key holds.
fn name_pick() -> impl Strategy<Value = NamePick> {
    prop_oneof![
        3 => any::<Index>().prop_map(NamePick::Held),
        1 => select(VALUE_NAMES).prop_map(NamePick::Fixed),
    ]
}

/// The layer a value op names: none (the plain call, which writes `base`) or one.
fn value_layer() -> impl Strategy<Value = Option<LayerPick>> {
    prop_oneof![2 => Just(None), 3 => layer_pick().prop_map(Some)]
}

/// Mostly a role layer's precedence, sometimes a built-in layer's.
fn precedence() -> impl Strategy<Value = u16> {
    prop_oneof![5 => select(PRECEDENCES), 1 => select(vec![BASE, POLICY])]
}

fn value() -> impl Strategy<Value = Value> {
    let empty_types = select(vec![
        ValueType::NONE,
        ValueType::SZ,
        ValueType::BINARY,
        ValueType::MULTI_SZ,
        ValueType(0x8000_0001),
    ]);
    prop_oneof![
        3 => "[a-zA-Zé😀 ]{0,12}".prop_map(|s| Value::string(&s)),
        2 => any::<u32>().prop_map(Value::dword),
        2 => any::<u64>().prop_map(Value::qword),
        2 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::binary),
        2 => proptest::collection::vec("[a-cA-C]{0,4}", 0..4)
            .prop_map(|items| Value::multi_string(&items)),
        2 => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|data| Value::new(ValueType(0x8000_0001), data)),
        1 => empty_types.prop_map(|ty| Value::new(ty, Vec::new())),
        // Up to 10 KB: a transaction of five fits a 64 KiB segment, but often not the rest
        // of one, so transactions roll the journal over mid-way.
        1 => (9usize..10_000, any::<u8>()).prop_map(|(len, byte)| Value::binary(vec![byte; len])),
    ]
}

fn op() -> impl Strategy<Value = GenOp> {
    prop_oneof![
        4 => (target(3), any::<bool>(), proptest::bool::weighted(0.25)).prop_map(
            |(key, via_handle, volatile)| Op::CreateKey {
                key,
                via_handle,
                volatile
            }
        ),
        2 => (target(1), any::<bool>())
            .prop_map(|(key, via_handle)| Op::DeleteKey { key, via_handle }),
        1 => (target(1), any::<bool>())
            .prop_map(|(key, via_handle)| Op::DeleteTree { key, via_handle }),
        6 => (target(0), value_layer(), select(VALUE_NAMES), value(), any::<bool>()).prop_map(
            |(key, layer, name, value, via_handle)| Op::SetValue {
                key,
                layer,
                name,
                value,
                via_handle
            }
        ),
        2 => (target(0), value_layer(), name_pick(), any::<bool>()).prop_map(
            |(key, layer, name, via_handle)| Op::DeleteValue {
                key,
                layer,
                name,
                via_handle
            }
        ),
        2 => (select(LAYER_NAMES), precedence())
            .prop_map(|(name, precedence)| Op::CreateLayer { name, precedence }),
        1 => drop_pick().prop_map(|layer| Op::DropLayer { layer }),
    ]
}

/// A large value set on an existing key: the journal fills and rolls over within a case.
fn grow() -> impl Strategy<Value = GenOp> {
    (
        target(0),
        select(VALUE_NAMES),
        8_000usize..VALUE_MAX_BYTES,
        any::<u8>(),
    )
        .prop_map(|(key, name, len, byte)| Op::SetValue {
            key,
            layer: None,
            name,
            value: Value::new(ValueType(0x8000_0001), vec![byte; len]),
            via_handle: true,
        })
}

fn steps(power_cuts: bool) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        2 => grow().prop_map(Step::One),
        12 => op().prop_map(Step::One),
        4 => proptest::collection::vec(op(), 1..6).prop_map(Step::Transaction),
        1 => any::<bool>().prop_map(move |cut| Step::Reopen { power_cut: cut && power_cuts }),
        1 => any::<Index>().prop_map(Step::ReadPast),
        1 => Just(Step::Checkpoint),
        1 => (0u8..4).prop_map(Step::Compact),
    ];
    let max_steps = if torture() { 150 } else { 80 };
    proptest::collection::vec(step, 1..max_steps)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if torture() { 1000 } else { 200 },
        max_shrink_iters: 4000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// On real files: the store behaves as the model after every step, at every sequence number.
    #[test]
    fn store_matches_the_model_at_every_sequence_number(steps in steps(false)) {
        let dir = TempDir::new().unwrap();
        run(&steps, Disk::Real(dir));
    }

    /// On the simulated disk with power cuts: under SyncPolicy::Always nothing acknowledged is
    /// lost, so the model is unchanged by a power cut (but for volatile keys, as at any open).
    #[test]
    fn power_cuts_lose_nothing_acknowledged(steps in steps(true)) {
        run(&steps, Disk::Sim(SimVfs::new()));
    }

    /// An in-memory store, with flushes and boots from the image in the mix: the model
    /// holds after every step, and a boot brings back exactly what was flushed.
    #[test]
    fn in_memory_store_matches_the_model_across_flushes_and_boots(steps in steps(false)) {
        run(&steps, Disk::Memory(VecImage::new()));
    }
}

fn key(names: &[&str]) -> KeyRef {
    KeyRef {
        root: "HKLM",
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn set_in(layer: Option<&str>, names: &[&str], name: &'static str, n: u32) -> Op {
    Op::SetValue {
        key: key(names),
        layer: layer.map(str::to_string),
        name,
        value: Value::dword(n),
        via_handle: false,
    }
}

/// The model's own rules on a fixed sequence, so a model bug cannot hide behind the store
/// agreeing with it.
#[test]
fn the_model_predicts_registry_rules() {
    let mut model = Model::new();
    let create = |names| Op::CreateKey {
        key: key(names),
        via_handle: false,
        volatile: false,
    };
    assert_eq!(model.apply(&create(&["a", "aa"]), 2), Ok(true));
    assert_eq!(model.apply(&create(&["A", "AA"]), 2), Ok(false));
    assert_eq!(model.apply(&create(&["A", "A_"]), 2), Ok(true));
    assert_eq!(model.children(&vec!["A".into()]), ["aa", "A_"]);
    let delete = Op::DeleteKey {
        key: key(&["A"]),
        via_handle: false,
    };
    assert_eq!(model.apply(&delete, 2), Err(Expected::HasSubkeys));
    let delete_root = Op::DeleteTree {
        key: key(&[]),
        via_handle: false,
    };
    assert_eq!(model.apply(&delete_root, 2), Err(Expected::HiveRoot));
    let before = model.clone();
    let failing = [
        set_in(None, &["a"], "v", 1),
        Op::DeleteValue {
            key: key(&["a"]),
            layer: None,
            name: "w",
            via_handle: false,
        },
    ];
    assert_eq!(model.apply_all(&failing, 3), Err(Expected::ValueNotFound));
    assert_eq!(model, before, "a failed transaction changes nothing");
    let both = [set_in(None, &["a"], "v", 1), set_in(None, &["a"], "V", 2)];
    assert_eq!(model.apply_all(&both, 3), Ok(true));
    assert_eq!(
        model.values(&vec!["A".into()]),
        [("v".to_string(), Value::dword(2))]
    );
}

/// The model's layer rules: precedence decides the effective value and its spelling, a drop
/// removes a layer's values everywhere, names are case-insensitive, built-ins stay.
#[test]
fn the_model_predicts_layer_rules() {
    let mut model = Model::new();
    let create_layer = |name, precedence| Op::CreateLayer { name, precedence };
    let drop_layer = |name: &str| Op::DropLayer {
        layer: name.to_string(),
    };
    let a = vec!["A".to_string()];
    assert_eq!(model.apply(&create(&["a"]), 2), Ok(true));
    assert_eq!(
        model.apply(&set_in(Some("web"), &["a"], "v", 1), 3),
        Err(Expected::LayerNotFound)
    );
    assert_eq!(
        model.apply(&set_in(Some("web"), &["b"], "v", 1), 3),
        Err(Expected::KeyNotFound),
        "the key is checked before the layer"
    );
    assert_eq!(model.apply(&create_layer("web", 7), 3), Ok(true));
    assert_eq!(
        model.apply(&create_layer("WEB", 8), 4),
        Err(Expected::LayerExists)
    );
    assert_eq!(
        model.apply(&create_layer("db", 7), 4),
        Err(Expected::PrecedenceTaken)
    );
    assert_eq!(
        model.apply(&create_layer("db", 0), 4),
        Err(Expected::PrecedenceTaken)
    );
    assert_eq!(
        model.apply(&drop_layer("Policy"), 4),
        Err(Expected::BuiltinLayer)
    );
    assert_eq!(model.apply(&set_in(None, &["a"], "v", 1), 4), Ok(true));
    assert_eq!(
        model.apply(&set_in(Some("Web"), &["a"], "V", 2), 5),
        Ok(true)
    );
    assert_eq!(
        model.apply(&set_in(Some("BASE"), &["a"], "w", 3), 6),
        Ok(true)
    );
    assert_eq!(model.values(&a)[0], ("V".to_string(), Value::dword(2)));
    assert_eq!(model.values_in(&a, BASE).len(), 2);
    assert_eq!(
        model
            .stack(&a, "v")
            .iter()
            .map(|v| v.precedence)
            .collect::<Vec<_>>(),
        [7, 0]
    );
    assert_eq!(model.apply(&drop_layer("wEb"), 7), Ok(true));
    assert_eq!(model.values(&a)[0], ("v".to_string(), Value::dword(1)));
    assert_eq!(model.apply(&create_layer("web", 100), 8), Ok(true));
    assert!(
        model.values_in(&a, 100).is_empty(),
        "a new layer starts empty"
    );
    assert_eq!(model.layer_list()[1].created, 8);
}

/// The model's volatile rules: no non-volatile key under a volatile one, and a reopen
/// forgets volatile keys.
#[test]
fn the_model_predicts_volatile_rules() {
    let mut model = Model::new();
    let create_volatile = |names| Op::CreateKey {
        key: key(names),
        via_handle: false,
        volatile: true,
    };
    assert_eq!(model.apply(&create(&["a"]), 2), Ok(true));
    assert_eq!(
        model.apply(&create_volatile(&["a", "aa", "a"]), 3),
        Ok(true)
    );
    assert_eq!(model.apply(&create(&["a", "aa"]), 4), Ok(false));
    assert_eq!(
        model.apply(&create(&["a", "aa", "é"]), 4),
        Err(Expected::VolatileParent)
    );
    assert_eq!(
        model.apply(&set_in(None, &["a", "aa"], "v", 1), 4),
        Ok(true)
    );
    model.forget_volatile();
    assert_eq!(model.keys.len(), 2, "Machine and A remain");
}

fn create(names: &[&str]) -> Op {
    Op::CreateKey {
        key: key(names),
        via_handle: false,
        volatile: false,
    }
}
