//! Model-based property tests of `hivelog::Store`: random sequences of key and value changes,
//! transactions, reopens and power cuts, checked after every step against a plain in-memory
//! model of the registry, at the newest sequence number and at every earlier one.
//!
//! The model is a map from folded path (uppercased components below the `Machine` hive) to the
//! key's name as first written and its values (folded value name -> name as first written and
//! value). It predicts every error (missing key, subkeys present, hive root, missing value),
//! the sequence number of every commit, enumeration order (uppercase, then UTF-16 code units)
//! and the names Windows would keep (the first spelling of a key or value name).
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
use hivelog::{Access, Error, Options, Seq, Store, SyncPolicy, Value, ValueType};
use hivelog_index::fold::{cmp_utf16, fold};
use proptest::prelude::*;
use proptest::sample::select;
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
    pick: proptest::sample::Index,
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

#[derive(Debug, Clone)]
enum Op<K = KeyRef> {
    /// `via_handle`: through `create_subkey` of a handle on the hive root.
    CreateKey { key: K, via_handle: bool },
    /// `via_handle`: through `delete_subkey` of a handle on the hive root.
    DeleteKey { key: K, via_handle: bool },
    /// `via_handle`: through `delete_subkey_all` of a handle on the hive root.
    DeleteTree { key: K, via_handle: bool },
    /// `via_handle`: through `open_key` + `set_raw_value`, else a transaction of one.
    SetValue {
        key: K,
        name: &'static str,
        value: Value,
        via_handle: bool,
    },
    /// `via_handle`: through `open_key` + `delete_value`, else a transaction of one.
    DeleteValue {
        key: K,
        name: &'static str,
        via_handle: bool,
    },
}

impl Op<Target> {
    fn resolve(&self, model: &Model, known: &BTreeSet<Folded>) -> Op {
        match self {
            Op::CreateKey { key, via_handle } => Op::CreateKey {
                key: key.resolve(model, known),
                via_handle: *via_handle,
            },
            Op::DeleteKey { key, via_handle } => Op::DeleteKey {
                key: key.resolve(model, known),
                via_handle: *via_handle,
            },
            Op::DeleteTree { key, via_handle } => Op::DeleteTree {
                key: key.resolve(model, known),
                via_handle: *via_handle,
            },
            Op::SetValue {
                key,
                name,
                value,
                via_handle,
            } => Op::SetValue {
                key: key.resolve(model, known),
                name,
                value: value.clone(),
                via_handle: *via_handle,
            },
            Op::DeleteValue {
                key,
                name,
                via_handle,
            } => Op::DeleteValue {
                key: key.resolve(model, known),
                name,
                via_handle: *via_handle,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    One(Op<Target>),
    Transaction(Vec<Op<Target>>),
    /// Close and open again (on the simulated disk, `power_cut` cuts the power instead).
    Reopen {
        power_cut: bool,
    },
    /// A detailed read of one past sequence number (every value name, both handle kinds).
    ReadPast(proptest::sample::Index),
}

/// Folded names below the hive; the empty path is the hive root.
type Folded = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
struct ModelKey {
    /// As first written.
    name: String,
    /// Folded value name -> (name as first written, value).
    values: BTreeMap<String, (String, Value)>,
}

/// The registry below `Machine` at one sequence number.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    keys: BTreeMap<Folded, ModelKey>,
}

/// The errors the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    KeyNotFound,
    HasSubkeys,
    HiveRoot,
    ValueNotFound,
}

fn kind_of(error: &Error) -> Expected {
    match error {
        Error::KeyNotFound { .. } => Expected::KeyNotFound,
        Error::HasSubkeys { .. } => Expected::HasSubkeys,
        Error::HiveRoot { .. } => Expected::HiveRoot,
        Error::ValueNotFound { .. } => Expected::ValueNotFound,
        other => panic!("an error the model never predicts: {other:?} ({other})"),
    }
}

impl Model {
    fn new() -> Model {
        let root = ModelKey {
            name: "Machine".into(),
            values: BTreeMap::new(),
        };
        Model {
            keys: BTreeMap::from([(Vec::new(), root)]),
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

    fn values(&self, path: &Folded) -> Vec<(String, Value)> {
        let mut values: Vec<(String, Value)> = self.keys[path].values.values().cloned().collect();
        values.sort_by(|a, b| cmp_utf16(&fold(&a.0), &fold(&b.0)));
        values
    }

    /// Applies `op`; returns whether it writes a record (changes the store's sequence number).
    fn apply(&mut self, op: &Op) -> Result<bool, Expected> {
        match op {
            Op::CreateKey { key, .. } => {
                let mut created = false;
                for depth in 1..=key.names.len() {
                    let prefix: Folded = key.folded()[..depth].to_vec();
                    self.keys.entry(prefix).or_insert_with(|| {
                        created = true;
                        ModelKey {
                            name: key.names[depth - 1].clone(),
                            values: BTreeMap::new(),
                        }
                    });
                }
                Ok(created)
            }
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
                key, name, value, ..
            } => {
                let values = &mut self.existing(key)?.values;
                let entry = values
                    .entry(fold(name))
                    .or_insert_with(|| (name.to_string(), value.clone()));
                entry.1 = value.clone();
                Ok(true)
            }
            Op::DeleteValue { key, name, .. } => {
                let values = &mut self.existing(key)?.values;
                values.remove(&fold(name)).ok_or(Expected::ValueNotFound)?;
                Ok(true)
            }
        }
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

    /// Applies every op or none; returns whether any wrote a record.
    fn apply_all(&mut self, ops: &[Op]) -> Result<bool, Expected> {
        let mut next = self.clone();
        let mut wrote = false;
        for op in ops {
            wrote |= next.apply(op)?;
        }
        *self = next;
        Ok(wrote)
    }
}

/// Runs one op on the store, by the route the op names.
fn run_one(store: &Store, op: &Op) -> Result<(), Error> {
    match op {
        Op::CreateKey { key, via_handle } => {
            if *via_handle {
                let root = store.open_key_with(key.root, Access::KEY_ALL_ACCESS)?;
                root.create_subkey(&key.relative()).map(drop)
            } else {
                store.create_key(&key.text()).map(drop)
            }
        }
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
            name,
            value,
            via_handle: true,
        } => store
            .open_key_with(&key.text(), Access::KEY_ALL_ACCESS)?
            .set_raw_value(name, value)
            .map(drop),
        Op::DeleteValue {
            key,
            name,
            via_handle: true,
        } => store
            .open_key_with(&key.text(), Access::KEY_ALL_ACCESS)?
            .delete_value(name)
            .map(drop),
        Op::SetValue { .. } | Op::DeleteValue { .. } => {
            run_transaction(store, std::slice::from_ref(op)).map(drop)
        }
    }
}

fn run_transaction(store: &Store, ops: &[Op]) -> Result<Seq, Error> {
    let mut tx = store.transaction();
    for op in ops {
        match op {
            Op::CreateKey { key, .. } => tx.create_key(&key.text()),
            Op::DeleteKey { key, .. } => tx.delete_key(&key.text()),
            Op::DeleteTree { key, .. } => tx.delete_tree(&key.text()),
            Op::SetValue {
                key, name, value, ..
            } => tx.set_value(&key.text(), name, value),
            Op::DeleteValue { key, name, .. } => tx.delete_value(&key.text(), name),
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

/// The store at its newest state equals the model: every key ever created exists or not as
/// predicted, with its subkeys and values in order, and every single read agrees.
fn check_now(store: &Store, history: &History) {
    let model = history.now();
    let seq = history.seq();
    assert_eq!(store.seq(), seq, "sequence number");
    let stats = store.stats();
    let values: usize = model.keys.values().map(|key| key.values.len()).sum();
    // The model holds `Machine`'s keys; `Users` is one more key, without values.
    assert_eq!(
        (stats.seq, stats.keys, stats.values),
        (seq, model.keys.len() as u64 + 1, values as u64),
        "stats"
    );
    for (i, path) in history.paths.iter().enumerate() {
        let text = spelled(path, i % 2 == 1);
        match (model.keys.get(path), store.open_key(&text)) {
            (None, Err(Error::KeyNotFound { .. })) => {
                assert!(matches!(
                    store.get_raw_value(&text, "v"),
                    Err(Error::KeyNotFound { .. })
                ));
            }
            (Some(_), Ok(key)) => {
                assert_eq!(key.enum_keys().unwrap(), model.children(path), "{text}");
                assert_eq!(key.enum_values().unwrap(), model.values(path), "{text}");
                for name in VALUE_NAMES {
                    let expected = model.keys[path].values.get(&fold(name)).map(|v| &v.1);
                    let by_handle = key.get_raw_value(name);
                    let by_path = store.get_raw_value(&text, &name.to_lowercase());
                    for got in [by_handle, by_path] {
                        match (expected, got) {
                            (Some(value), Ok(got)) => assert_eq!(&got, value, "{text} {name:?}"),
                            (None, Err(Error::ValueNotFound { .. })) => {}
                            (expected, got) => {
                                panic!("{text} value {name:?}: model {expected:?}, store {got:?}")
                            }
                        }
                    }
                }
            }
            (expected, got) => panic!("key {text}: model {expected:?}, store {got:?}"),
        }
    }
}

/// Every past sequence number reads as the model's state at that number: existence, subkeys
/// and values of every path ever created.
fn check_past(store: &Store, history: &History) {
    let last = history.seq();
    assert!(matches!(
        store.snapshot_at(last + 1),
        Err(Error::FutureSeq { .. })
    ));
    let before_hives = store.snapshot_at(0).unwrap();
    assert!(matches!(
        before_hives.open_key("HKLM"),
        Err(Error::KeyNotFound { .. })
    ));
    for seq in 1..=last {
        let snapshot = store.snapshot_at(seq).unwrap();
        assert_eq!(snapshot.seq(), seq);
        let model = &history.states[seq as usize];
        for path in &history.paths {
            let text = spelled(path, seq % 2 == 0);
            match (model.keys.get(path), snapshot.open_key(&text)) {
                (None, Err(Error::KeyNotFound { .. })) => {}
                (Some(_), Ok(key)) => {
                    assert_eq!(key.snapshot_seq(), Some(seq));
                    let at = format!("{text} at sequence number {seq} (last {last})");
                    assert_eq!(key.enum_keys().unwrap(), model.children(path), "{at}");
                    assert_eq!(key.enum_values().unwrap(), model.values(path), "{at}");
                }
                (expected, got) => panic!(
                    "key {text} at sequence number {seq} (last {last}): model {expected:?}, store {got:?}"
                ),
            }
        }
    }
}

/// Reads every value name of every key at `seq` through the snapshot, by path and by handle.
fn check_reads_at(store: &Store, history: &History, seq: Seq) {
    let snapshot = store.snapshot_at(seq).unwrap();
    let model = &history.states[seq as usize];
    for path in model.keys.keys() {
        let text = spelled(path, false);
        let key = snapshot.open_key(&text).unwrap();
        for name in VALUE_NAMES {
            let expected = model.keys[path]
                .values
                .get(&fold(name))
                .map(|v| v.1.clone());
            let by_path = snapshot.get_raw_value(&text, name).ok();
            let by_handle = key.get_raw_value(&name.to_lowercase()).ok();
            assert_eq!(by_path, expected, "{text} {name:?} at {seq}");
            assert_eq!(by_handle, expected, "{text} {name:?} at {seq}");
        }
    }
}

/// Applies one change step to the store and the model and checks they agree on the outcome.
fn change(store: &Store, history: &mut History, ops: &[Op<Target>], as_transaction: bool) {
    let seq_before = store.seq();
    let mut model = history.now().clone();
    let ops = resolve_all(&model, &history.paths, ops);
    let ops = &ops[..];
    let predicted = model.apply_all(ops);
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
/// (as far as they succeed), so that a transaction can act on keys it creates.
fn resolve_all(model: &Model, known: &BTreeSet<Folded>, ops: &[Op<Target>]) -> Vec<Op> {
    let mut tentative = model.clone();
    let mut known = known.clone();
    ops.iter()
        .map(|op| {
            let op = op.resolve(&tentative, &known);
            let _ = tentative.apply(&op);
            known.extend(tentative.keys.keys().cloned());
            op
        })
        .collect()
}

/// Where a property's store lives.
enum Disk {
    Real(TempDir),
    Sim(SimVfs),
}

impl Disk {
    fn dir(&self) -> PathBuf {
        match self {
            Disk::Real(dir) => dir.path().to_path_buf(),
            Disk::Sim(_) => PathBuf::from("/store"),
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
            Disk::Real(_) => base,
            Disk::Sim(vfs) => Options {
                vfs: Arc::new(vfs.clone()),
                ..base
            },
        }
    }

    fn open(&self) -> Store {
        Store::open(self.dir(), self.options()).expect("the store opens")
    }
}

fn run(steps: &[Step], mut disk: Disk) {
    let mut store = disk.open();
    let mut history = History::new();
    check_now(&store, &history);
    for step in steps {
        match step {
            Step::One(op) => change(&store, &mut history, std::slice::from_ref(op), false),
            Step::Transaction(ops) => change(&store, &mut history, ops, true),
            Step::Reopen { power_cut } => {
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
                assert!(store.recovery_report().salvage.is_none());
                let report = store.verify().expect("the reopened store verifies");
                assert_eq!(report.last_seq, history.seq());
                assert_eq!(report.transactions, history.seq());
            }
            Step::ReadPast(index) => {
                let seq = 1 + index.index(history.seq() as usize) as Seq;
                check_reads_at(&store, &history, seq);
            }
        }
        check_now(&store, &history);
        check_past(&store, &history);
    }
    let report = store.verify().expect("the store verifies");
    assert_eq!(report.transactions, history.seq());
    store.close().expect("close");
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
    let pick = (
        select(ROOTS),
        any::<proptest::sample::Index>(),
        any::<bool>(),
        child,
    )
        .prop_map(|(root, pick, lower, child)| Pick {
            root,
            pick,
            lower,
            child,
        });
    prop_oneof![
        1 => key_ref().prop_map(Target::Path),
        4 => pick.clone().prop_map(Target::Existing),
        2 => pick.prop_map(Target::Known),
    ]
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

fn op() -> impl Strategy<Value = Op<Target>> {
    prop_oneof![
        4 => (target(3), any::<bool>())
            .prop_map(|(key, via_handle)| Op::CreateKey { key, via_handle }),
        2 => (target(1), any::<bool>())
            .prop_map(|(key, via_handle)| Op::DeleteKey { key, via_handle }),
        1 => (target(1), any::<bool>())
            .prop_map(|(key, via_handle)| Op::DeleteTree { key, via_handle }),
        6 => (target(0), select(VALUE_NAMES), value(), any::<bool>()).prop_map(
            |(key, name, value, via_handle)| Op::SetValue {
                key,
                name,
                value,
                via_handle
            }
        ),
        2 => (target(0), select(VALUE_NAMES), any::<bool>()).prop_map(
            |(key, name, via_handle)| Op::DeleteValue {
                key,
                name,
                via_handle
            }
        ),
    ]
}

/// A large value set on an existing key: the journal fills and rolls over within a case.
fn grow() -> impl Strategy<Value = Op<Target>> {
    (
        target(0),
        select(VALUE_NAMES),
        8_000usize..VALUE_MAX_BYTES,
        any::<u8>(),
    )
        .prop_map(|(key, name, len, byte)| Op::SetValue {
            key,
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
        1 => any::<proptest::sample::Index>().prop_map(Step::ReadPast),
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
    /// lost, so the model is unchanged by a power cut.
    #[test]
    fn power_cuts_lose_nothing_acknowledged(steps in steps(true)) {
        run(&steps, Disk::Sim(SimVfs::new()));
    }
}

/// The model's own rules on a fixed sequence, so a model bug cannot hide behind the store
/// agreeing with it.
#[test]
fn the_model_predicts_registry_rules() {
    let key = |names: &[&str]| KeyRef {
        root: "HKLM",
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let mut model = Model::new();
    let create = |names| Op::CreateKey {
        key: key(names),
        via_handle: false,
    };
    assert_eq!(model.apply(&create(&["a", "aa"])), Ok(true));
    assert_eq!(model.apply(&create(&["A", "AA"])), Ok(false));
    assert_eq!(model.apply(&create(&["A", "A_"])), Ok(true));
    assert_eq!(model.children(&vec!["A".into()]), ["aa", "A_"]);
    let delete = Op::DeleteKey {
        key: key(&["A"]),
        via_handle: false,
    };
    assert_eq!(model.apply(&delete), Err(Expected::HasSubkeys));
    let delete_root = Op::DeleteTree {
        key: key(&[]),
        via_handle: false,
    };
    assert_eq!(model.apply(&delete_root), Err(Expected::HiveRoot));
    let set = |name, n| Op::SetValue {
        key: key(&["a"]),
        name,
        value: Value::dword(n),
        via_handle: false,
    };
    let before = model.clone();
    let failing = [
        set("v", 1),
        Op::DeleteValue {
            key: key(&["a"]),
            name: "w",
            via_handle: false,
        },
    ];
    assert_eq!(model.apply_all(&failing), Err(Expected::ValueNotFound));
    assert_eq!(model, before, "a failed transaction changes nothing");
    assert_eq!(model.apply_all(&[set("v", 1), set("V", 2)]), Ok(true));
    assert_eq!(
        model.values(&vec!["A".into()]),
        [("v".to_string(), Value::dword(2))]
    );
}
