//! Compaction: the history before a cut is replaced by a base holding the state at the cut.
//! Every read from the cut on sees what it saw before, across reopens; reads before it fail
//! naming the oldest readable sequence number; a snapshot held across a compaction reads
//! the same values before and after; a crash at any step reopens to the committed state.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// #[test] functions, not the helpers beside them.)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use hivelog::{CHECKPOINT_DIR, Error, Options, Store, Value};
use hivelog_log::sim::SimVfs;
use tempfile::TempDir;

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        value_size_max_bytes: 16 << 10,
        // The tests compact by hand.
        compaction: false,
        ..Options::default()
    }
}

fn sim_options(vfs: &SimVfs) -> Options {
    Options {
        vfs: Arc::new(vfs.clone()),
        ..options()
    }
}

/// Overwrites a few values many times over: history that fills segments, most of it dead.
fn churn(store: &Store, rounds: u32) {
    for round in 0..rounds {
        let mut tx = store.transaction();
        for key in 0..20u32 {
            let path = format!(r"HKLM\Software\Churn\K{key}");
            tx.create_key(&path).unwrap();
            tx.set_value(&path, "Data", &format!("{round}:{}", "z".repeat(400)))
                .unwrap();
        }
        tx.commit().unwrap();
    }
}

fn journal_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn a_compaction_keeps_every_state_from_its_cut_on_and_frees_the_history() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    churn(&store, 30);
    common::history(&store, 1);
    let before = common::every_snapshot(&store);
    let bytes_before = dir_bytes(&dir.path().join("journal"));
    assert_eq!(store.oldest_seq(), 0);

    let report = store.compact_keeping(0, 0).unwrap().expect("a cut exists");
    let cut = report.seq;
    assert!(cut > 1 && cut <= store.seq(), "{report:?}");
    assert!(!report.waiting_for_readers);
    assert!(report.freed_bytes > 0);
    assert!(report.values > 0 && report.keys > 0);
    assert_eq!(store.oldest_seq(), cut);
    assert!(dir_bytes(&dir.path().join("journal")) < bytes_before);
    assert_eq!(
        journal_files(dir.path())
            .iter()
            .filter(|name| name.ends_with(".base"))
            .count(),
        1
    );
    // Reads from the cut on see what they saw; before it they fail, naming the cut.
    let after = common::every_snapshot_from(&store, cut);
    assert_eq!(after, before[(cut - 1) as usize..]);
    match store.snapshot_at(cut - 1) {
        Err(Error::Compacted { seq, oldest }) => assert_eq!((seq, oldest), (cut - 1, cut)),
        Err(other) => panic!("expected a compacted error, got {other}"),
        Ok(_) => panic!("a snapshot before the cut"),
    }
    // History starts after the base; asking for older history names where it starts.
    assert_eq!(store.history_start(), cut + 1);
    let mut seen = Vec::new();
    store
        .history::<Error>(store.history_start(), store.seq(), &mut |txn| {
            seen.push(txn.seq);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, ((cut + 1)..=store.seq()).collect::<Vec<_>>());
    assert!(matches!(
        store.history::<Error>(2, store.seq(), &mut |_| Ok(())),
        Err(Error::Compacted { oldest, .. }) if oldest == cut + 1
    ));
    assert!(matches!(
        store.archive(1, store.seq(), dir.path().join("archive")),
        Err(Error::Log(hivelog_log::LogError::Compacted { .. }))
    ));
    // The store goes on: new writes, a checkpoint, a reopen from it and from the base alone.
    store
        .create_key(r"HKLM\Software\After")
        .unwrap()
        .set_value("A", &7u32)
        .unwrap();
    let last = common::every_snapshot_from(&store, cut);
    store.close().unwrap();
    for checkpoints in [true, false] {
        let store = Store::open(
            dir.path(),
            Options {
                checkpoints,
                ..options()
            },
        )
        .unwrap();
        assert_eq!(store.oldest_seq(), cut);
        if checkpoints {
            // The one the compaction wrote (from the base's Commit record on) loads.
            assert_eq!(store.checkpoint_report().ignored, []);
            assert!(store.checkpoint_report().loaded.is_some());
        }
        assert_eq!(common::every_snapshot_from(&store, cut), last);
        let verified = store.verify().unwrap();
        assert_eq!(verified.last_seq, store.seq());
        drop(store);
    }
    // A recovery to a state at or after the cut still works; before it is refused.
    let store = Store::open(dir.path(), options()).unwrap();
    let recovered = store
        .recover_to(cut + 1, dir.path().join("recovered"))
        .unwrap();
    assert_eq!(common::dump_hives(|path| recovered.open_key(path)), last[1]);
    assert!(matches!(
        store.recover_to(cut - 1, dir.path().join("recovered-early")),
        Err(Error::Compacted { .. })
    ));
}

#[test]
fn a_snapshot_held_across_a_compaction_reads_the_same_before_and_after() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    let old = store.snapshot_at(20).unwrap();
    let key = old.open_key(r"HKLM\Software\Round0\App3\Settings").unwrap();
    let seen = common::dump_hives(|path| old.open_key(path));
    let text = key.get_raw_value("Text").unwrap();
    common::history(&store, 1);
    churn(&store, 30);
    let now = common::dump_hives(|path| store.open_key(path));

    let report = store.compact_keeping(0, 0).unwrap().unwrap();
    assert!(report.seq > 20);
    assert!(
        report.waiting_for_readers,
        "the snapshot at 20 holds the history"
    );
    assert_eq!(report.freed_bytes, 0);
    let replaced_still_there = report
        .replaced_files
        .iter()
        .all(|name| dir.path().join("journal").join(name).exists());
    assert!(replaced_still_there);
    // The old snapshot, and a handle opened from it before, read what they read.
    assert_eq!(common::dump_hives(|path| old.open_key(path)), seen);
    assert_eq!(key.get_raw_value("Text").unwrap(), text);
    assert_eq!(common::dump_hives(|path| store.open_key(path)), now);
    // No new snapshot before the cut starts meanwhile.
    assert!(matches!(
        store.snapshot_at(20),
        Err(Error::Compacted { .. })
    ));
    // A second compaction while the first waits: both wait, the old snapshot reads the same.
    churn(&store, 30);
    let now = common::dump_hives(|path| store.open_key(path));
    let second = store.compact_keeping(0, 0).unwrap().unwrap();
    assert!(second.seq > report.seq && second.waiting_for_readers);
    assert_eq!(common::dump_hives(|path| old.open_key(path)), seen);
    assert_eq!(key.get_raw_value("Text").unwrap(), text);
    let mut report = report;
    report.replaced_files.extend(second.replaced_files);
    drop(old);
    // The handle still pins it.
    assert!(store.compact_keeping(0, 0).unwrap().is_none());
    assert!(
        dir.path()
            .join("journal")
            .join(&report.replaced_files[0])
            .exists()
    );
    drop(key);
    // With the readers gone, the next compaction (here: none due) removes the files.
    assert!(store.compact_keeping(0, 0).unwrap().is_none());
    for name in &report.replaced_files {
        assert!(!dir.path().join("journal").join(name).exists(), "{name}");
    }
    assert_eq!(common::dump_hives(|path| store.open_key(path)), now);
}

#[test]
fn writers_and_readers_go_on_while_a_compaction_runs() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    churn(&store, 30);
    let expected = store
        .get_raw_value(r"HKLM\Software\Round0\App1\Settings", "Text")
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .create_key(&format!(r"HKLM\Software\Busy\K{}", i % 50))
                    .unwrap()
                    .set_value("V", &"y".repeat(300 + (i % 50) as usize))
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let expected = expected;
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let value = store
                    .get_raw_value(r"HKLM\Software\Round0\App1\Settings", "Text")
                    .unwrap();
                assert_eq!(value, expected);
                reads += 1;
            }
            reads
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut compactions = 0;
    for _ in 0..3 {
        if store.compact_keeping(0, 0).unwrap().is_some() {
            compactions += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let reads = reader.join().unwrap();
    assert!(compactions >= 2 && writes > 0 && reads > 0);
    let now = common::dump_hives(|path| store.open_key(path));
    store.close().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(common::dump_hives(|path| store.open_key(path)), now);
}

/// A power cut at every durable step of a compaction (the base's syncs, its rename, the
/// removal of the segments it replaced, the checkpoint after it) reopens to the same state,
/// with history either whole or starting at the cut.
#[test]
fn a_crash_at_any_step_of_a_compaction_reopens_to_the_committed_state() {
    let vfs = SimVfs::new();
    let dir = Path::new("/store");
    let store = Store::open(dir, sim_options(&vfs)).unwrap();
    common::history_with(&store, 0, false);
    churn(&store, 30);
    common::history_with(&store, 1, false);
    let last = store.seq();
    let expected = common::every_snapshot(&store);
    store.close().unwrap();
    let mut outcomes = (0, 0);
    for syncs in 0.. {
        let run = vfs.cut_power();
        let store = Store::open(dir, sim_options(&run)).unwrap();
        run.power_off_after_syncs(syncs);
        let finished = store.compact_keeping(0, 0).is_ok();
        drop(store);
        let reborn = run.cut_power();
        let store = Store::open(dir, sim_options(&reborn)).unwrap();
        assert_eq!(store.seq(), last, "after {syncs} syncs");
        let oldest = store.oldest_seq();
        if oldest == 0 {
            outcomes.0 += 1;
            assert_eq!(common::every_snapshot(&store), expected);
        } else {
            outcomes.1 += 1;
            assert_eq!(
                common::every_snapshot_from(&store, oldest),
                expected[(oldest - 1) as usize..],
                "after {syncs} syncs"
            );
        }
        assert!(
            reborn
                .files()
                .iter()
                .all(|path| !path.to_string_lossy().ends_with(".unfinished")),
        );
        drop(store);
        if finished {
            break;
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

#[test]
fn the_background_compactor_follows_the_retention_parameters() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(
        dir.path(),
        Options {
            compaction: true,
            ..options()
        },
    )
    .unwrap();
    // The default window keeps a million commits: nothing goes.
    common::history(&store, 0);
    churn(&store, 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(store.oldest_seq(), 0);
    // A window of 10 commits and no time: what lies before it goes, by itself.
    let parameters = store.create_key(hivelog::PARAMETERS_KEY).unwrap();
    parameters.set_value("HistoryKeepCommits", &10u32).unwrap();
    parameters.set_value("HistoryKeepSeconds", &0u32).unwrap();
    churn(&store, 60);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.oldest_seq() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction by policy"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(store.oldest_seq() + 10 <= store.seq());
    // A value outside the range is refused, and the window in force kept.
    assert!(
        parameters
            .set_value("HistoryKeepSeconds", &Value::qword(1))
            .is_ok()
    );
    let report = store
        .parameters()
        .into_iter()
        .find(|p| p.name == "HistoryKeepSeconds")
        .unwrap();
    assert_eq!(report.in_force, "0");
    assert!(report.rejected.is_some());
    let now = common::dump_hives(|path| store.open_key(path));
    drop(parameters);
    store.close().unwrap();
    assert!(
        !dir.path().join(CHECKPOINT_DIR).exists()
            || std::fs::read_dir(dir.path().join(CHECKPOINT_DIR))
                .unwrap()
                .count()
                <= 1
    );
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(common::dump_hives(|path| store.open_key(path)), now);
}

#[test]
fn a_close_removes_what_waited_for_an_old_snapshot() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    let old = store.snapshot_at(5).unwrap();
    churn(&store, 30);
    let report = store.compact_keeping(0, 0).unwrap().unwrap();
    assert!(report.waiting_for_readers);
    drop(old);
    let now = common::dump_hives(|path| store.open_key(path));
    store.close().unwrap();
    for name in &report.replaced_files {
        assert!(!dir.path().join("journal").join(name).exists(), "{name}");
    }
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.checkpoint_report().ignored, []);
    assert_eq!(common::dump_hives(|path| store.open_key(path)), now);
}

/// With archiving on, the transactions a compaction replaces reach the archive first: a
/// whole-registry backup taken before plus the archives rebuild the state at the cut.
#[test]
fn with_archiving_on_the_replaced_history_is_archived_first() {
    let dir = TempDir::new().unwrap();
    let archive = dir.path().join("archive");
    let store = Store::open(
        dir.path().join("store"),
        Options {
            archive_dir: Some(archive.clone()),
            ..options()
        },
    )
    .unwrap();
    common::history(&store, 0);
    let taken_at = store.seq();
    let backup = dir.path().join("registry.hvb");
    store
        .backup_registry(taken_at, std::fs::File::create(&backup).unwrap())
        .unwrap();
    churn(&store, 30);
    common::history(&store, 1);
    let before = common::every_snapshot(&store);
    let report = store.compact_keeping(0, 0).unwrap().unwrap();
    let files: Vec<_> = std::fs::read_dir(&archive).unwrap().collect();
    assert!(!files.is_empty());
    for file in &files {
        hivelog::verify_archive_file(file.as_ref().unwrap().path()).unwrap();
    }
    // The backup and the archives rebuild every state from the backup's cut to the cut.
    for to in [taken_at, (taken_at + report.seq) / 2, report.seq] {
        let rebuilt = hivelog::recover_from_backup(
            &backup,
            std::slice::from_ref(&archive),
            to,
            dir.path().join(format!("rebuilt-{to}")),
        )
        .unwrap();
        assert_eq!(
            common::dump_hives(|path| rebuilt.open_key(path)),
            before[(to - 1) as usize],
            "the state at {to}"
        );
    }
}
