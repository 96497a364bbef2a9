//! Offline hives: a hive edited in memory keeps everything across save and open; a store's
//! backup opens as a hive, saves, and restores into a store unchanged, and a hive saved
//! offline restores into a store; every damaged or truncated file is refused; a save that
//! fails leaves the file it would replace as it was; every limit and refusal is the store's
//! typed error with nothing changed; nothing reaches the disk before a save.

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::path::Path;

use hivelog::{
    CreateOptions, DEPTH_MAX, Error, HiveMount, KEY_NAME_MAX_CHARS, LogError, OFFLINE_HIVE_SOURCE,
    OfflineHive, OfflineKey, Options, Store, VALUE_NAME_MAX_CHARS, VALUE_SIZE_DEFAULT_MAX_BYTES,
    Value, ValueType, sddl,
};
use tempfile::TempDir;

mod common;
use common::dump;

fn open_store(dir: &Path) -> Store {
    Store::open(dir, Options::default()).unwrap()
}

fn dump_hive(hive: &OfflineHive) -> Vec<String> {
    let mut out = Vec::new();
    dump_hive_key(hive.open_key("").unwrap(), "", &mut out);
    out
}

fn dump_hive_key(key: OfflineKey<'_>, relative: &str, out: &mut Vec<String>) {
    out.push(format!(
        "key {relative:?} class {:?} link {} sd {}",
        key.class().map(str::to_string),
        key.is_link(),
        sddl::format(key.security())
    ));
    for (name, _) in key.enum_values() {
        for layered in key.value_stack(&name).unwrap() {
            out.push(format!(
                "  {name:?} {} {:?} {:?}",
                layered.layer, layered.value.ty, layered.value.data
            ));
        }
    }
    for sub in key.enum_keys() {
        dump_hive_key(
            key.open_subkey(&sub).unwrap(),
            &format!("{relative}\\{sub}"),
            out,
        );
    }
}

/// A value of every type, under names of every case.
fn every_type() -> Vec<(&'static str, Value)> {
    vec![
        ("", Value::string("default")),
        ("Str", Value::string("text")),
        ("exp", Value::expand_string("%PATH%")),
        ("MULTI", Value::multi_string(&["a", "b"])),
        ("Dword", Value::dword(7)),
        ("Big", Value::dword_big_endian(9)),
        ("Qword", Value::qword(1 << 40)),
        ("Bin", Value::binary(vec![1, 2, 3, 250])),
        ("None", Value::new(ValueType::NONE, vec![])),
        ("Link", Value::new(ValueType::LINK, vec![b'x', 0])),
        ("Res", Value::new(ValueType::RESOURCE_LIST, vec![1; 12])),
        (
            "Full",
            Value::new(ValueType::FULL_RESOURCE_DESCRIPTOR, vec![2; 8]),
        ),
        (
            "Req",
            Value::new(ValueType::RESOURCE_REQUIREMENTS_LIST, vec![3; 4]),
        ),
        ("App", Value::new(ValueType(0x8000_0001), vec![9; 300])),
        ("Grüße 😀", Value::string("ünïcode")),
    ]
}

/// Subkey names whose Windows order is not their byte order: case differs, and U+FFFD sorts
/// after a character above U+FFFF in UTF-16 though before it in UTF-8.
const SUBKEYS: [&str; 6] = ["beta", "Alpha", "GAMMA", "\u{fffd}x", "😀x", "été"];

/// An offline hive using everything a hive file must carry.
fn build_hive() -> OfflineHive {
    let mut hive = OfflineHive::create();
    hive.set_principal("alice").unwrap();
    hive.create_key(r"App\Sub\Deep").unwrap();
    for (name, value) in every_type() {
        hive.set_value("App", name, &value).unwrap();
    }
    hive.set_value("", "AtRoot", &1u32).unwrap();
    for name in SUBKEYS {
        hive.create_key(&format!(r"App\Order\{name}")).unwrap();
    }
    let class = CreateOptions {
        class: Some("Shell".into()),
        ..CreateOptions::default()
    };
    hive.create_key_with(r"App\Classy", &class).unwrap();
    let link = CreateOptions {
        link: Some(r"Machine\Software\Target".into()),
        ..CreateOptions::default()
    };
    hive.create_key_with(r"App\ToTarget", &link).unwrap();
    let explicit = CreateOptions {
        security: Some(
            sddl::parse("O:BAD:(A;CI;KR;;;bob)")
                .unwrap()
                .into_descriptor(),
        ),
        ..CreateOptions::default()
    };
    hive.create_key_with(r"App\Explicit", &explicit).unwrap();
    hive.set_security(
        r"App\Sub",
        &sddl::parse("O:BAD:P(A;CI;KA;;;SY)(A;;KR;;;alice)").unwrap(),
    )
    .unwrap();
    hive
}

trait IntoDescriptor {
    fn into_descriptor(self) -> hivelog::SecurityDescriptor;
}

impl IntoDescriptor for hivelog::Sddl {
    fn into_descriptor(self) -> hivelog::SecurityDescriptor {
        hivelog::OfflineHive::create()
            .security("")
            .unwrap()
            .apply(&self)
    }
}

fn saved(hive: &OfflineHive) -> Vec<u8> {
    let mut out = Vec::new();
    hive.save_to(&mut out).unwrap();
    out
}

#[test]
fn a_hive_edited_saved_and_opened_again_is_the_same() {
    let dir = TempDir::new().unwrap();
    let hive = build_hive();
    let file = dir.path().join("app.hive");
    let report = hive.save(&file).unwrap();
    assert_eq!(report.keys, hive.key_count() as u64);
    assert_eq!(report.bytes, std::fs::metadata(&file).unwrap().len());
    let reopened = OfflineHive::open(&file).unwrap();
    assert_eq!(dump_hive(&reopened), dump_hive(&hive));
    assert_eq!(reopened.source_path(), OFFLINE_HIVE_SOURCE);
    assert_eq!(reopened.layers(), hive.layers());
    // And once more: a save of what was opened opens the same.
    reopened.save(&file).unwrap();
    assert_eq!(
        dump_hive(&OfflineHive::open(&file).unwrap()),
        dump_hive(&hive)
    );

    // Names are case-insensitive and case-preserving; order is Windows'.
    assert_eq!(
        reopened.enum_keys(r"app\ORDER").unwrap(),
        ["Alpha", "beta", "GAMMA", "été", "😀x", "\u{fffd}x"]
    );
    assert_eq!(
        reopened.get_value(r"APP", "multi").unwrap(),
        Value::multi_string(&["a", "b"])
    );
    let names: Vec<String> = reopened
        .enum_values("App")
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names[..4], ["", "App", "Big", "Bin"]);
    assert!(names.contains(&"MULTI".to_string()) && names.contains(&"exp".to_string()));
    assert_eq!(
        reopened.class(r"App\Classy").unwrap().as_deref(),
        Some("Shell")
    );
    assert!(reopened.open_key(r"App\ToTarget").unwrap().is_link());
    let owner = reopened.security(r"App\Sub\Deep").unwrap().owner;
    assert_eq!(owner, "alice", "a new key is owned by the hive's principal");
}

#[test]
fn a_value_keeps_the_name_first_written_and_the_highest_layer_wins() {
    let mut hive = OfflineHive::create();
    hive.create_key("K").unwrap();
    hive.set_value("K", "MixedCase", &1u32).unwrap();
    hive.set_value("k", "MIXEDCASE", &2u32).unwrap();
    assert_eq!(
        hive.enum_values("K").unwrap(),
        [("MixedCase".to_string(), Value::dword(2))]
    );
    hive.set_value_in("policy", "K", "mixedcase", &3u32)
        .unwrap();
    assert_eq!(hive.get_value("K", "MixedCase").unwrap(), Value::dword(3));
    assert_eq!(
        hive.open_key("K")
            .unwrap()
            .get_value_in("base", "mixedcase")
            .unwrap(),
        Value::dword(2)
    );
    hive.delete_value_in("policy", "K", "MIXEDcase").unwrap();
    assert_eq!(hive.get_value("K", "MixedCase").unwrap(), Value::dword(2));
    hive.create_key(r"k\SUB").unwrap();
    hive.create_key(r"K\sub\x").unwrap();
    assert_eq!(
        hive.enum_keys("K").unwrap(),
        ["SUB"],
        "the name first written"
    );
    assert!(hive.key_exists(r"k\sub\X").unwrap());
    hive.delete_tree(r"K\Sub").unwrap();
    assert!(!hive.key_exists(r"K\sub").unwrap());
    assert_eq!(hive.key_count(), 2);
}

/// A subtree of a store using everything a backup carries: layers, descriptors, classes,
/// links, every value type, names whose order is not their byte order, a volatile key.
fn build_store(store: &Store, root: &str) {
    store.create_layer("role", 50).unwrap();
    store.create_layer("empty", 60).unwrap();
    let mut tx = store.transaction();
    tx.create_key(&format!(r"{root}\A\B")).unwrap();
    for (name, value) in every_type() {
        tx.set_value(&format!(r"{root}\A"), name, &value).unwrap();
    }
    for name in SUBKEYS {
        tx.create_key(&format!(r"{root}\A\Order\{name}")).unwrap();
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

#[test]
fn a_store_backup_opens_as_a_hive_saves_and_restores_unchanged() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir.path().join("store"));
    let root = r"HKLM\Software\App";
    build_store(&store, root);
    let before = dump(&store, root);
    let backup = dir.path().join("app.backup");
    store
        .backup(root, store.seq(), std::fs::File::create(&backup).unwrap())
        .unwrap();

    let hive = OfflineHive::open(&backup).unwrap();
    assert_eq!(
        dump_hive(&hive),
        before,
        "the hive holds what the store held"
    );
    assert_eq!(hive.source_path(), r"Machine\Software\App");
    let layers: Vec<String> = hive.layers().into_iter().map(|l| l.name).collect();
    assert_eq!(layers, ["policy", "empty", "role", "base"]);
    let resaved = dir.path().join("app.hive");
    hive.save(&resaved).unwrap();

    let other = open_store(&dir.path().join("other"));
    other.restore_file(r"HKLM\Software\Copy", &resaved).unwrap();
    other.restore_file(r"HKLM\Software\Orig", &backup).unwrap();
    assert_eq!(dump(&other, r"HKLM\Software\Copy"), before);
    assert_eq!(dump(&other, r"HKLM\Software\Orig"), before);
    let shape = |layers: Vec<hivelog::Layer>| -> Vec<(String, u16)> {
        layers.into_iter().map(|l| (l.name, l.precedence)).collect()
    };
    assert_eq!(shape(other.layers()), shape(store.layers()));
    other.verify().unwrap();
}

#[test]
fn a_hive_saved_offline_restores_into_a_store() {
    let dir = TempDir::new().unwrap();
    let hive = build_hive();
    let file = dir.path().join("app.hive");
    hive.save(&file).unwrap();
    let info = hivelog::verify_backup_file(&file).unwrap();
    assert_eq!((info.anchor, info.principal.as_str()), (1, "alice"));
    let store = open_store(&dir.path().join("store"));
    store.restore_file(r"HKLM\Software\App", &file).unwrap();
    assert_eq!(dump(&store, r"HKLM\Software\App"), dump_hive(&hive));
    store.close().unwrap();
    let store = open_store(&dir.path().join("store"));
    assert_eq!(dump(&store, r"HKLM\Software\App"), dump_hive(&hive));
}

#[test]
fn a_whole_registry_copy_opens_with_the_hives_below_the_root() {
    let dir = TempDir::new().unwrap();
    let store = open_store(&dir.path().join("store"));
    store.create_key(r"HKLM\Software\X").unwrap();
    let file = dir.path().join("registry.backup");
    store
        .backup_registry(store.seq(), std::fs::File::create(&file).unwrap())
        .unwrap();
    let hive = OfflineHive::open(&file).unwrap();
    assert_eq!(hive.enum_keys("").unwrap(), ["Machine", "Users"]);
    assert!(hive.key_exists(r"Machine\Software\X").unwrap());
    assert_eq!(hive.source_path(), "");
    assert_eq!(hive.mount(), HiveMount::Registry);
    assert_eq!(
        hive.windows_path(r"\machine\Software\X").unwrap(),
        r"HKEY_LOCAL_MACHINE\Software\X"
    );
}

/// A small hive file: a few keys, values and descriptors.
fn small_hive_file() -> Vec<u8> {
    let mut hive = OfflineHive::create();
    hive.create_key(r"A\B").unwrap();
    hive.set_value("A", "V", &7u32).unwrap();
    hive.set_value(r"A\B", "", "text").unwrap();
    hive.set_security(r"A\B", &sddl::parse("O:BAD:(A;;KR;;;BU)").unwrap())
        .unwrap();
    saved(&hive)
}

/// An open of a damaged file is refused with a stream or backup error, which says what.
fn assert_refused(dir: &Path, bytes: &[u8], what: &str) {
    let file = dir.join("damaged.hive");
    std::fs::write(&file, bytes).unwrap();
    match OfflineHive::open(&file) {
        Err(error @ (Error::Log(LogError::BadStream { .. }) | Error::BadBackup { .. })) => {
            assert!(!error.to_string().is_empty());
        }
        Err(other) => panic!("{what}: not a corruption error: {other:?}"),
        Ok(_) => panic!("{what}: a damaged file opened"),
    }
}

#[test]
fn every_flipped_byte_and_every_truncation_is_refused_on_open() {
    let dir = TempDir::new().unwrap();
    let good = small_hive_file();
    assert!(good.len() < 1024, "a small file: {} bytes", good.len());
    std::fs::write(dir.path().join("good.hive"), &good).unwrap();
    OfflineHive::open(dir.path().join("good.hive")).unwrap();
    for i in 0..good.len() {
        for flip in [0x01, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            assert_refused(dir.path(), &bad, &format!("byte {i} ^ {flip:#x}"));
        }
    }
    for cut in 0..good.len() {
        assert_refused(dir.path(), &good[..cut], &format!("cut at {cut}"));
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_refused(dir.path(), &longer, "a byte after the trailer");
    let error = OfflineHive::open(dir.path().join("missing.hive")).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
}

/// A writer that takes `left` bytes, then fails.
struct FailAfter {
    left: usize,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("the disk is full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_save_that_fails_leaves_the_old_file_as_it_was() {
    let dir = TempDir::new().unwrap();
    let hive = build_hive();
    let len = saved(&hive).len();
    for left in (0..len).step_by(61).chain([len - 1]) {
        let error = hive.save_to(FailAfter { left }).unwrap_err();
        assert!(
            matches!(error, Error::Log(LogError::Io { .. })),
            "{error:?}"
        );
    }

    // The old file is never written in place: a reader holding it sees it whole, and a
    // save that fails before its rename leaves it byte for byte.
    let file = dir.path().join("app.hive");
    small_hive_file_at(&file);
    let old = std::fs::read(&file).unwrap();
    let held = std::fs::File::open(&file).unwrap();
    let missing = dir.path().join("no such dir").join("app.hive");
    let error = hive.save(&missing).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(!missing.parent().unwrap().exists());
    // The target is a directory: everything is written, synced and verified, and the
    // rename fails; the temporary file goes.
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("inside"), b"kept").unwrap();
    let error = hive.save(&taken).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert_eq!(std::fs::read(taken.join("inside")).unwrap(), b"kept");
    assert_eq!(std::fs::read(&file).unwrap(), old);
    assert_eq!(
        names_in(dir.path()),
        ["app.hive", "taken"],
        "no temporary file left"
    );

    hive.save(&file).unwrap();
    let mut held_bytes = Vec::new();
    io::Read::read_to_end(&mut &held, &mut held_bytes).unwrap();
    assert_eq!(
        held_bytes, old,
        "the file held open is the old one, untouched"
    );
    assert_ne!(
        std::fs::read(&file).unwrap(),
        old,
        "the save replaced the name"
    );
    assert_eq!(
        dump_hive(&OfflineHive::open(&file).unwrap()),
        dump_hive(&hive)
    );
    assert_eq!(names_in(dir.path()), ["app.hive", "taken"]);
}

fn small_hive_file_at(path: &Path) {
    std::fs::write(path, small_hive_file()).unwrap();
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `change` on `hive`, which must fail as `expected` says, and checks the hive did not
/// change.
fn refused(
    hive: &mut OfflineHive,
    change: impl FnOnce(&mut OfflineHive) -> hivelog::Result<()>,
    expected: fn(&Error) -> bool,
) {
    let before = (dump_hive(hive), hive.key_count());
    let error = change(hive).unwrap_err();
    assert!(expected(&error), "unexpected error: {error:?}");
    assert!(!error.to_string().is_empty());
    assert_eq!(
        (dump_hive(hive), hive.key_count()),
        before,
        "{error}: the hive changed"
    );
}

#[test]
fn every_refusal_is_a_typed_error_and_changes_nothing() {
    let mut hive = build_hive();
    let long_key = "k".repeat(KEY_NAME_MAX_CHARS + 1);
    let long_value = "v".repeat(VALUE_NAME_MAX_CHARS + 1);
    let too_deep = vec!["d"; DEPTH_MAX].join("\\");
    let too_big = Value::binary(vec![0; VALUE_SIZE_DEFAULT_MAX_BYTES as usize + 1]);

    refused(
        &mut hive,
        |h| h.delete_key(""),
        |e| matches!(e, Error::HiveRoot { .. }),
    );
    refused(
        &mut hive,
        |h| h.delete_tree(""),
        |e| matches!(e, Error::HiveRoot { .. }),
    );
    refused(
        &mut hive,
        |h| h.delete_key(r"App\Sub"),
        |e| matches!(e, Error::HasSubkeys { .. }),
    );
    refused(
        &mut hive,
        |h| h.create_key(&format!(r"App\{long_key}")),
        |e| {
            matches!(
                e,
                Error::KeyNameTooLong {
                    len: 256,
                    max: 255,
                    ..
                }
            )
        },
    );
    refused(
        &mut hive,
        |h| h.create_key(r"App\\X"),
        |e| matches!(e, Error::EmptyKeyName { .. }),
    );
    refused(
        &mut hive,
        |h| h.create_key("App\\a\0b"),
        |e| matches!(e, Error::InvalidName { .. }),
    );
    refused(
        &mut hive,
        |h| h.create_key(&too_deep),
        |e| matches!(e, Error::TooDeep { depth, max: DEPTH_MAX, .. } if *depth == DEPTH_MAX + 1),
    );
    refused(
        &mut hive,
        |h| h.set_value("App", &long_value, &1u32),
        |e| matches!(e, Error::ValueNameTooLong { .. }),
    );
    refused(
        &mut hive,
        |h| h.set_value("App", "Big", &too_big),
        |e| matches!(e, Error::ValueTooLarge { .. }),
    );
    refused(
        &mut hive,
        |h| h.set_value("Nope", "V", &1u32),
        |e| matches!(e, Error::KeyNotFound { path } if path == r"\Nope"),
    );
    refused(
        &mut hive,
        |h| h.delete_key(r"App\Nope"),
        |e| matches!(e, Error::KeyNotFound { .. }),
    );
    refused(
        &mut hive,
        |h| h.delete_tree(r"Nope\X"),
        |e| matches!(e, Error::KeyNotFound { .. }),
    );
    refused(
        &mut hive,
        |h| h.delete_value("App", "Nope"),
        |e| matches!(e, Error::ValueNotFound { path, name } if path == r"\App" && name == "Nope"),
    );
    refused(
        &mut hive,
        |h| h.set_value_in("nope", "App", "V", &1u32),
        |e| matches!(e, Error::LayerNotFound { .. }),
    );
    refused(
        &mut hive,
        |h| h.create_key(r"App\ToTarget\Below"),
        |e| matches!(e, Error::BelowLink { link, .. } if link == r"\App\ToTarget"),
    );
    refused(
        &mut hive,
        |h| h.delete_value(r"App\ToTarget", "symboliclinkvalue"),
        |e| matches!(e, Error::BadLink { .. }),
    );
    refused(
        &mut hive,
        |h| h.set_value(r"App\ToTarget", "SymbolicLinkValue", "HKCU\\X"),
        |e| matches!(e, Error::BadLink { .. }),
    );
    let volatile = CreateOptions {
        volatile: true,
        ..CreateOptions::default()
    };
    refused(
        &mut hive,
        |h| h.create_key_with(r"App\New\Running", &volatile),
        |e| matches!(e, Error::VolatileBackup { .. }),
    );
    let bad_class = CreateOptions {
        class: Some(String::new()),
        ..CreateOptions::default()
    };
    refused(
        &mut hive,
        |h| h.create_key_with(r"App\New\Classy", &bad_class),
        |e| matches!(e, Error::InvalidClass { .. }),
    );
    let bad_link = CreateOptions {
        link: Some("Nowhere\\X".into()),
        ..CreateOptions::default()
    };
    refused(
        &mut hive,
        |h| h.create_key_with(r"App\New\Link", &bad_link),
        |e| matches!(e, Error::BadLink { .. }),
    );
    let relink = CreateOptions {
        link: Some(r"Machine\X".into()),
        ..CreateOptions::default()
    };
    refused(
        &mut hive,
        |h| h.create_key_with(r"App\Sub", &relink),
        |e| matches!(e, Error::KeyExists { .. }),
    );
    let owner = sddl::parse("O:bob").unwrap();
    refused(
        &mut hive,
        |h| h.set_security(r"App\Nope", &owner),
        |e| matches!(e, Error::KeyNotFound { .. }),
    );
    refused(
        &mut hive,
        |h| h.set_principal(""),
        |e| matches!(e, Error::InvalidPrincipal { .. }),
    );

    let missing = |e: &Error| matches!(e, Error::KeyNotFound { .. });
    assert!(missing(&hive.get_value("Nope", "V").unwrap_err()));
    assert!(missing(&hive.enum_keys("Nope").unwrap_err()));
    assert!(missing(&hive.enum_values("Nope").unwrap_err()));
    assert!(missing(&hive.security("Nope").unwrap_err()));
    assert!(missing(&hive.class("Nope").unwrap_err()));
    assert!(matches!(
        hive.get_value("App", "Nope"),
        Err(Error::ValueNotFound { .. })
    ));
    assert!(matches!(
        hive.key_exists(&long_key),
        Err(Error::KeyNameTooLong { .. })
    ));
}

#[test]
fn nothing_reaches_the_disk_before_a_save() {
    let dir = TempDir::new().unwrap();
    let mut hive = build_hive();
    hive.create_key(r"More\Keys").unwrap();
    hive.set_value(r"More", "V", &1u32).unwrap();
    hive.delete_tree(r"App\Order").unwrap();
    assert!(names_in(dir.path()).is_empty());
    let file = dir.path().join("app.hive");
    hive.save(&file).unwrap();
    assert_eq!(names_in(dir.path()), ["app.hive"]);
    let saved = std::fs::read(&file).unwrap();
    // Edits of an opened hive leave its file as it is until the next save.
    let mut reopened = OfflineHive::open(&file).unwrap();
    reopened.delete_tree("More").unwrap();
    reopened.set_value("App", "New", &2u32).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), saved);
    assert_eq!(names_in(dir.path()), ["app.hive"]);
}

#[test]
fn a_hive_stands_for_the_key_its_source_path_names() {
    let dir = TempDir::new().unwrap();
    let mut hive = OfflineHive::create();
    hive.create_key(r"Sub\Deeper").unwrap();
    assert_eq!(hive.mount(), HiveMount::Unmounted);
    assert_eq!(hive.windows_path(r"Sub\Deeper").unwrap(), r"\Sub\Deeper");

    hive.set_source_path(r"hklm\Software\App").unwrap();
    assert_eq!(hive.source_path(), r"Machine\Software\App");
    assert!(
        matches!(hive.mount(), HiveMount::Key(key) if key.to_string() == r"Machine\Software\App")
    );
    assert_eq!(
        hive.windows_path(r"\Sub\Deeper").unwrap(),
        r"HKEY_LOCAL_MACHINE\Software\App\Sub\Deeper"
    );
    assert_eq!(
        hive.windows_path("").unwrap(),
        r"HKEY_LOCAL_MACHINE\Software\App"
    );
    let file = dir.path().join("app.hive");
    hive.save(&file).unwrap();
    let reopened = OfflineHive::open(&file).unwrap();
    assert_eq!(reopened.source_path(), r"Machine\Software\App");
    assert_eq!(
        hivelog::verify_backup_file(&file).unwrap().source_path,
        r"Machine\Software\App"
    );

    let error = hive.set_source_path(r"Nowhere\Else").unwrap_err();
    assert!(matches!(error, Error::UnknownHive { .. }), "{error:?}");
    assert_eq!(
        hive.source_path(),
        r"Machine\Software\App",
        "a refused path changes nothing"
    );
    hive.set_source_path("").unwrap();
    assert_eq!(hive.mount(), HiveMount::Registry);
}
