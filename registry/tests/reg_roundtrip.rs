//! `.reg` properties over random input: a round trip (export, import into an empty store,
//! export) gives the same bytes for random trees holding every kind of value; and import
//! never panics on arbitrary bytes or on valid files with random damage, and whenever it
//! fails, the store is exactly as it was.
//!
//! Case counts are kept small for the normal suite; `PROPTEST_CASES=2000 cargo test -p
//! hivelog --test reg_roundtrip --release` runs a longer search.

#![allow(clippy::unwrap_used)]

use hivelog::{Options, RegFormat, Store, SyncPolicy, Value, ValueType};
use proptest::prelude::*;
use tempfile::TempDir;

const ROOT: &str = r"HKLM\Software\P";

fn open(dir: &TempDir) -> Store {
    let options = Options {
        sync: SyncPolicy::Never,
        segment_size_bytes: 1 << 20,
        value_size_max_bytes: 256 << 10,
        ..Options::default()
    };
    Store::open(dir.path(), options).unwrap()
}

fn export(store: &Store, path: &str, format: RegFormat) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_reg(path, format, &mut out).unwrap();
    out
}

/// Both hives, as UTF-8 text.
fn dump(store: &Store) -> Vec<u8> {
    let mut out = export(store, "HKEY_LOCAL_MACHINE", RegFormat::UTF8);
    out.extend(export(store, "HKEY_USERS", RegFormat::UTF8));
    out
}

fn utf16(text: &str, terminators: usize) -> Vec<u8> {
    let mut data: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    data.resize(data.len() + 2 * terminators, 0);
    data
}

/// Text that names and strings hold: quotes, backslashes, the characters of `.reg` syntax,
/// and characters outside ASCII and outside the BMP.
const TEXT: &str = "[a-zA-Z0-9 \"\\\\=;@\\[\\]#,:é€α😀]{0,12}";

/// A value of any type, with the data shapes that test the writer's choices.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        TEXT.prop_map(|text| Value::string(&text)),
        // A REG_SZ that a quoted string cannot carry: unterminated, odd, with NULs or a
        // line break inside, an unpaired surrogate.
        TEXT.prop_map(|text| Value::new(ValueType::SZ, utf16(&text, 0))),
        prop::collection::vec(any::<u8>(), 0..9).prop_map(|data| Value::new(ValueType::SZ, data)),
        TEXT.prop_map(|text| Value::string(&format!("{text}\r\n{text}"))),
        Just(Value::new(ValueType::SZ, vec![0x00, 0xd8, 0, 0])),
        TEXT.prop_map(|text| Value::expand_string(&text)),
        prop::collection::vec(TEXT, 0..4).prop_map(|items| Value::multi_string(&items)),
        Just(Value::new(ValueType::MULTI_SZ, vec![0, 0])),
        any::<u32>().prop_map(Value::dword),
        any::<u32>().prop_map(Value::dword_big_endian),
        any::<u64>().prop_map(Value::qword),
        prop::collection::vec(any::<u8>(), 0..7)
            .prop_map(|data| Value::new(ValueType::DWORD, data)),
        // Big binaries wrap over many lines.
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Value::binary),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(ty, data)| Value::new(ValueType(ty), data)),
        (0u32..12, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(ty, data)| Value::new(ValueType(ty), data)),
        Just(Value::new(ValueType(0x100), vec![1, 2, 3])),
    ]
}

/// A key name: no backslash, no line break (which no `.reg` file can carry).
const KEY_NAME: &str = "[a-zA-Z0-9 \"=;@\\[\\]#,:é€α😀-]{1,10}";
const VALUE_NAME: &str = "[a-zA-Z0-9 \"\\\\=;@\\[\\]#,:é€α😀]{0,10}";

/// Keys (a path of 1–3 names below ROOT) with their values.
type Tree = Vec<(Vec<String>, Vec<(String, Value)>)>;

fn tree() -> impl Strategy<Value = Tree> {
    let key = prop::collection::vec(KEY_NAME, 1..4);
    let values = prop::collection::vec((VALUE_NAME, value()), 0..6);
    prop::collection::vec((key, values), 0..8)
}

fn build(store: &Store, tree: &Tree) {
    let mut tx = store.transaction();
    tx.create_key(ROOT).unwrap();
    for (names, values) in tree {
        let path = format!("{ROOT}\\{}", names.join("\\"));
        tx.create_key(&path).unwrap();
        for (name, value) in values {
            tx.set_value(&path, name, value).unwrap();
        }
    }
    tx.commit().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn export_import_export_is_byte_identical(tree in tree()) {
        let (a, b, c) = (TempDir::new().unwrap(), TempDir::new().unwrap(), TempDir::new().unwrap());
        let source = open(&a);
        build(&source, &tree);
        for (format, into) in [(RegFormat::UNICODE, &b), (RegFormat::UTF8, &c)] {
            let first = export(&source, ROOT, format);
            let copy = open(into);
            copy.import_reg(&first, "first.reg").unwrap();
            let second = export(&copy, ROOT, format);
            prop_assert!(first == second, "{}", String::from_utf8_lossy(&first));
            // Every value came back byte for byte (not only its text).
            for (names, values) in &tree {
                let path = format!("{ROOT}\\{}", names.join("\\"));
                for (name, _) in values {
                    prop_assert_eq!(
                        copy.get_raw_value(&path, name).unwrap(),
                        source.get_raw_value(&path, name).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn regedit4_round_trips_what_windows_1252_carries(
        values in prop::collection::vec(("[a-zA-Z0-9 é€\"\\\\]{0,8}", "[a-zA-Z0-9 é€%]{0,8}", 0u8..4), 0..8)
    ) {
        let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let source = open(&a);
        let mut tx = source.transaction();
        tx.create_key(ROOT).unwrap();
        for (name, text, kind) in &values {
            let value = match kind {
                0 => Value::string(text),
                1 => Value::expand_string(text),
                2 => Value::multi_string(&[text.as_str(), "x"]),
                _ => Value::binary(text.as_bytes().to_vec()),
            };
            tx.set_value(ROOT, name, &value).unwrap();
        }
        tx.commit().unwrap();
        let mut first = Vec::new();
        let report = source.export_reg(ROOT, RegFormat::REGEDIT4, &mut first).unwrap();
        prop_assert_eq!(report.lossy, 0);
        let copy = open(&b);
        copy.import_reg(&first, "first.reg").unwrap();
        prop_assert!(first == export(&copy, ROOT, RegFormat::REGEDIT4));
    }
}

/// A store with something in it, for the damaged input to leave alone.
fn seeded(dir: &TempDir) -> Store {
    let store = open(dir);
    build(
        &store,
        &vec![
            (vec!["A".into()], vec![("x".into(), Value::dword(1))]),
            (
                vec!["B".into(), "C".into()],
                vec![("".into(), Value::binary(vec![7; 40]))],
            ),
        ],
    );
    store
}

/// A valid file to damage: an export of a tree of every kind of value.
fn valid_file() -> Vec<u8> {
    let dir = TempDir::new().unwrap();
    let store = seeded(&dir);
    let mut tx = store.transaction();
    let path = format!("{ROOT}\\Damaged");
    tx.create_key(&path).unwrap();
    tx.set_value(&path, "s", "text \"q\" \\").unwrap();
    tx.set_value(&path, "d", &Value::dword(5)).unwrap();
    tx.set_value(&path, "m", &Value::multi_string(&["a", "b"]))
        .unwrap();
    tx.set_value(&path, "b", &Value::binary((0..=255).collect()))
        .unwrap();
    tx.set_value(&path, "", &Value::new(ValueType(0x100), vec![1]))
        .unwrap();
    tx.commit().unwrap();
    export(&store, ROOT, RegFormat::UTF8)
}

/// One random change to a file: a byte replaced, inserted or removed.
#[derive(Debug, Clone)]
enum Damage {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    // Bytes a .reg file is made of, so that damage often still parses far.
    let byte = prop_oneof![
        prop::sample::select(b"\r\n\\\",[]@=-:;0fxh(7)".to_vec()),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Damage::Replace(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Damage::Insert(at, b)),
        any::<usize>().prop_map(Damage::Remove),
    ]
}

fn apply(mut file: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for damage in damages {
        let len = file.len().max(1);
        match *damage {
            Damage::Replace(at, b) if !file.is_empty() => file[at % len] = b,
            Damage::Insert(at, b) => file.insert(at % (file.len() + 1), b),
            Damage::Remove(at) if !file.is_empty() => {
                file.remove(at % len);
            }
            _ => {}
        }
    }
    file
}

/// Imports `input`: a failure must leave the store exactly as it was.
fn import_or_nothing(store: &Store, input: &[u8]) -> Result<(), TestCaseError> {
    let (before, seq) = (dump(store), store.seq());
    if store.import_reg(input, "damaged.reg").is_err() {
        prop_assert_eq!(store.seq(), seq);
        prop_assert!(dump(store) == before, "a failed import changed the store");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_and_change_nothing_when_refused(
        header in prop::sample::select(vec![
            &b""[..],
            b"Windows Registry Editor Version 5.00\r\n",
            b"REGEDIT4\n",
            b"\xff\xfeW\x00",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let dir = TempDir::new().unwrap();
        let store = seeded(&dir);
        import_or_nothing(&store, &[header, &body[..]].concat())?;
    }

    #[test]
    fn damaged_files_never_panic_and_change_nothing_when_refused(
        damages in prop::collection::vec(damage(), 1..6),
        utf16 in any::<bool>(),
    ) {
        let dir = TempDir::new().unwrap();
        let store = seeded(&dir);
        let mut file = valid_file();
        if utf16 {
            let text = String::from_utf8(file).unwrap();
            file = [&[0xff, 0xfe][..], &text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>()].concat();
        }
        import_or_nothing(&store, &apply(file, &damages))?;
    }
}
