//! Checkpoints: an open that starts from one sees exactly what a full replay of the journal
//! sees, at every sequence number; a damaged, stale or half-written checkpoint is passed over
//! and loses nothing; a crash at any step of writing one leaves the committed state.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// #[test] functions, not the helpers beside them.)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hivelog::{CHECKPOINT_DIR, Options, Store, SyncPolicy, Value};
use hivelog_log::sim::SimVfs;
use proptest::prelude::*;
use tempfile::TempDir;

fn options() -> Options {
    Options {
        segment_size_bytes: 64 << 10,
        value_size_max_bytes: 16 << 10,
        ..Options::default()
    }
}

fn sim_options(vfs: &SimVfs) -> Options {
    Options {
        vfs: Arc::new(vfs.clone()),
        ..options()
    }
}

fn full_replay(dir: &Path) -> Vec<Vec<String>> {
    let store = Store::open(
        dir,
        Options {
            checkpoints: false,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(store.checkpoint_report().loaded, None);
    let all = common::every_snapshot(&store);
    store.close().unwrap();
    all
}

fn checkpoint_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(CHECKPOINT_DIR))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|file| file.extension().is_some_and(|ext| ext == "hvc"));
    files.sort();
    files
}

#[test]
fn a_reopen_from_a_checkpoint_sees_what_a_full_replay_sees_at_every_seq() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    let info = store
        .checkpoint()
        .unwrap()
        .expect("a checkpoint is written");
    assert_eq!(info.seq, store.seq());
    assert_eq!(store.checkpoint().unwrap(), None, "nothing new to write");
    common::history(&store, 1);
    let last = store.seq();
    drop(store); // no close: no checkpoint at close, the journal after the first is replayed

    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        store.checkpoint_report().loaded,
        Some((info.file.clone(), info.seq))
    );
    assert_eq!(store.checkpoint_report().ignored, []);
    assert_eq!(store.recovery_report().resumed_after, Some(info.seq));
    assert_eq!(store.seq(), last);
    let verified = store
        .verify()
        .expect("the state from the checkpoint verifies");
    assert_eq!(verified.last_seq, last);
    // The store goes on from the checkpoint: new keys get new ids, links resolve, layers hold.
    store
        .create_key(r"HKLM\Software\After")
        .unwrap()
        .set_value("A", &1u32)
        .unwrap();
    assert_eq!(
        store
            .open_key(r"HKLM\Software\Round0\Link\Settings")
            .unwrap()
            .get_raw_value("N2")
            .unwrap(),
        Value::dword(2)
    );
    let from_checkpoint = common::every_snapshot(&store);
    store.close().unwrap();
    assert_eq!(from_checkpoint, full_replay(dir.path()));
}

#[test]
fn a_close_writes_a_checkpoint_when_the_journal_grew_and_keeps_the_newest() {
    let dir = TempDir::new().unwrap();
    for round in 0..3 {
        let store = Store::open(dir.path(), options()).unwrap();
        let key = store.create_key(r"HKLM\Software\Big").unwrap();
        for i in 0..300u32 {
            key.set_value(&format!("V{round}-{i}"), &vec![round as u8; 4000][..])
                .unwrap();
        }
        // The close of the last handle writes it (a handle still open keeps the store open).
        drop(key);
        store.close().unwrap();
    }
    let files = checkpoint_files(dir.path());
    assert_eq!(files.len(), 1, "the newest only: {files:?}");
    let store = Store::open(dir.path(), options()).unwrap();
    let (loaded, seq) = store.checkpoint_report().loaded.clone().expect("loaded");
    assert_eq!(loaded, files[0]);
    assert_eq!(seq, store.seq(), "the close's checkpoint holds everything");
    drop(store);
}

/// A way to spoil a checkpoint file.
type Spoil = Box<dyn Fn(&Path)>;

/// Flips a byte of the newest checkpoint: the open passes over it, says why, replays.
fn damage(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_or_truncated_checkpoint_is_passed_over_and_nothing_is_lost() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    let info = store.checkpoint().unwrap().unwrap();
    common::history(&store, 1);
    drop(store);
    let expected = full_replay(dir.path());
    let pristine = std::fs::read(&info.file).unwrap();
    let cases: Vec<Spoil> = vec![
        Box::new(|p| damage(p, 3)),                    // magic
        Box::new(|p| damage(p, 9)),                    // format version
        Box::new(|p| damage(p, 20)),                   // sequence number
        Box::new(|p| damage(p, 40)),                   // body
        Box::new(|p| damage(p, usize::MAX / 3)),       // deep in the body
        Box::new(|p| std::fs::write(p, b"").unwrap()), // empty
        Box::new(move |p| {
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap()
        }),
    ];
    for (i, spoil) in cases.iter().enumerate() {
        std::fs::write(&info.file, &pristine).unwrap();
        spoil(&info.file);
        let store = Store::open(dir.path(), options()).unwrap();
        let report = store.checkpoint_report();
        assert_eq!(report.loaded, None, "case {i}");
        assert_eq!(report.ignored.len(), 1, "case {i}: {report:?}");
        assert_eq!(report.ignored[0].0, info.file);
        assert_eq!(common::every_snapshot(&store), expected, "case {i}");
        drop(store);
    }
}

/// The file's header, recomputed over a changed body: what rkyv's validation and the
/// loader's structural checks stand behind when the checksum cannot help.
fn rewrite_with_checksum(path: &Path, at: usize, xor: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    let body = 32 + at % (bytes.len() - 32);
    bytes[body] ^= xor;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[16..32]), &bytes[32..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Reads everything under `key`, every error a typed one.
fn read_all(key: &hivelog::Key) -> usize {
    let mut reads = 0;
    if let Ok(values) = key.enum_values() {
        reads += values.len();
        for (name, _) in values {
            let _ = key.value_stack(&name);
        }
    }
    let _ = (key.class(), key.security(), key.is_link());
    for sub in key.enum_keys().unwrap_or_default() {
        if let Ok(child) = key.open_subkey_link(&sub) {
            reads += read_all(&child);
        }
    }
    reads
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A checkpoint whose checksum holds but whose contents were changed (which only a bug
    /// or a forger could make) never panics the open or a read: rkyv's validation and the
    /// loader's checks refuse what is out of shape (the journal is replayed), and what is in
    /// shape but wrong reads as typed errors. The checksum is what stands behind the rest.
    #[test]
    fn a_changed_checkpoint_with_a_valid_checksum_never_panics(at in any::<usize>(), xor in 1..=255u8) {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path(), options()).unwrap();
        common::history(&store, 0);
        let info = store.checkpoint().unwrap().unwrap();
        drop(store);
        rewrite_with_checksum(&info.file, at, xor);
        let store = Store::open(dir.path(), options()).unwrap();
        for hive in ["HKLM", "HKU"] {
            read_all(&store.open_key(hive).unwrap());
        }
        drop(store);
    }
}

#[test]
fn a_checkpoint_of_another_journal_is_passed_over() {
    let dir = TempDir::new().unwrap();
    let other = TempDir::new().unwrap();
    let store = Store::open(other.path(), options()).unwrap();
    common::history(&store, 0);
    store.checkpoint().unwrap().unwrap();
    store.close().unwrap();
    // A store with a journal of the same shape (the same history: the same sequence
    // numbers at the same offsets), but committed at other times, given the other store's
    // checkpoint.
    let store = Store::open(dir.path(), options()).unwrap();
    common::history(&store, 0);
    store
        .create_key(r"HKLM\Software\Mine")
        .unwrap()
        .set_value("M", &1u32)
        .unwrap();
    drop(store);
    let expected = full_replay(dir.path());
    let checkpoints = dir.path().join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&checkpoints).unwrap();
    for file in checkpoint_files(other.path()) {
        std::fs::copy(&file, checkpoints.join(file.file_name().unwrap())).unwrap();
    }
    let store = Store::open(dir.path(), options()).unwrap();
    let report = store.checkpoint_report();
    assert_eq!(report.loaded, None);
    assert_eq!(report.ignored.len(), 1);
    assert!(
        report.ignored[0].1.contains("does not match the journal"),
        "{report:?}"
    );
    assert_eq!(common::every_snapshot(&store), expected);
}

#[test]
fn a_crash_at_any_step_of_a_checkpoint_keeps_every_acknowledged_commit() {
    for syncs in 0.. {
        let vfs = SimVfs::new();
        let store = Store::open("/store", sim_options(&vfs)).unwrap();
        common::history_with(&store, 0, false);
        let first = store.checkpoint().unwrap().unwrap();
        common::history_with(&store, 1, false);
        let expected = common::every_snapshot(&store);
        vfs.power_off_after_syncs(syncs);
        let written = store.checkpoint();
        let reborn = vfs.cut_power();
        drop(store);
        let store = Store::open("/store", sim_options(&reborn)).unwrap();
        assert_eq!(store.checkpoint_report().ignored, [], "after {syncs} syncs");
        let (_, loaded) = store.checkpoint_report().loaded.clone().expect("one loads");
        assert!(
            loaded == first.seq || written.is_ok(),
            "after {syncs} syncs"
        );
        assert_eq!(
            common::every_snapshot(&store),
            expected,
            "after {syncs} syncs"
        );
        drop(store);
        if let Ok(info) = written {
            assert_eq!(
                loaded,
                info.unwrap().seq,
                "a checkpoint that returned is durable"
            );
            assert!(
                syncs >= 2,
                "a checkpoint needs its file and its rename synced"
            );
            break;
        }
    }
}

#[test]
fn the_background_checkpointer_follows_the_parameters() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(
        dir.path(),
        Options {
            checkpoint_every_commits: 50,
            checkpoint_every_bytes: 0,
            sync: SyncPolicy::Never,
            ..options()
        },
    )
    .unwrap();
    let key = store.create_key(r"HKLM\Software\Counted").unwrap();
    for i in 0..60u32 {
        key.set_value("N", &i).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while checkpoint_files(dir.path()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after 50 commits"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The parameter turns it off (and a rejected value is reported, not used).
    store
        .create_key(hivelog::PARAMETERS_KEY)
        .unwrap()
        .set_value("CheckpointEveryCommits", &0u32)
        .unwrap();
    // One may be under way; let it land.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = checkpoint_files(dir.path());
    for i in 0..200u32 {
        key.set_value("N", &i).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(checkpoint_files(dir.path()), before);
    drop(store);
}

#[test]
fn a_follower_starts_from_the_checkpoint_and_follows_the_writer() {
    let dir = TempDir::new().unwrap();
    let writer = Store::open(dir.path(), options()).unwrap();
    common::history(&writer, 0);
    let info = writer.checkpoint().unwrap().unwrap();
    writer
        .create_key(r"HKLM\Software\Between")
        .unwrap()
        .set_value("B", &1u32)
        .unwrap();
    let follower = Store::open(
        dir.path(),
        Options {
            read_only: true,
            follow: true,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(
        follower.checkpoint_report().loaded,
        Some((info.file.clone(), info.seq))
    );
    let key = writer.create_key(r"HKLM\Software\Later").unwrap();
    for n in 0..20u32 {
        key.set_value("N", &n).unwrap();
    }
    let last = writer.seq();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while follower.seq() < last {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower keeps up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        follower
            .open_key(r"HKLM\Software\Later")
            .unwrap()
            .get_raw_value("N")
            .unwrap(),
        Value::dword(19)
    );
    assert_eq!(
        common::every_snapshot(&follower),
        common::every_snapshot(&writer)
    );
}
