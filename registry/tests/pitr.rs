//! Point-in-time recovery through the public API: reverting a subtree, recovering a store at
//! a sequence number, and rebuilding states from a whole-registry backup plus archives, each
//! compared with what a snapshot at that sequence number reads, and (for random histories)
//! with a model replayed through that sequence number.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::{
    Access, AuditEvent, Error, HistoryOp, Options, Seq, Store, VerifiedFile, recover_from_backup,
    sddl, verify_archive_file, verify_file,
};
use proptest::prelude::*;
use tempfile::TempDir;

mod common;
use common::{Model, ROLE_LAYER, change, dump_hives, dump_key, model_of};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Options::default()).unwrap()
}

/// Both hives, everything in them, as a snapshot at `at` (or now) reads them.
fn dump(store: &Store, at: Option<Seq>) -> Vec<String> {
    let view = match at {
        Some(seq) => store.snapshot_at(seq).unwrap(),
        None => store.snapshot(),
    };
    dump_hives(|hive| view.open_key_with(hive, Access::KEY_READ))
}

/// A history touching keys, values, layers and descriptors; returns the sequence numbers.
fn history(store: &Store) -> Vec<Seq> {
    let mut seqs = vec![store.seq()];
    let mut step = |f: &dyn Fn(&Store) -> Seq| seqs.push(f(store));
    step(&|s| s.create_layer("role", 10).unwrap());
    step(&|s| {
        let mut tx = s.transaction();
        tx.create_key(r"HKLM\Software\App\Sub").unwrap();
        tx.set_value(r"HKLM\Software\App", "V", &1u32).unwrap();
        tx.set_value_in("role", r"HKLM\Software\App", "V", &2u32)
            .unwrap();
        tx.commit().unwrap()
    });
    step(&|s| {
        s.set_security(
            r"HKLM\Software\App\Sub",
            &sddl::parse("D:P(A;;KA;;;SY)").unwrap(),
        )
        .unwrap()
    });
    step(&|s| {
        s.open_key_with(r"HKLM\Software\App", Access::KEY_ALL_ACCESS)
            .unwrap()
            .set_value("V", &3u32)
            .unwrap()
    });
    step(&|s| s.delete_tree(r"HKLM\Software\App\Sub").unwrap());
    step(&|s| {
        s.create_key(r"HKU\alice\Env")
            .unwrap()
            .set_value("Path", "C:\\")
            .unwrap()
    });
    step(&|s| s.drop_layer("role").unwrap());
    seqs
}

#[test]
fn a_revert_puts_a_subtree_back_as_one_audited_transaction() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let seqs = history(&store);
    let target = seqs[3];
    let past = store.snapshot_at(target).unwrap();
    let mut expected = Vec::new();
    dump_key(
        &past.open_key(r"HKLM\Software\App").unwrap(),
        "",
        &mut expected,
    );
    let before = store.seq();
    let before_dump = dump(&store, Some(before));
    let reverted = store.revert(r"HKLM\Software\App", target).unwrap();
    assert_eq!(reverted, before + 1, "one new transaction");
    let mut now = Vec::new();
    dump_key(&store.open_key(r"HKLM\Software\App").unwrap(), "", &mut now);
    assert_eq!(now, expected);
    // History is not rewritten, and the revert says what it did.
    assert_eq!(dump(&store, Some(before)), before_dump);
    assert_ne!(dump(&store, None), before_dump);
    let mut audit = Vec::new();
    store
        .history::<Error>(reverted, reverted, &mut |txn| {
            audit.extend(
                txn.ops
                    .into_iter()
                    .filter(|op| matches!(op, HistoryOp::Audit { .. })),
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(
        audit,
        [HistoryOp::Audit {
            event: AuditEvent::Revert,
            path: r"Machine\Software\App".into(),
            source: r"Machine\Software\App".into(),
            seq: target,
        }]
    );
    // A key that did not exist then is deleted.
    store.revert(r"HKU\alice", seqs[0]).unwrap();
    assert!(store.open_key(r"HKU\alice").is_err());
    store.verify().unwrap();
}

#[test]
fn recovery_to_a_sequence_number_is_exactly_the_state_then() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let seqs = history(&store);
    for &seq in &seqs {
        let into = TempDir::new().unwrap();
        let recovered = store.recover_to(seq, into.path().join("store")).unwrap();
        assert_eq!(recovered.seq(), seq);
        assert_eq!(dump(&recovered, None), dump(&store, Some(seq)), "at {seq}");
        for &earlier in seqs.iter().filter(|&&s| s <= seq) {
            assert_eq!(
                dump(&recovered, Some(earlier)),
                dump(&store, Some(earlier)),
                "history at {earlier}"
            );
        }
        recovered.verify().unwrap();
        // The recovered store goes on from there.
        recovered.create_key(r"HKLM\Software\After").unwrap();
        assert_eq!(recovered.seq(), seq + 1);
    }
}

#[test]
fn a_registry_backup_plus_archives_rebuild_every_later_state() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let early = history(&store);
    let base_seq = *early.last().unwrap();
    let files = TempDir::new().unwrap();
    let backup = files.path().join("base.hvb");
    store
        .backup_registry(base_seq, std::fs::File::create(&backup).unwrap())
        .unwrap();
    // The backup's own audit record is the next transaction; then more history.
    let later = history(&store);
    let last = store.seq();
    let archive_dir = files.path().join("archive");
    let written = store.archive(base_seq, last, &archive_dir).unwrap();
    assert!(!written.is_empty());
    for file in &written {
        verify_archive_file(file).unwrap();
    }
    for seq in std::iter::once(base_seq).chain(later.iter().copied()) {
        let into = TempDir::new().unwrap();
        let rebuilt = recover_from_backup(
            &backup,
            std::slice::from_ref(&archive_dir),
            seq,
            into.path().join("store"),
        )
        .unwrap();
        assert_eq!(rebuilt.seq(), seq);
        assert_eq!(dump(&rebuilt, None), dump(&store, Some(seq)), "at {seq}");
        rebuilt.verify().unwrap();
    }
    // Beyond the archives, and with a hole in them, it refuses.
    let into = TempDir::new().unwrap();
    assert!(matches!(
        recover_from_backup(
            &backup,
            std::slice::from_ref(&archive_dir),
            last + 1,
            into.path().join("s")
        ),
        Err(Error::Log(hivelog::LogError::ArchiveShort { .. }))
    ));
    let holed = files.path().join("holed");
    store.archive(base_seq + 3, last, &holed).unwrap();
    let into = TempDir::new().unwrap();
    let error = recover_from_backup(&backup, &[holed], last, into.path().join("s")).unwrap_err();
    assert!(error.to_string().contains("lack transactions"), "{error}");
    // A key backup is no base.
    let key_backup = files.path().join("key.hvb");
    store
        .backup(
            r"HKLM\Software",
            store.seq(),
            std::fs::File::create(&key_backup).unwrap(),
        )
        .unwrap();
    let into = TempDir::new().unwrap();
    assert!(matches!(
        recover_from_backup(&key_backup, &[], base_seq, into.path().join("s")),
        Err(Error::BadBackup { .. })
    ));
}

#[test]
fn verify_file_tells_backups_from_archives_and_rejects_damage() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let seqs = history(&store);
    let files = TempDir::new().unwrap();
    let backup = files.path().join("b.hvb");
    let report = store
        .backup(
            r"HKLM\Software",
            store.seq(),
            std::fs::File::create(&backup).unwrap(),
        )
        .unwrap();
    match verify_file(&backup).unwrap() {
        VerifiedFile::Backup(info) => {
            assert_eq!(info.seq, report.seq);
            assert_eq!(info.bytes, report.bytes);
        }
        other => panic!("a backup verified as {other:?}"),
    }
    let written = store
        .archive(seqs[0], store.seq(), files.path().join("a"))
        .unwrap();
    let mut covered = Vec::new();
    for file in &written {
        match verify_file(file).unwrap() {
            VerifiedFile::Archive(summary) => {
                assert_eq!(
                    summary.transactions,
                    summary.last_seq - summary.first_seq + 1
                );
                covered.push((summary.first_seq, summary.last_seq));
            }
            other => panic!("an archive verified as {other:?}"),
        }
    }
    assert_eq!(covered.first().unwrap().0, seqs[0] + 1);
    assert_eq!(
        covered.last().unwrap().1,
        store.seq(),
        "the backup's own audit too"
    );
    // A flipped byte in an archive's records, a foreign file, an empty one: all refused.
    let mut bytes = std::fs::read(&written[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = files.path().join("damaged");
    std::fs::write(&damaged, &bytes).unwrap();
    assert!(verify_file(&damaged).is_err());
    for (name, content) in [
        ("foreign", b"PK\x03\x04 not ours".as_slice()),
        ("empty", b""),
    ] {
        let path = files.path().join(name);
        std::fs::write(&path, content).unwrap();
        let error = verify_file(&path).unwrap_err();
        assert!(
            error.to_string().contains("neither a hivelog backup"),
            "{error}"
        );
    }
    assert!(matches!(
        verify_file(files.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// For random histories, a recovery at every sequence number, and a rebuild from a
    /// backup at a random cut plus archives at every later one, equal the model replayed
    /// through that sequence number (and what a snapshot there reads, descriptors included).
    #[test]
    fn recoveries_equal_the_model_at_every_sequence_number(
        changes in prop::collection::vec(change(), 1..14),
        cut in 0usize..14,
    ) {
        let root = r"HKLM\Software\Busy";
        let dir = TempDir::new().unwrap();
        let store = open(dir.path());
        store.create_layer(ROLE_LAYER, 5).unwrap();
        store.create_key(root).unwrap();
        let mut model = Model::new();
        model.insert(String::new(), Default::default());
        let mut states = vec![(store.seq(), model.clone())];
        for change in &changes {
            if let Some(seq) = change.commit(&store, root) {
                change.apply(&mut model);
                states.push((seq, model.clone()));
            }
        }
        for (seq, model) in &states {
            let into = TempDir::new().unwrap();
            let recovered = store.recover_to(*seq, into.path().join("s")).unwrap();
            prop_assert_eq!(recovered.seq(), *seq);
            prop_assert_eq!(&model_of(&recovered, root), model, "recovered at {}", seq);
            prop_assert_eq!(dump(&recovered, None), dump(&store, Some(*seq)));
        }
        let (base, _) = states[cut.min(states.len() - 1)];
        let files = TempDir::new().unwrap();
        let backup = files.path().join("base");
        store.backup_registry(base, std::fs::File::create(&backup).unwrap()).unwrap();
        // The backup's own audit record is a transaction too: archived, and in no state.
        let last = store.seq();
        let archives = vec![files.path().join("archive")];
        store.archive(base, last, &archives[0]).unwrap();
        for (seq, model) in states.iter().filter(|(seq, _)| *seq >= base) {
            let into = TempDir::new().unwrap();
            let rebuilt = recover_from_backup(&backup, &archives, *seq, into.path().join("s")).unwrap();
            prop_assert_eq!(&model_of(&rebuilt, root), model, "rebuilt at {}", seq);
            prop_assert_eq!(dump(&rebuilt, None), dump(&store, Some(*seq)));
        }
    }
}
