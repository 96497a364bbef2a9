//! Security end to end through the public API: default descriptors, the access check at open
//! and at commit (a denial changes nothing), inheritance into new keys, owners, privileges,
//! sessions derived from the store's configuration, and descriptors at past sequence numbers.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::principals::{ADMINISTRATORS, SYSTEM};
use hivelog::{
    Access, Caller, CreateOptions, Error, GROUPS_KEY, Options, PRIVILEGES_KEY, Privileges, Store,
    Value, sddl,
};
use tempfile::TempDir;

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), Options::default()).unwrap()
}

fn set_sddl(store: &Store, path: &str, text: &str) {
    store
        .set_security(path, &sddl::parse(text).unwrap())
        .unwrap();
}

fn sddl_of(store: &Store, path: &str) -> String {
    sddl::format(&store.security(path).unwrap())
}

/// Asserts `result` is a denial naming `principal`, `missing` and a path ending in `path`.
fn assert_denied<T: std::fmt::Debug>(
    result: hivelog::Result<T>,
    principal: &str,
    missing: &str,
    path: &str,
) {
    match result {
        Err(Error::AccessDenied {
            path: denied_path,
            principal: who,
            missing: lacks,
        }) => {
            assert_eq!(who, principal);
            assert_eq!(lacks, missing);
            assert!(denied_path.contains(path), "{denied_path} names {path}");
        }
        other => panic!("expected a denial of {missing} to {principal}, got {other:?}"),
    }
}

#[test]
fn a_new_store_has_the_default_descriptors() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert_eq!(
        sddl_of(&store, "HKLM"),
        "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;KA;;;CO)"
    );
    assert_eq!(
        sddl_of(&store, "HKU"),
        "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;KR;;;BU)"
    );
    store.create_key(r"HKLM\Software\App").unwrap();
    assert_eq!(
        sddl_of(&store, r"HKLM\Software\App"),
        "O:SYD:(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;ID;KA;;;SY)(A;CIIOID;KA;;;CO)",
        "the hive's inheritable entries, the creator owner entry made the creator's"
    );
}

#[test]
fn users_read_the_machine_hive_and_a_denied_write_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store
        .create_key(r"HKLM\Software\App")
        .unwrap()
        .set_value("Level", &3u32)
        .unwrap();
    let alice = store.session(Caller::user("alice")).unwrap();
    assert_eq!(alice.principal(), "alice");
    let app = alice.open_key(r"HKLM\Software\App").unwrap();
    assert_eq!(app.get_value::<u32>("Level").unwrap(), 3);
    assert_eq!(app.granted(), Access::KEY_READ);
    let before = store.seq();
    let mut tx = alice.transaction();
    tx.set_value(r"HKLM\Software\App", "Level", &4u32).unwrap();
    tx.create_key(r"HKLM\Software\App\Sub").unwrap();
    assert_denied(
        tx.commit(),
        "alice",
        "KEY_SET_VALUE",
        r"Machine\Software\App",
    );
    assert_eq!(store.seq(), before, "a denied transaction commits nothing");
    assert_eq!(level(&store), 3);
    assert_denied(
        alice.create_key(r"HKLM\Software\Other"),
        "alice",
        "KEY_CREATE_SUB_KEY",
        r"Machine\Software",
    );
    assert_denied(
        alice.open_key_with(r"HKLM\Software\App", Access::KEY_SET_VALUE),
        "alice",
        "KEY_SET_VALUE",
        r"Machine\Software\App",
    );
    assert_denied(
        alice.delete_tree(r"HKLM\Software\App"),
        "alice",
        "DELETE",
        "App",
    );
    assert!(store.open_key(r"HKLM\Software\App\Sub").is_err());
}

fn level(store: &Store) -> u32 {
    store
        .open_key(r"HKLM\Software\App")
        .unwrap()
        .get_value("Level")
        .unwrap()
}

#[test]
fn a_handle_holds_the_rights_it_was_opened_with() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\App").unwrap();
    let read = store.open_key(r"HKLM\Software\App").unwrap();
    assert_denied(read.set_value("X", &1u32), SYSTEM, "KEY_SET_VALUE", "App");
    assert_eq!(
        read.security().unwrap().owner,
        SYSTEM,
        "KEY_READ holds READ_CONTROL"
    );
    let query_only = store
        .open_key_with(r"HKLM\Software\App", Access::KEY_QUERY_VALUE)
        .unwrap();
    assert_denied(
        query_only.enum_keys(),
        SYSTEM,
        "KEY_ENUMERATE_SUB_KEYS",
        "App",
    );
    let all = store
        .open_key_with(r"HKLM\Software\App", Access::MAXIMUM_ALLOWED)
        .unwrap();
    assert_eq!(all.granted(), Access::KEY_ALL_ACCESS);
    all.set_value("X", &1u32).unwrap();
    // A later change of the descriptor does not change an open handle (as on Windows).
    set_sddl(&store, r"HKLM\Software\App", "D:P(A;;KR;;;SY)");
    all.set_value("X", &2u32).unwrap();
    assert_denied(
        store.open_key_with(r"HKLM\Software\App", Access::KEY_SET_VALUE),
        SYSTEM,
        "KEY_SET_VALUE",
        "App",
    );
}

#[test]
fn the_owner_always_reads_and_changes_the_dacl() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Hers").unwrap();
    set_sddl(
        &store,
        r"HKLM\Software\Hers",
        "O:aliceD:P(D;;KA;;;alice)(A;;KA;;;SY)",
    );
    let alice = store.session(Caller::user("alice")).unwrap();
    // READ_CONTROL is granted up front, so the deny takes the rest of KEY_READ.
    assert_denied(
        alice.open_key(r"HKLM\Software\Hers"),
        "alice",
        "KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY",
        "Hers",
    );
    // READ_CONTROL and WRITE_DAC are the owner's whatever the DACL denies.
    assert_eq!(
        sddl::format(&alice.security(r"HKLM\Software\Hers").unwrap()),
        "O:aliceD:P(D;;KA;;;alice)(A;;KA;;;SY)"
    );
    alice
        .set_security(
            r"HKLM\Software\Hers",
            &sddl::parse("D:P(A;;KR;;;alice)").unwrap(),
        )
        .unwrap();
    assert!(alice.open_key(r"HKLM\Software\Hers").is_ok());
    assert_denied(
        alice.set_security(r"HKLM\Software\Hers", &sddl::parse("O:bob").unwrap()),
        "alice",
        "WRITE_OWNER",
        "Hers",
    );
}

#[test]
fn entries_are_read_in_order() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for (name, dacl) in [
        ("DenyFirst", "D:P(D;;0x1;;;alice)(A;;KR;;;alice)"),
        ("AllowFirst", "D:P(A;;KR;;;alice)(D;;0x1;;;alice)"),
        ("GroupDeny", "D:P(D;;0x1;;;BU)(A;;KR;;;alice)"),
        ("Split", "D:P(A;;0x1;;;alice)(A;;0x20018;;;WD)"),
    ] {
        let path = format!(r"HKLM\Software\{name}");
        store
            .create_key(&path)
            .unwrap()
            .set_value("V", &1u32)
            .unwrap();
        set_sddl(&store, &path, dacl);
    }
    let alice = store.session(Caller::user("alice")).unwrap();
    let read = |name: &str| alice.get_raw_value(&format!(r"HKLM\Software\{name}"), "V");
    assert_denied(read("DenyFirst"), "alice", "KEY_QUERY_VALUE", "DenyFirst");
    assert_eq!(
        read("AllowFirst").unwrap(),
        Value::dword(1),
        "granted before the deny"
    );
    assert_denied(read("GroupDeny"), "alice", "KEY_QUERY_VALUE", "GroupDeny");
    assert_eq!(
        alice.open_key(r"HKLM\Software\Split").unwrap().granted(),
        Access::KEY_READ,
        "rights add up across entries"
    );
}

#[test]
fn new_keys_inherit_by_the_windows_rules() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Team").unwrap();
    set_sddl(
        &store,
        r"HKLM\Software\Team",
        "D:P(A;CI;KA;;;SY)(A;CINP;KW;;;alice)(A;CIIO;KR;;;bob)(A;CIIO;KA;;;CO)",
    );
    let alice = store.session(Caller::user("alice")).unwrap();
    let bob = store.session(Caller::user("bob")).unwrap();
    assert_denied(
        bob.open_key(r"HKLM\Software\Team"),
        "bob",
        "KEY_READ",
        "Team",
    );
    alice.create_key(r"HKLM\Software\Team\Child").unwrap();
    assert_eq!(
        sddl_of(&store, r"HKLM\Software\Team\Child"),
        "O:aliceD:(A;CIID;KA;;;SY)(A;ID;KW;;;alice)(A;CIID;KR;;;bob)(A;ID;KA;;;alice)(A;CIIOID;KA;;;CO)"
    );
    assert!(
        bob.open_key(r"HKLM\Software\Team\Child").is_ok(),
        "IO applies below"
    );
    store
        .create_key(r"HKLM\Software\Team\Child\Grandchild")
        .unwrap();
    let grandchild = sddl_of(&store, r"HKLM\Software\Team\Child\Grandchild");
    assert!(
        !grandchild.contains("KW;;;alice"),
        "NP stops after one level: {grandchild}"
    );
    let explicit = CreateOptions {
        security: Some(sddl_parse_descriptor("O:SYD:P(A;;KA;;;SY)")),
        ..CreateOptions::default()
    };
    store
        .create_key_with(r"HKLM\Software\Team\Private", &explicit)
        .unwrap();
    assert_eq!(
        sddl_of(&store, r"HKLM\Software\Team\Private"),
        "O:SYD:P(A;;KA;;;SY)",
        "a protected explicit descriptor inherits nothing"
    );
}

fn sddl_parse_descriptor(text: &str) -> hivelog::SecurityDescriptor {
    let parsed = sddl::parse(text).unwrap();
    let (protected, dacl) = parsed.dacl.unwrap();
    hivelog::SecurityDescriptor {
        owner: parsed.owner.unwrap(),
        group: parsed.group,
        protected,
        dacl,
    }
}

#[test]
fn owners_and_privileges() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Locked").unwrap();
    set_sddl(&store, r"HKLM\Software\Locked", "D:P(A;;KA;;;SY)");
    let alice = store.session(Caller::user("alice")).unwrap();
    let take =
        |who: &Store| who.set_security(r"HKLM\Software\Locked", &sddl::parse("O:alice").unwrap());
    assert_denied(take(&alice), "alice", "WRITE_OWNER", "Locked");
    let owner_taker = store
        .session(Caller::user("alice").with_privileges(Privileges::TAKE_OWNERSHIP))
        .unwrap();
    take(&owner_taker).unwrap();
    assert_eq!(
        store.security(r"HKLM\Software\Locked").unwrap().owner,
        "alice"
    );
    // Giving a key away needs the restore privilege, even with WRITE_OWNER.
    let give =
        |who: &Store| who.set_security(r"HKLM\Software\Locked", &sddl::parse("O:bob").unwrap());
    assert!(matches!(
        give(&owner_taker),
        Err(Error::PrivilegeRequired {
            privilege: "SeRestorePrivilege",
            ..
        })
    ));
    give(&store).unwrap();
    // Making a group one is in the owner needs no privilege.
    set_sddl(
        &store,
        r"HKLM\Software\Locked",
        "D:P(A;;KA;;;BA)(A;;KA;;;SY)",
    );
    let admin = store
        .session(Caller::user("carol").with_group("BA"))
        .unwrap();
    admin
        .set_security(r"HKLM\Software\Locked", &sddl::parse("O:BA").unwrap())
        .unwrap();
    assert_eq!(
        store.security(r"HKLM\Software\Locked").unwrap().owner,
        ADMINISTRATORS
    );
    let history = store.history::<Error>(1, u64::MAX, &mut |_| Ok(()));
    assert!(history.is_ok(), "the system holds SeSecurityPrivilege");
    assert!(matches!(
        alice.history::<Error>(1, u64::MAX, &mut |_| Ok(())),
        Err(Error::PrivilegeRequired {
            privilege: "SeSecurityPrivilege",
            ..
        })
    ));
}

#[test]
fn each_user_owns_their_key_under_users() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = store.session(Caller::user("alice")).unwrap();
    alice
        .create_key(r"HKCU\Software\Mine")
        .unwrap()
        .set_value("Theme", "dark")
        .unwrap();
    assert_eq!(
        sddl_of(&store, r"HKU\alice"),
        "O:aliceD:P(A;CI;KA;;;alice)(A;CI;KA;;;SY)(A;CI;KA;;;BA)"
    );
    let bob = store.session(Caller::user("bob")).unwrap();
    assert_denied(
        bob.open_key(r"HKU\alice"),
        "bob",
        "KEY_READ",
        r"Users\alice",
    );
    assert_denied(
        bob.create_key(r"HKU\alice\Software\Evil"),
        "bob",
        "KEY_CREATE_SUB_KEY",
        r"Users\alice",
    );
    assert_denied(
        bob.create_key(r"HKU\carol"),
        "bob",
        "KEY_CREATE_SUB_KEY",
        "Users",
    );
    let admin = store
        .session(Caller::user("root").with_group(ADMINISTRATORS))
        .unwrap();
    assert_eq!(
        admin
            .open_key(r"HKU\alice\Software\Mine")
            .unwrap()
            .get_value::<String>("Theme")
            .unwrap(),
        "dark"
    );
}

#[test]
fn deleting_a_tree_needs_delete_on_every_key() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Tree\A\B").unwrap();
    set_sddl(
        &store,
        r"HKLM\Software\Tree",
        "D:P(A;CI;KA;;;alice)(A;CI;KA;;;SY)",
    );
    set_sddl(
        &store,
        r"HKLM\Software\Tree\A",
        "D:P(A;;KA;;;alice)(A;CI;KA;;;SY)",
    );
    set_sddl(
        &store,
        r"HKLM\Software\Tree\A\B",
        "D:P(A;;KR;;;alice)(A;;KA;;;SY)",
    );
    let alice = store.session(Caller::user("alice")).unwrap();
    let before = store.seq();
    assert_denied(
        alice.delete_tree(r"HKLM\Software\Tree"),
        "alice",
        "DELETE",
        "Tree",
    );
    assert_eq!(store.seq(), before);
    assert!(store.open_key(r"HKLM\Software\Tree\A\B").is_ok());
    store.delete_tree(r"HKLM\Software\Tree\A\B").unwrap();
    alice.delete_tree(r"HKLM\Software\Tree").unwrap();
}

#[test]
fn snapshots_check_the_descriptor_in_force_at_their_sequence_number() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store
        .create_key(r"HKLM\Software\App")
        .unwrap()
        .set_value("V", &1u32)
        .unwrap();
    let open_seq = store.seq();
    set_sddl(&store, r"HKLM\Software\App", "D:P(A;;KA;;;SY)");
    let alice = store.session(Caller::user("alice")).unwrap();
    assert_denied(
        alice.get_raw_value(r"HKLM\Software\App", "V"),
        "alice",
        "KEY_QUERY_VALUE",
        "App",
    );
    let past = alice.snapshot_at(open_seq).unwrap();
    assert_eq!(
        past.get_raw_value(r"HKLM\Software\App", "V").unwrap(),
        Value::dword(1)
    );
    assert!(past.open_key(r"HKLM\Software\App").is_ok());
    // And it all comes back from the journal.
    drop((alice, past));
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(sddl_of(&store, r"HKLM\Software\App"), "O:SYD:P(A;;KA;;;SY)");
    let alice = store.session(Caller::user("alice")).unwrap();
    assert!(alice.open_key(r"HKLM\Software\App").is_err());
    assert!(
        alice
            .snapshot_at(open_seq)
            .unwrap()
            .open_key(r"HKLM\Software\App")
            .is_ok()
    );
    store.verify().unwrap();
}

#[test]
fn groups_named_by_the_caller_are_honoured() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Devs").unwrap();
    set_sddl(
        &store,
        r"HKLM\Software\Devs",
        "D:P(A;;KA;;;S-1-5-21-1-2-3-1001)(A;;KA;;;SY)",
    );
    let dev = store
        .session(Caller::user("dave").with_group("S-1-5-21-1-2-3-1001"))
        .unwrap();
    dev.open_key_with(r"HKLM\Software\Devs", Access::KEY_ALL_ACCESS)
        .unwrap()
        .set_value("Build", &7u32)
        .unwrap();
    let other = store.session(Caller::user("erin")).unwrap();
    assert!(other.open_key(r"HKLM\Software\Devs").is_err());
    assert!(matches!(
        store.session(Caller::user("bad;name")),
        Err(Error::InvalidPrincipal { .. })
    ));
}

#[test]
fn callers_derived_from_the_store_configuration() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = store.caller_for("alice", &[]).unwrap();
    assert_eq!(alice.privileges, Privileges::NONE);
    let admin = store.caller_for("root-like", &[ADMINISTRATORS]).unwrap();
    assert!(
        admin
            .privileges
            .contains(Privileges::BACKUP.union(Privileges::IMPERSONATE))
    );
    assert_eq!(store.caller_for(SYSTEM, &[]).unwrap(), Caller::system());
    let mut tx = store.transaction();
    tx.create_key(GROUPS_KEY).unwrap();
    tx.set_value(GROUPS_KEY, "BA", &Value::multi_string(&["alice"]))
        .unwrap();
    tx.create_key(PRIVILEGES_KEY).unwrap();
    tx.set_value(
        PRIVILEGES_KEY,
        "SeBackupPrivilege",
        &Value::multi_string(&["bob", "BU"]),
    )
    .unwrap();
    tx.commit().unwrap();
    let alice = store.caller_for("alice", &[]).unwrap();
    assert!(alice.groups.contains(&ADMINISTRATORS.to_string()));
    assert!(
        alice.privileges.contains(Privileges::RESTORE),
        "BA's by default"
    );
    let bob = store.caller_for("bob", &[]).unwrap();
    assert_eq!(
        bob.privileges,
        Privileges::BACKUP,
        "granted by name and through BU"
    );
    store
        .open_key_with(PRIVILEGES_KEY, Access::KEY_ALL_ACCESS)
        .unwrap()
        .set_value("SeRestorePrivilege", &7u32)
        .unwrap();
    assert!(matches!(
        store.caller_for("bob", &[]),
        Err(Error::BadConfig { .. })
    ));
}
