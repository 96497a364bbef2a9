//! Index behaviour: snapshots, incarnations, tombstones, rollback and GC, and a model-based
//! property test that checks every past snapshot after every transaction.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::fold::{cmp_utf16, fold};
use crate::{
    ArchivedIndexImage, Export, ExportRules, Index, KeyId, LayerId, LayerSel, NodeId, Seq,
};

const BASE: LayerId = 0;

fn key(index: &Index<u32>, path: &str, at: Seq) -> Option<KeyId> {
    index.key_by_path(&fold(path), at).map(|k| k.id)
}

fn node(index: &Index<u32>, path: &str) -> NodeId {
    index.find(&fold(path)).expect("path known")
}

/// Creates `path` (parents must exist) in the pending transaction.
fn create(index: &mut Index<u32>, parent: &str, name: &str, id: KeyId) -> NodeId {
    let parent = if parent.is_empty() {
        index.root()
    } else {
        node(index, parent)
    };
    index.create_key(parent, name, id, ())
}

#[test]
fn keys_have_history_and_new_ids_on_recreation() {
    let mut index = Index::new();
    index.begin(1);
    create(&mut index, "", "Machine", 1);
    let app = create(&mut index, "machine", "App", 2);
    index.set_value(app, BASE, &fold("Version"), 10);
    assert_eq!(index.commit(), 1);

    index.begin(2);
    index.delete_tree(node(&index, "MACHINE\\APP"));
    index.commit();

    index.begin(3);
    let again = create(&mut index, "machine", "APP", 3);
    assert_eq!(again, app, "the same path is the same node");
    index.commit();

    assert_eq!(key(&index, "machine\\app", 0), None);
    assert_eq!(key(&index, "machine\\app", 1), Some(2));
    assert_eq!(key(&index, "machine\\app", 2), None);
    assert_eq!(key(&index, "machine\\app", 3), Some(3));
    assert_eq!(
        index.value_at(app, LayerSel::Only(BASE), "VERSION", 1),
        Some(10)
    );
    assert_eq!(
        index.value_at(app, LayerSel::Only(BASE), "VERSION", 2),
        None
    );
    assert_eq!(
        index.value_at(app, LayerSel::Only(BASE), "VERSION", 3),
        None,
        "values die with their key"
    );
    assert_eq!(index.key_at(app, 1).map(|k| k.name), Some("App"));
    assert_eq!(index.key_at(app, 3).map(|k| k.name), Some("APP"));
    assert_eq!(index.display_path(app, 1).as_deref(), Some("Machine\\App"));
    assert_eq!(index.node_of(2), Some(app), "an id keeps naming its node");
    assert_eq!(index.key_at(app, 3).map(|k| k.id), Some(3));
}

#[test]
fn children_enumerate_in_windows_name_order() {
    let mut index = Index::new();
    index.begin(1);
    create(&mut index, "", "M", 1);
    for (i, name) in ["b", "A_B", "aab", "Zeta", "alpha"].iter().enumerate() {
        create(&mut index, "m", name, 10 + i as u64);
    }
    index.commit();
    let names: Vec<&str> = index
        .children_at(node(&index, "m"), 1)
        .map(|k| k.name)
        .collect();
    // Upcased: AAB < ALPHA < A_B (L is 0x4C, _ is 0x5F) < B < ZETA.
    assert_eq!(names, ["aab", "alpha", "A_B", "b", "Zeta"]);
}

#[test]
fn a_subtree_tombstone_swaps_the_subtree_atomically() {
    let mut index = Index::new();
    index.begin(1);
    create(&mut index, "", "M", 1);
    let anchor = create(&mut index, "m", "Anchor", 2);
    let old_child = create(&mut index, "m\\anchor", "Old", 3);
    create(&mut index, "m\\anchor\\old", "Deep", 4);
    index.set_value(anchor, BASE, "A", 1);
    index.set_value(old_child, BASE, "X", 2);
    index.commit();

    // A restore: tombstone, then the replacement subtree, in one transaction.
    index.begin(2);
    index.clear_subtree(anchor);
    let new_child = create(&mut index, "m\\anchor", "New", 5);
    index.set_value(anchor, BASE, "B", 3);
    index.set_value(new_child, BASE, "Y", 4);
    index.commit();

    let names = |at| -> Vec<String> {
        index
            .children_at(anchor, at)
            .map(|k| k.name.to_string())
            .collect()
    };
    assert_eq!(names(1), ["Old"]);
    assert_eq!(names(2), ["New"]);
    assert_eq!(
        key(&index, "m\\anchor", 2),
        Some(2),
        "the anchor keeps its id"
    );
    assert_eq!(key(&index, "m\\anchor\\old\\deep", 1), Some(4));
    assert_eq!(key(&index, "m\\anchor\\old\\deep", 2), None);
    assert_eq!(
        index.value_at(anchor, LayerSel::Only(BASE), "A", 1),
        Some(1)
    );
    assert_eq!(index.value_at(anchor, LayerSel::Only(BASE), "A", 2), None);
    assert_eq!(
        index.value_at(anchor, LayerSel::Only(BASE), "B", 2),
        Some(3)
    );
    assert_eq!(
        index.value_at(old_child, LayerSel::Only(BASE), "X", 1),
        Some(2)
    );
    assert_eq!(index.tombstones(anchor), &[2]);
}

#[test]
fn rollback_restores_exactly() {
    let mut index = Index::new();
    index.begin(1);
    create(&mut index, "", "M", 1);
    let a = create(&mut index, "m", "A", 2);
    index.set_value(a, BASE, "V", 1);
    index.commit();
    let before = snapshot_all(&index, &["m", "m\\a", "m\\a\\b", "m\\c"], 1);

    index.begin(2);
    index.set_value(a, BASE, "V", 2);
    index.set_value(a, BASE, "V", 3);
    index.set_value(a, 7, "W", 4);
    create(&mut index, "m\\a", "B", 3);
    create(&mut index, "m", "C", 4);
    index.clear_subtree(a);
    index.delete_tree(node(&index, "m\\c"));
    create(&mut index, "m", "c", 5);
    index.rollback();

    assert_eq!(
        snapshot_all(&index, &["m", "m\\a", "m\\a\\b", "m\\c"], 5),
        before
    );
    assert!(
        index.find(&fold("m\\a\\b")).is_none(),
        "created nodes are removed"
    );
    assert_eq!(index.node_of(3), None);
    assert!(index.tombstones(a).is_empty());
    index.begin(2);
    create(&mut index, "m", "C", 3);
    index.commit();
    assert_eq!(key(&index, "m\\c", 2), Some(3));
}

type Seen = Vec<(String, Option<KeyId>, Vec<(String, LayerId, u32)>)>;

fn snapshot_all(index: &Index<u32>, paths: &[&str], at: Seq) -> Seen {
    paths
        .iter()
        .map(|path| {
            let node = index.find(&fold(path));
            let id = node.and_then(|n| index.key_at(n, at)).map(|k| k.id);
            let values = node
                .filter(|_| id.is_some())
                .map(|n| {
                    index
                        .values_at(n, at)
                        .iter()
                        .map(|v| (v.name.to_string(), v.layer, v.value))
                        .collect()
                })
                .unwrap_or_default();
            (path.to_string(), id, values)
        })
        .collect()
}

// ---- Model-based property test ----

/// The model: for every sequence number, the whole state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ModelKey {
    id: KeyId,
    name: String,
    attrs: u32,
    values: BTreeMap<(String, LayerId), u32>,
}

impl ModelKey {
    /// The effective value of `name`: the one in the highest layer that has it.
    fn effective(&self, name: &str) -> Option<u32> {
        self.values
            .iter()
            .filter(|((n, _), _)| n == name)
            .max_by_key(|((_, layer), _)| *layer)
            .map(|(_, &value)| value)
    }
}

/// The index the model test drives: values and key attributes are plain numbers.
type ModelIndex = Index<u32, u32>;

type ModelState = BTreeMap<Vec<String>, ModelKey>;

#[derive(Debug, Clone)]
enum Op {
    Create(Vec<String>),
    Delete(Vec<String>),
    DeleteTree(Vec<String>),
    Clear(Vec<String>),
    Set(Vec<String>, String, LayerId, u32),
    Unset(Vec<String>, String, LayerId),
    Attrs(Vec<String>, u32),
    DropLayer(LayerId),
}

#[derive(Debug, Clone)]
enum Step {
    Txn(Vec<Op>, bool),
    Gc,
    /// Collect in steps of two node slots, with a transaction committed between the first
    /// two steps.
    GcInSteps(Vec<Op>),
    /// Export the newest snapshot in small steps and load it back; with ops, a transaction
    /// commits between the export's steps (the loaded index is checked, the original kept),
    /// without, the loaded index replaces the original for the steps that follow.
    Checkpoint(Option<Vec<Op>>),
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("A"),
        Just("b"),
        Just("B_x"),
        Just("é"),
        Just("É")
    ]
    .prop_map(str::to_string)
}

fn path_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name_strategy(), 1..4)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => path_strategy().prop_map(Op::Create),
        1 => path_strategy().prop_map(Op::Delete),
        1 => path_strategy().prop_map(Op::DeleteTree),
        1 => path_strategy().prop_map(Op::Clear),
        4 => (path_strategy(), name_strategy(), 0..3u16, any::<u32>())
            .prop_map(|(p, n, l, v)| Op::Set(p, n, l, v)),
        1 => (path_strategy(), name_strategy(), 0..3u16).prop_map(|(p, n, l)| Op::Unset(p, n, l)),
        1 => (path_strategy(), any::<u32>()).prop_map(|(p, a)| Op::Attrs(p, a)),
        1 => (0..3u16).prop_map(Op::DropLayer),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (prop::collection::vec(op_strategy(), 1..6), prop::bool::weighted(0.8))
            .prop_map(|(ops, commit)| Step::Txn(ops, commit)),
        1 => Just(Step::Gc),
        1 => prop::collection::vec(op_strategy(), 1..6).prop_map(Step::GcInSteps),
        1 => prop::option::of(prop::collection::vec(op_strategy(), 1..6)).prop_map(Step::Checkpoint),
    ]
}

/// Exports `index` as of `at`, `budget` nodes per step, running `between` after the first
/// step; returns the image's bytes.
fn export_image(
    index: &mut ModelIndex,
    at: Seq,
    budget: usize,
    mut between: impl FnMut(&mut ModelIndex),
) -> rkyv::util::AlignedVec {
    let mut export = Export::new(at);
    let rules = ExportRules {
        keep_key: &|_| true,
        value: &|v: &u32| Some(*v),
        attrs: &|a: &u32| Some(*a),
    };
    let mut first = true;
    while !index.export_step(&mut export, budget, &rules) {
        if first {
            between(index);
            first = false;
        }
    }
    let image = index.finish_export(export);
    rkyv::to_bytes::<rkyv::rancor::Error>(&image).expect("serialize")
}

fn load_image(bytes: &[u8]) -> ModelIndex {
    let image = rkyv::access::<ArchivedIndexImage<u32, u32>, rkyv::rancor::Error>(bytes)
        .expect("a valid image");
    let index: ModelIndex =
        Index::from_image(image, |v| Ok(v.to_native()), |a| Ok(a.to_native())).expect("loads");
    assert_eq!(
        index.find(""),
        Some(index.root()),
        "the root is found by its path"
    );
    index
}

fn folded(path: &[String]) -> Vec<String> {
    path.iter().map(|c| fold(c)).collect()
}

/// Applies `op` to the model and the index alike; ops that would be invalid (the registry
/// refuses them before they reach the index) are skipped in both.
fn apply(op: &Op, model: &mut ModelState, index: &mut ModelIndex, next_id: &mut KeyId) {
    let node_of = |index: &ModelIndex, path: &[String]| index.find(&folded(path).join("\\"));
    match op {
        Op::Create(path) => {
            let key = folded(path);
            let parent_ok = key.len() == 1 || model.contains_key(&key[..key.len() - 1]);
            if model.contains_key(&key) || !parent_ok {
                return;
            }
            let parent = if key.len() == 1 {
                index.root()
            } else {
                node_of(index, &path[..path.len() - 1]).expect("parent node")
            };
            let name = path.last().expect("non-empty path");
            let attrs = *next_id as u32 * 7;
            index.create_key(parent, name, *next_id, attrs);
            model.insert(
                key,
                ModelKey {
                    id: *next_id,
                    name: name.clone(),
                    attrs,
                    values: BTreeMap::new(),
                },
            );
            *next_id += 1;
        }
        Op::Delete(path) => {
            let key = folded(path);
            let has_children = model
                .keys()
                .any(|k| k.len() > key.len() && k.starts_with(&key));
            if !model.contains_key(&key) || has_children {
                return;
            }
            index.delete_key(node_of(index, path).expect("node"));
            model.remove(&key);
        }
        Op::DeleteTree(path) | Op::Clear(path) => {
            let key = folded(path);
            if !model.contains_key(&key) {
                return;
            }
            let node = node_of(index, path).expect("node");
            model.retain(|k, _| !(k.len() > key.len() && k.starts_with(&key)));
            if matches!(op, Op::DeleteTree(_)) {
                index.delete_tree(node);
                model.remove(&key);
            } else {
                index.clear_subtree(node);
                model.get_mut(&key).expect("anchor").values.clear();
            }
        }
        Op::Set(path, name, layer, value) => {
            let key = folded(path);
            let Some(entry) = model.get_mut(&key) else {
                return;
            };
            index.set_value(
                node_of(index, path).expect("node"),
                *layer,
                &fold(name),
                *value,
            );
            entry.values.insert((fold(name), *layer), *value);
        }
        Op::Unset(path, name, layer) => {
            let key = folded(path);
            let Some(entry) = model.get_mut(&key) else {
                return;
            };
            let existed = entry.values.remove(&(fold(name), *layer)).is_some();
            let deleted =
                index.delete_value(node_of(index, path).expect("node"), *layer, &fold(name));
            assert_eq!(deleted, existed);
        }
        Op::Attrs(path, attrs) => {
            let key = folded(path);
            let Some(entry) = model.get_mut(&key) else {
                return;
            };
            index.set_attrs(node_of(index, path).expect("node"), *attrs);
            entry.attrs = *attrs;
        }
        Op::DropLayer(layer) => {
            let mut expected = 0;
            for entry in model.values_mut() {
                let before = entry.values.len();
                entry.values.retain(|(_, l), _| l != layer);
                expected += (before - entry.values.len()) as u64;
            }
            assert_eq!(index.delete_layer(*layer), expected);
        }
    }
}

/// Checks the index at snapshot `at` against the model state of that snapshot.
fn check(index: &ModelIndex, state: &ModelState, universe: &BTreeSet<Vec<String>>, at: Seq) {
    for path in universe {
        let joined = path.join("\\");
        let found = index.key_by_path(&joined, at);
        let expected = state.get(path);
        assert_eq!(
            found.map(|k| k.id),
            expected.map(|k| k.id),
            "{joined} at {at}"
        );
        let point_read = index.value_by_path(&joined, "A", LayerSel::Effective, at);
        let (Some(found), Some(expected)) = (found, expected) else {
            assert_eq!(
                point_read, None,
                "point read of a missing key {joined} at {at}"
            );
            continue;
        };
        // The point read (through the key block) agrees with the model, layer by layer and
        // resolved across layers, and so do the key's attributes.
        for name in ["A", "B", "B_X", "É"] {
            for layer in 0..3 {
                let read = index.value_by_path(&joined, name, LayerSel::Only(layer), at);
                assert_eq!(
                    read.map(|r| r.value),
                    Some(expected.values.get(&(name.to_string(), layer)).copied()),
                    "point read of {joined} {name} layer {layer} at {at}"
                );
            }
            let read = index
                .value_by_path(&joined, name, LayerSel::Effective, at)
                .expect("the key exists");
            assert_eq!(
                read.value,
                expected.effective(name),
                "{joined} {name} at {at}"
            );
            assert_eq!(read.attrs, expected.attrs, "attributes of {joined} at {at}");
            assert_eq!(read.node, found.node);
            assert_eq!(
                index.value_at(found.node, LayerSel::Effective, name, at),
                expected.effective(name)
            );
        }
        assert_eq!(index.attrs_at(found.node, at), expected.attrs);
        assert_eq!(found.name, expected.name);
        let values: BTreeMap<(String, LayerId), u32> = index
            .values_at(found.node, at)
            .iter()
            .map(|v| ((v.name.to_string(), v.layer), v.value))
            .collect();
        assert_eq!(values, expected.values, "values of {joined} at {at}");
        let children: Vec<String> = index
            .children_at(found.node, at)
            .map(|k| fold(k.name))
            .collect();
        let mut expected_children: Vec<String> = state
            .keys()
            .filter(|k| k.len() == path.len() + 1 && k.starts_with(path))
            .map(|k| k[path.len()].clone())
            .collect();
        expected_children.sort_by(|a, b| cmp_utf16(a, b));
        assert_eq!(children, expected_children, "children of {joined} at {at}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_matches_the_model_at_every_snapshot(steps in prop::collection::vec(step_strategy(), 1..40)) {
        let mut index: ModelIndex = Index::new();
        let mut history: Vec<ModelState> = vec![ModelState::new()];
        let mut universe = BTreeSet::new();
        let mut next_id = 1;
        let mut horizon = 0;
        for step in steps {
            match step {
                Step::Txn(ops, commit) => {
                    let seq = history.len() as Seq;
                    let mut model = history.last().expect("history").clone();
                    let mut ids = next_id;
                    index.begin(seq);
                    for op in &ops {
                        apply(op, &mut model, &mut index, &mut ids);
                    }
                    if commit {
                        index.commit();
                        universe.extend(model.keys().cloned());
                        history.push(model);
                        next_id = ids;
                    } else {
                        index.rollback();
                    }
                }
                Step::Gc => {
                    horizon = (history.len() as Seq - 1).saturating_sub(2);
                    index.collect_garbage(horizon);
                }
                Step::GcInSteps(ops) => {
                    horizon = (history.len() as Seq - 1).saturating_sub(2);
                    let (mut cursor, mut stats) = (None, crate::GcStats::default());
                    let mut between = Some(ops);
                    while !index.collect_garbage_step(horizon, &mut cursor, 2, &mut stats) {
                        let Some(ops) = between.take() else { continue };
                        let seq = history.len() as Seq;
                        let mut model = history.last().expect("history").clone();
                        index.begin(seq);
                        for op in &ops {
                            apply(op, &mut model, &mut index, &mut next_id);
                        }
                        index.commit();
                        universe.extend(model.keys().cloned());
                        history.push(model);
                    }
                }
                Step::Checkpoint(between) => {
                    let at = history.len() as Seq - 1;
                    let Some(ops) = between else {
                        let bytes = export_image(&mut index, at, 2, |_| {});
                        index = load_image(&bytes);
                        continue_checks(&index, &history, &universe, horizon);
                        continue;
                    };
                    let mut model = history.last().expect("history").clone();
                    let mut ids = next_id;
                    let bytes = export_image(&mut index, at, 1, |index| {
                        index.begin(at + 1);
                        for op in &ops {
                            apply(op, &mut model, index, &mut ids);
                        }
                        index.commit();
                    });
                    let loaded = load_image(&bytes);
                    continue_checks(&loaded, &history, &universe, horizon);
                    universe.extend(model.keys().cloned());
                    history.push(model);
                    next_id = ids;
                }
            }
            continue_checks(&index, &history, &universe, horizon);
        }
    }
}

fn continue_checks(
    index: &ModelIndex,
    history: &[ModelState],
    universe: &BTreeSet<Vec<String>>,
    horizon: Seq,
) {
    for (at, state) in history.iter().enumerate().skip(horizon as usize) {
        check(index, state, universe, at as Seq);
    }
}

#[test]
fn the_root_and_every_key_are_found_through_their_blocks() {
    let mut index: Index<u32> = Index::new();
    assert_eq!(index.find(""), Some(index.root()));
    index.begin(1);
    create(&mut index, "", "M", 1);
    let key = create(&mut index, "m", "K", 2);
    // Enough values to move the key's block several times.
    for i in 0..100u32 {
        index.set_value(key, BASE, &format!("V{i}"), i);
    }
    index.commit();
    assert_eq!(index.find("M\\K"), Some(key));
    let read = |name: &str, at| {
        index
            .value_by_path("M\\K", name, LayerSel::Only(BASE), at)
            .map(|r| r.value)
    };
    for i in 0..100u32 {
        assert_eq!(read(&format!("V{i}"), 1), Some(Some(i)));
    }
    assert_eq!(read("NOPE", 1), Some(None));
    assert_eq!(read("V1", 0), None, "before the key existed");
    assert_eq!(
        index.value_by_path("M\\X", "V1", LayerSel::Effective, 1),
        None
    );
}
