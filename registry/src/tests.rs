//! The registry API end to end on real files: keys, values, transactions, snapshots, limits,
//! handles, history, verify, reopen.

use tempfile::TempDir;

use crate::{
    Access, Error, HistoryOp, KEY_NAME_MAX_CHARS, Options, Store, SyncPolicy, VALUE_NAME_MAX_CHARS,
    Value, ValueType,
};

fn small_options() -> Options {
    Options {
        segment_size_bytes: 256 * 1024,
        value_size_max_bytes: 64 * 1024,
        ..Options::default()
    }
}

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), small_options()).unwrap()
}

#[test]
fn a_new_store_has_its_hives_and_they_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.seq(),
        1,
        "creating the hives is the first transaction"
    );
    let root_names: Vec<String> = ["HKLM", "HKEY_USERS"]
        .iter()
        .map(|p| store.open_key(p).unwrap().path().to_string())
        .collect();
    assert_eq!(root_names, ["Machine", "Users"]);
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(store.seq(), 1, "reopening creates nothing");
    assert!(store.open_key("Machine").is_ok());
}

#[test]
fn keys_are_case_insensitive_and_case_preserving() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Contoso\App").unwrap();
    store.create_key(r"hklm\SOFTWARE\contoso\Zed").unwrap();
    store.create_key(r"HKLM\Software\contoso\a_b").unwrap();
    store.create_key(r"HKLM\Software\contoso\aab").unwrap();
    let vendor = store.open_key(r"machine\software\CONTOSO").unwrap();
    assert_eq!(vendor.enum_keys().unwrap(), ["aab", "App", "a_b", "Zed"]);
    let software = store.open_key(r"HKLM\software").unwrap();
    assert_eq!(
        software.enum_keys().unwrap(),
        ["Contoso"],
        "first spelling kept"
    );
}

#[test]
fn every_value_type_round_trips_byte_exact() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = store.create_key(r"HKLM\Software\Types").unwrap();
    let values = vec![
        ("", Value::string("default")),
        ("sz", Value::string("Grüße 😀")),
        ("expand", Value::expand_string("%SystemRoot%\\x")),
        ("binary", Value::binary((0..=255).collect())),
        ("dword", Value::dword(0xdead_beef)),
        ("dword_be", Value::dword_big_endian(7)),
        ("link", Value::new(ValueType::LINK, vec![b'a', 0])),
        ("multi", Value::multi_string(&["one", "", "three"])),
        (
            "reslist",
            Value::new(ValueType::RESOURCE_LIST, vec![1, 2, 3]),
        ),
        (
            "full",
            Value::new(ValueType::FULL_RESOURCE_DESCRIPTOR, vec![4; 20]),
        ),
        (
            "req",
            Value::new(ValueType::RESOURCE_REQUIREMENTS_LIST, vec![5; 9]),
        ),
        ("qword", Value::qword(u64::MAX - 3)),
        ("none", Value::new(ValueType::NONE, vec![])),
        ("app", Value::new(ValueType(0x8000_1234), vec![9, 8, 7])),
        ("odd_sz", Value::new(ValueType::SZ, vec![b'x', 0, 0])),
    ];
    for (name, value) in &values {
        key.set_raw_value(name, value).unwrap();
    }
    let check = |store: &Store| {
        let key = store.open_key(r"HKLM\Software\Types").unwrap();
        for (name, value) in &values {
            assert_eq!(&key.get_raw_value(name).unwrap(), value, "value {name:?}");
        }
        let listed = key.enum_values().unwrap();
        assert_eq!(listed.len(), values.len());
        let mut names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        names.sort_by_key(|n| n.to_uppercase());
        let listed_names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(listed_names, names);
    };
    check(&store);
    drop(key);
    store.close().unwrap();
    check(&open(&dir));
}

#[test]
fn typed_helpers_in_the_spirit_of_winreg() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = store.create_key(r"HKCU\Software\App").unwrap();
    assert_eq!(key.path().to_string(), r"Users\S-1-5-18\Software\App");
    key.set_value("Name", "hivelog").unwrap();
    key.set_value("Count", &42u32).unwrap();
    key.set_value("Big", &(1u64 << 40)).unwrap();
    key.set_value("List", &vec!["a".to_string(), "b".to_string()])
        .unwrap();
    key.set_value("Blob", &vec![1u8, 2, 3]).unwrap();
    assert_eq!(key.get_value::<String>("NAME").unwrap(), "hivelog");
    assert_eq!(key.get_value::<u32>("count").unwrap(), 42);
    assert_eq!(key.get_value::<u64>("Big").unwrap(), 1 << 40);
    assert_eq!(key.get_value::<Vec<String>>("List").unwrap(), ["a", "b"]);
    assert_eq!(key.get_value::<Vec<u8>>("Blob").unwrap(), [1, 2, 3]);
    assert!(matches!(
        key.get_value::<u32>("Name"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        key.get_value::<u32>("Missing"),
        Err(Error::ValueNotFound { .. })
    ));
}

#[test]
fn value_names_keep_their_first_spelling() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = store.create_key(r"HKLM\Software\Case").unwrap();
    key.set_value("DisplayName", "one").unwrap();
    key.set_value("DISPLAYNAME", "two").unwrap();
    let mut tx = store.transaction();
    tx.set_value(r"HKLM\Software\Case", "displayname", "three")
        .unwrap();
    tx.set_value(r"HKLM\Software\Case", "New", "x").unwrap();
    tx.set_value(r"HKLM\Software\Case", "NEW", "y").unwrap();
    tx.commit().unwrap();
    let values = key.enum_values().unwrap();
    assert_eq!(
        values[0],
        ("DisplayName".to_string(), Value::string("three"))
    );
    assert_eq!(values[1], ("New".to_string(), Value::string("y")));
    key.delete_value("displayNAME").unwrap();
    key.set_value("DISPLAYname", "four").unwrap();
    assert_eq!(
        key.enum_values().unwrap()[0].0,
        "DISPLAYname",
        "a new value, a new spelling"
    );
}

#[test]
fn deletes_follow_reg_semantics() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\A\B\C").unwrap();
    assert!(matches!(
        store.delete_key(r"HKLM\Software\A"),
        Err(Error::HasSubkeys { .. })
    ));
    store.delete_key(r"HKLM\Software\A\B\C").unwrap();
    store.delete_tree(r"HKLM\Software\A").unwrap();
    assert!(matches!(
        store.open_key(r"HKLM\Software\A\B"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.delete_tree("HKLM"),
        Err(Error::HiveRoot { .. })
    ));
    assert!(matches!(
        store.delete_key("Users"),
        Err(Error::HiveRoot { .. })
    ));
    assert!(matches!(
        store.delete_tree(r"HKLM\Nope"),
        Err(Error::KeyNotFound { .. })
    ));
    let key = store
        .open_key_with(r"HKLM\Software", Access::KEY_ALL_ACCESS)
        .unwrap();
    assert!(matches!(
        key.delete_value("nope"),
        Err(Error::ValueNotFound { .. })
    ));
}

#[test]
fn a_transaction_is_atomic_and_takes_one_sequence_number() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let before = store.seq();
    let mut tx = store.transaction();
    tx.create_key(r"HKLM\Software\T1").unwrap();
    tx.set_value(r"HKLM\Software\T1", "a", &1u32).unwrap();
    tx.create_key(r"HKU\Alice\Settings").unwrap();
    tx.set_value(r"HKU\Alice\Settings", "b", &2u32).unwrap();
    assert_eq!(tx.commit().unwrap(), before + 1);

    // A failing change anywhere leaves everything as it was.
    let mut tx = store.transaction();
    tx.set_value(r"HKLM\Software\T1", "a", &100u32).unwrap();
    tx.create_key(r"HKLM\Software\T2").unwrap();
    tx.delete_key(r"HKU\Alice").unwrap();
    assert!(matches!(tx.commit(), Err(Error::HasSubkeys { .. })));
    assert_eq!(store.seq(), before + 1);
    let t1 = store.open_key(r"HKLM\Software\T1").unwrap();
    assert_eq!(t1.get_value::<u32>("a").unwrap(), 1);
    assert!(store.open_key(r"HKLM\Software\T2").is_err());

    // A no-op writes nothing.
    let mut tx = store.transaction();
    tx.create_key(r"HKLM\Software\T1").unwrap();
    assert_eq!(tx.commit().unwrap(), before + 1);
    drop(t1); // a live handle keeps the store open
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(store.seq(), before + 1);
    assert_eq!(
        store
            .open_key(r"HKU\Alice\Settings")
            .unwrap()
            .get_value::<u32>("b")
            .unwrap(),
        2
    );
}

#[test]
fn snapshots_read_any_past_sequence_number() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = store.create_key(r"HKLM\Software\Snap").unwrap();
    let mut seqs = Vec::new();
    for i in 0..5u32 {
        seqs.push(key.set_value("v", &i).unwrap());
    }
    let deleted_at = store.delete_tree(r"HKLM\Software\Snap").unwrap();
    for (i, seq) in seqs.iter().enumerate() {
        let snapshot = store.snapshot_at(*seq).unwrap();
        assert_eq!(
            snapshot
                .open_key(r"HKLM\Software\Snap")
                .unwrap()
                .get_value::<u32>("v")
                .unwrap(),
            i as u32
        );
        assert_eq!(
            snapshot.get_raw_value(r"HKLM\Software\Snap", "V").unwrap(),
            Value::dword(i as u32)
        );
    }
    let at_delete = store.snapshot_at(deleted_at).unwrap();
    assert!(matches!(
        at_delete.open_key(r"HKLM\Software\Snap"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.snapshot_at(deleted_at + 1),
        Err(Error::FutureSeq { .. })
    ));
    let old = store
        .snapshot_at(seqs[0])
        .unwrap()
        .open_key(r"HKLM\Software\Snap")
        .unwrap();
    assert!(matches!(old.set_value("v", &9u32), Err(Error::ReadOnly)));
    assert_eq!(
        old.get_value::<u32>("v").unwrap(),
        0,
        "a snapshot handle keeps reading its past"
    );
}

#[test]
fn a_handle_names_one_key_not_a_path() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let first = store.create_key(r"HKLM\Software\H").unwrap();
    store.delete_key(r"HKLM\Software\H").unwrap();
    let second = store.create_key(r"HKLM\Software\H").unwrap();
    assert_ne!(first.id(), second.id(), "ids are never reused");
    assert!(matches!(
        first.set_value("x", &1u32),
        Err(Error::KeyDeleted { .. })
    ));
    assert!(matches!(first.enum_keys(), Err(Error::KeyDeleted { .. })));
    assert!(matches!(
        first.create_subkey("sub"),
        Err(Error::KeyDeleted { .. })
    ));
    second.set_value("x", &1u32).unwrap();
    let sub = second.create_subkey(r"a\b").unwrap();
    assert_eq!(sub.path().to_string(), r"Machine\Software\H\a\b");
    second.delete_subkey_all("a").unwrap();
    assert!(second.enum_keys().unwrap().is_empty());
}

#[test]
fn every_limit_is_enforced_with_a_named_error() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = store.create_key(r"HKLM\Software\Limits").unwrap();
    let too_big = vec![0u8; 64 * 1024 + 1];
    match key.set_value("big", &too_big) {
        Err(error @ Error::ValueTooLarge { .. }) => {
            assert!(
                error.to_string().contains("value_size_max_bytes is 65536"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    key.set_value("fits", &vec![0u8; 64 * 1024]).unwrap();
    let long_value_name = "v".repeat(VALUE_NAME_MAX_CHARS + 1);
    assert!(matches!(
        key.set_value(&long_value_name, &1u32),
        Err(Error::ValueNameTooLong { .. })
    ));
    key.set_value(&"v".repeat(VALUE_NAME_MAX_CHARS), &1u32)
        .unwrap();
    let long_key = format!(r"HKLM\{}", "k".repeat(KEY_NAME_MAX_CHARS + 1));
    assert!(matches!(
        store.create_key(&long_key),
        Err(Error::KeyNameTooLong { .. })
    ));
    let deep = format!("HKLM{}", r"\d".repeat(crate::DEPTH_MAX - 1));
    store.create_key(&deep).unwrap();
    assert!(matches!(
        store.create_key(&format!(r"{deep}\x")),
        Err(Error::TooDeep { .. })
    ));
    assert!(matches!(
        Store::open(
            dir.path().join("other"),
            Options {
                value_size_max_bytes: crate::VALUE_SIZE_LIMIT_BYTES + 1,
                ..Options::default()
            }
        ),
        Err(Error::InvalidOption { .. })
    ));
}

#[test]
fn read_only_opens_share_and_refuse_writes() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\RO").unwrap();
    assert!(matches!(
        Store::open(dir.path(), small_options()),
        Err(Error::Log(crate::LogError::Locked { .. }))
    ));
    store.close().unwrap();
    let read_only = Options {
        read_only: true,
        ..small_options()
    };
    let a = Store::open(dir.path(), read_only.clone()).unwrap();
    let b = Store::open(dir.path(), read_only).unwrap();
    assert!(b.open_key(r"HKLM\Software\RO").is_ok());
    assert!(matches!(
        a.create_key(r"HKLM\Software\X"),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        Store::open(
            dir.path().join("missing"),
            Options {
                read_only: true,
                ..Options::default()
            }
        ),
        Err(Error::Log(crate::LogError::NotFound(_)))
    ));
}

#[test]
fn history_names_keys_by_their_paths_at_the_time() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let first = store.create_key(r"HKLM\Software\Log").unwrap().id();
    assert!(first > 0);
    let set = store
        .open_key_with(r"HKLM\Software\Log", Access::KEY_ALL_ACCESS)
        .unwrap()
        .set_value("Level", &3u32)
        .unwrap();
    let gone = store.delete_tree(r"HKLM\Software").unwrap();
    let mut seen = Vec::new();
    store
        .history::<Error>(set, gone, &mut |txn| {
            seen.push(txn);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].principal, crate::SYSTEM_PRINCIPAL);
    assert_eq!(
        seen[0].ops,
        [HistoryOp::SetValue {
            path: r"Machine\Software\Log".into(),
            layer: "base".into(),
            name: "Level".into(),
            value: Value::dword(3),
        }]
    );
    assert_eq!(
        seen[1].ops,
        [HistoryOp::DeleteTree {
            path: r"Machine\Software".into()
        }]
    );
}

#[test]
fn many_transactions_over_many_segments_verify_and_reopen_identically() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for i in 0..400u32 {
        let mut tx = store.transaction();
        let path = format!(r"HKLM\Software\Vendor{}\App{}", i % 7, i);
        tx.create_key(&path).unwrap();
        tx.set_value(&path, "Data", &vec![i as u8; 900]).unwrap();
        tx.set_value(&path, "N", &i).unwrap();
        tx.commit().unwrap();
    }
    let stats = store.stats();
    assert!(stats.segments > 1, "{stats:?}");
    assert_eq!(stats.values, 800);
    let report = store.verify().unwrap();
    assert_eq!(report.last_seq, store.seq());
    assert_eq!(report.transactions, store.seq());
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(store.stats().values, 800);
    for i in (0..400u32).step_by(37) {
        let key = store
            .open_key(&format!(r"HKLM\Software\Vendor{}\App{}", i % 7, i))
            .unwrap();
        assert_eq!(
            key.get_value::<Vec<u8>>("Data").unwrap(),
            vec![i as u8; 900]
        );
        assert_eq!(key.get_value::<u32>("N").unwrap(), i);
    }
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Always,
            ..small_options()
        },
    )
    .unwrap();
    store.create_key(r"HKLM\Software\C").unwrap();
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let store = store.clone();
            scope.spawn(move || {
                let key = store
                    .open_key_with(r"HKLM\Software\C", Access::KEY_ALL_ACCESS)
                    .unwrap();
                for i in 0..50u32 {
                    let seq = key.set_value(&format!("t{t}"), &i).unwrap();
                    assert!(store.seq() >= seq, "a returned commit is visible");
                    assert_eq!(key.get_value::<u32>(&format!("t{t}")).unwrap(), i);
                }
            });
        }
        let store = store.clone();
        scope.spawn(move || {
            for _ in 0..200 {
                let snapshot = store.snapshot();
                let key = snapshot.open_key(r"HKLM\Software\C").unwrap();
                let values = key.enum_values().unwrap();
                let again = key.enum_values().unwrap();
                assert_eq!(values, again, "a snapshot does not change");
            }
        });
    });
    let key = store.open_key(r"HKLM\Software\C").unwrap();
    for t in 0..4 {
        assert_eq!(key.get_value::<u32>(&format!("t{t}")).unwrap(), 49);
    }
}

#[test]
fn a_key_class_is_kept_journaled_and_shown_in_history() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let options = crate::CreateOptions {
        class: Some("Shell".into()),
        ..crate::CreateOptions::default()
    };
    let key = store
        .create_key_with(r"HKLM\Software\Classy\Leaf", &options)
        .unwrap();
    assert_eq!(key.class().unwrap().as_deref(), Some("Shell"));
    let parent = store.open_key(r"HKLM\Software\Classy").unwrap();
    assert_eq!(
        parent.class().unwrap(),
        None,
        "only the key named gets the class"
    );
    let bad = crate::CreateOptions {
        class: Some("a\0b".into()),
        ..crate::CreateOptions::default()
    };
    assert!(matches!(
        store.create_key_with(r"HKLM\Software\Bad", &bad),
        Err(Error::InvalidClass { .. })
    ));
    let seq = store.seq();
    let mut ops = Vec::new();
    store
        .history::<Error>(seq, seq, &mut |txn| {
            ops.extend(txn.ops);
            Ok(())
        })
        .unwrap();
    assert!(ops.contains(&HistoryOp::SetClass {
        path: r"Machine\Software\Classy\Leaf".into(),
        class: "Shell".into()
    }));
    drop((key, parent));
    store.close().unwrap();
    let store = open(&dir);
    let key = store.open_key(r"HKLM\Software\Classy\Leaf").unwrap();
    assert_eq!(key.class().unwrap().as_deref(), Some("Shell"));
    store.verify().unwrap();
}
