//! What the registry's integration tests share: random histories of changes, the simple
//! model they are checked against, and reading a store's subtree back as that model.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use hivelog::{Access, CreateOptions, Error, Key, Store, Value, sddl};

/// The layer (besides `base`) the histories write to; a test creates it first.
pub const ROLE_LAYER: &str = "role";

/// A change of a random history: one transaction each.
#[derive(Debug, Clone)]
pub enum Change {
    /// Sets value `name` of key `key` (creating it and its parents) to `data`, in the `role`
    /// layer or the base one.
    Set {
        key: u8,
        name: u8,
        data: u32,
        role: bool,
    },
    /// Deletes key `key`'s tree (if it exists: else nothing commits).
    DeleteTree { key: u8 },
}

/// Keys 0–2 sit under the root, 3–5 under keys 0–2.
fn change_key(key: u8) -> String {
    if key < 3 {
        format!("K{key}")
    } else {
        format!(r"K{}\S", key - 3)
    }
}

pub fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        5 => (0..6u8, 0..3u8, any::<u32>(), any::<bool>())
            .prop_map(|(key, name, data, role)| Change::Set { key, name, data, role }),
        1 => (0..6u8).prop_map(|key| Change::DeleteTree { key }),
    ]
}

/// Keys of a subtree (relative paths, "" the root) with every layer's values:
/// `(layer, name) -> value`.
pub type Model =
    std::collections::BTreeMap<String, std::collections::BTreeMap<(String, String), Value>>;

impl Change {
    /// Commits the change; `None` if it was refused (deleting a key that is not there).
    pub fn commit(&self, store: &Store, root: &str) -> Option<u64> {
        let path = |key| format!(r"{root}\{}", change_key(key));
        match *self {
            Change::Set {
                key,
                name,
                data,
                role,
            } => {
                let mut tx = store.transaction();
                tx.create_key(&path(key)).unwrap();
                let layer = if role { ROLE_LAYER } else { "base" };
                tx.set_value_in(layer, &path(key), &format!("V{name}"), &data)
                    .unwrap();
                Some(tx.commit().unwrap())
            }
            Change::DeleteTree { key } => match store.delete_tree(&path(key)) {
                Ok(seq) => Some(seq),
                Err(Error::KeyNotFound { .. }) => None,
                Err(error) => panic!("delete tree: {error}"),
            },
        }
    }

    pub fn apply(&self, model: &mut Model) {
        match *self {
            Change::Set {
                key,
                name,
                data,
                role,
            } => {
                let relative = change_key(key);
                if let Some((parent, _)) = relative.split_once('\\') {
                    model.entry(parent.to_string()).or_default();
                }
                let layer = if role { ROLE_LAYER } else { "base" };
                model
                    .entry(relative)
                    .or_default()
                    .insert((layer.to_string(), format!("V{name}")), Value::dword(data));
            }
            Change::DeleteTree { key } => {
                let relative = change_key(key);
                let below = format!("{relative}\\");
                model.retain(|path, _| *path != relative && !path.starts_with(&below));
            }
        }
    }
}

/// The subtree at `path` as a model, every layer's values included.
pub fn model_of(store: &Store, path: &str) -> Model {
    fn walk(key: &hivelog::Key, relative: &str, out: &mut Model) {
        let values = out.entry(relative.to_string()).or_default();
        for (name, _) in key.enum_values().unwrap() {
            for layered in key.value_stack(&name).unwrap() {
                values.insert((layered.layer, name.clone()), layered.value);
            }
        }
        for sub in key.enum_keys().unwrap() {
            let child = key.open_subkey_link(&sub).unwrap();
            let relative = if relative.is_empty() {
                sub
            } else {
                format!(r"{relative}\{sub}")
            };
            walk(&child, &relative, out);
        }
    }
    let mut out = Model::new();
    walk(&store.open_key(path).unwrap(), "", &mut out);
    out
}

/// Everything `key` is, recursively, as text lines: path (from `relative`), class, link flag,
/// descriptor, each value with every layer's version. Volatile keys are left out (no backup
/// or image carries them). Two subtrees with the same dump hold the same.
pub fn dump_key(key: &Key, relative: &str, out: &mut Vec<String>) {
    out.push(format!(
        "key {relative:?} class {:?} link {} sd {}",
        key.class().unwrap(),
        key.is_link().unwrap(),
        sddl::format(&key.security().unwrap())
    ));
    for (name, _) in key.enum_values().unwrap() {
        for layered in key.value_stack(&name).unwrap() {
            out.push(format!(
                "  {name:?} {} {:?} {:?}",
                layered.layer, layered.value.ty, layered.value.data
            ));
        }
    }
    for sub in key.enum_keys().unwrap() {
        let child = key.open_subkey_link(&sub).unwrap();
        if child.is_volatile().unwrap() {
            continue;
        }
        dump_key(&child, &format!("{relative}\\{sub}"), out);
    }
}

/// `dump_key` of the key at `path` of `store`, paths relative to it.
pub fn dump(store: &Store, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let key = store.open_key_with(path, Access::KEY_READ).unwrap();
    dump_key(&key, "", &mut out);
    out
}

/// `dump_key` of both hives, as `open` opens them (a store's `open_key_with`, or a
/// snapshot's).
pub fn dump_hives(open: impl Fn(&str) -> hivelog::Result<Key>) -> Vec<String> {
    let mut out = Vec::new();
    for hive in ["HKLM", "HKU"] {
        dump_key(&open(hive).unwrap(), hive, &mut out);
    }
    out
}

/// A history with something of everything a checkpoint (or a compaction's base) must carry: values large and small
/// in two layers, a class, security, a link, a volatile key, deletes, a restore (a subtree
/// tombstone), a dropped layer, and enough data to fill several segments.
pub fn history(store: &Store, round: u32) {
    history_with(store, round, true);
}

/// `history`, without the restore where the store's directory is simulated (a restore
/// spools its stream beside the store on the real file system).
pub fn history_with(store: &Store, round: u32, restore: bool) {
    let root = format!(r"HKLM\Software\Round{round}");
    store.create_key(&root).unwrap();
    if round == 0 {
        store.create_layer("role", 10).unwrap();
        store.create_layer("gone", 20).unwrap();
    }
    for i in 0..40u32 {
        let mut tx = store.transaction();
        let key = format!(r"{root}\App{}\Settings", i % 7);
        tx.create_key(&key).unwrap();
        tx.set_value(&key, &format!("N{i}"), &i).unwrap();
        tx.set_value(&key, "Text", &"x".repeat(200 + i as usize))
            .unwrap();
        tx.set_value_in("role", &key, "Role", &u64::from(i))
            .unwrap();
        tx.set_value_in("gone", &key, "Gone", &i).unwrap();
        tx.commit().unwrap();
    }
    store
        .create_key_with(
            &format!(r"{root}\Classy"),
            &CreateOptions {
                class: Some("MyClass".into()),
                ..CreateOptions::default()
            },
        )
        .unwrap();
    store
        .set_security(
            &format!(r"{root}\App1"),
            &sddl::parse("D:P(A;CI;KA;;;SY)(A;;KR;;;alice)").unwrap(),
        )
        .unwrap();
    store
        .create_key_with(
            &format!(r"{root}\Link"),
            &CreateOptions {
                link: Some(format!(r"{root}\App2")),
                ..CreateOptions::default()
            },
        )
        .unwrap();
    store
        .create_key_with(
            &format!(r"{root}\Fleeting"),
            &CreateOptions {
                volatile: true,
                ..CreateOptions::default()
            },
        )
        .unwrap()
        .set_value("V", &1u32)
        .unwrap();
    store.delete_key(&format!(r"{root}\App3\Settings")).unwrap();
    store.delete_tree(&format!(r"{root}\App4")).unwrap();
    if restore {
        let mut backup = Vec::new();
        store
            .backup(&format!(r"{root}\App5"), store.seq(), &mut backup)
            .unwrap();
        store
            .create_key(&format!(r"{root}\App5\Later"))
            .unwrap()
            .set_value("L", &2u32)
            .unwrap();
        store
            .restore(&format!(r"{root}\App5"), &backup[..])
            .unwrap();
    }
    if round == 1 {
        store.drop_layer("gone").unwrap();
    }
    // A key deleted and created again: two incarnations of one path.
    store.delete_tree(&format!(r"{root}\App6")).unwrap();
    store
        .create_key(&format!(r"{root}\App6"))
        .unwrap()
        .set_value("Again", "yes")
        .unwrap();
}

/// The store at every sequence number, as text.
pub fn every_snapshot(store: &Store) -> Vec<Vec<String>> {
    every_snapshot_from(store, 1)
}

/// The store at every sequence number from `from` on, as text.
pub fn every_snapshot_from(store: &Store, from: u64) -> Vec<Vec<String>> {
    (from..=store.seq())
        .map(|seq| {
            let snapshot = store.snapshot_at(seq).unwrap();
            dump_hives(|path| snapshot.open_key(path))
        })
        .collect()
}
