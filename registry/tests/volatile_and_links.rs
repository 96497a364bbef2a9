//! Volatile keys (in memory only, gone at the next open) and link keys (opens redirect to
//! their target, bounded hops), through the public API.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use hivelog::{Access, CreateOptions, Error, LINK_HOPS_MAX, Options, Store, Value};
use tempfile::TempDir;

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), Options::default()).unwrap()
}

fn volatile() -> CreateOptions {
    CreateOptions {
        volatile: true,
        ..CreateOptions::default()
    }
}

fn link(target: &str) -> CreateOptions {
    CreateOptions {
        link: Some(target.to_string()),
        ..CreateOptions::default()
    }
}

#[test]
fn volatile_keys_live_in_memory_and_vanish_on_reopen() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Durable").unwrap();
    let before = store.seq();
    let key = store
        .create_key_with(r"HKLM\Software\Durable\Run\Now", &volatile())
        .unwrap();
    assert_eq!(
        store.seq(),
        before + 1,
        "a volatile change takes a sequence number"
    );
    assert!(key.id() >= 1 << 63, "volatile keys have ids of their own");
    store.verify().expect("verify leaves volatile keys out");
    key.set_value("Pid", &4242u32).unwrap();
    key.set_value("Cmd", "a command line longer than eight bytes")
        .unwrap();
    assert_eq!(
        key.get_value::<String>("Cmd").unwrap(),
        "a command line longer than eight bytes"
    );
    assert_eq!(
        store
            .get_raw_value(r"HKLM\Software\Durable\Run\Now", "Pid")
            .unwrap(),
        Value::dword(4242)
    );
    let listed: Vec<String> = key
        .enum_values()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, ["Cmd", "Pid"]);
    assert!(matches!(
        store.create_key(r"HKLM\Software\Durable\Run\Now\Forever"),
        Err(Error::VolatileParent { .. })
    ));
    // A volatile key under a volatile one is fine, and so is deleting them.
    store
        .create_key_with(r"HKLM\Software\Durable\Run\Now\Child", &volatile())
        .unwrap();
    store
        .delete_key(r"HKLM\Software\Durable\Run\Now\Child")
        .unwrap();
    let last = store.seq();
    store.verify().unwrap();
    drop(key);
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.seq(),
        last,
        "the sequence numbers volatile changes took stay"
    );
    assert!(store.open_key(r"HKLM\Software\Durable").is_ok());
    assert!(matches!(
        store.open_key(r"HKLM\Software\Durable\Run"),
        Err(Error::KeyNotFound { .. })
    ));
    store.verify().unwrap();
}

#[test]
fn deleting_a_durable_tree_takes_volatile_keys_below_it() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\Svc").unwrap();
    store
        .create_key_with(r"HKLM\Software\Svc\State", &volatile())
        .unwrap()
        .set_value("Up", &1u32)
        .unwrap();
    store.delete_tree(r"HKLM\Software\Svc").unwrap();
    assert!(store.open_key(r"HKLM\Software\Svc\State").is_err());
    store.close().unwrap();
    let store = open(&dir);
    assert!(store.open_key(r"HKLM\Software\Svc").is_err());
    store.verify().unwrap();
}

#[test]
fn links_redirect_opens_reads_writes_and_creates() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let target = store.create_key(r"HKLM\Software\Target").unwrap();
    target.set_value("Where", "target").unwrap();
    store
        .create_key_with(r"HKLM\Software\Link", &link(r"HKLM\Software\Target"))
        .unwrap();
    let through = store
        .open_key_with(r"HKLM\Software\Link", Access::KEY_ALL_ACCESS)
        .unwrap();
    assert_eq!(through.id(), target.id(), "the link opens its target");
    assert_eq!(
        store.get_raw_value(r"HKLM\Software\Link", "Where").unwrap(),
        Value::string("target")
    );
    through.set_value("Written", &1u32).unwrap();
    assert_eq!(target.get_value::<u32>("Written").unwrap(), 1);
    store.create_key(r"HKLM\Software\Link\Sub").unwrap();
    assert!(
        store.open_key(r"HKLM\Software\Target\Sub").is_ok(),
        "created through the link"
    );
    let mut tx = store.transaction();
    tx.set_value(r"HKLM\Software\Link\Sub", "Deep", &2u32)
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store
            .get_raw_value(r"HKLM\Software\Target\Sub", "Deep")
            .unwrap(),
        Value::dword(2)
    );
    // The link's own value holds its target, as Windows keeps it.
    let software = store.open_key(r"HKLM\Software").unwrap();
    assert_eq!(software.enum_keys().unwrap(), ["Link", "Target"]);
    assert!(matches!(
        store.create_key_with(r"HKLM\Software\Link", &link(r"HKLM\Software")),
        Err(Error::KeyExists { .. })
    ));
    assert!(matches!(
        store.create_key_with(r"HKLM\Software\Bad", &link(r"Nowhere\x")),
        Err(Error::BadLink { .. })
    ));
    // They all come back after a reopen.
    drop((target, through, software));
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(
        store
            .get_raw_value(r"HKLM\Software\Link\Sub", "Deep")
            .unwrap(),
        Value::dword(2)
    );
    // Deleting the link deletes the link, not the target.
    store.delete_key(r"HKLM\Software\Link").unwrap();
    assert!(store.open_key(r"HKLM\Software\Link").is_err());
    assert!(store.open_key(r"HKLM\Software\Target\Sub").is_ok());
    store.verify().unwrap();
}

#[test]
fn link_chains_are_followed_and_loops_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store
        .create_key(r"HKLM\Software\End")
        .unwrap()
        .set_value("V", &9u32)
        .unwrap();
    store
        .create_key_with(r"HKLM\Software\B", &link(r"\REGISTRY\MACHINE\Software\End"))
        .unwrap();
    store
        .create_key_with(r"HKLM\Software\A", &link(r"HKLM\Software\B"))
        .unwrap();
    assert_eq!(
        store.get_raw_value(r"HKLM\Software\A", "V").unwrap(),
        Value::dword(9)
    );
    store
        .create_key_with(r"HKLM\Software\Loop1", &link(r"HKLM\Software\Loop2"))
        .unwrap();
    store
        .create_key_with(r"HKLM\Software\Loop2", &link(r"HKLM\Software\Loop1"))
        .unwrap();
    for result in [
        store.open_key(r"HKLM\Software\Loop1").map(drop),
        store
            .get_raw_value(r"HKLM\Software\Loop2\Below", "V")
            .map(drop),
        store.create_key(r"HKLM\Software\Loop1\New").map(drop),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::TooManyLinks {
                    max: LINK_HOPS_MAX,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // A dangling link is a missing key.
    store
        .create_key_with(r"HKLM\Software\Dangling", &link(r"HKLM\Software\Gone"))
        .unwrap();
    assert!(matches!(
        store.open_key(r"HKLM\Software\Dangling"),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn a_snapshot_before_a_link_sees_no_link() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create_key(r"HKLM\Software\T").unwrap();
    let before = store.seq();
    store
        .create_key_with(r"HKLM\Software\L", &link(r"HKLM\Software\T"))
        .unwrap();
    assert!(
        store
            .snapshot_at(before)
            .unwrap()
            .open_key(r"HKLM\Software\L")
            .is_err()
    );
    assert!(store.snapshot().open_key(r"HKLM\Software\L").is_ok());
}
