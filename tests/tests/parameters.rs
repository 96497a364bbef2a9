//! Self-configuration: every parameter runs on its default from the first instant; a valid
//! value written under `Machine\System\Registry\Parameters` is in force after its commit,
//! with no reopen (the sync policy reaches the journal: a power cut after the switch to
//! `always` loses nothing acknowledged); an invalid one (wrong type, out of range) is
//! rejected, never clamped, with an audit record naming the key, the rejected value and the
//! value kept; a deleted one brings the default back; a reopen reads them again; a seed
//! restored into `Machine` brings its parameters into force.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use hivelog::sim::SimVfs;
use hivelog::{
    AuditEvent, Error, HistoryOp, Options, PARAMETERS_KEY, ParameterReport, Seq, Store, SyncPolicy,
    Value, WatchEventKind, WatchFilter,
};

fn options(vfs: &SimVfs, sync: SyncPolicy) -> Options {
    Options {
        sync,
        vfs: Arc::new(vfs.clone()),
        ..Options::default()
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn param(store: &Store, name: &str) -> ParameterReport {
    let all = store.parameters();
    all.into_iter().find(|p| p.name == name).unwrap()
}

fn set(store: &Store, name: &str, value: Value) -> Seq {
    store.create_key(PARAMETERS_KEY).unwrap();
    let mut tx = store.transaction();
    tx.set_value(PARAMETERS_KEY, name, &value).unwrap();
    tx.commit().unwrap()
}

/// The audit records of rejected parameters: (path, source).
fn rejections(store: &Store) -> Vec<(String, String)> {
    let mut out = Vec::new();
    store
        .history::<Error>(1, Seq::MAX, &mut |txn| {
            for op in txn.ops {
                if let HistoryOp::Audit {
                    event: AuditEvent::Parameter,
                    path,
                    source,
                    ..
                } = op
                {
                    out.push((path, source));
                }
            }
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn a_new_store_runs_on_defaults_with_no_configuration_beneath_its_hives() {
    let vfs = SimVfs::new();
    let store = Store::open(dir(), options(&vfs, SyncPolicy::Never)).unwrap();
    assert!(
        store
            .open_key("HKLM")
            .unwrap()
            .enum_keys()
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .open_key("HKU")
            .unwrap()
            .enum_keys()
            .unwrap()
            .is_empty()
    );
    let names: Vec<&str> = store.parameters().iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "SyncPolicy",
            "SyncIntervalMs",
            "SegmentSizeBytes",
            "ValueSizeMaxBytes",
            "WatchQueueDepth",
            "FlushEveryCommits",
            "FlushIntervalMs",
            "CheckpointEveryCommits",
            "CheckpointEveryBytes",
            "HistoryKeepCommits",
            "HistoryKeepSeconds"
        ]
    );
    for p in store.parameters() {
        assert_eq!(p.stored, None, "{}", p.name);
        assert_eq!(p.rejected, None, "{}", p.name);
        assert_eq!(p.in_force, p.default, "{}", p.name);
    }
    assert_eq!(param(&store, "SyncPolicy").default, "never");
    assert_eq!(param(&store, "WatchQueueDepth").default, "4096");
}

#[test]
fn a_valid_value_is_in_force_after_its_commit_without_a_reopen() {
    let vfs = SimVfs::new();
    let store = Store::open(dir(), options(&vfs, SyncPolicy::Never)).unwrap();
    store.create_key(r"HKLM\Software\App").unwrap();
    let app = store.open_key_with(r"HKLM\Software\App", hivelog::Access::KEY_ALL_ACCESS);
    let app = app.unwrap();
    app.set_value("Big", &Value::binary(vec![7; 4000])).unwrap();

    set(&store, "ValueSizeMaxBytes", Value::dword(1024));
    assert_eq!(param(&store, "ValueSizeMaxBytes").in_force, "1024");
    let error = app
        .set_value("Big", &Value::binary(vec![7; 4000]))
        .unwrap_err();
    assert!(
        matches!(error, Error::ValueTooLarge { max: 1024, .. }),
        "{error:?}"
    );

    set(&store, "SegmentSizeBytes", Value::dword(128 * 1024));
    assert_eq!(param(&store, "SegmentSizeBytes").in_force, "131072");
    set(&store, "SyncIntervalMs", Value::dword(25));
    assert_eq!(param(&store, "SyncIntervalMs").in_force, "25");

    // The watch queue depth applies to watches made from now on.
    set(&store, "WatchQueueDepth", Value::dword(2));
    let watch = app.watch(false, WatchFilter::VALUES).unwrap();
    let mut tx = store.transaction();
    for name in ["a", "b", "c"] {
        tx.set_value(r"HKLM\Software\App", name, &Value::dword(1))
            .unwrap();
    }
    tx.commit().unwrap();
    let first = watch
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    assert!(
        matches!(first.kind, WatchEventKind::Overflow { .. }),
        "{first:?}"
    );

    // Deleted, the default is back.
    let mut tx = store.transaction();
    tx.delete_value(PARAMETERS_KEY, "ValueSizeMaxBytes")
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        param(&store, "ValueSizeMaxBytes").in_force,
        param(&store, "ValueSizeMaxBytes").default
    );
    app.set_value("Big", &Value::binary(vec![7; 4000])).unwrap();
    assert!(rejections(&store).is_empty());
}

#[test]
fn the_sync_policy_reaches_the_journal_at_once() {
    let vfs = SimVfs::new();
    let store = Store::open(dir(), options(&vfs, SyncPolicy::Never)).unwrap();
    store.create_key(r"HKLM\Software\App").unwrap();
    set(&store, "SyncPolicy", Value::string("always"));
    assert_eq!(param(&store, "SyncPolicy").in_force, "always");
    let mut tx = store.transaction();
    tx.set_value(r"HKLM\Software\App", "Kept", &Value::dword(1))
        .unwrap();
    let acknowledged = tx.commit().unwrap();
    // Power fails: under `never` this commit could be lost; under `always` it is not.
    let after = vfs.cut_power();
    let reopened = Store::open(dir(), options(&after, SyncPolicy::Never)).unwrap();
    assert!(reopened.seq() >= acknowledged);
    assert_eq!(
        reopened
            .get_raw_value(r"HKLM\Software\App", "Kept")
            .unwrap(),
        Value::dword(1)
    );
    // The stored policy is in force after the reopen too, whatever the open's default.
    assert_eq!(param(&reopened, "SyncPolicy").in_force, "always");
    assert_eq!(param(&reopened, "SyncPolicy").default, "never");
}

#[test]
fn an_invalid_value_is_rejected_kept_out_and_audited() {
    let vfs = SimVfs::new();
    let store = Store::open(dir(), options(&vfs, SyncPolicy::Never)).unwrap();
    set(&store, "WatchQueueDepth", Value::dword(64));
    let cases: [(&str, Value, &str, &str); 8] = [
        (
            "WatchQueueDepth",
            Value::dword(0),
            "is 0; it must be 1 to 1048576",
            "64",
        ),
        (
            "WatchQueueDepth",
            Value::string("64"),
            "is REG_SZ, not REG_DWORD",
            "64",
        ),
        (
            "SyncPolicy",
            Value::string("sometimes"),
            "it must be always, interval or never",
            "never",
        ),
        (
            "SyncIntervalMs",
            Value::dword(60_001),
            "it must be 1 to 60000 ms",
            "100",
        ),
        (
            "SegmentSizeBytes",
            Value::dword(1000),
            "a multiple of 8 from 65536",
            "67108864",
        ),
        (
            "SegmentSizeBytes",
            Value::qword(1 << 20),
            "is REG_QWORD, not REG_DWORD",
            "67108864",
        ),
        (
            "ValueSizeMaxBytes",
            Value::dword(40 << 20),
            "half the segment size",
            "1048576",
        ),
        (
            "HistoryKeepSeconds",
            Value::qword(60),
            "is REG_QWORD, not REG_DWORD",
            "604800",
        ),
    ];
    for (i, (name, value, reason, kept)) in cases.iter().enumerate() {
        let seq = set(&store, name, value.clone());
        let p = param(&store, name);
        assert_eq!(
            p.in_force, *kept,
            "{name}: the value in force is kept, not clamped"
        );
        assert_eq!(p.stored.as_ref(), Some(value));
        assert!(
            p.rejected.as_deref().unwrap().contains(reason),
            "{name}: {:?}",
            p.rejected
        );
        let audits = rejections(&store);
        assert_eq!(audits.len(), i + 1, "one audit record per rejected value");
        let (path, source) = audits.last().unwrap();
        assert_eq!(path, PARAMETERS_KEY);
        assert!(
            source.starts_with(&format!("{name}: rejected {}", value.ty)),
            "{source}"
        );
        assert!(
            source.contains(reason) && source.ends_with(&format!("in force: {kept}")),
            "{source}"
        );
        // The audit is its own transaction, right after the one it judges.
        assert_eq!(store.seq(), seq + 1);
    }
    // Another change to the key does not audit the same rejected values again.
    set(&store, "SyncIntervalMs", Value::dword(50));
    assert_eq!(rejections(&store).len(), cases.len());
    assert_eq!(param(&store, "SyncIntervalMs").in_force, "50");

    // A reopen keeps rejecting what is stored, without a new audit record, and puts in force
    // what the running store kept: the last valid value.
    store.close().unwrap();
    let store = Store::open(dir(), options(&vfs, SyncPolicy::Never)).unwrap();
    assert_eq!(param(&store, "WatchQueueDepth").in_force, "64");
    assert!(param(&store, "WatchQueueDepth").rejected.is_some());
    assert_eq!(param(&store, "SyncIntervalMs").in_force, "50");
    assert!(param(&store, "ValueSizeMaxBytes").rejected.is_some());
    assert_eq!(rejections(&store).len(), cases.len());
}

#[test]
fn a_seed_restored_into_machine_brings_its_parameters() {
    // A restore spools its stream beside the store: real directories.
    let tmp = tempfile::TempDir::new().unwrap();
    let real = |name: &str| {
        let options = Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        };
        Store::open(tmp.path().join(name), options).unwrap()
    };
    let seed = {
        let store = real("seed");
        set(&store, "WatchQueueDepth", Value::dword(32));
        set(&store, "SyncPolicy", Value::string("interval"));
        store.create_key(r"HKLM\Software\Seeded").unwrap();
        let mut out = Vec::new();
        store.backup("HKLM", store.seq(), &mut out).unwrap();
        out
    };
    let store = real("store");
    store.restore("HKLM", &seed[..]).unwrap();
    assert_eq!(param(&store, "WatchQueueDepth").in_force, "32");
    assert_eq!(param(&store, "SyncPolicy").in_force, "interval");
    assert!(store.open_key(r"HKLM\Software\Seeded").is_ok());
}
