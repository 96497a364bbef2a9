//! Backup and restore through the public API: full fidelity (layers, descriptors, classes,
//! links, every value type), replace-not-merge with the anchor's identity kept, portability to
//! another store, privileges and audit records, consistency under concurrent writers, every
//! damaged stream refused before any change, and a crash anywhere in a restore's transaction.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use std::path::Path;

use hivelog::{
    Access, AuditEvent, Caller, CreateOptions, Error, HistoryOp, Options, Privileges, Store,
    SyncPolicy, Value, ValueType, sddl,
};
use tempfile::TempDir;

mod common;
use common::{Change, Model, change, dump, dump_key, model_of};

fn open(dir: &Path) -> Store {
    Store::open(dir, Options::default()).unwrap()
}

/// A subtree using everything a backup must carry.
fn build(store: &Store, root: &str) {
    store.create_layer("role", 50).ok();
    let mut tx = store.transaction();
    tx.create_key(&format!(r"{root}\A\B")).unwrap();
    let values = [
        ("", Value::string("default")),
        ("Str", Value::string("text")),
        ("Exp", Value::expand_string("%PATH%")),
        ("Multi", Value::multi_string(&["a", "b"])),
        ("Dword", Value::dword(7)),
        ("Big", Value::dword_big_endian(9)),
        ("Qword", Value::qword(1 << 40)),
        ("Bin", Value::binary(vec![1, 2, 3, 250])),
        ("None", Value::new(ValueType::NONE, vec![])),
        ("App", Value::new(ValueType(0x8000_0001), vec![9; 300])),
    ];
    for (name, value) in &values {
        tx.set_value(&format!(r"{root}\A"), name, value).unwrap();
    }
    tx.set_value_in("role", &format!(r"{root}\A"), "Dword", &8u32)
        .unwrap();
    tx.set_value_in("policy", &format!(r"{root}\A\B"), "Locked", &1u32)
        .unwrap();
    tx.commit().unwrap();
    let class = CreateOptions {
        class: Some("Shell".into()),
        ..CreateOptions::default()
    };
    store
        .create_key_with(&format!(r"{root}\A\Classy"), &class)
        .unwrap();
    let link = CreateOptions {
        link: Some(format!(r"{root}\A\B")),
        ..CreateOptions::default()
    };
    store
        .create_key_with(&format!(r"{root}\A\ToB"), &link)
        .unwrap();
    store
        .set_security(
            &format!(r"{root}\A\B"),
            &sddl::parse("O:BAD:P(A;CI;KA;;;SY)(A;;KR;;;alice)").unwrap(),
        )
        .unwrap();
    let volatile = CreateOptions {
        volatile: true,
        ..CreateOptions::default()
    };
    store
        .create_key_with(&format!(r"{root}\A\Running"), &volatile)
        .unwrap();
}

fn backup(store: &Store, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store.backup(path, store.seq(), &mut out).unwrap();
    out
}

#[test]
fn a_backup_restores_with_full_fidelity_in_place_and_in_another_store() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    build(&store, r"HKLM\Software\App");
    let before = dump(&store, r"HKLM\Software\App");
    let stream = backup(&store, r"HKLM\Software\App");
    // In place, after damage.
    store.delete_tree(r"HKLM\Software\App\A\B").unwrap();
    store
        .create_key(r"HKLM\Software\App\Stray")
        .unwrap()
        .set_value("X", &1u32)
        .unwrap();
    let anchor = store.open_key(r"HKLM\Software\App").unwrap().id();
    let report = store.restore(r"HKLM\Software\App", &stream[..]).unwrap();
    assert_eq!(report.backup.source_path, r"Machine\Software\App");
    assert_eq!(dump(&store, r"HKLM\Software\App"), before);
    assert_eq!(
        store.open_key(r"HKLM\Software\App").unwrap().id(),
        anchor,
        "the key keeps its id"
    );
    assert!(
        store.open_key(r"HKLM\Software\App\Stray").is_err(),
        "replace, not merge"
    );
    // Into another key, and into another store; both survive a reopen.
    store.restore(r"HKLM\Software\Copy", &stream[..]).unwrap();
    assert_eq!(dump(&store, r"HKLM\Software\Copy").len(), before.len());
    let other_dir = TempDir::new().unwrap();
    let other = open(other_dir.path());
    other.restore(r"HKLM\Software\App", &stream[..]).unwrap();
    assert_eq!(dump(&other, r"HKLM\Software\App"), before);
    assert!(
        other.open_key(r"HKLM\Software\App\A\Running").is_err(),
        "volatile keys are not in a backup"
    );
    other.close().unwrap();
    let other = open(other_dir.path());
    assert_eq!(dump(&other, r"HKLM\Software\App"), before);
    other.verify().unwrap();
    assert_eq!(
        other
            .get_raw_value(r"HKLM\Software\App\A\ToB", "Locked")
            .unwrap(),
        Value::dword(1),
        "the link works after the restore"
    );
}

#[test]
fn a_restore_replaces_atomically_and_its_past_stays_readable() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    build(&store, r"HKLM\Software\App");
    let old = dump(&store, r"HKLM\Software\App");
    let stream = backup(&store, r"HKLM\Software\App\A\B");
    let before = store.seq();
    store.restore(r"HKLM\Software\App", &stream[..]).unwrap();
    assert_eq!(store.seq(), before + 1, "one transaction");
    let past = store.snapshot_at(before).unwrap();
    let key = past.open_key(r"HKLM\Software\App\A").unwrap();
    assert_eq!(key.get_value::<u32>("Dword").unwrap(), 8);
    assert!(store.open_key(r"HKLM\Software\App\A").is_err());
    assert_eq!(
        store
            .get_raw_value_in("policy", r"HKLM\Software\App", "Locked")
            .unwrap(),
        Value::dword(1)
    );
    assert_ne!(dump(&store, r"HKLM\Software\App"), old);
}

/// Fills `root` with `keys` keys of 4 values each, `data` in every value, in one transaction.
fn fill(store: &Store, root: &str, keys: usize, data: u32) {
    let mut tx = store.transaction();
    for k in 0..keys {
        let path = format!(r"{root}\K{}\L{k}", k % 16);
        tx.create_key(&path).unwrap();
        for v in 0..4 {
            tx.set_value(&path, &format!("V{v}"), &data).unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn readers_during_a_long_restore_see_the_old_subtree_or_the_new_one_never_a_mix() {
    // Enough records for the restore to let readers in many times on the way.
    let keys = 6000;
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let root = r"HKLM\Software\Live";
    fill(&store, root, keys, 1);
    let source_dir = TempDir::new().unwrap();
    let source = open(source_dir.path());
    fill(&source, root, keys, 2);
    let stream = backup(&source, root);
    let old = dump(&store, root);
    let new = dump(&source, root);
    let before = store.seq();
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    let (olds, news) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut olds, mut news) = (0, 0);
            while !done.load(Ordering::Acquire) {
                // A whole-subtree read at the latest sequence number, and a point read:
                // both the old state or both the new one, by the snapshot's sequence number.
                let view = store.snapshot();
                let key = view.open_key(&format!(r"{root}\K3\L3")).unwrap();
                let point: u32 = key.get_value("V2").unwrap();
                if view.seq() == before {
                    assert_eq!(point, 1);
                    olds += 1;
                } else {
                    assert_eq!(point, 2);
                    news += 1;
                }
                let mut seen = Vec::new();
                let top = view.open_key_with(root, Access::KEY_READ).unwrap();
                dump_key(&top, "", &mut seen);
                assert!(
                    seen == old || seen == new,
                    "a mixed subtree at {}",
                    view.seq()
                );
                assert_eq!(seen == new, view.seq() > before);
            }
            (olds, news)
        });
        store.restore(root, &stream[..]).unwrap();
        // Let the reader see the result at least once.
        std::thread::sleep(std::time::Duration::from_millis(50));
        done.store(true, Ordering::Release);
        reader.join().unwrap()
    });
    assert_eq!(store.seq(), before + 1, "one transaction");
    assert_eq!(dump(&store, root), new);
    assert!(
        olds > 0 && news > 0,
        "{olds} reads of the old state, {news} of the new"
    );
}

#[test]
fn a_backup_that_cannot_start_takes_nothing_and_leaves_no_audit_record() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    build(&store, r"HKLM\Software\App");
    let seq = store.seq();
    let mut out = Vec::new();
    assert!(matches!(
        store.backup(r"HKLM\Software\Nope", seq, &mut out),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.backup(r"HKLM\Software\App\A\Running", seq, &mut out),
        Err(Error::VolatileBackup { .. })
    ));
    // A key that exists now but not at the cut.
    let before = seq;
    store.create_key(r"HKLM\Software\Later").unwrap();
    assert!(matches!(
        store.backup(r"HKLM\Software\Later", before, &mut out),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.backup(r"HKLM\Software\App", store.seq() + 1, &mut out),
        Err(Error::FutureSeq { .. })
    ));
    assert!(out.is_empty());
    assert_eq!(store.seq(), before + 1, "only the create committed");
}

#[test]
fn privileges_gate_backup_and_restore_and_both_are_audited() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    build(&store, r"HKLM\Software\App");
    let alice = store.session(Caller::user("alice")).unwrap();
    assert!(matches!(
        alice.backup(r"HKLM\Software\App", store.seq(), Vec::new()),
        Err(Error::PrivilegeRequired {
            privilege: "SeBackupPrivilege",
            ..
        })
    ));
    // The backup privilege reads keys the caller could not open.
    store
        .set_security(
            r"HKLM\Software\App\A",
            &sddl::parse("D:P(A;;KA;;;SY)").unwrap(),
        )
        .unwrap();
    let operator = store
        .session(Caller::user("operator").with_privileges(Privileges::BACKUP))
        .unwrap();
    assert!(operator.open_key(r"HKLM\Software\App\A").is_err());
    let cut = store.seq();
    let mut stream = Vec::new();
    operator
        .backup(r"HKLM\Software\App", cut, &mut stream)
        .unwrap();
    assert!(matches!(
        operator.restore(r"HKLM\Software\App", &stream[..]),
        Err(Error::PrivilegeRequired {
            privilege: "SeRestorePrivilege",
            ..
        })
    ));
    let restorer = store
        .session(Caller::user("restorer").with_privileges(Privileges::RESTORE))
        .unwrap();
    restorer
        .restore(r"HKLM\Software\Elsewhere", &stream[..])
        .unwrap();
    let mut audits = Vec::new();
    store
        .history::<Error>(1, u64::MAX, &mut |txn| {
            for op in txn.ops {
                // (Giving B away earlier was audited too, as a privilege use: history.rs.)
                if let HistoryOp::Audit {
                    event: AuditEvent::Backup | AuditEvent::Restore,
                    ..
                } = op
                {
                    audits.push((txn.principal.clone(), op));
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        audits,
        [
            (
                "operator".to_string(),
                HistoryOp::Audit {
                    event: AuditEvent::Backup,
                    path: r"Machine\Software\App".into(),
                    source: String::new(),
                    seq: cut,
                }
            ),
            (
                "restorer".to_string(),
                HistoryOp::Audit {
                    event: AuditEvent::Restore,
                    path: r"Machine\Software\Elsewhere".into(),
                    source: r"Machine\Software\App".into(),
                    seq: cut,
                }
            ),
        ]
    );
}

#[test]
fn every_damaged_or_truncated_stream_is_refused_before_any_change() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    store
        .create_key(r"HKLM\Software\Small")
        .unwrap()
        .set_value("V", "x")
        .unwrap();
    let stream = backup(&store, r"HKLM\Software\Small");
    let seq = store.seq();
    let target = r"HKLM\Software\Target";
    for cut in 0..stream.len() {
        assert!(
            store.restore(target, &stream[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    for i in 0..stream.len() {
        let mut bad = stream.clone();
        bad[i] ^= 0x10;
        assert!(store.restore(target, &bad[..]).is_err(), "flip in byte {i}");
    }
    assert!(matches!(
        store.restore(target, &b"not a backup at all, just bytes"[..]),
        Err(Error::Log(hivelog::LogError::BadStream { .. }))
    ));
    assert_eq!(store.seq(), seq, "no refused stream committed anything");
    assert!(store.open_key(target).is_err());
    store.restore(target, &stream[..]).unwrap();
}

#[test]
fn a_backup_taken_while_writers_commit_equals_the_snapshot_at_its_cut() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )
    .unwrap();
    build(&store, r"HKLM\Software\Busy");
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let (stop, commits) = (AtomicBool::new(false), AtomicU32::new(0));
    std::thread::scope(|scope| {
        let writer = store.clone();
        let (stop, commits) = (&stop, &commits);
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let i = commits.load(Ordering::Relaxed);
                let mut tx = writer.transaction();
                tx.create_key(&format!(r"HKLM\Software\Busy\A\N{}", i % 50))
                    .unwrap();
                tx.set_value(r"HKLM\Software\Busy\A", "Dword", &i).unwrap();
                tx.commit().unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
                // The journal's writer lock is not fair: let the backups' audit commits in.
                std::thread::yield_now();
            }
        });
        let mut seen = 0;
        for _ in 0..5 {
            let cut = store.seq();
            let mut stream = Vec::new();
            store
                .backup(r"HKLM\Software\Busy", cut, &mut stream)
                .unwrap();
            let other_dir = TempDir::new().unwrap();
            let other = open(other_dir.path());
            other.restore(r"HKLM\Software\Busy", &stream[..]).unwrap();
            let expected = dump_at(&store, cut, r"HKLM\Software\Busy");
            assert_eq!(dump(&other, r"HKLM\Software\Busy"), expected, "cut {cut}");
            while commits.load(Ordering::Relaxed) == seen {
                std::thread::yield_now();
            }
            seen = commits.load(Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// `dump` of a snapshot.
fn dump_at(store: &Store, seq: u64, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let key = store.snapshot_at(seq).unwrap().open_key(path).unwrap();
    dump_key(&key, "", &mut out);
    out
}

#[test]
fn a_crash_anywhere_in_a_restore_leaves_the_old_subtree_or_the_new_one() {
    let dir = TempDir::new().unwrap();
    let small = || Options {
        segment_size_bytes: 64 * 1024,
        value_size_max_bytes: 16 * 1024,
        ..Options::default()
    };
    let store = Store::open(dir.path(), small()).unwrap();
    store
        .create_key(r"HKLM\Software\Old\Keep")
        .unwrap()
        .set_value("Was", "old")
        .unwrap();
    let source_dir = TempDir::new().unwrap();
    let source = open(source_dir.path());
    source
        .create_key(r"HKLM\Software\New\Fresh")
        .unwrap()
        .set_value("Is", "new")
        .unwrap();
    let stream = backup(&source, r"HKLM\Software\New");
    let old = dump(&store, r"HKLM\Software\Old");
    store.restore(r"HKLM\Software\Old", &stream[..]).unwrap();
    let new = dump(&store, r"HKLM\Software\Old");
    let seq = store.seq();
    store.close().unwrap();
    // The restore's transaction starts its own segment: cut that segment at every byte.
    let journal = dir.path().join("journal");
    let mut segments: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let image = std::fs::read(&last).unwrap();
    let end = image.iter().rposition(|&b| b != 0).unwrap() + 1;
    let (mut saw_old, mut saw_new) = (0, 0);
    for cut in 64..end {
        let copy = TempDir::new().unwrap();
        let copy_journal = copy.path().join("journal");
        std::fs::create_dir(&copy_journal).unwrap();
        for segment in &segments {
            std::fs::copy(segment, copy_journal.join(segment.file_name().unwrap())).unwrap();
        }
        let mut damaged = image.clone();
        damaged[cut..].fill(0);
        std::fs::write(copy_journal.join(last.file_name().unwrap()), &damaged).unwrap();
        let reopened = Store::open(copy.path(), small()).unwrap();
        let seen = dump(&reopened, r"HKLM\Software\Old");
        if reopened.seq() >= seq {
            assert_eq!(seen, new, "cut at {cut}");
            saw_new += 1;
        } else {
            assert_eq!(seen, old, "cut at {cut}");
            saw_old += 1;
        }
    }
    assert!(saw_old > 100 && saw_new > 0, "{saw_old} old, {saw_new} new");
}

/// Backups one case of the concurrent proptest takes while its writers run.
const BACKUPS_MAX: usize = 40;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10))]

    /// Two writer threads commit random histories while backups are taken at the last
    /// committed sequence number again and again; each backup, restored into a fresh store,
    /// equals the model replayed through its cut (the writers' changes in sequence order).
    #[test]
    fn backups_under_concurrent_writers_equal_the_model_at_their_cut(
        histories in proptest::collection::vec(proptest::collection::vec(change(), 1..40), 2),
    ) {
        let root = r"HKLM\Software\Busy";
        let dir = TempDir::new().unwrap();
        let options = Options { sync: SyncPolicy::Never, ..Options::default() };
        let store = Store::open(dir.path(), options).unwrap();
        store.create_layer("role", 50).unwrap();
        store.create_key(root).unwrap();
        let writers_running = std::sync::atomic::AtomicUsize::new(histories.len());
        let mut committed: Vec<(u64, Change)> = Vec::new();
        let mut backups: Vec<(u64, Vec<u8>)> = Vec::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = histories
                .iter()
                .map(|history| {
                    let (store, running) = (&store, &writers_running);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        for change in history {
                            if let Some(seq) = change.commit(store, root) {
                                done.push((seq, change.clone()));
                            }
                            // The journal's writer lock is not fair: let the backups'
                            // audit commits in.
                            std::thread::yield_now();
                        }
                        running.fetch_sub(1, std::sync::atomic::Ordering::Release);
                        done
                    })
                })
                .collect();
            // Backups as fast as they come (a few dozen at most), then one after the last
            // change.
            loop {
                let last_round =
                    writers_running.load(std::sync::atomic::Ordering::Acquire) == 0;
                if last_round || backups.len() < BACKUPS_MAX {
                    let cut = store.seq();
                    let mut stream = Vec::new();
                    store.backup(root, cut, &mut stream).unwrap();
                    backups.push((cut, stream));
                } else {
                    std::thread::yield_now();
                }
                if last_round {
                    break;
                }
            }
            for handle in handles {
                committed.extend(handle.join().unwrap());
            }
        });
        committed.sort_by_key(|(seq, _)| *seq);
        for (cut, stream) in &backups {
            let mut model = Model::new();
            model.insert(String::new(), Default::default());
            for (_, change) in committed.iter().take_while(|(seq, _)| seq <= cut) {
                change.apply(&mut model);
            }
            let other_dir = TempDir::new().unwrap();
            let other = open(other_dir.path());
            other.create_layer("role", 50).unwrap();
            other.restore(root, &stream[..]).unwrap();
            proptest::prop_assert_eq!(&model_of(&other, root), &model, "cut {}", cut);
        }
        proptest::prop_assert!(backups.len() >= 2);
    }
}
