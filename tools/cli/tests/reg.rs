//! End-to-end tests of `hivelog import` and `hivelog export`: files and pipes, the three
//! formats, the summary lines, and errors as one line with exit status 1 and nothing
//! changed or left behind.
//!
//! Run with `cargo test -p hivelog-cli --test reg`.

use std::io::Write;
use std::process::Stdio;

mod support;
use support::*;

/// A file as regedit writes it: values in name order, `Blob` wrapped after 22 bytes.
const FILE: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
    [HKEY_LOCAL_MACHINE\\Software\\Contoso\\App]\r\n\
    @=\"default\"\r\n\
    \"Blob\"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,15,\\\r\n  \
    16,17,18\r\n\
    \"Path\"=hex(2):25,00,41,00,25,00,00,00\r\n\
    \"Retries\"=dword:00000003\r\n\
    \r\n\
    [HKEY_LOCAL_MACHINE\\Software\\Contoso\\App\\Sub]\r\n\
    \"Name\"=\"caf\u{e9}\"\r\n\
    \r\n";

fn utf16(text: &str) -> Vec<u8> {
    let mut out = vec![0xff, 0xfe];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

#[test]
fn import_then_export_gives_back_regedits_file() {
    let store = Store::new();
    let file = store.tmp.path().join("in.reg");
    std::fs::write(&file, utf16(FILE)).unwrap();
    let out = store.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(
        out,
        format!(
            "imported {}: 2 keys, 5 values set, 0 values deleted, 0 trees deleted (sequence number 2)\n",
            file.display()
        )
    );
    let exported = store.tmp.path().join("out.reg");
    let out = store.ok(&["export", APP, exported.to_str().unwrap()]);
    let bytes = std::fs::read(&exported).unwrap();
    assert_eq!(bytes, utf16(FILE));
    assert_eq!(
        out,
        format!(
            "exported {APP}: 2 keys, 5 values, {} bytes to {}\n",
            bytes.len(),
            exported.display()
        )
    );
    // An existing file is replaced only when asked.
    let message = store.error(&["export", APP, exported.to_str().unwrap()]);
    assert!(
        message.ends_with("exists; pass --force to replace it"),
        "{message}"
    );
    store.ok(&["export", APP, exported.to_str().unwrap(), "--force"]);
}

#[test]
fn export_to_stdout_in_utf8_and_regedit4() {
    let store = Store::new();
    let file = store.tmp.path().join("in.reg");
    std::fs::write(&file, FILE).unwrap();
    store.ok(&["import", file.to_str().unwrap()]);
    let run = store.run(&["export", APP, "-", "--encoding", "utf8"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.stdout, FILE);
    assert!(
        run.stderr.starts_with(&format!("exported {APP}: 2 keys")),
        "{}",
        run.describe()
    );
    // REGEDIT4 is 8-bit: the output is not UTF-8, so it is read as bytes here.
    let output = command()
        .arg("--store")
        .arg(&store.dir)
        .args(["export", APP, "-", "--regedit4"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = output.stdout;
    assert!(text.starts_with(b"REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\Contoso\\App]\r\n"));
    assert!(text.windows(13).any(|w| w == b"\"Name\"=\"caf\xe9\""));
    assert!(text.windows(22).any(|w| w == b"\"Path\"=hex(2):25,41,25"));
}

#[test]
fn import_reads_stdin() {
    let store = Store::new();
    let mut child = command()
        .arg("--store")
        .arg(&store.dir)
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(FILE.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("imported -: 2 keys")
    );
    assert!(store.ok(&["query", APP]).contains("Retries"));
}

#[test]
fn a_bad_file_is_one_line_of_error_and_changes_nothing() {
    let store = Store::new();
    store.set(APP, "Kept", "REG_DWORD", "1");
    let seq = store.seq();
    let file = store.tmp.path().join("bad.reg");
    let bad = FILE.replace("dword:00000003", "dword:0000000003");
    std::fs::write(&file, &bad).unwrap();
    let path = file.to_str().unwrap();
    assert_eq!(
        store.error(&["import", path]),
        format!("{path}:8: dword: takes 1 to 8 hex digits")
    );
    // Refused by the store at commit, after every line parsed: still nothing applied.
    let refused = format!("{FILE}[-HKEY_LOCAL_MACHINE]\r\n");
    std::fs::write(&file, refused).unwrap();
    assert_eq!(
        store.error(&["import", path]),
        format!("{path}:13: Machine is a hive root and cannot be deleted")
    );
    assert_eq!(store.seq(), seq);
    assert!(!store.ok(&["query", APP]).contains("Retries"));
    let missing = store.tmp.path().join("missing.reg");
    let message = store.error(&["import", missing.to_str().unwrap()]);
    assert!(message.starts_with("reading "), "{message}");
    std::fs::write(&file, [0xfe, 0xff, 0, b'W']).unwrap();
    assert!(
        store
            .error(&["import", path])
            .ends_with("the file is UTF-16BE; a .reg file is UTF-16LE or UTF-8")
    );
}

#[test]
fn a_failed_export_leaves_no_file() {
    let store = Store::new();
    store.set(APP, "Kept", "REG_DWORD", "1");
    let target = store.tmp.path().join("out.reg");
    let message = store.error(&["export", r"HKLM\Software\Missing", target.to_str().unwrap()]);
    assert_eq!(message, r"key Machine\Software\Missing does not exist");
    let left: Vec<_> = std::fs::read_dir(store.tmp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "store")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let usage = store.run(&["export", APP, "-", "--encoding", "ebcdic"]);
    assert_eq!(usage.code, Some(2), "{}", usage.describe());
}
