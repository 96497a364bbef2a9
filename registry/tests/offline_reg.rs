//! `.reg` files and offline hives: a hive exports what a store exports of the same subtree,
//! byte for byte; an import lands below the key the hive stands for, all of it or nothing;
//! keys outside the hive, and a hive that stands for no key, are refused with the line.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use hivelog::{Access, Error, HiveMount, OfflineHive, Options, RegFormat, Store, Value};
use tempfile::TempDir;

fn export_store(store: &Store, path: &str, format: RegFormat) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_reg(path, format, &mut out).unwrap();
    out
}

fn export_hive(hive: &OfflineHive, path: &str, format: RegFormat) -> Vec<u8> {
    let mut out = Vec::new();
    hive.export_reg(path, format, &mut out).unwrap();
    out
}

fn utf8(lines: &[&str]) -> Vec<u8> {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text.into_bytes()
}

/// A store with a subtree of every common value type, two levels deep.
fn store_with_app(dir: &TempDir) -> Store {
    let store = Store::open(dir.path().join("store"), Options::default()).unwrap();
    let app = r"HKLM\Software\App";
    store.create_key(&format!(r"{app}\Sub\Deeper")).unwrap();
    store.create_key(&format!(r"{app}\another")).unwrap();
    let key = store.open_key_with(app, Access::KEY_ALL_ACCESS).unwrap();
    key.set_value("", "default").unwrap();
    key.set_value("Count", &7u32).unwrap();
    key.set_value("Big", &(1u64 << 40)).unwrap();
    key.set_raw_value("Path", &Value::expand_string(r"%SystemRoot%\x"))
        .unwrap();
    key.set_raw_value("List", &Value::multi_string(&["a", "b"]))
        .unwrap();
    key.set_raw_value("Blob", &Value::binary((0..=255u8).collect::<Vec<_>>()))
        .unwrap();
    store
        .open_key_with(&format!(r"{app}\Sub\Deeper"), Access::KEY_ALL_ACCESS)
        .unwrap()
        .set_value("Name", "é and 😀")
        .unwrap();
    store
}

#[test]
fn a_hive_exports_what_the_store_exports_of_the_same_subtree() {
    let dir = TempDir::new().unwrap();
    let store = store_with_app(&dir);
    let backup = dir.path().join("app.backup");
    store
        .backup(
            r"HKLM\Software\App",
            store.seq(),
            std::fs::File::create(&backup).unwrap(),
        )
        .unwrap();
    let hive = OfflineHive::open(&backup).unwrap();
    for format in [RegFormat::UNICODE, RegFormat::UTF8, RegFormat::REGEDIT4] {
        assert_eq!(
            export_hive(&hive, "", format),
            export_store(&store, r"HKLM\Software\App", format),
            "{format:?}"
        );
        assert_eq!(
            export_hive(&hive, r"\Sub", format),
            export_store(&store, r"HKLM\Software\App\Sub", format),
            "{format:?}"
        );
    }

    // Imported into an empty hive that stands for the same key, the file comes back.
    let text = export_store(&store, r"HKLM\Software\App", RegFormat::UNICODE);
    let mut fresh = OfflineHive::create();
    fresh
        .set_source_path(r"HKEY_LOCAL_MACHINE\Software\App")
        .unwrap();
    let report = fresh.import_reg(&text, "app.reg").unwrap();
    assert_eq!((report.keys, report.values_set), (4, 7));
    assert_eq!(export_hive(&fresh, "", RegFormat::UNICODE), text);
}

#[test]
fn an_import_lands_below_the_mount_all_or_nothing() {
    let mut hive = OfflineHive::create();
    let text = utf8(&[
        "Windows Registry Editor Version 5.00",
        "",
        r"[HKEY_LOCAL_MACHINE\Software\App\One]",
        r#""V"=dword:00000001"#,
        "",
        r"[HKEY_LOCAL_MACHINE\Software\AppOther]",
        r#""W"="x""#,
    ]);
    let error = hive.import_reg(&text, "a.reg").unwrap_err();
    assert!(
        matches!(&error, Error::RegImport { line: 3, source, .. } if matches!(**source, Error::HiveUnmounted { .. })),
        "{error:?}"
    );

    hive.set_source_path(r"HKLM\Software\App").unwrap();
    let error = hive.import_reg(&text, "a.reg").unwrap_err();
    assert!(
        matches!(&error, Error::RegImport { line: 6, source, .. } if matches!(**source, Error::OutsideHive { .. })),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r"a.reg:6: key HKEY_LOCAL_MACHINE\Software\AppOther is outside the hive, which stands for HKEY_LOCAL_MACHINE\Software\App"
    );
    assert!(
        !hive.key_exists("One").unwrap(),
        "nothing of a refused file is applied"
    );

    let text = utf8(&[
        "Windows Registry Editor Version 5.00",
        r"[HKEY_LOCAL_MACHINE\SOFTWARE\app]",
        r#"@="root""#,
        r"[HKEY_LOCAL_MACHINE\Software\App\One\Two]",
        r#""V"=hex(b):01,00,00,00,00,00,00,00"#,
        r#""Gone"=-"#,
        r"[-HKEY_LOCAL_MACHINE\Software\App\Missing]",
    ]);
    let report = hive.import_reg(&text, "b.reg").unwrap();
    assert_eq!(
        (
            report.keys,
            report.values_set,
            report.values_deleted,
            report.trees_deleted
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(hive.get_value("", "").unwrap(), Value::string("root"));
    assert_eq!(hive.get_value(r"One\Two", "V").unwrap(), Value::qword(1));

    // The root cannot go; a value the store would refuse names its line.
    let text = utf8(&["REGEDIT4", r"[-HKEY_LOCAL_MACHINE\Software\App]"]);
    let error = hive.import_reg(&text, "c.reg").unwrap_err();
    assert!(
        matches!(&error, Error::RegImport { line: 2, source, .. } if matches!(**source, Error::HiveRoot { .. })),
        "{error:?}"
    );
    let long = "n".repeat(hivelog::VALUE_NAME_MAX_CHARS + 1);
    let text = utf8(&[
        "REGEDIT4",
        r"[HKEY_LOCAL_MACHINE\Software\App\Three]",
        &format!(r#""{long}"="x""#),
    ]);
    let error = hive.import_reg(&text, "d.reg").unwrap_err();
    assert!(
        matches!(&error, Error::RegImport { line: 3, .. }),
        "{error:?}"
    );
    assert!(
        !hive.key_exists("Three").unwrap(),
        "the key of a refused file is not created"
    );
}

#[test]
fn a_whole_registry_copy_imports_and_exports_both_hives() {
    let dir = TempDir::new().unwrap();
    let store = store_with_app(&dir);
    store.create_key(r"HKU\alice\Software\Mine").unwrap();
    let copy = dir.path().join("registry.copy");
    store
        .backup_registry(store.seq(), std::fs::File::create(&copy).unwrap())
        .unwrap();
    let mut hive = OfflineHive::open(&copy).unwrap();
    assert_eq!(hive.mount(), HiveMount::Registry);
    let mut both = export_store(&store, "HKLM", RegFormat::UTF8);
    let users = export_store(&store, "HKU", RegFormat::UTF8);
    // One file: one header, and one line end after the last value, as regedit ends a file.
    let header = "Windows Registry Editor Version 5.00\r\n".len();
    both.truncate(both.len() - 2);
    both.extend_from_slice(&users[header..]);
    assert_eq!(export_hive(&hive, "", RegFormat::UTF8), both);

    let text = utf8(&[
        "Windows Registry Editor Version 5.00",
        r"[HKEY_USERS\bob\Software]",
        r#""Seen"=dword:00000001"#,
    ]);
    hive.import_reg(&text, "users.reg").unwrap();
    assert_eq!(
        hive.get_value(r"Users\bob\Software", "Seen").unwrap(),
        Value::dword(1)
    );

    // A key below the root that is no hive has no name in a .reg file.
    hive.create_key("Elsewhere").unwrap();
    let error = hive
        .export_reg("", RegFormat::UTF8, Vec::new())
        .unwrap_err();
    assert!(matches!(error, Error::RegUnwritable { .. }), "{error:?}");
    let error = OfflineHive::create()
        .export_reg("", RegFormat::UTF8, Vec::new())
        .unwrap_err();
    assert!(matches!(error, Error::HiveUnmounted { .. }), "{error:?}");
}
