//! Layers through the public API: effective reads, one layer's reads, the stack, deletes in
//! one layer, dropping a layer, the rules on names and precedences, history and reopen.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::{Access, Caller, Error, HistoryOp, Options, Store, Value};
use tempfile::TempDir;

const APP: &str = r"HKLM\Software\App";

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), Options::default()).unwrap()
}

fn layered_store(dir: &TempDir) -> Store {
    let store = open(dir);
    store.create_layer("role", 100).unwrap();
    let mut tx = store.transaction();
    tx.create_key(APP).unwrap();
    tx.set_value(APP, "Timeout", &10u32).unwrap();
    tx.set_value(APP, "Only", "base").unwrap();
    tx.set_value_in("role", APP, "Timeout", &20u32).unwrap();
    tx.set_value_in("policy", APP, "timeout", &30u32).unwrap();
    tx.set_value_in("role", APP, "Extra", "role").unwrap();
    tx.commit().unwrap();
    store
}

#[test]
fn the_highest_layer_wins_and_each_layer_can_be_read() {
    let dir = TempDir::new().unwrap();
    let store = layered_store(&dir);
    let key = store.open_key(APP).unwrap();
    assert_eq!(key.get_value::<u32>("TIMEOUT").unwrap(), 30, "policy wins");
    assert_eq!(
        key.get_raw_value_in("role", "Timeout").unwrap(),
        Value::dword(20)
    );
    assert_eq!(
        key.get_raw_value_in("BASE", "Timeout").unwrap(),
        Value::dword(10)
    );
    assert!(matches!(
        key.get_raw_value_in("role", "Only"),
        Err(Error::ValueNotFound { .. })
    ));
    assert_eq!(
        store.get_raw_value(APP, "Timeout").unwrap(),
        Value::dword(30)
    );
    assert_eq!(
        store.get_raw_value_in("role", APP, "Extra").unwrap(),
        Value::string("role")
    );
    let effective: Vec<(String, Value)> = key.enum_values().unwrap();
    assert_eq!(
        effective,
        [
            ("Extra".to_string(), Value::string("role")),
            ("Only".to_string(), Value::string("base")),
            ("timeout".to_string(), Value::dword(30)),
        ],
        "one entry per name, the highest layer's, as that layer wrote the name"
    );
    let role: Vec<String> = key
        .enum_values_in("role")
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(role, ["Extra", "Timeout"]);
    let stack: Vec<(String, u16, Value)> = key
        .value_stack("Timeout")
        .unwrap()
        .into_iter()
        .map(|l| (l.layer, l.precedence, l.value))
        .collect();
    assert_eq!(
        stack,
        [
            ("policy".to_string(), 65535, Value::dword(30)),
            ("role".to_string(), 100, Value::dword(20)),
            ("base".to_string(), 0, Value::dword(10)),
        ]
    );
    let names: Vec<(String, u16)> = store
        .layers()
        .into_iter()
        .map(|l| (l.name, l.precedence))
        .collect();
    assert_eq!(
        names,
        [
            ("policy".to_string(), 65535),
            ("role".to_string(), 100),
            ("base".to_string(), 0)
        ]
    );
}

#[test]
fn deleting_in_one_layer_lets_the_lower_ones_show_through() {
    let dir = TempDir::new().unwrap();
    let store = layered_store(&dir);
    let key = store.open_key_with(APP, Access::KEY_ALL_ACCESS).unwrap();
    key.delete_value_in("policy", "Timeout").unwrap();
    assert_eq!(key.get_value::<u32>("Timeout").unwrap(), 20);
    key.delete_value_in("role", "Timeout").unwrap();
    assert_eq!(key.get_value::<u32>("Timeout").unwrap(), 10);
    assert!(matches!(
        key.delete_value_in("role", "Timeout"),
        Err(Error::ValueNotFound { .. })
    ));
    key.delete_value("Timeout").unwrap();
    assert!(matches!(
        key.get_raw_value("Timeout"),
        Err(Error::ValueNotFound { .. })
    ));
}

#[test]
fn dropping_a_layer_removes_its_values_everywhere_in_one_transaction() {
    let dir = TempDir::new().unwrap();
    let store = layered_store(&dir);
    store
        .create_key(r"HKLM\Software\Other")
        .unwrap()
        .set_raw_value_in("role", "X", &Value::dword(1))
        .unwrap();
    let before = store.seq();
    let dropped = store.drop_layer("role").unwrap();
    assert_eq!(dropped, before + 1, "one transaction");
    assert_eq!(
        store.get_raw_value(APP, "Timeout").unwrap(),
        Value::dword(30)
    );
    assert!(store.get_raw_value(r"HKLM\Software\Other", "X").is_err());
    assert!(matches!(
        store.get_raw_value_in("role", APP, "Extra"),
        Err(Error::LayerNotFound { .. })
    ));
    // The past still has it.
    let past = store.snapshot_at(before).unwrap();
    let old_key = past.open_key(APP).unwrap();
    assert_eq!(
        old_key.get_raw_value_in("role", "Extra").unwrap(),
        Value::string("role")
    );
    // The name can be used again, and starts empty.
    store.create_layer("role", 200).unwrap();
    let key = store.open_key(APP).unwrap();
    assert!(key.get_raw_value_in("role", "Extra").is_err());
    let mut seen = Vec::new();
    store
        .history::<Error>(dropped, dropped, &mut |txn| {
            seen.extend(txn.ops);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        [HistoryOp::DropLayer {
            name: "role".into()
        }]
    );
    drop((past, old_key, key));
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.get_raw_value(APP, "Timeout").unwrap(),
        Value::dword(30)
    );
    assert_eq!(store.layers().len(), 3);
    let old = store.snapshot_at(before).unwrap().open_key(APP).unwrap();
    assert_eq!(old.get_value::<u32>("Timeout").unwrap(), 30);
    assert_eq!(
        old.get_raw_value_in("role", "Timeout").unwrap(),
        Value::dword(20)
    );
    store.verify().unwrap();
}

#[test]
fn layer_rules_are_enforced() {
    let dir = TempDir::new().unwrap();
    let store = layered_store(&dir);
    assert!(matches!(
        store.create_layer("Role", 5),
        Err(Error::LayerExists { .. })
    ));
    assert!(matches!(
        store.create_layer("web", 100),
        Err(Error::PrecedenceTaken {
            precedence: 100,
            ..
        })
    ));
    assert!(matches!(
        store.create_layer("low", 0),
        Err(Error::PrecedenceTaken { .. })
    ));
    assert!(matches!(
        store.drop_layer("base"),
        Err(Error::BuiltinLayer { .. })
    ));
    assert!(matches!(
        store.drop_layer("policy"),
        Err(Error::BuiltinLayer { .. })
    ));
    assert!(matches!(
        store.drop_layer("nope"),
        Err(Error::LayerNotFound { .. })
    ));
    assert!(matches!(
        store.create_layer("bad name", 7),
        Err(Error::InvalidLayerName { .. })
    ));
    let mut tx = store.transaction();
    tx.set_value_in("nope", APP, "X", &1u32).unwrap();
    assert!(matches!(tx.commit(), Err(Error::LayerNotFound { .. })));
    let alice = store.session(Caller::user("alice")).unwrap();
    assert!(matches!(
        alice.create_layer("mine", 7),
        Err(Error::AccessDenied { .. })
    ));
    assert!(matches!(
        alice.drop_layer("role"),
        Err(Error::AccessDenied { .. })
    ));
}

#[test]
fn a_layer_created_and_written_in_one_transaction_replays() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut tx = store.transaction();
    tx.create_layer("fresh", 9).unwrap();
    tx.create_key(APP).unwrap();
    tx.set_value_in("fresh", APP, "V", &5u32).unwrap();
    tx.commit().unwrap();
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.get_raw_value_in("fresh", APP, "V").unwrap(),
        Value::dword(5)
    );
}
