//! The history as an auditor reads it: filters by subtree (by path as it was at each
//! sequence number), principal and kind, and the audit records of privileged changes.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::{
    AuditEvent, Caller, Error, HistoryFilter, HistoryOp, HistoryTxn, Options, Privileges, Seq,
    Store, sddl,
};
use tempfile::TempDir;

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), Options::default()).unwrap()
}

/// Creates the key if need be (a transaction of its own) and sets a value.
fn set(store: &Store, path: &str, name: &str, value: &(impl hivelog::ToRegValue + ?Sized)) -> Seq {
    store
        .create_key(path)
        .unwrap()
        .set_value(name, value)
        .unwrap()
}

fn history(store: &Store, filter: &HistoryFilter) -> Vec<HistoryTxn> {
    let mut out = Vec::new();
    store
        .history::<Error>(1, Seq::MAX, &mut |txn| {
            out.extend(filter.apply(txn));
            Ok(())
        })
        .unwrap();
    out
}

/// Every (sequence number, kind, path) the filter keeps.
fn changes(store: &Store, filter: &HistoryFilter) -> Vec<(Seq, &'static str, String)> {
    history(store, filter)
        .into_iter()
        .flat_map(|txn| {
            txn.ops
                .into_iter()
                .map(move |op| (txn.seq, op.kind(), op.path().unwrap_or("").to_string()))
        })
        .collect()
}

#[test]
fn a_subtree_filter_follows_paths_as_they_were_at_each_sequence_number() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let first = set(&store, r"HKLM\Software\App", "v", &1u32);
    set(&store, r"HKLM\Software\Apple", "v", &1u32);
    let deleted = store.delete_tree(r"HKLM\Software\App").unwrap();
    // A new key under the old path: another id, the same subtree by path.
    let again = set(&store, r"HKLM\Software\App\Sub", "w", &2u32);
    let backup = store.seq();
    let mut stream = Vec::new();
    store
        .backup(r"HKLM\Software\App", backup, &mut stream)
        .unwrap();
    let restored = store
        .restore(r"HKLM\Software\App", stream.as_slice())
        .unwrap()
        .seq;
    store.create_layer("role", 5).unwrap();

    let filter = HistoryFilter::new()
        .subtree(r"HKEY_LOCAL_MACHINE\software\app", "SYSTEM")
        .unwrap();
    let seen = changes(&store, &filter);
    let seqs: Vec<Seq> = seen.iter().map(|(seq, _, _)| *seq).collect();
    assert!(seqs.contains(&first) && seqs.contains(&deleted) && seqs.contains(&again));
    assert!(
        seqs.contains(&restored),
        "the restore is in the subtree's history"
    );
    assert!(
        seqs.contains(&(backup + 1)),
        "so is the backup's audit record"
    );
    for (_, kind, path) in &seen {
        let folded = path.to_ascii_uppercase();
        assert!(
            folded == r"MACHINE\SOFTWARE\APP" || folded.starts_with(r"MACHINE\SOFTWARE\APP\"),
            "{kind} of {path} is outside the subtree"
        );
    }
    // A sibling whose name merely starts the same is another subtree; layers span every key.
    assert!(!seen.iter().any(|(_, _, path)| path.contains("Apple")));
    assert!(!seen.iter().any(|(_, kind, _)| *kind == "create_layer"));
}

#[test]
fn principal_and_kind_filters_keep_only_what_they_name() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Shared").unwrap();
    store
        .set_security(
            r"HKLM\Software\Shared",
            &sddl::parse("D:(A;CI;KA;;;SY)(A;CI;KA;;;alice)").unwrap(),
        )
        .unwrap();
    let alice = store.session(Caller::user("alice")).unwrap();
    let by_alice = set(&alice, r"HKLM\Software\Shared", "mine", "a");
    set(&store, r"HKLM\Software\Shared", "system", "s");

    let alices = history(&store, &HistoryFilter::new().principal("ALICE"));
    assert_eq!(
        alices.iter().map(|txn| txn.seq).collect::<Vec<_>>(),
        [by_alice]
    );
    // An alias names the same principal as its SID.
    let systems = history(&store, &HistoryFilter::new().principal("SY"));
    assert!(!systems.is_empty() && systems.iter().all(|txn| txn.principal != "alice"));

    let kinds = HistoryFilter::new()
        .kind("set_security")
        .unwrap()
        .kind("DELETE_TREE")
        .unwrap();
    let seen = changes(&store, &kinds);
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|(_, kind, _)| *kind == "set_security"));
    match HistoryFilter::new().kind("rename") {
        Err(Error::UnknownHistoryKind { kind, known }) => {
            assert_eq!(kind, "rename");
            assert!(known.contains("set_value") && known.contains("privilege"));
        }
        other => panic!("expected UnknownHistoryKind, got {other:?}"),
    }
}

fn privilege_uses(store: &Store) -> Vec<(String, String)> {
    history(store, &HistoryFilter::new().kind("privilege").unwrap())
        .into_iter()
        .flat_map(|txn| txn.ops)
        .map(|op| match op {
            HistoryOp::Audit {
                event: AuditEvent::Privilege,
                path,
                source,
                ..
            } => (path, source),
            other => panic!("the privilege filter kept {other:?}"),
        })
        .collect()
}

#[test]
fn changes_that_needed_a_privilege_are_audited_and_others_are_not() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Locked").unwrap();
    store
        .set_security(
            r"HKLM\Software\Locked",
            &sddl::parse("D:P(A;;KA;;;SY)").unwrap(),
        )
        .unwrap();
    store.create_key(r"HKLM\Software\Open").unwrap();
    store
        .set_security(
            r"HKLM\Software\Open",
            &sddl::parse("D:P(A;;KA;;;SY)(A;;KA;;;alice)").unwrap(),
        )
        .unwrap();
    assert!(privilege_uses(&store).is_empty());

    let taker = store
        .session(Caller::user("alice").with_privileges(Privileges::TAKE_OWNERSHIP))
        .unwrap();
    // The DACL grants alice WRITE_OWNER here: the privilege is held but not needed.
    taker
        .set_security(r"HKLM\Software\Open", &sddl::parse("O:alice").unwrap())
        .unwrap();
    assert!(privilege_uses(&store).is_empty());
    // Here only the privilege lets her take the key.
    let taken = taker
        .set_security(r"HKLM\Software\Locked", &sddl::parse("O:alice").unwrap())
        .unwrap();
    // Giving a key to someone else needs the restore privilege.
    store
        .set_security(r"HKLM\Software\Open", &sddl::parse("O:bob").unwrap())
        .unwrap();
    assert_eq!(
        privilege_uses(&store),
        [
            (
                r"Machine\Software\Locked".to_string(),
                "SeTakeOwnershipPrivilege".to_string()
            ),
            (
                r"Machine\Software\Open".to_string(),
                "SeRestorePrivilege".to_string()
            ),
        ]
    );
    let audit = history(&store, &HistoryFilter::new().kind("audit").unwrap());
    assert_eq!(audit[0].seq, taken);
    assert_eq!(audit[0].principal, "alice");
    // The audit record is part of the transaction it audits and survives a reopen.
    drop((taker, store));
    let store = open(&dir);
    assert_eq!(privilege_uses(&store).len(), 2);
}
