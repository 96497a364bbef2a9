//! `HKEY_CLASSES_ROOT`: the merged view of the caller's `Software\Classes` and the machine's.
//! The user's entry wins on reads; writes go to the user's copy where the key exists there,
//! otherwise to the machine's.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::{Access, Caller, Error, Options, Store, Value};
use tempfile::TempDir;

/// Machine classes `.txt` and `.doc`; alice's own `.txt`, with a subkey of its own.
fn classes_store(dir: &TempDir) -> Store {
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let mut tx = store.transaction();
    let txt = r"HKLM\Software\Classes\.txt";
    tx.create_key(&format!(r"{txt}\ShellNew")).unwrap();
    tx.set_value(txt, "", "txtfile").unwrap();
    tx.set_value(txt, "Content Type", "text/plain").unwrap();
    tx.create_key(r"HKLM\Software\Classes\.doc").unwrap();
    tx.commit().unwrap();
    let alice = store.session(Caller::user("alice")).unwrap();
    let mut tx = alice.transaction();
    tx.create_key(r"HKCU\Software\Classes\.txt\OpenWith")
        .unwrap();
    tx.set_value(r"HKCU\Software\Classes\.txt", "", "myeditor")
        .unwrap();
    tx.commit().unwrap();
    store
}

#[test]
fn reads_merge_both_copies_and_the_users_entry_wins() {
    let dir = TempDir::new().unwrap();
    let store = classes_store(&dir);
    let alice = store.session(Caller::user("alice")).unwrap();
    assert_eq!(
        alice.get_raw_value(r"HKCR\.txt", "").unwrap(),
        Value::string("myeditor")
    );
    assert_eq!(
        alice
            .get_raw_value(r"HKEY_CLASSES_ROOT\.txt", "Content Type")
            .unwrap(),
        Value::string("text/plain"),
        "a value only the machine has shows through"
    );
    let txt = alice.open_key(r"HKCR\.txt").unwrap();
    assert_eq!(txt.windows_path(), r"HKEY_CLASSES_ROOT\.txt");
    assert_eq!(txt.path().to_string(), r"Users\alice\Software\Classes\.txt");
    let values: Vec<(String, Value)> = txt.enum_values().unwrap();
    assert_eq!(
        values,
        [
            (String::new(), Value::string("myeditor")),
            ("Content Type".into(), Value::string("text/plain")),
        ]
    );
    assert_eq!(txt.enum_keys().unwrap(), ["OpenWith", "ShellNew"]);
    assert!(
        txt.open_subkey("ShellNew").is_ok(),
        "a machine-only subkey opens"
    );
    let root = alice.open_key("HKCR").unwrap();
    assert_eq!(root.enum_keys().unwrap(), [".doc", ".txt"]);
    // Someone without a copy of their own sees the machine's.
    let bob = store.session(Caller::user("bob")).unwrap();
    assert_eq!(
        bob.get_raw_value(r"HKCR\.txt", "").unwrap(),
        Value::string("txtfile")
    );
    assert_eq!(
        bob.open_key(r"HKCR\.txt").unwrap().path().to_string(),
        r"Machine\Software\Classes\.txt"
    );
    assert!(matches!(
        bob.open_key(r"HKCR\.nope"),
        Err(Error::KeyNotFound { path }) if path == r"HKEY_CLASSES_ROOT\.nope"
    ));
    // And the view works at past sequence numbers too.
    let past = alice.snapshot_at(2).unwrap();
    assert_eq!(
        past.get_raw_value(r"HKCR\.txt", "").unwrap(),
        Value::string("txtfile"),
        "before alice had her own .txt"
    );
}

#[test]
fn writes_go_to_the_users_copy_where_the_key_exists_there() {
    let dir = TempDir::new().unwrap();
    let store = classes_store(&dir);
    let alice = store.session(Caller::user("alice")).unwrap();
    let mut tx = alice.transaction();
    tx.set_value(r"HKCR\.txt", "Editor", "vim").unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store
            .get_raw_value(r"HKU\alice\Software\Classes\.txt", "Editor")
            .unwrap(),
        Value::string("vim")
    );
    // .doc exists only in the machine's copy, which users may read but not write.
    let mut tx = alice.transaction();
    tx.set_value(r"HKCR\.doc", "Editor", "vim").unwrap();
    assert!(matches!(tx.commit(), Err(Error::AccessDenied { .. })));
    // A new key goes to the user's copy when its parent exists there.
    alice.create_key(r"HKCR\.new").unwrap();
    assert!(store.open_key(r"HKU\alice\Software\Classes\.new").is_ok());
    assert!(store.open_key(r"HKLM\Software\Classes\.new").is_err());
    // Through a handle on the view, writes go to the handle's copy.
    let txt = alice
        .open_key_with(r"HKCR\.txt", Access::KEY_ALL_ACCESS)
        .unwrap();
    txt.set_value("Via", &1u32).unwrap();
    txt.create_subkey("Fresh").unwrap();
    assert!(
        store
            .open_key(r"HKU\alice\Software\Classes\.txt\Fresh")
            .is_ok()
    );
    txt.delete_subkey("Fresh").unwrap();
    // The system has no classes of its own: its writes go to the machine's copy.
    store.create_key(r"HKCR\.sys").unwrap();
    assert!(store.open_key(r"HKLM\Software\Classes\.sys").is_ok());
    store.delete_key(r"HKCR\.sys").unwrap();
    assert!(store.open_key(r"HKLM\Software\Classes\.sys").is_err());
}
