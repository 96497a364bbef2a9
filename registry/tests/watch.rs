//! Watches: every committed change of a watched key or subtree arrives once, after commit,
//! in sequence order with each commit's events together, under concurrent writers; filters
//! and scopes pick what `RegNotifyChangeKeyValue` would report; a full queue yields one
//! Overflow event and never a silent gap, and never slows a committer; a watch started in
//! the past replays the journal and goes on live with no gap and no duplicate; a restore is
//! one event; volatile keys are reported live; KEY_NOTIFY is required.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use hivelog::{
    Access, Caller, CreateOptions, Error, Options, Seq, Store, SyncPolicy, Value, Watch,
    WatchEvent, WatchEventKind, WatchFilter, sddl,
};
use tempfile::TempDir;

const APP: &str = r"HKLM\Software\App";
const APP_PATH: &str = r"Machine\Software\App";
/// Long enough for the pump to deliver on a loaded machine; only a failing test waits it out.
const PATIENCE: Duration = Duration::from_secs(20);

/// A store whose watches' queues hold `depth` events.
fn open(dir: &TempDir, depth: usize) -> Store {
    let options = Options {
        sync: SyncPolicy::Never,
        watch_queue_depth: depth,
        ..Options::default()
    };
    Store::open(dir.path(), options).unwrap()
}

/// The next `n` events, or fewer if none comes within PATIENCE.
fn take(watch: &Watch, n: usize) -> Vec<WatchEvent> {
    take_within(watch, n, PATIENCE)
}

/// The next `n` events, or fewer if none comes within `patience`.
fn take_within(watch: &Watch, n: usize, patience: Duration) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        match watch.recv_timeout(patience) {
            Ok(event) => events.push(event),
            Err(_) => break,
        }
    }
    events
}

/// Asserts nothing more arrives for a moment (the pump has delivered everything up to now
/// once `sentinel` shows it has reached the last commit).
fn assert_quiet(watch: &Watch) {
    assert_eq!(watch.recv_timeout(Duration::from_millis(100)).ok(), None);
}

fn event(seq: Seq, path: &str, kind: WatchEventKind) -> WatchEvent {
    WatchEvent {
        seq,
        path: path.into(),
        kind,
    }
}

fn set(layer: &str, name: &str) -> WatchEventKind {
    WatchEventKind::ValueSet {
        layer: layer.into(),
        name: name.into(),
    }
}

#[test]
fn a_subtree_watch_reports_every_change_in_order_after_commit() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 64);
    store.create_key(APP).unwrap();
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    let mut tx = store.transaction();
    tx.create_key(&format!(r"{APP}\Sub\Deeper")).unwrap();
    tx.set_value(&format!(r"{APP}\Sub"), "Color", &Value::string("blue"))
        .unwrap();
    let s1 = tx.commit().unwrap();
    let mut tx = store.transaction();
    tx.delete_value(&format!(r"{APP}\Sub"), "color").unwrap();
    let s2 = tx.commit().unwrap();
    let s3 = store
        .set_security(
            &format!(r"{APP}\Sub"),
            &sddl::parse("D:P(A;CI;KA;;;SY)").unwrap(),
        )
        .unwrap();
    store.create_key(r"HKLM\Software\Elsewhere").unwrap();
    let mut tx = store.transaction();
    tx.delete_tree(&format!(r"{APP}\Sub")).unwrap();
    let s4 = tx.commit().unwrap();

    let sub = format!(r"{APP_PATH}\Sub");
    assert_eq!(
        take(&watch, 6),
        [
            event(s1, &sub, WatchEventKind::KeyCreated),
            event(s1, &format!(r"{sub}\Deeper"), WatchEventKind::KeyCreated),
            event(s1, &sub, set("base", "Color")),
            event(
                s2,
                &sub,
                WatchEventKind::ValueDeleted {
                    layer: "base".into(),
                    name: "Color".into()
                }
            ),
            event(s3, &sub, WatchEventKind::SecurityChanged),
            event(s4, &sub, WatchEventKind::KeyDeleted),
        ]
    );
    assert_quiet(&watch);
}

#[test]
fn filters_and_scopes_pick_what_windows_reports() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 64);
    store.create_key(&format!(r"{APP}\Child")).unwrap();
    let app = store.open_key(APP).unwrap();
    let values_here = app.watch(false, WatchFilter::VALUES).unwrap();
    let names_here = app.watch(false, WatchFilter::SUBKEYS).unwrap();
    let security_below = app.watch(true, WatchFilter::SECURITY).unwrap();
    let values_below = app.watch(true, WatchFilter::VALUES).unwrap();

    let child = format!(r"{APP}\Child");
    let mut tx = store.transaction();
    tx.set_value(APP, "Here", &Value::dword(1)).unwrap();
    let s1 = tx.commit().unwrap();
    let mut tx = store.transaction();
    tx.set_value(&child, "Below", &Value::dword(2)).unwrap();
    let s2 = tx.commit().unwrap();
    store.create_key(&format!(r"{child}\Grandchild")).unwrap();
    store.create_key(&format!(r"{APP}\Second")).unwrap();
    let s4 = store.seq();
    let s5 = store
        .set_security(&child, &sddl::parse("O:BA").unwrap())
        .unwrap();

    let app_path = APP_PATH.to_string();
    let child_path = format!(r"{APP_PATH}\Child");
    assert_eq!(
        take(&values_here, 1),
        [event(s1, &app_path, set("base", "Here"))]
    );
    assert_eq!(
        take(&names_here, 1),
        [event(
            s4,
            &format!(r"{APP_PATH}\Second"),
            WatchEventKind::KeyCreated
        )],
        "a key alone sees its own subkeys come, not its grandchildren"
    );
    assert_eq!(
        take(&security_below, 1),
        [event(s5, &child_path, WatchEventKind::SecurityChanged)]
    );
    assert_eq!(
        take(&values_below, 2),
        [
            event(s1, &app_path, set("base", "Here")),
            event(s2, &child_path, set("base", "Below")),
        ]
    );
    for watch in [&values_here, &names_here, &security_below, &values_below] {
        assert_quiet(watch);
    }
    assert!(matches!(
        app.watch(true, WatchFilter::SUBKEYS & WatchFilter::VALUES),
        Err(Error::EmptyWatchFilter)
    ));
}

#[test]
fn concurrent_writers_events_arrive_once_in_sequence_order() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 1 << 16);
    const WRITERS: usize = 4;
    const COMMITS: usize = 200;
    for t in 0..WRITERS {
        store.create_key(&format!(r"{APP}\T{t}")).unwrap();
    }
    let start = store.seq();
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    // Each writer commits two values per transaction; the expected events are what each
    // commit did, ordered by the sequence number it got.
    let expected: BTreeMap<Seq, Vec<WatchEvent>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let store = store.clone();
                scope.spawn(move || {
                    let key = format!(r"{APP}\T{t}");
                    let path = format!(r"{APP_PATH}\T{t}");
                    let mut done = Vec::new();
                    for n in 0..COMMITS {
                        let mut tx = store.transaction();
                        tx.set_value(&key, &format!("a{n}"), &Value::dword(n as u32))
                            .unwrap();
                        tx.set_value(&key, &format!("b{n}"), &Value::dword(n as u32))
                            .unwrap();
                        let seq = tx.commit().unwrap();
                        done.push((
                            seq,
                            vec![
                                event(seq, &path, set("base", &format!("a{n}"))),
                                event(seq, &path, set("base", &format!("b{n}"))),
                            ],
                        ));
                    }
                    done
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|writer| writer.join().unwrap())
            .collect()
    });
    let expected: Vec<WatchEvent> = expected.into_values().flatten().collect();
    assert_eq!(expected.len(), WRITERS * COMMITS * 2);
    assert_eq!(take(&watch, expected.len()), expected);
    assert_quiet(&watch);
    // The same, replayed from the journal.
    let replay = store
        .open_key(APP)
        .unwrap()
        .watch_from(start, true, WatchFilter::ALL);
    let replay = replay.unwrap();
    assert_eq!(take(&replay, expected.len()), expected);
    assert_quiet(&replay);
}

#[test]
fn a_full_queue_gets_one_overflow_and_never_slows_a_committer() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 8);
    store.create_key(APP).unwrap();
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::VALUES)
        .unwrap();
    // The pump offers commits in order: once a watch elsewhere has seen a commit made
    // after all the others, the watch under test has been offered everything.
    let marker = store.create_key(r"HKLM\Software\Marker").unwrap();
    let sentinel = marker.watch(false, WatchFilter::VALUES).unwrap();
    // Three values per commit: two commits fit in a queue of 8, the third does not.
    let mut seqs = Vec::new();
    for n in 0..50u32 {
        let mut tx = store.transaction();
        for name in ["x", "y", "z"] {
            tx.set_value(APP, name, &Value::dword(n)).unwrap();
        }
        seqs.push(tx.commit().unwrap());
    }
    let mut tx = store.transaction();
    tx.set_value(r"HKLM\Software\Marker", "done", &Value::dword(1))
        .unwrap();
    let done = tx.commit().unwrap();
    assert_eq!(take(&sentinel, 1).last().map(|e| e.seq), Some(done));
    // Nobody has read anything, and every commit went through.
    let first = take(&watch, 7);
    assert_eq!(first.len(), 7);
    assert!(
        first[..6]
            .iter()
            .all(|e| matches!(e.kind, WatchEventKind::ValueSet { .. }))
    );
    assert_eq!(
        first[..3].iter().map(|e| e.seq).collect::<Vec<_>>(),
        [seqs[0]; 3]
    );
    assert_eq!(
        first[3..6].iter().map(|e| e.seq).collect::<Vec<_>>(),
        [seqs[1]; 3]
    );
    assert_eq!(
        first[6],
        WatchEvent {
            seq: seqs[2],
            path: APP_PATH.into(),
            kind: WatchEventKind::Overflow {
                rescan_from: seqs[1]
            },
        }
    );
    assert_quiet(&watch);

    // The queue is empty: delivery resumes with the next commit.
    let mut tx = store.transaction();
    tx.set_value(APP, "after", &Value::dword(1)).unwrap();
    let after = tx.commit().unwrap();
    assert_eq!(
        take(&watch, 1),
        [event(after, APP_PATH, set("base", "after"))]
    );

    // Watching again from `rescan_from` replays exactly what was lost, and then some.
    let again = store
        .open_key(APP)
        .unwrap()
        .watch_from(seqs[1], true, WatchFilter::VALUES)
        .unwrap();
    let replayed = take(&again, 7);
    assert_eq!(
        replayed.iter().map(|e| e.seq).collect::<Vec<_>>()[..3],
        [seqs[2]; 3]
    );
    assert!(
        matches!(replayed[6].kind, WatchEventKind::Overflow { rescan_from } if rescan_from == seqs[3])
    );
}

#[test]
fn a_watch_from_the_past_replays_then_goes_on_live_without_gap_or_duplicate() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 1 << 16);
    store.create_key(APP).unwrap();
    let mut seqs = Vec::new();
    let write = |n: u32| {
        let mut tx = store.transaction();
        tx.set_value(APP, &format!("v{n}"), &Value::dword(n))
            .unwrap();
        tx.commit().unwrap()
    };
    for n in 0..100 {
        seqs.push(write(n));
    }
    let from = seqs[39];
    // Writers go on while the watch starts and catches up.
    let watch = std::thread::scope(|scope| {
        let writer = scope.spawn(|| (100..300).map(write).collect::<Vec<_>>());
        let watch = store
            .open_key(APP)
            .unwrap()
            .watch_from(from, false, WatchFilter::VALUES)
            .unwrap();
        seqs.extend(writer.join().unwrap());
        watch
    });
    let expected: Vec<WatchEvent> = seqs[40..]
        .iter()
        .zip(40u32..)
        .map(|(&seq, n)| event(seq, APP_PATH, set("base", &format!("v{n}"))))
        .collect();
    assert_eq!(take(&watch, expected.len()), expected);
    assert_quiet(&watch);

    // Reopened, the journal still holds it all.
    store.close().unwrap();
    let store = open(&dir, 1 << 16);
    let replay = store
        .open_key(APP)
        .unwrap()
        .watch_from(seqs[298], true, WatchFilter::ALL)
        .unwrap();
    assert_eq!(
        take(&replay, 1),
        [event(seqs[299], APP_PATH, set("base", "v299"))]
    );
    assert!(matches!(
        store
            .open_key(APP)
            .unwrap()
            .watch_from(store.seq() + 1, true, WatchFilter::ALL),
        Err(Error::FutureSeq { .. })
    ));
}

#[test]
fn a_restore_under_a_watched_key_is_one_event() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 64);
    for n in 0..20 {
        store.create_key(&format!(r"{APP}\Old\K{n}")).unwrap();
    }
    let mut backup = Vec::new();
    store
        .backup(&format!(r"{APP}\Old"), store.seq(), &mut backup)
        .unwrap();
    let above = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::VALUES)
        .unwrap();
    let inside = store
        .open_key(&format!(r"{APP}\Old\K3"))
        .unwrap()
        .watch(false, WatchFilter::VALUES)
        .unwrap();
    let report = store.restore(&format!(r"{APP}\New"), &backup[..]).unwrap();
    let report2 = store.restore(&format!(r"{APP}\Old"), &backup[..]).unwrap();
    assert_eq!(
        take(&above, 2),
        [
            event(
                report.seq,
                &format!(r"{APP_PATH}\New"),
                WatchEventKind::SubtreeRestored
            ),
            event(
                report2.seq,
                &format!(r"{APP_PATH}\Old"),
                WatchEventKind::SubtreeRestored
            ),
        ]
    );
    assert_eq!(
        take(&inside, 1),
        [event(
            report2.seq,
            &format!(r"{APP_PATH}\Old"),
            WatchEventKind::SubtreeRestored
        )],
        "a watch below the restored key learns its key was replaced"
    );
    assert_quiet(&above);
    assert_quiet(&inside);
}

#[test]
fn volatile_keys_are_reported_live() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 64);
    store.create_key(APP).unwrap();
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    let volatile = CreateOptions {
        volatile: true,
        ..CreateOptions::default()
    };
    let mut tx = store.transaction();
    tx.create_key_with(&format!(r"{APP}\Run"), &volatile)
        .unwrap();
    tx.set_value(&format!(r"{APP}\Run"), "Pid", &Value::dword(7))
        .unwrap();
    let s1 = tx.commit().unwrap();
    let mut tx = store.transaction();
    tx.delete_value(&format!(r"{APP}\Run"), "pid").unwrap();
    tx.set_value(APP, "Persistent", &Value::dword(1)).unwrap();
    let s2 = tx.commit().unwrap();
    let mut tx = store.transaction();
    tx.delete_key(&format!(r"{APP}\Run")).unwrap();
    let s3 = tx.commit().unwrap();
    let run = format!(r"{APP_PATH}\Run");
    let events = take(&watch, 5);
    // Within a commit, journaled changes come before volatile ones.
    assert_eq!(
        events,
        [
            event(s1, &run, WatchEventKind::KeyCreated),
            event(s1, &run, set("base", "Pid")),
            event(s2, APP_PATH, set("base", "Persistent")),
            event(
                s2,
                &run,
                WatchEventKind::ValueDeleted {
                    layer: "base".into(),
                    name: "Pid".into()
                }
            ),
            event(s3, &run, WatchEventKind::KeyDeleted),
        ]
    );
}

#[test]
fn a_watch_needs_key_notify_and_ends_with_its_store() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, 64);
    store.create_key(APP).unwrap();
    let key = store.open_key_with(APP, Access::KEY_QUERY_VALUE).unwrap();
    let error = key.watch(true, WatchFilter::ALL).unwrap_err();
    assert!(
        matches!(&error, Error::AccessDenied { missing, .. } if missing.contains("KEY_NOTIFY")),
        "{error:?}"
    );
    let bob = store.session(Caller::user("bob")).unwrap();
    store
        .set_security(
            APP,
            &sddl::parse("D:P(A;CI;KA;;;SY)(A;CI;0x1;;;bob)").unwrap(),
        )
        .unwrap();
    assert!(bob.open_key_with(APP, Access::KEY_NOTIFY).is_err());

    // A live watch does not keep the store open: it closes, and opens again.
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    drop(bob);
    drop(key);
    store.close().unwrap();
    assert!(
        watch.recv_timeout(PATIENCE).is_err(),
        "the queue ends with the store"
    );
    let store = open(&dir, 64);
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    drop(watch);
    store
        .set_security(APP, &sddl::parse("O:BA").unwrap())
        .unwrap();
    store.close().unwrap();
}

#[test]
fn a_follower_sees_and_reports_what_another_writer_commits() {
    let dir = TempDir::new().unwrap();
    let writer = open(&dir, 64);
    writer.create_key(APP).unwrap();
    let follower = Store::open(
        dir.path(),
        Options {
            read_only: true,
            follow: true,
            ..Options::default()
        },
    )
    .unwrap();
    let watch = follower
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::ALL)
        .unwrap();
    let mut seqs = Vec::new();
    for n in 0..50u32 {
        let mut tx = writer.transaction();
        tx.set_value(APP, &format!("v{n}"), &Value::dword(n))
            .unwrap();
        seqs.push(tx.commit().unwrap());
    }
    let expected: Vec<WatchEvent> = seqs
        .iter()
        .zip(0u32..)
        .map(|(&seq, n)| event(seq, APP_PATH, set("base", &format!("v{n}"))))
        .collect();
    assert_eq!(take(&watch, 50), expected);
    assert_eq!(
        follower
            .open_key(APP)
            .unwrap()
            .get_raw_value("v49")
            .unwrap(),
        Value::dword(49),
        "and reads see the writer's commits"
    );
    assert!(
        Store::open(
            dir.path(),
            Options {
                follow: true,
                ..Options::default()
            }
        )
        .is_err(),
        "a follower only reads"
    );
}

/// One change of the model-based property below, on a fixed set of keys below APP.
#[derive(Debug, Clone)]
enum Change {
    Create(usize),
    Set(usize, usize),
    Unset(usize, usize),
    DeleteTree(usize),
}

/// The keys the property uses, relative to APP: nested, so creates make parents and tree
/// deletions take children.
const KEYS: [&str; 5] = ["A", r"A\B", r"A\B\C", "D", r"D\E"];
const NAMES: [&str; 3] = ["x", "Y", "Zed"];

/// The model: which keys exist, and which values each holds.
#[derive(Default)]
struct Model {
    keys: std::collections::BTreeSet<String>,
    values: std::collections::BTreeSet<(String, &'static str)>,
}

impl Model {
    /// The events `change` makes (applying it), or None if the store would refuse it (it is
    /// then left out of the transaction).
    fn apply(&mut self, change: &Change, seq: Seq) -> Option<Vec<WatchEvent>> {
        let full = |relative: &str| format!(r"{APP_PATH}\{relative}");
        match *change {
            Change::Create(k) => {
                let mut events = Vec::new();
                let mut path = String::new();
                for part in KEYS[k].split('\\') {
                    if !path.is_empty() {
                        path.push('\\');
                    }
                    path.push_str(part);
                    if self.keys.insert(path.clone()) {
                        events.push(event(seq, &full(&path), WatchEventKind::KeyCreated));
                    }
                }
                Some(events)
            }
            Change::Set(k, n) => {
                let key = KEYS[k].to_string();
                if !self.keys.contains(&key) {
                    return None;
                }
                self.values.insert((key.clone(), NAMES[n]));
                Some(vec![event(seq, &full(&key), set("base", NAMES[n]))])
            }
            Change::Unset(k, n) => {
                let key = KEYS[k].to_string();
                if !self.values.remove(&(key.clone(), NAMES[n])) {
                    return None;
                }
                let kind = WatchEventKind::ValueDeleted {
                    layer: "base".into(),
                    name: NAMES[n].into(),
                };
                Some(vec![event(seq, &full(&key), kind)])
            }
            Change::DeleteTree(k) => {
                let key = KEYS[k].to_string();
                if !self.keys.contains(&key) {
                    return None;
                }
                let below = |path: &str| path == key || path.starts_with(&format!("{key}\\"));
                self.keys.retain(|path| !below(path));
                self.values.retain(|(path, _)| !below(path));
                Some(vec![event(seq, &full(&key), WatchEventKind::KeyDeleted)])
            }
        }
    }
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    let key = 0..KEYS.len();
    let name = 0..NAMES.len();
    prop_oneof![
        key.clone().prop_map(Change::Create),
        (key.clone(), name.clone()).prop_map(|(k, n)| Change::Set(k, n)),
        (key.clone(), name).prop_map(|(k, n)| Change::Unset(k, n)),
        key.prop_map(Change::DeleteTree),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random transactions of random changes: the live events equal what the model says
    /// each commit did, in order, and so do the events replayed from the journal after a
    /// reopen.
    #[test]
    fn watch_events_are_exactly_the_committed_changes(
        batches in proptest::collection::vec(proptest::collection::vec(change(), 1..5), 1..25)
    ) {
        let dir = TempDir::new().unwrap();
        let store = open(&dir, 1 << 16);
        store.create_key(APP).unwrap();
        let start = store.seq();
        let watch = store.open_key(APP).unwrap().watch(true, WatchFilter::ALL).unwrap();
        let mut model = Model::default();
        let mut expected = Vec::new();
        for batch in &batches {
            let seq = store.seq() + 1;
            let mut tx = store.transaction();
            let mut events = Vec::new();
            for change in batch {
                let Some(made) = model.apply(change, seq) else { continue };
                let relative = |k: usize| format!(r"{APP}\{}", KEYS[k]);
                match *change {
                    Change::Create(k) => { tx.create_key(&relative(k)).unwrap(); }
                    Change::Set(k, n) => { tx.set_value(&relative(k), NAMES[n], &Value::dword(1)).unwrap(); }
                    Change::Unset(k, n) => { tx.delete_value(&relative(k), NAMES[n]).unwrap(); }
                    Change::DeleteTree(k) => { tx.delete_tree(&relative(k)).unwrap(); }
                }
                events.extend(made);
            }
            if events.is_empty() {
                continue;
            }
            proptest::prop_assert_eq!(tx.commit().unwrap(), seq);
            expected.extend(events);
        }
        // A short wait: a failing case is shrunk many times over.
        let patience = Duration::from_secs(2);
        proptest::prop_assert_eq!(take_within(&watch, expected.len(), patience), expected.clone());
        proptest::prop_assert_eq!(watch.recv_timeout(Duration::from_millis(20)).ok(), None);
        drop(watch);
        store.close().unwrap();
        let store = open(&dir, 1 << 16);
        let replay = store.open_key(APP).unwrap().watch_from(start, true, WatchFilter::ALL).unwrap();
        proptest::prop_assert_eq!(take_within(&replay, expected.len(), patience), expected);
    }
}
