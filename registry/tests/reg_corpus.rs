//! `.reg` import against a corpus of files (`tests/reg/`): each valid file with the store it
//! must leave (`NAME.expected`: the UTF-8 export of both hives, without the header, with LF
//! line ends), each invalid one with the one error it must fail with (`NAME.error`), and a
//! store left exactly as it was. Every file is tried in each encoding and line end a reader
//! meets: UTF-8 with and without a byte order mark (without: 5.00 files only, since a
//! REGEDIT4 file without one is 8-bit), UTF-16LE, Windows-1252 (REGEDIT4 files whose text
//! it can carry), each with LF and with CRLF.
//!
//! After a deliberate change of behaviour, `REG_CORPUS_BLESS=1 cargo test -p hivelog --test
//! reg_corpus` rewrites the `.expected` files from what the import now does; review the diff.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hivelog::{
    DEPTH_MAX, Error, KEY_NAME_MAX_CHARS, Options, REG_FILE_MAX_BYTES, REG_LINE_MAX_BYTES,
    RegEncoding, RegFormat, RegHeader, Store, SyncPolicy, VALUE_NAME_MAX_CHARS,
};
use tempfile::TempDir;

const V5: &str = "Windows Registry Editor Version 5.00";

fn options() -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size_bytes: 1 << 20,
        value_size_max_bytes: 256 << 10,
        ..Options::default()
    }
}

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), options()).unwrap()
}

/// Both hives as UTF-8 `.reg` text without the headers, LF line ends.
fn dump(store: &Store) -> String {
    let mut text = String::new();
    for root in ["HKEY_LOCAL_MACHINE", "HKEY_USERS"] {
        let mut out = Vec::new();
        store.export_reg(root, RegFormat::UTF8, &mut out).unwrap();
        let exported = String::from_utf8(out).unwrap().replace("\r\n", "\n");
        text.push_str(exported.strip_prefix(V5).unwrap());
    }
    text
}

fn corpus(kind: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reg")
        .join(kind);
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "reg"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

/// A file of the corpus in each encoding and line end: (what it is, its bytes, the
/// encoding an import must report).
fn variants(text: &str) -> Vec<(String, Vec<u8>, RegEncoding)> {
    let regedit4 = text.trim_start().starts_with("REGEDIT4");
    let mut out = Vec::new();
    for (ending, text) in [
        ("LF", text.to_string()),
        ("CRLF", text.replace('\n', "\r\n")),
    ] {
        if !regedit4 {
            out.push((
                format!("UTF-8, {ending}"),
                text.as_bytes().to_vec(),
                RegEncoding::Utf8,
            ));
        }
        let bom = [&[0xef, 0xbb, 0xbf], text.as_bytes()].concat();
        out.push((format!("UTF-8 with BOM, {ending}"), bom, RegEncoding::Utf8));
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out.push((format!("UTF-16LE, {ending}"), utf16, RegEncoding::Utf16Le));
        if let Some(bytes) = regedit4.then(|| windows_1252(&text)).flatten() {
            let label = format!("Windows-1252, {ending}");
            out.push((label, bytes, RegEncoding::Windows1252));
        }
    }
    out
}

/// `text` in Windows-1252, if the corpus's few characters outside ASCII are all it holds.
fn windows_1252(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| match c {
            '\u{20ac}' => Some(0x80),
            c => u8::try_from(u32::from(c))
                .ok()
                .filter(|&b| !(0x80..0xa0).contains(&b)),
        })
        .collect()
}

#[test]
fn valid_files_leave_the_expected_store_in_every_encoding() {
    let bless = std::env::var_os("REG_CORPUS_BLESS").is_some();
    for (name, path) in corpus("valid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected_path = path.with_extension("expected");
        let header = if text.trim_start().starts_with("REGEDIT4") {
            RegHeader::Regedit4
        } else {
            RegHeader::Version5
        };
        for (what, bytes, encoding) in variants(&text) {
            let dir = TempDir::new().unwrap();
            let store = open(&dir);
            let report = store
                .import_reg(&bytes, &name)
                .unwrap_or_else(|e| panic!("{name} ({what}): {e}"));
            assert_eq!(
                report.format,
                RegFormat { header, encoding },
                "{name} ({what})"
            );
            let got = dump(&store);
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap();
            assert_eq!(got, expected, "{name} ({what})");
        }
    }
}

/// What the store holds before each invalid file: an invalid file must leave it so.
const SEED: &str = "Windows Registry Editor Version 5.00\n\n\
    [HKEY_LOCAL_MACHINE\\Software\\Corpus]\n\"a\"=dword:1\n\"b\"=\"seed\"\n\n\
    [HKEY_LOCAL_MACHINE\\Software\\Corpus\\X]\n@=hex:01,02\n";

#[test]
fn invalid_files_fail_naming_their_line_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.import_reg(SEED.as_bytes(), "seed.reg").unwrap();
    let before = dump(&store);
    let seq = store.seq();
    for (name, path) in corpus("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("error")).unwrap();
        for (what, bytes, _) in variants(&text) {
            let error = store
                .import_reg(&bytes, &name)
                .expect_err(&format!("{name} ({what}) must fail"));
            assert_eq!(error.to_string(), expected.trim_end(), "{name} ({what})");
            assert_eq!(store.seq(), seq, "{name} ({what}) committed");
            assert_eq!(dump(&store), before, "{name} ({what}) changed the store");
        }
    }
}

/// Imports `text` into `store` and returns its error.
fn refused(store: &Store, text: impl AsRef<[u8]>) -> Error {
    let before = dump(store);
    let error = store.import_reg(text.as_ref(), "limits.reg").unwrap_err();
    assert_eq!(dump(store), before, "{error}");
    error
}

#[test]
fn every_limit_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(
        dir.path(),
        Options {
            value_size_max_bytes: 1024,
            ..options()
        },
    )
    .unwrap();
    // Zeroed pages are not touched until read: the check comes first.
    let huge = vec![0u8; REG_FILE_MAX_BYTES as usize + 1];
    match store.import_reg(&huge, "huge.reg").unwrap_err() {
        Error::RegFileTooLarge { file, len, max } => {
            assert_eq!(
                (file.as_str(), len, max),
                ("huge.reg", huge.len() as u64, REG_FILE_MAX_BYTES)
            );
        }
        other => panic!("{other}"),
    }
    drop(huge);
    let long_line = format!("{V5}\n\n; {}\n", "x".repeat(REG_LINE_MAX_BYTES));
    match refused(&store, &long_line) {
        Error::RegLineTooLong { line, len, max, .. } => {
            assert_eq!(
                (line, len, max),
                (3, REG_LINE_MAX_BYTES + 2, REG_LINE_MAX_BYTES)
            );
        }
        other => panic!("{other}"),
    }
    let key = "[HKEY_LOCAL_MACHINE\\Software\\Corpus]";
    let name = "n".repeat(VALUE_NAME_MAX_CHARS + 1);
    let text = format!("{V5}\n{key}\n\"ok\"=dword:1\n\"{name}\"=dword:1\n");
    assert!(matches!(
        refused(&store, &text),
        Error::RegImport { line: 4, source, .. }
            if matches!(*source, Error::ValueNameTooLong { len, max: VALUE_NAME_MAX_CHARS, .. } if len == VALUE_NAME_MAX_CHARS + 1)
    ));
    let data = vec!["00"; 1025].join(",");
    let text = format!(
        "{V5}\n{key}\n\"ok\"=hex:{}\n\"big\"=hex:{data}\n",
        vec!["00"; 1024].join(",")
    );
    assert!(matches!(
        refused(&store, &text),
        Error::RegImport { line: 4, source, .. }
            if matches!(*source, Error::ValueTooLarge { len: 1025, max: 1024, .. })
    ));
    let deep = vec!["k"; DEPTH_MAX].join("\\");
    let text = format!("{V5}\n{key}\n\n[HKEY_LOCAL_MACHINE\\{deep}]\n");
    assert!(matches!(
        refused(&store, &text),
        Error::RegImport { line: 4, source, .. }
            if matches!(*source, Error::TooDeep { depth, max: DEPTH_MAX, .. } if depth == DEPTH_MAX + 1)
    ));
    let ok = vec!["k"; DEPTH_MAX - 1].join("\\");
    let name = "k".repeat(KEY_NAME_MAX_CHARS);
    let text = format!("{V5}\n[HKEY_LOCAL_MACHINE\\{ok}]\n[HKEY_LOCAL_MACHINE\\{name}]\n");
    store
        .import_reg(text.as_bytes(), "at the limits.reg")
        .unwrap();
}

#[test]
fn undecodable_text_names_its_line() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut bad_utf8 = format!("{V5}\n\n[HKEY_USERS\\a]\n\"x\"=\"").into_bytes();
    bad_utf8.extend_from_slice(b"\xff\"\n");
    assert_eq!(
        refused(&store, &bad_utf8).to_string(),
        "limits.reg:4: invalid UTF-8"
    );
    let mut utf16: Vec<u8> = vec![0xff, 0xfe];
    utf16.extend(
        format!("{V5}\r\n[HKEY_USERS\\a]\r\n")
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    utf16.push(b'x');
    let error = store.import_reg(&utf16, "odd.reg").unwrap_err();
    assert_eq!(
        error.to_string(),
        "odd.reg:3: the file ends in half a UTF-16 character (an odd number of bytes)"
    );
    let error = store
        .import_reg(&[0xfe, 0xff, 0, b'W'], "be.reg")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "be.reg:1: the file is UTF-16BE; a .reg file is UTF-16LE or UTF-8"
    );
}
