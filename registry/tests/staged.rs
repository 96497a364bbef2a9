//! A whole-registry restore staged for the next open: it replaces both hives as one
//! transaction, is never applied twice, can be cancelled, and a crash anywhere in it leaves the
//! old registry or the new one.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use std::path::Path;

use hivelog::{
    Access, AuditEvent, Caller, Error, HistoryFilter, HistoryOp, Options, Privileges,
    STAGED_RESTORE_FILE, Store, sddl,
};
use tempfile::TempDir;

mod common;
use common::dump_hives;

fn open(dir: &Path) -> Store {
    Store::open(dir, Options::default()).unwrap()
}

fn open_read_only(dir: &Path) -> Store {
    let options = Options {
        read_only: true,
        ..Options::default()
    };
    Store::open(dir, options).unwrap()
}

/// Both hives as text: every key with its descriptor, every layer's values.
fn dump(store: &Store) -> Vec<String> {
    dump_hives(|hive| store.open_key_with(hive, Access::KEY_READ))
}

/// A store with some of everything; returns a whole-registry backup of it, in `files`.
fn registry_backup(files: &Path) -> (std::path::PathBuf, Vec<String>) {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    store.create_layer("role", 7).unwrap();
    let mut tx = store.transaction();
    tx.create_key(r"HKLM\Software\Kept").unwrap();
    tx.set_value(r"HKLM\Software\Kept", "Version", "new")
        .unwrap();
    tx.set_value_in("role", r"HKLM\Software\Kept", "Version", "role")
        .unwrap();
    tx.create_key(r"HKU\alice\Software").unwrap();
    tx.set_value(r"HKU\alice\Software", "Theme", "dark")
        .unwrap();
    tx.commit().unwrap();
    store
        .set_security(
            r"HKLM\Software\Kept",
            &sddl::parse("D:P(A;CI;KA;;;SY)(A;CI;KR;;;alice)").unwrap(),
        )
        .unwrap();
    let file = files.join("registry.hvb");
    store
        .backup_registry(store.seq(), std::fs::File::create(&file).unwrap())
        .unwrap();
    (file, dump(&store))
}

/// A store whose registry differs from the backup's.
fn old_store(dir: &Path) -> Vec<String> {
    let store = open(dir);
    store
        .create_key(r"HKLM\Software\Old")
        .unwrap()
        .set_value("Was", "here")
        .unwrap();
    dump(&store)
}

fn audit_events(store: &Store) -> Vec<AuditEvent> {
    let filter = HistoryFilter::new().kind("audit").unwrap();
    let mut events = Vec::new();
    store
        .history::<Error>(1, u64::MAX, &mut |txn| {
            for op in filter.apply(txn).map(|txn| txn.ops).unwrap_or_default() {
                if let HistoryOp::Audit { event, .. } = op {
                    events.push(event);
                }
            }
            Ok(())
        })
        .unwrap();
    events
}

#[test]
fn a_staged_restore_replaces_the_whole_registry_at_the_next_open() {
    let files = TempDir::new().unwrap();
    let (backup, new) = registry_backup(files.path());
    let dir = TempDir::new().unwrap();
    let old = old_store(dir.path());
    let store = open(dir.path());
    let machine_id = store.open_key("HKLM").unwrap().id();
    let info = store.stage_restore(&backup).unwrap();
    assert_eq!(info.anchor, 0);
    assert_eq!(store.staged_restore().unwrap(), Some(info));
    // Nothing changes until the next open.
    assert_eq!(dump(&store), old);
    drop(store);
    // A read-only open leaves it staged.
    let reader = open_read_only(dir.path());
    assert_eq!(dump(&reader), old);
    drop(reader);
    assert!(dir.path().join(STAGED_RESTORE_FILE).exists());
    let store = open(dir.path());
    assert_eq!(dump(&store), new);
    assert!(!dir.path().join(STAGED_RESTORE_FILE).exists());
    assert_eq!(
        store.open_key("HKLM").unwrap().id(),
        machine_id,
        "the hives keep their ids"
    );
    assert_eq!(
        audit_events(&store),
        [AuditEvent::Stage, AuditEvent::Restore]
    );
    store.verify().unwrap();
    // Once applied, it is gone: the next open changes nothing.
    let seq = store.seq();
    drop(store);
    let store = open(dir.path());
    assert_eq!((store.seq(), dump(&store)), (seq, new));
}

#[test]
fn a_staged_restore_is_applied_once_even_if_the_open_stopped_before_removing_it() {
    let files = TempDir::new().unwrap();
    let (backup, new) = registry_backup(files.path());
    let dir = TempDir::new().unwrap();
    old_store(dir.path());
    open(dir.path()).stage_restore(&backup).unwrap();
    let staged = std::fs::read(dir.path().join(STAGED_RESTORE_FILE)).unwrap();
    let seq = open(dir.path()).seq();
    // As if the process had died between the restore's commit and the file's removal.
    std::fs::write(dir.path().join(STAGED_RESTORE_FILE), &staged).unwrap();
    let store = open(dir.path());
    assert_eq!(store.seq(), seq, "not applied a second time");
    assert_eq!(dump(&store), new);
    assert!(!dir.path().join(STAGED_RESTORE_FILE).exists());
}

#[test]
fn a_staged_restore_can_be_cancelled_and_only_a_sound_registry_backup_is_staged() {
    let files = TempDir::new().unwrap();
    let (backup, _) = registry_backup(files.path());
    let dir = TempDir::new().unwrap();
    let old = old_store(dir.path());
    let store = open(dir.path());
    assert!(!store.cancel_staged_restore().unwrap(), "nothing staged");
    store.stage_restore(&backup).unwrap();
    drop(store);
    // An open that is not to apply it, to cancel it.
    let keep = Options {
        apply_staged_restore: false,
        ..Options::default()
    };
    let store = Store::open(dir.path(), keep).unwrap();
    assert_eq!(dump(&store), old);
    assert!(store.cancel_staged_restore().unwrap());
    assert_eq!(store.staged_restore().unwrap(), None);
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store), old);
    assert_eq!(
        audit_events(&store),
        [AuditEvent::Stage, AuditEvent::Unstage]
    );
    // A backup of one key is not a registry; a damaged file is not a backup.
    let key_backup = files.path().join("key.hvb");
    store
        .backup(
            r"HKLM\Software",
            store.seq(),
            std::fs::File::create(&key_backup).unwrap(),
        )
        .unwrap();
    assert!(matches!(
        store.stage_restore(&key_backup),
        Err(Error::BadBackup { .. })
    ));
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = files.path().join("damaged.hvb");
    std::fs::write(&damaged, &bytes).unwrap();
    assert!(store.stage_restore(&damaged).is_err());
    assert_eq!(store.staged_restore().unwrap(), None);
    // It needs the restore privilege.
    let alice = store.session(Caller::user("alice")).unwrap();
    assert!(matches!(
        alice.stage_restore(&backup),
        Err(Error::PrivilegeRequired { .. })
    ));
    let restorer = store
        .session(Caller::user("op").with_privileges(Privileges::RESTORE))
        .unwrap();
    restorer.stage_restore(&backup).unwrap();
    assert!(alice.cancel_staged_restore().is_err());
    assert!(restorer.cancel_staged_restore().unwrap());
}

#[test]
fn a_crash_anywhere_in_the_staged_restore_leaves_the_old_registry_or_the_new_one() {
    let files = TempDir::new().unwrap();
    let (backup, new) = registry_backup(files.path());
    let dir = TempDir::new().unwrap();
    let old = old_store(dir.path());
    open(dir.path()).stage_restore(&backup).unwrap();
    let staged = std::fs::read(dir.path().join(STAGED_RESTORE_FILE)).unwrap();
    let seq = open(dir.path()).seq();
    // The restore's transaction is alone in the last segment: cut it at every 16th byte
    // (every frame boundary and more; `backup.rs` cuts a restore at every byte) and put the
    // staged file back, as a crash before its removal would leave it.
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
    for cut in (64..end).step_by(16).chain([end]) {
        let copy = TempDir::new().unwrap();
        let copy_journal = copy.path().join("journal");
        std::fs::create_dir(&copy_journal).unwrap();
        for segment in &segments {
            std::fs::copy(segment, copy_journal.join(segment.file_name().unwrap())).unwrap();
        }
        let mut damaged = image.clone();
        damaged[cut..].fill(0);
        std::fs::write(copy_journal.join(last.file_name().unwrap()), &damaged).unwrap();
        std::fs::write(copy.path().join(STAGED_RESTORE_FILE), &staged).unwrap();
        let reader = open_read_only(copy.path());
        let seen = dump(&reader);
        if reader.seq() >= seq {
            assert_eq!(seen, new, "cut at {cut}");
            saw_new += 1;
        } else {
            assert_eq!(seen, old, "cut at {cut}");
            saw_old += 1;
        }
        drop(reader);
        // Whichever it was, the next writable open ends with the new registry, once.
        let store = open(copy.path());
        assert_eq!(dump(&store), new, "reopened after a cut at {cut}");
        assert!(!copy.path().join(STAGED_RESTORE_FILE).exists());
    }
    assert!(saw_old > 5 && saw_new > 0, "{saw_old} old, {saw_new} new");
}
