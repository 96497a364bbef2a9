//! End-to-end tests of the `hivelog` binary: every command, its output layout, its errors and
//! exit statuses (0 success, 1 error with one line on stderr, 2 usage error), who may do what
//! (`--as`, descriptors, privileges), and a writer killed with SIGKILL in the middle of `bench`.
//!
//! Run with `cargo test -p hivelog-cli --test cli`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use tempfile::TempDir;

mod support;
use support::*;

/// The first key's values of a `query --json` document.
fn json_values(document: &Json) -> &[Json] {
    document["keys"][0]["values"].as_array().expect("values")
}

/// The `path` of every key of a `query --json` document.
fn json_paths(document: &Json) -> Vec<&str> {
    let keys = document["keys"].as_array().expect("keys");
    keys.iter()
        .map(|k| k["path"].as_str().expect("path"))
        .collect()
}

/// Strings as the store holds them: UTF-16LE, each item NUL-terminated, in uppercase hex.
fn utf16_hex(items: &[&str]) -> String {
    items
        .iter()
        .flat_map(|item| item.encode_utf16().chain([0]))
        .flat_map(u16::to_le_bytes)
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A value as `query --json` and `log --json` print it.
fn value_json(name: &str, ty: &str, code: u32, data: Json, hex: &str) -> Json {
    json!({ "name": name, "type": ty, "type_code": code, "data": data, "hex": hex })
}

/// `APP` with a value of every type, the default value, and two key-only subkeys.
fn store_with_every_type() -> Store {
    let store = Store::new();
    // REG_SZ is the default type.
    assert_eq!(store.ok(&["add", APP, "-v", "Name", "-d", "hello"]), "");
    store.ok(&["add", APP, "--ve", "-d", "default text"]);
    store.set(APP, "Path", "REG_EXPAND_SZ", r"%ProgramFiles%\Contoso");
    store.set(APP, "List", "REG_MULTI_SZ", r"one\0two\0three");
    store.ok(&[
        "add",
        APP,
        "-v",
        "Csv",
        "-t",
        "REG_MULTI_SZ",
        "-s",
        ",",
        "-d",
        "a,b",
    ]);
    store.set(APP, "Dec", "REG_DWORD", "42");
    store.set(APP, "Hex", "REG_DWORD", "0xFF");
    store.set(APP, "Max", "REG_DWORD", "4294967295");
    store.set(APP, "BigEnd", "REG_DWORD_BIG_ENDIAN", "0x01020304");
    store.set(APP, "Quad", "REG_QWORD", "0x123456789");
    store.set(APP, "Blob", "REG_BINARY", "00ff1a");
    store.ok(&["add", APP, "-v", "Nothing", "-t", "REG_NONE"]);
    store.set(APP, "Custom", "0x80000001", "cafe");
    // Key-only adds.
    assert_eq!(store.ok(&["add", &format!(r"{APP}\Plugins")]), "");
    store.ok(&["add", &format!(r"{APP}\Cache")]);
    store
}

/// `APP`'s path line and values as `query` prints them (sorted by name, default first).
fn every_type_block() -> String {
    key_block(
        APP_PATH,
        &[
            ("(Default)", "REG_SZ", "default text"),
            ("BigEnd", "REG_DWORD_BIG_ENDIAN", "0x1020304"),
            ("Blob", "REG_BINARY", "00FF1A"),
            ("Csv", "REG_MULTI_SZ", r"a\0b"),
            ("Custom", "0x80000001", "CAFE"),
            ("Dec", "REG_DWORD", "0x2a"),
            ("Hex", "REG_DWORD", "0xff"),
            ("List", "REG_MULTI_SZ", r"one\0two\0three"),
            ("Max", "REG_DWORD", "0xffffffff"),
            ("Name", "REG_SZ", "hello"),
            ("Nothing", "REG_NONE", ""),
            ("Path", "REG_EXPAND_SZ", r"%ProgramFiles%\Contoso"),
            ("Quad", "REG_QWORD", "0x123456789"),
        ],
    )
}

#[test]
fn add_every_type_then_query_prints_the_reg_query_layout() {
    let store = store_with_every_type();
    let expected = format!(
        "{}\n{APP_PATH}\\Cache\n{APP_PATH}\\Plugins\n",
        every_type_block()
    );
    assert_eq!(store.ok(&["query", APP]), expected);
}

#[test]
fn query_recursive_prints_every_key_of_the_subtree() {
    let store = store_with_every_type();
    store.set(&format!(r"{APP}\Plugins\Spell"), "On", "REG_DWORD", "1");
    let expected = [
        key_block(r"HKEY_LOCAL_MACHINE\Software\Contoso", &[]),
        every_type_block(),
        key_block(&format!(r"{APP_PATH}\Cache"), &[]),
        key_block(&format!(r"{APP_PATH}\Plugins"), &[]),
        key_block(
            &format!(r"{APP_PATH}\Plugins\Spell"),
            &[("On", "REG_DWORD", "0x1")],
        ),
    ]
    .concat();
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Contoso", "-s"]),
        expected
    );
}

#[test]
fn query_one_value_and_the_default_value() {
    let store = store_with_every_type();
    let quad = key_block(APP_PATH, &[("Quad", "REG_QWORD", "0x123456789")]);
    assert_eq!(store.ok(&["query", APP, "-v", "Quad"]), quad + "\n");
    let default = key_block(APP_PATH, &[("(Default)", "REG_SZ", "default text")]);
    assert_eq!(store.ok(&["query", APP, "--ve"]), default + "\n");
}

#[test]
fn query_search_with_v_and_s_counts_matches() {
    let store = Store::new();
    store.ok(&["add", r"HKLM\Software\S\A\B"]);
    store.set(r"HKLM\Software\S", "Flag", "REG_SZ", "top");
    store.set(r"HKLM\Software\S\A\B", "Flag", "REG_DWORD", "7");
    store.set(r"HKLM\Software\S\A", "Other", "REG_SZ", "x");
    let expected = [
        key_block(
            r"HKEY_LOCAL_MACHINE\Software\S",
            &[("Flag", "REG_SZ", "top")],
        ),
        key_block(
            r"HKEY_LOCAL_MACHINE\Software\S\A\B",
            &[("Flag", "REG_DWORD", "0x7")],
        ),
        "End of search: 2 match(es) found.\n".to_string(),
    ]
    .concat();
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\S", "-v", "Flag", "-s"]),
        expected
    );
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\S", "-v", "Absent", "-s"]),
        "End of search: 0 match(es) found.\n"
    );
    let found = store.json(&["query", r"HKLM\Software\S", "-v", "Flag", "-s", "--json"]);
    assert_eq!(
        json_paths(&found),
        [
            r"HKEY_LOCAL_MACHINE\Software\S",
            r"HKEY_LOCAL_MACHINE\Software\S\A\B"
        ]
    );
}

#[test]
fn query_json_holds_the_typed_data_and_the_bytes() {
    let store = store_with_every_type();
    let document = store.json(&["query", APP, "--json"]);
    assert_eq!(document["seq"], store.seq());
    assert_eq!(document["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(document["keys"][0]["path"], APP_PATH);
    assert_eq!(document["keys"][0]["subkeys"], json!(["Cache", "Plugins"]));
    let text = |name: &str, ty: &str, code: u32, data: &str| {
        value_json(name, ty, code, json!(data), &utf16_hex(&[data]))
    };
    let multi = |name: &str, items: &[&str]| {
        value_json(
            name,
            "REG_MULTI_SZ",
            7,
            json!(items),
            &(utf16_hex(items) + "0000"),
        )
    };
    let value = value_json;
    let expected = json!([
        text("", "REG_SZ", 1, "default text"),
        value(
            "BigEnd",
            "REG_DWORD_BIG_ENDIAN",
            5,
            json!(0x0102_0304),
            "01020304"
        ),
        value("Blob", "REG_BINARY", 3, json!("00FF1A"), "00FF1A"),
        multi("Csv", &["a", "b"]),
        value("Custom", "0x80000001", 0x8000_0001, json!("CAFE"), "CAFE"),
        value("Dec", "REG_DWORD", 4, json!(42), "2A000000"),
        value("Hex", "REG_DWORD", 4, json!(255), "FF000000"),
        multi("List", &["one", "two", "three"]),
        value("Max", "REG_DWORD", 4, json!(4_294_967_295u32), "FFFFFFFF"),
        text("Name", "REG_SZ", 1, "hello"),
        value("Nothing", "REG_NONE", 0, json!(""), ""),
        text("Path", "REG_EXPAND_SZ", 2, r"%ProgramFiles%\Contoso"),
        value(
            "Quad",
            "REG_QWORD",
            11,
            json!(0x1_2345_6789u64),
            "8967452301000000"
        ),
    ]);
    assert_eq!(document["keys"][0]["values"], expected);
    // The byte layout the helpers assume, spelled out once.
    assert_eq!(utf16_hex(&["hello"]), "680065006C006C006F000000");

    let recursive = store.json(&["query", r"HKLM\Software\Contoso", "-s", "--json"]);
    assert_eq!(
        json_paths(&recursive),
        [
            r"HKEY_LOCAL_MACHINE\Software\Contoso",
            APP_PATH,
            &format!(r"{APP_PATH}\Cache"),
            &format!(r"{APP_PATH}\Plugins"),
        ]
    );
    let one = store.json(&["query", APP, "-v", "Dec", "--json"]);
    assert_eq!(json_values(&one), [expected[5].clone()]);
    let default = store.json(&["query", APP, "--ve", "--json"]);
    assert_eq!(json_values(&default), [expected[0].clone()]);
}

#[test]
fn add_key_only_creates_missing_parents_in_one_transaction() {
    let store = Store::new();
    store.ok(&["init"]);
    let before = store.seq();
    assert_eq!(store.ok(&["add", r"HKLM\Software\Deep\Er\Est"]), "");
    assert_eq!(store.seq(), before + 1);
    let deep = r"HKEY_LOCAL_MACHINE\Software\Deep";
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Deep", "-s"]),
        format!("\n{deep}\n\n{deep}\\Er\n\n{deep}\\Er\\Est\n")
    );
    // A key without values or subkeys prints its path line only.
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Deep\Er\Est"]),
        format!("\n{deep}\\Er\\Est\n")
    );
    // Adding an existing key again is no error and adds no value.
    store.ok(&["add", r"HKLM\Software\Deep\Er\Est"]);
    let document = store.json(&["query", r"HKLM\Software\Deep\Er\Est", "--json"]);
    assert_eq!(document["keys"][0]["values"], json!([]));
    // -d alone sets the default value, as `reg add KEY /d DATA` does.
    store.ok(&["add", r"HKLM\Software\Deep", "-d", "implicit"]);
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Deep", "--ve"]),
        key_block(deep, &[("(Default)", "REG_SZ", "implicit")]) + "\n"
    );
    // The other hive, by its long and its short name.
    store.set(
        r"HKEY_USERS\S-1-5-21\Env",
        "TEMP",
        "REG_EXPAND_SZ",
        r"%USERPROFILE%\Temp",
    );
    assert_eq!(
        store.ok(&["query", r"HKU\S-1-5-21\Env"]),
        key_block(
            r"HKEY_USERS\S-1-5-21\Env",
            &[("TEMP", "REG_EXPAND_SZ", r"%USERPROFILE%\Temp")]
        )
    );
}

#[test]
fn overwriting_a_value_replaces_its_type_and_data() {
    let store = Store::new();
    store.set(r"HKLM\Software\O", "V", "REG_SZ", "text");
    store.set(r"HKLM\Software\O", "V", "REG_QWORD", "5");
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\O"]),
        key_block(
            r"HKEY_LOCAL_MACHINE\Software\O",
            &[("V", "REG_QWORD", "0x5")]
        )
    );
}

#[test]
fn query_at_seq_shows_the_past() {
    let store = store_with_every_type();
    let before = store.seq();
    store.set(APP, "Name", "REG_SZ", "changed");
    store.ok(&["delete", APP, "-v", "Dec"]);
    store.ok(&["add", r"HKLM\Software\Contoso\Later"]);
    let at = before.to_string();
    assert_eq!(
        store.ok(&["query", APP, "-v", "Name", "--at-seq", &at]),
        key_block(APP_PATH, &[("Name", "REG_SZ", "hello")]) + "\n"
    );
    assert_eq!(
        store.ok(&["query", APP, "-v", "Name"]),
        key_block(APP_PATH, &[("Name", "REG_SZ", "changed")]) + "\n"
    );
    assert_eq!(
        store.ok(&["query", APP, "-v", "Dec", "--at-seq", &at]),
        key_block(APP_PATH, &[("Dec", "REG_DWORD", "0x2a")]) + "\n"
    );
    store.not_found(&["query", APP, "-v", "Dec"]);
    let past = store.json(&["query", r"HKLM\Software\Contoso", "--at-seq", &at, "--json"]);
    assert_eq!(past["seq"], before);
    assert_eq!(past["keys"][0]["subkeys"], json!(["App"]));
    // Before the key existed, and beyond the last commit.
    store.not_found(&["query", APP, "--at-seq", "1"]);
    let future = (store.seq() + 1).to_string();
    let message = store.error(&["query", APP, "--at-seq", &future]);
    let expected = format!("sequence number {future} is not committed");
    assert!(message.contains(&expected), "{message}");
}

#[test]
fn delete_a_tree_a_value_the_default_value_and_all_values() {
    let store = Store::new();
    let (del, keep) = (r"HKLM\Software\Del", r"HKLM\Software\Del\Keep");
    let keep_path = r"HKEY_LOCAL_MACHINE\Software\Del\Keep";
    store.set(r"HKLM\Software\Del\Gone\Deeper", "X", "REG_SZ", "1");
    store.set(r"HKLM\Software\Del\Gone", "Y", "REG_SZ", "2");
    store.set(keep, "A", "REG_SZ", "a");
    store.set(keep, "B", "REG_SZ", "b");
    store.set(keep, "", "REG_SZ", "d");
    store.ok(&["add", r"HKLM\Software\Del\Keep\Child"]);

    // Without a value option: the key and its whole subtree.
    assert_eq!(store.ok(&["delete", r"HKLM\Software\Del\Gone"]), "");
    store.not_found(&["query", r"HKLM\Software\Del\Gone"]);
    store.not_found(&["query", r"HKLM\Software\Del\Gone\Deeper"]);
    assert_eq!(
        store.ok(&["query", del]),
        format!("\nHKEY_LOCAL_MACHINE\\Software\\Del\n\n{keep_path}\n")
    );

    // -v: that value only.
    assert_eq!(store.ok(&["delete", keep, "-v", "A"]), "");
    let values = key_block(
        keep_path,
        &[("(Default)", "REG_SZ", "d"), ("B", "REG_SZ", "b")],
    );
    assert_eq!(
        store.ok(&["query", keep]),
        format!("{values}\n{keep_path}\\Child\n")
    );

    // --ve: the default value only.
    assert_eq!(store.ok(&["delete", keep, "--ve"]), "");
    store.not_found(&["query", keep, "--ve"]);
    let values = key_block(keep_path, &[("B", "REG_SZ", "b")]);
    assert_eq!(
        store.ok(&["query", keep]),
        format!("{values}\n{keep_path}\\Child\n")
    );

    // --va: every value; the key and its subkeys stay.
    store.set(keep, "C", "REG_SZ", "c");
    assert_eq!(store.ok(&["delete", keep, "--va"]), "");
    assert_eq!(
        store.ok(&["query", keep]),
        format!("\n{keep_path}\n\n{keep_path}\\Child\n")
    );
    // --va on a key without values is no error.
    store.ok(&["delete", keep, "--va"]);
}

#[test]
fn lookups_ignore_case_and_listings_keep_the_stored_case() {
    let store = Store::new();
    let path = r"HKEY_LOCAL_MACHINE\Software\MixedCase";
    store.set(
        r"HKLM\Software\MixedCase\SubKey",
        "ValueName",
        "REG_SZ",
        "first",
    );
    // The same key and value spelled differently: one key, one value, named as first written.
    store.set(
        r"hklm\SOFTWARE\mixedcase\SUBKEY",
        "VALUENAME",
        "REG_SZ",
        "second",
    );
    store.set(r"Machine\software\MIXEDCASE\subkey", "Other", "REG_SZ", "x");
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\MixedCase"]),
        format!("\n{path}\n\n{path}\\SubKey\n")
    );
    let values = [("Other", "REG_SZ", "x"), ("ValueName", "REG_SZ", "second")];
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\MixedCase", "-s"]),
        format!(
            "\n{path}\n{}",
            key_block(&format!(r"{path}\SubKey"), &values)
        )
    );
    let software = store.json(&["query", r"hkey_local_machine\software", "--json"]);
    assert_eq!(software["keys"][0]["subkeys"], json!(["MixedCase"]));
    let document = store.json(&["query", r"HKLM\SOFTWARE\MIXEDCASE\SUBKEY", "--json"]);
    let names: Vec<&Json> = json_values(&document).iter().map(|v| &v["name"]).collect();
    assert_eq!(names, ["Other", "ValueName"]);
    let one = store.json(&[
        "query",
        r"HKLM\SOFTWARE\MIXEDCASE\SUBKEY",
        "-v",
        "valuename",
        "--json",
    ]);
    assert_eq!(json_values(&one)[0]["data"], "second");
    // Deleting with another spelling deletes the stored value, then the key.
    store.ok(&[
        "delete",
        r"HKLM\software\mixedcase\subkey",
        "-v",
        "VALUEname",
    ]);
    store.not_found(&[
        "query",
        r"HKLM\Software\MixedCase\SubKey",
        "-v",
        "ValueName",
    ]);
    store.ok(&["delete", r"hklm\SOFTWARE\MIXEDCASE"]);
    store.not_found(&["query", r"HKLM\Software\MixedCase"]);
}

#[test]
fn seq_prints_only_the_last_committed_sequence_number() {
    let store = Store::new();
    assert_eq!(store.ok(&["init"]), init_line(&store.dir, 1));
    assert_eq!(store.ok(&["seq"]), "1\n");
    store.ok(&["add", r"HKLM\Software\A"]);
    assert_eq!(store.ok(&["seq"]), "2\n");
    store.set(r"HKLM\Software\A", "x", "REG_SZ", "1");
    store.ok(&["delete", r"HKLM\Software\A", "-v", "x"]);
    assert_eq!(store.ok(&["seq"]), "4\n");
    // A failed write commits nothing.
    store.error(&["delete", r"HKLM\Software\A", "-v", "x"]);
    store.error(&[
        "add",
        r"HKLM\Software\A",
        "-v",
        "x",
        "-t",
        "REG_DWORD",
        "-d",
        "abc",
    ]);
    assert_eq!(store.ok(&["seq"]), "4\n");
    // init on an existing store keeps it.
    assert_eq!(store.ok(&["init"]), init_line(&store.dir, 4));
}

/// Four transactions after the hives: sets in both hives, a value delete, a tree delete.
fn store_with_history() -> Store {
    let store = Store::new();
    store.set(r"HKLM\Software\Contoso", "Name", "REG_SZ", "hi"); // 2
    store.set(r"HKU\S-1\Env", "", "REG_DWORD", "7"); // 3
    store.ok(&["delete", r"HKLM\Software\Contoso", "-v", "Name"]); // 4
    store.ok(&["delete", r"HKLM\Software\Contoso"]); // 5
    store
}

#[test]
fn log_replays_transactions_as_text() {
    let store = store_with_history();
    let principal = expected_principal(store.tmp.path());
    let out = store.ok(&["log"]);
    let (headers, ops): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.starts_with("seq "));
    assert_eq!(headers.len(), 5, "{out}");
    for (header, seq) in headers.iter().zip(1..) {
        let fields: Vec<&str> = header.split("  ").collect();
        assert_eq!(fields.len(), 3, "{header}");
        assert_eq!(fields[0], format!("seq {seq}"));
        // RFC 3339 in UTC with milliseconds: 2024-01-02T03:04:05.678Z
        let time = fields[1].as_bytes();
        assert!(
            time.len() == 24 && time[10] == b'T' && time[23] == b'Z',
            "{header}"
        );
        // The store creates its hives itself, as the system principal.
        let by = if seq == 1 { SYSTEM } else { principal };
        assert_eq!(fields[2], by);
    }
    assert_eq!(
        ops,
        [
            "  create key    Machine",
            &format!("  set security  Machine    {MACHINE_SDDL}"),
            "  create key    Users",
            &format!("  set security  Users    {USERS_SDDL}"),
            r"  create key    Machine\Software",
            r"  create key    Machine\Software\Contoso",
            r"  set value     Machine\Software\Contoso    Name    REG_SZ    hi",
            r"  create key    Users\S-1",
            r"  create key    Users\S-1\Env",
            r"  set value     Users\S-1\Env    (Default)    REG_DWORD    0x7",
            r"  delete value  Machine\Software\Contoso    Name",
            r"  delete tree   Machine\Software\Contoso",
        ]
    );
    let range = store.ok(&["log", "--from", "3", "--to", "4"]);
    let seqs: Vec<&str> = range.lines().filter(|l| l.starts_with("seq ")).collect();
    assert_eq!(seqs.len(), 2, "{range}");
    assert!(
        seqs[0].starts_with("seq 3  ") && seqs[1].starts_with("seq 4  "),
        "{range}"
    );
    assert_eq!(store.ok(&["log", "--from", "6"]), "");
}

#[test]
fn log_json_is_one_object_per_transaction() {
    let store = store_with_history();
    let principal = expected_principal(store.tmp.path());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let out = store.ok(&["log", "--json", "--from", "2", "--to", "5"]);
    let txns: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(txns.len(), 4, "{out}");
    for (txn, seq) in txns.iter().zip(2..) {
        assert_eq!(txn["seq"], seq);
        assert_eq!(txn["principal"], principal);
        let nanos = txn["time_unix_nanos"].as_u64().expect("time_unix_nanos");
        let age = now.as_secs().abs_diff(nanos / 1_000_000_000);
        assert!(age < 600, "commit time {nanos} is {age} s from now");
        assert!(
            txn["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{txn}"
        );
    }
    let contoso = r"Machine\Software\Contoso";
    let hi = value_json("Name", "REG_SZ", 1, json!("hi"), "680069000000");
    let seven = value_json("", "REG_DWORD", 4, json!(7), "07000000");
    let expected_ops = [
        json!([
            { "op": "create_key", "path": r"Machine\Software" },
            { "op": "create_key", "path": contoso },
            { "op": "set_value", "path": contoso, "layer": "base", "value": hi },
        ]),
        json!([
            { "op": "create_key", "path": r"Users\S-1" },
            { "op": "create_key", "path": r"Users\S-1\Env" },
            { "op": "set_value", "path": r"Users\S-1\Env", "layer": "base", "value": seven },
        ]),
        json!([{ "op": "delete_value", "path": contoso, "layer": "base", "name": "Name" }]),
        json!([{ "op": "delete_tree", "path": contoso }]),
    ];
    for (txn, ops) in txns.iter().zip(expected_ops) {
        assert_eq!(txn["ops"], ops, "{txn}");
    }
    let one = store.ok(&["log", "--json", "--from", "3", "--to", "3"]);
    assert_eq!(one.lines().count(), 1, "{one}");
    assert_eq!(serde_json::from_str::<Json>(&one).expect("json"), txns[1]);
}

#[test]
fn verify_accepts_a_sound_store() {
    let store = store_with_history();
    assert_eq!(
        store.ok(&["verify"]),
        "ok: 5 transactions, 12 records, 1 segments, last sequence number 5\n"
    );
}

/// Offsets and body lengths of the frames of a segment (FORMAT.md: a 64-byte header, then
/// `len u32 | crc32c u32 | body`, 8-byte aligned, until eight zero bytes).
fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = 64;
    while at + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().expect("4 bytes"));
        if len == 0 {
            break;
        }
        frames.push((at, len as usize));
        at += (8 + len as usize).next_multiple_of(8);
    }
    frames
}

/// XORs one byte of a file.
fn flip_byte(path: &Path, offset: u64) {
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(&[byte[0] ^ 0x5a]).expect("write");
    file.sync_all().expect("sync");
}

#[test]
fn verify_names_the_segment_offset_and_sequence_number_of_a_flipped_byte() {
    let store = store_with_history();
    for i in 0..5 {
        store.set(
            r"HKLM\Software\More",
            &format!("v{i}"),
            "REG_SZ",
            "some data",
        );
    }
    store.ok(&["verify"]);
    let segment = store.dir.join("journal").join(SEGMENT);
    let mut head = Vec::new();
    let file = File::open(&segment).expect("open segment");
    file.take(1 << 20)
        .read_to_end(&mut head)
        .expect("read segment");
    // The first record of transaction 2: early, with many synced commits after it.
    let (frame, len) = frames(&head)
        .into_iter()
        .find(|&(at, _)| head[at + 8..at + 16] == 2u64.to_le_bytes())
        .expect("a record of transaction 2");
    flip_byte(&segment, (frame + 8 + len / 2) as u64);

    let message = store.error(&["verify"]);
    let parts = [
        format!("corrupt journal: segment {SEGMENT}"),
        format!("offset {frame}"),
        "sequence number 2".to_string(),
    ];
    for part in parts {
        assert!(message.contains(&part), "{part:?} missing from {message:?}");
    }
    // Every other command refuses the store too, and a write does not cut the damage away.
    assert!(store.error(&["seq"]).contains("corrupt journal"));
    assert!(
        store
            .error(&["add", r"HKLM\Software\After"])
            .contains("corrupt journal")
    );
    assert_eq!(store.error(&["verify"]), message);
}

#[test]
fn stats_text_and_json() {
    let store = Store::new();
    store.set(r"HKLM\Software\A", "x", "REG_SZ", "1");
    store.set(r"HKLM\Software\A\B", "y", "REG_DWORD", "2");
    store.set(r"HKLM\Software\A\B", "y", "REG_DWORD", "3");
    let out = store.ok(&["stats"]);
    let fields: Vec<(&str, u64)> = out
        .lines()
        .map(|l| {
            let (label, number) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                label.trim_end(),
                number.parse().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect();
    let labels: Vec<&str> = fields.iter().map(|&(l, _)| l).collect();
    assert_eq!(
        labels,
        [
            "sequence number",
            "oldest readable",
            "keys",
            "values",
            "value versions",
            "segments",
            "journal bytes",
            "bytes on disk",
            "index memory bytes",
        ]
    );
    let get = |label: &str| fields.iter().find(|&&(l, _)| l == label).expect("label").1;
    assert_eq!(get("sequence number"), 4);
    assert_eq!(get("oldest readable"), 0, "nothing compacted");
    // Machine, Users, Software, A, B.
    assert_eq!(get("keys"), 5);
    assert_eq!(get("values"), 2);
    assert!(get("value versions") >= get("values"));
    assert_eq!(get("segments"), 1);
    assert!(get("journal bytes") > 64);
    assert!(get("bytes on disk") >= get("journal bytes"));
    assert!(get("index memory bytes") > 0);

    let document = store.json(&["stats", "--json"]);
    let pairs = [
        ("seq", "sequence number"),
        ("oldest_seq", "oldest readable"),
        ("keys", "keys"),
        ("values", "values"),
        ("versions", "value versions"),
        ("segments", "segments"),
        ("journal_bytes", "journal bytes"),
        ("disk_bytes", "bytes on disk"),
        ("index_memory_bytes", "index memory bytes"),
    ];
    for (key, label) in pairs {
        assert_eq!(
            document[key].as_u64(),
            Some(get(label)),
            "{key} in {document}"
        );
    }
}

#[test]
fn read_commands_on_a_missing_store_fail_and_create_nothing() {
    let store = Store::new();
    let dir = store.dir.display().to_string();
    let reads: [&[&str]; 9] = [
        &["seq"],
        &["query", "HKLM"],
        &["query", "HKLM", "--json"],
        &["log"],
        &["verify"],
        &["stats"],
        &["stats", "--json"],
        &["acl", "get", "HKLM"],
        &["layers"],
    ];
    for args in reads {
        let message = store.error(args);
        assert!(
            message.starts_with(&format!("no store at {dir} ")),
            "{args:?}: {message}"
        );
        assert!(!store.dir.exists(), "{args:?} created {dir}");
    }
    // The same through $HIVELOG_STORE.
    let mut seq = command();
    seq.env("HIVELOG_STORE", &store.dir).arg("seq");
    assert!(Run::of(seq).error().contains(&dir));
    assert!(!store.dir.exists());
    // Failed writes create nothing either: a bad path is refused before the store is opened,
    // and there is nothing to delete, secure or layer in a store that does not exist.
    for args in [
        &["add", r"HKXX\a"][..],
        &["add", r"HKLM\\a"],
        &["delete", r"HKLM\a"],
        &["delete", r"HKLM\a", "-v", "x"],
        &["acl", "set", "HKLM", "O:BA"],
        &["owner", "HKLM", "BA"],
        &["layers", "create", "corp", "--precedence", "5"],
        &["layers", "drop", "corp"],
    ] {
        store.error(args);
        assert!(!store.dir.exists(), "{args:?} created {dir}");
    }
    // A write command creates it.
    store.ok(&["add", r"HKLM\Software\First"]);
    assert!(store.dir.join("journal").is_dir());
    assert_eq!(store.seq(), 2);
}

#[test]
fn log_names_a_deleted_value_as_it_was_written() {
    let store = Store::new();
    store.set(r"HKLM\Software\Mixed", "ValueName", "REG_SZ", "x");
    store.ok(&["delete", r"hklm\software\mixed", "-v", "VALUENAME"]);
    let log = store.ok(&["log", "--from", "3"]);
    assert!(
        log.contains("  delete value  Machine\\Software\\Mixed    ValueName\n"),
        "{log}"
    );
}

#[test]
fn store_flag_wins_over_the_environment_variable() {
    let tmp = TempDir::new().expect("temp dir");
    let (env_dir, flag_dir) = (tmp.path().join("from-env"), tmp.path().join("from-flag"));
    let run = |flag: bool, args: &[&str]| {
        let mut command = command();
        command.env("HIVELOG_STORE", &env_dir);
        if flag {
            command.arg("--store").arg(&flag_dir);
        }
        command.args(args);
        Run::of(command)
    };
    assert_eq!(run(false, &["init"]).ok(), init_line(&env_dir, 1));
    run(false, &["add", r"HKLM\Software\ViaEnv"]).ok();
    run(true, &["add", r"HKLM\Software\ViaFlag"]).ok();
    assert!(flag_dir.join("journal").is_dir());
    run(false, &["query", r"HKLM\Software\ViaEnv"]).ok();
    run(true, &["query", r"HKLM\Software\ViaFlag"]).ok();
    let message = run(false, &["query", r"HKLM\Software\ViaFlag"])
        .error()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    let message = run(true, &["query", r"HKLM\Software\ViaEnv"])
        .error()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    // --store is global: it may follow the subcommand.
    let mut after = command();
    after.env("HIVELOG_STORE", &env_dir);
    after.args(["seq", "--store"]).arg(&flag_dir);
    assert_eq!(Run::of(after).ok(), "2\n");
}

#[test]
fn default_store_is_in_the_user_data_directory() {
    let tmp = TempDir::new().expect("temp dir");
    let home = tmp.path().join("home");
    let data = tmp.path().join("xdg-data");
    // `init` with no --store, $HIVELOG_STORE as given, and $XDG_DATA_HOME as given.
    let init = |hivelog_store: Option<&str>, xdg: Option<&Path>| {
        let mut init = Command::new(BIN);
        init.env("USER", TEST_USER).env("HOME", &home).arg("init");
        match hivelog_store {
            Some(value) => init.env("HIVELOG_STORE", value),
            None => init.env_remove("HIVELOG_STORE"),
        };
        match xdg {
            Some(dir) => init.env("XDG_DATA_HOME", dir),
            None => init.env_remove("XDG_DATA_HOME"),
        };
        Run::of(init).ok().to_string()
    };
    let under_data = data.join("hivelog");
    assert_eq!(init(None, Some(&data)), init_line(&under_data, 1));
    // An empty $HIVELOG_STORE counts as unset.
    assert_eq!(init(Some(""), Some(&data)), init_line(&under_data, 1));
    assert!(under_data.join("journal").is_dir());
    let under_home = home.join(".local").join("share").join("hivelog");
    assert_eq!(init(None, None), init_line(&under_home, 1));
    assert!(under_home.join("journal").is_dir());
}

#[test]
fn bad_data_and_types_are_errors_that_create_nothing() {
    let store = Store::new();
    let cases = [
        ("REG_FOO", "1", r#"unknown value type "REG_FOO""#),
        ("5x", "1", r#"unknown value type "5x""#),
        ("REG_DWORD", "abc", r#"invalid REG_DWORD data "abc""#),
        (
            "REG_DWORD",
            "4294967296",
            r#"invalid REG_DWORD data "4294967296""#,
        ),
        ("REG_DWORD", "-1", r#"invalid REG_DWORD data "-1""#),
        (
            "REG_DWORD_BIG_ENDIAN",
            "0x100000000",
            "invalid REG_DWORD_BIG_ENDIAN data",
        ),
        (
            "REG_QWORD",
            "18446744073709551616",
            "invalid REG_QWORD data",
        ),
        ("REG_BINARY", "abc", r#"invalid binary data "abc""#),
        ("REG_BINARY", "zz", r#"invalid binary data "zz""#),
    ];
    let key = r"HKLM\Software\Bad";
    for (ty, data, expected) in cases {
        let args = ["add", key, "-v", "x", "-t", ty, "-d", data];
        let message = store.error(&args);
        assert!(message.contains(expected), "{args:?}: {message}");
        // Data is checked before the store is opened: a bad add does not create it.
        assert!(!store.dir.exists(), "{args:?} created the store");
    }
    store.ok(&["init"]);
    let message = store.error(&["add", key, "-v", "x", "-t", "REG_DWORD", "-d", "4294967296"]);
    assert!(message.contains("from 0 to 4294967295"), "{message}");
    assert_eq!(store.seq(), 1);
    store.not_found(&["query", key]);
}

#[test]
fn missing_keys_and_values_are_errors() {
    let store = store_with_every_type();
    let seq = store.seq();
    let no_key = r"key Machine\Software\Nope does not exist";
    let no_value = r#"value "Absent" does not exist in key Machine\Software\Contoso\App"#;
    let nope = r"HKLM\Software\Nope";
    let cache = format!(r"{APP}\Cache");
    let cases: [(&[&str], &str); 9] = [
        (&["query", nope], no_key),
        (&["query", nope, "-s"], no_key),
        (&["query", nope, "--json"], no_key),
        (&["delete", nope], no_key),
        (&["delete", nope, "--va"], no_key),
        (&["query", APP, "-v", "Absent"], no_value),
        (&["query", APP, "-v", "Absent", "--json"], no_value),
        (&["delete", APP, "-v", "Absent"], no_value),
        (&["delete", &cache, "--ve"], "does not exist"),
    ];
    for (args, expected) in cases {
        let message = store.error(args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert_eq!(store.seq(), seq, "a failed command committed");
}

#[test]
fn bad_paths_are_errors() {
    let store = Store::new();
    store.ok(&["init"]);
    let long_key = format!(r"HKLM\Software\{}", "k".repeat(256));
    let cases: [(&[&str], &str); 8] = [
        (
            &["delete", "HKLM"],
            "Machine is a hive root and cannot be deleted",
        ),
        (
            &["delete", "HKEY_USERS"],
            "Users is a hive root and cannot be deleted",
        ),
        (&["add", r"HKXX\a"], r#"unknown root key "HKXX""#),
        (&["query", r"HKXX\a"], r#"unknown root key "HKXX""#),
        (&["delete", r"HKXX\a"], r#"unknown root key "HKXX""#),
        (
            &["add", &long_key],
            "is 256 characters long; KEY_NAME_MAX_CHARS is 255",
        ),
        (&["add", r"HKLM\a\\b"], "empty key name"),
        (&["add", ""], "empty key path"),
    ];
    for (args, expected) in cases {
        let message = store.error(args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert_eq!(store.seq(), 1);
    // 255 characters is the limit, not past it.
    let longest = format!(r"HKLM\Software\{}", "k".repeat(255));
    store.ok(&["add", &longest]);
    store.ok(&["query", &longest]);
    assert_eq!(store.seq(), 2);
    // The hives exist from the start.
    assert_eq!(store.ok(&["query", "HKU"]), "\nHKEY_USERS\n");
}

#[test]
fn usage_errors_exit_2_and_create_nothing() {
    let store = Store::new();
    let cases: [&[&str]; 15] = [
        &[],
        &["frobnicate"],
        &["query", "HKLM", "--bogus"],
        &["add", r"HKLM\a", "-v", "x", "--ve"],
        &["query", "HKLM", "-v", "x", "--ve"],
        &["delete", r"HKLM\a", "-v", "x", "--ve"],
        &["delete", r"HKLM\a", "-v", "x", "--va"],
        &["delete", r"HKLM\a", "--ve", "--va"],
        &["add"],
        &["query", "HKLM", "--at-seq", "abc"],
        &["log", "--from", "x"],
        &["stats", "--bogus"],
        &["bench", "--seconds", "soon"],
        &["add", r"HKLM\a", "--link", r"HKLM\b", "-v", "x"],
        &["query", "HKLM", "--layer", "base", "--stack"],
    ];
    for args in cases {
        store.run(args).usage_error();
        assert!(!store.dir.exists(), "{args:?} created the store");
    }
    assert!(
        store
            .run(&[])
            .usage_error()
            .contains("requires a subcommand")
    );
    let both = store.run(&["add", r"HKLM\a", "-v", "x", "--ve"]);
    assert!(both.usage_error().contains("cannot be used with"));
}

/// The default descriptors of the hives.
const MACHINE_SDDL: &str = "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;KA;;;CO)";
const USERS_SDDL: &str = "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;KR;;;BU)";

/// Where the store's configuration says who holds which privilege.
const PRIVILEGES_KEY: &str = r"HKLM\System\Registry\Privileges";
/// Where the store's configuration says who is in which group.
const GROUPS_KEY: &str = r"HKLM\System\Registry\Groups";

/// How SDDL names a principal: the system principal by its alias, a plain name as itself.
fn sddl_account(principal: &str) -> &str {
    if principal == SYSTEM { "SY" } else { principal }
}

/// The DACL of a key `creator` creates below `Machine`: `Machine`'s inheritable entries
/// marked inherited (ID), and the CREATOR OWNER entry made out to the creator.
fn machine_child_dacl(creator: &str) -> String {
    let creator = sddl_account(creator);
    format!(
        "D:(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;ID;KA;;;{creator})\
         (A;CIIOID;KA;;;CO)"
    )
}

/// The descriptor of a key `creator` creates below `Machine`: the creator owns it.
fn machine_child_sddl(creator: &str) -> String {
    format!("O:{}{}", sddl_account(creator), machine_child_dacl(creator))
}

/// What `hivelog layers` prints for `(precedence, name)` rows, highest first.
fn layers_listing(rows: &[(u16, &str)]) -> String {
    let rows: String = rows
        .iter()
        .map(|(precedence, name)| format!("{precedence:>10}  {name}\n"))
        .collect();
    format!("precedence  name\n{rows}")
}

/// One layer's version of a value under `query --stack`.
fn stack_line(layer: &str, ty: &str, data: &str, role: &str) -> String {
    format!("        {layer}    {ty}    {data}    ({role})\n")
}

#[test]
fn acl_get_prints_the_default_descriptors_of_the_hives() {
    let store = Store::new();
    store.ok(&["init"]);
    for hklm in ["HKLM", "HKEY_LOCAL_MACHINE", "Machine"] {
        assert_eq!(store.sddl(hklm), MACHINE_SDDL, "{hklm}");
    }
    for hku in ["HKU", "HKEY_USERS", "Users"] {
        assert_eq!(store.sddl(hku), USERS_SDDL, "{hku}");
    }
    // KR holds READ_CONTROL: an ordinary user may read the descriptors too.
    assert_eq!(
        store.ok_as("alice", &["acl", "get", "HKLM"]),
        format!("{MACHINE_SDDL}\n")
    );
    store.not_found(&["acl", "get", r"HKLM\Software\Nope"]);
}

#[test]
fn a_new_key_inherits_the_inheritable_entries_and_its_creator_owns_it() {
    let store = Store::new();
    let creator = expected_principal(store.tmp.path());
    store.ok(&["add", r"HKLM\Software\Inherit\Child"]);
    // Every level passes on the same entries: only CI ones are inherited, and the CREATOR
    // OWNER entry is inherited as itself besides the entry made out to the creator.
    for key in [
        r"HKLM\Software",
        r"HKLM\Software\Inherit",
        r"HKLM\Software\Inherit\Child",
    ] {
        assert_eq!(store.sddl(key), machine_child_sddl(creator), "{key}");
    }

    // Under a key where users may create subkeys, what alice creates is hers.
    let shared = r"HKLM\Software\Shared";
    store.ok(&["add", shared]);
    let dacl = "D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;KRLC;;;BU)(A;CIIO;KA;;;CO)";
    store.ok(&["acl", "set", shared, dacl]);
    let mine = r"HKLM\Software\Shared\Mine";
    store.ok_as("alice", &["add", mine, "-v", "x", "-d", "1"]);
    assert_eq!(
        store.sddl(mine),
        "O:aliceD:(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;ID;KA;;;alice)(A;CIIOID;KA;;;CO)"
    );
    // BU's entry is not CI, so it is not inherited: bob may not read alice's key.
    assert_eq!(
        store.error_as("bob", &["query", mine]),
        r"access denied: bob lacks KEY_READ on Machine\Software\Shared\Mine"
    );
    assert_eq!(
        store.ok_as("alice", &["query", mine]),
        key_block(
            r"HKEY_LOCAL_MACHINE\Software\Shared\Mine",
            &[("x", "REG_SZ", "1")]
        )
    );
}

#[test]
fn acl_set_changes_the_parts_the_sddl_names_and_acl_get_prints_them() {
    let store = Store::new();
    let key = r"HKLM\Software\Acl";
    store.ok(&["add", key]);
    let seq = store.seq();
    // Aliases and SIDs, rights as codes, whitespace between the parts and the entries.
    let given = " O:BA G:BU D:P (A;CI;KA;;;SY) (A;CI;KA;;;BA) (A;;KRLC;;;S-1-5-32-545) \
                 (D;;DC;;;alice) ";
    assert_eq!(store.ok(&["acl", "set", key, given]), "");
    assert_eq!(store.seq(), seq + 1);
    let canonical = "O:BAG:BUD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;CCLCSWRPRC;;;BU)(D;;DC;;;alice)";
    assert_eq!(store.sddl(key), canonical);
    // What get prints, set gives back unchanged.
    store.ok(&["acl", "set", key, canonical]);
    assert_eq!(store.sddl(key), canonical);
    // Only the owner: the group and the DACL stay.
    store.ok(&["acl", "set", key, "O:alice"]);
    assert_eq!(
        store.sddl(key),
        "O:aliceG:BUD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;CCLCSWRPRC;;;BU)(D;;DC;;;alice)"
    );
    // Only the DACL, unprotected, rights as a number: the owner and the group stay.
    store.ok(&[
        "acl",
        "set",
        key,
        "D:(A;;KA;;;SY)(A;;KA;;;BA)(A;;0x20019;;;WD)",
    ]);
    assert_eq!(
        store.sddl(key),
        "O:aliceG:BUD:(A;;KA;;;SY)(A;;KA;;;BA)(A;;KR;;;WD)"
    );
    assert_eq!(store.seq(), seq + 4);
}

#[test]
fn acl_set_and_owner_refuse_bad_sddl_before_the_store_is_opened() {
    let store = Store::new();
    let key = r"HKLM\Software\Acl";
    let cases = [
        (
            "D:(X;;KA;;;SY)",
            3,
            r#"unknown ACE type "X" (expected A or D)"#,
        ),
        ("D:(A;XX;KA;;;SY)", 5, r#"unknown ACE flag "XX""#),
        ("D:(A;;KZ;;;SY)", 6, r#"unknown rights code "KZ""#),
        ("D:(A;;;;;SY)", 6, "expected rights"),
        (
            "D:(A;;KA;;;S-1-x)",
            11,
            r#"bad account: invalid principal "S-1-x""#,
        ),
        (
            "D:(A;;KA;;;S-1-5-018)",
            11,
            "a SID's parts cannot have leading zeros",
        ),
        ("D:(A;;KA;;;SY", 2, "ACE is missing its closing parenthesis"),
        ("O:", 2, "expected an account after O:"),
        ("D:(A;;KA;;;SY)O:BA", 14, "part O: after D:"),
        ("O:BAO:SY", 4, "duplicate part O:"),
        ("S:(A;;KA;;;SY)", 0, "a SACL (S:) is not supported"),
    ];
    let check = |sddl: &str, at: usize, reason: &str| {
        let message = store.error(&["acl", "set", key, sddl]);
        let start = format!("invalid SDDL {sddl:?} at byte {at}: ");
        assert!(message.starts_with(&start), "{sddl}: {message}");
        assert!(message.contains(reason), "{sddl}: {message}");
    };
    for (sddl, at, reason) in cases {
        check(sddl, at, reason);
        assert!(!store.dir.exists(), "{sddl:?} created the store");
    }
    store.ok(&["add", key]);
    let (seq, before) = (store.seq(), store.sddl(key));
    for (sddl, at, reason) in cases {
        check(sddl, at, reason);
    }
    // `owner` checks its principal as a principal (never as SDDL).
    let message = store.error(&["owner", key, "S-1-0x"]);
    let expected = r#"invalid principal "S-1-0x""#;
    assert!(message.starts_with(expected), "{message}");
    assert_eq!(store.seq(), seq, "a refused SDDL committed");
    assert_eq!(store.sddl(key), before);
}

#[test]
fn owner_is_oneself_or_ones_group_unless_the_caller_may_restore() {
    let store = Store::new();
    let app = r"HKCU\Software\App";
    let alices = r"HKU\alice\Software\App";
    store.ok_as("alice", &["add", app]);
    let dacl = "D:(A;CIID;KA;;;alice)(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)";
    assert_eq!(store.sddl(alices), format!("O:alice{dacl}"));
    let seq = store.seq();
    // Alice may give her key to a group she is in (Users) and take it back...
    assert_eq!(store.ok_as("alice", &["owner", app, "BU"]), "");
    assert_eq!(store.sddl(alices), format!("O:BU{dacl}"));
    store.ok_as("alice", &["owner", app, "alice"]);
    assert_eq!(store.sddl(alices), format!("O:alice{dacl}"));
    // ...but making bob the owner takes SeRestorePrivilege, which she does not hold.
    assert_eq!(
        store.error_as("alice", &["owner", app, "bob"]),
        r"alice does not hold SeRestorePrivilege, which making bob the owner of Users\alice\Software\App requires"
    );
    // Bob lacks WRITE_OWNER even to make himself the owner.
    assert_eq!(
        store.error_as("bob", &["owner", alices, "bob"]),
        r"access denied: bob lacks WRITE_OWNER on Users\alice\Software\App"
    );
    assert_eq!(store.seq(), seq + 2);
    // The store's owner (an administrator, or the system) holds SeRestorePrivilege.
    store.ok(&["owner", alices, "bob"]);
    assert_eq!(store.sddl(alices), format!("O:bob{dacl}"));
    // Owning a key gives READ_CONTROL and WRITE_DAC, not WRITE_OWNER.
    let theirs = r"HKLM\Software\Theirs";
    store.ok(&["add", theirs]);
    store.ok(&["acl", "set", theirs, "O:alice"]);
    assert_eq!(
        store.error_as("alice", &["owner", theirs, "alice"]),
        r"access denied: alice lacks WRITE_OWNER on Machine\Software\Theirs"
    );
    let creator = expected_principal(store.tmp.path());
    let owned = format!("O:alice{}\n", machine_child_dacl(creator));
    assert_eq!(store.ok_as("alice", &["acl", "get", theirs]), owned);
}

#[test]
fn a_denied_change_commits_nothing_and_names_the_missing_rights() {
    let store = Store::new();
    store.set(APP, "Name", "REG_SZ", "hello");
    let seq = store.seq();
    let app = r"Machine\Software\Contoso\App";
    let cases: [(&[&str], String); 7] = [
        (
            &["add", APP, "-v", "Name", "-d", "changed"],
            format!("KEY_SET_VALUE on {app}"),
        ),
        (
            &["delete", APP, "-v", "Name"],
            format!("KEY_SET_VALUE on {app}"),
        ),
        (&["delete", APP, "--va"], format!("KEY_SET_VALUE on {app}")),
        (&["delete", APP], format!("DELETE on {app}")),
        (
            &["add", &format!(r"{APP}\Sub")],
            format!("KEY_CREATE_SUB_KEY on {app}"),
        ),
        (
            &["acl", "set", APP, "D:(A;;KA;;;WD)"],
            format!("WRITE_DAC on {app}"),
        ),
        (
            &["add", r"HKLM\Software\Link", "--link", APP],
            r"KEY_CREATE_SUB_KEY | KEY_CREATE_LINK on Machine\Software".to_string(),
        ),
    ];
    for (args, missing) in cases {
        let message = store.error_as("alice", args);
        assert_eq!(
            message,
            format!("access denied: alice lacks {missing}"),
            "{args:?}"
        );
    }
    assert_eq!(store.seq(), seq, "a denied change committed");
    // Alice may still read it, and it is as it was.
    let name = key_block(APP_PATH, &[("Name", "REG_SZ", "hello")]) + "\n";
    assert_eq!(store.ok_as("alice", &["query", APP, "-v", "Name"]), name);
    assert_eq!(
        store.sddl(APP),
        machine_child_sddl(expected_principal(store.tmp.path()))
    );
}

#[test]
fn a_user_writes_under_her_own_hkcu_and_others_may_not_read_it() {
    let store = Store::new();
    store.ok(&["init"]);
    store.ok_as(
        "alice",
        &["add", r"HKCU\Software\App", "-v", "Theme", "-d", "dark"],
    );
    let path = r"HKEY_USERS\alice\Software\App";
    let theme = key_block(path, &[("Theme", "REG_SZ", "dark")]);
    assert_eq!(
        store.ok_as("alice", &["query", r"HKCU\Software\App"]),
        theme
    );
    // Her key was made for her on her first write: hers, protected from what Users allows.
    assert_eq!(
        store.sddl(r"HKU\alice"),
        "O:aliceD:P(A;CI;KA;;;alice)(A;CI;KA;;;SY)(A;CI;KA;;;BA)"
    );
    let log = store.ok(&["log", "--from", "2"]);
    let mut lines = log.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("seq 2  ") && header.ends_with("  alice"),
        "{log}"
    );
    let ops: Vec<&str> = lines.collect();
    assert_eq!(
        ops,
        [
            r"  create key    Users\alice",
            r"  set security  Users\alice    O:aliceD:P(A;CI;KA;;;alice)(A;CI;KA;;;SY)(A;CI;KA;;;BA)",
            r"  create key    Users\alice\Software",
            r"  create key    Users\alice\Software\App",
            r"  set value     Users\alice\Software\App    Theme    REG_SZ    dark",
        ]
    );
    // Bob may neither read nor write it; his own HKCU is another key.
    let app = r"HKU\alice\Software\App";
    assert_eq!(
        store.error_as("bob", &["query", app]),
        r"access denied: bob lacks KEY_READ on Users\alice\Software\App"
    );
    assert_eq!(
        store.error_as("bob", &["query", r"HKU\alice"]),
        r"access denied: bob lacks KEY_READ on Users\alice"
    );
    assert_eq!(
        store.error_as("bob", &["add", app, "-v", "Theme", "-d", "light"]),
        r"access denied: bob lacks KEY_SET_VALUE on Users\alice\Software\App"
    );
    store.not_found(&["--as", "bob", "query", r"HKCU\Software\App"]);
    assert_eq!(store.seq(), 2);
    // The administrators and the system may.
    assert_eq!(store.ok(&["query", app]), theme);
}

#[test]
fn as_needs_the_real_callers_impersonate_privilege() {
    let store = Store::new();
    store.ok(&["init"]);
    let real = expected_principal(store.tmp.path());
    // Administrators hold it by default, and whoever owns the store's files is one.
    assert_eq!(store.ok_as("alice", &["query", "HKU"]), "\nHKEY_USERS\n");
    let message = store.error_as("S-1-x", &["query", "HKU"]);
    assert!(
        message.starts_with(r#"invalid principal "S-1-x""#),
        "{message}"
    );
    // Now only a principal nobody acts as holds it.
    store.set(
        PRIVILEGES_KEY,
        "SeImpersonatePrivilege",
        "REG_MULTI_SZ",
        "nobody",
    );
    let seq = store.seq();
    if real == SYSTEM {
        // The system holds every privilege whatever the configuration says.
        assert_eq!(store.ok_as("alice", &["query", "HKU"]), "\nHKEY_USERS\n");
    } else {
        let message = store.error_as("alice", &["add", r"HKLM\Software\Impersonated"]);
        assert_eq!(
            message,
            format!("--as alice needs SeImpersonatePrivilege, which {real} does not hold")
        );
        assert_eq!(store.seq(), seq);
    }
}

#[test]
fn log_needs_the_security_privilege() {
    let store = Store::new();
    store.ok(&["init"]);
    let refused = "alice does not hold SeSecurityPrivilege, which reading the history requires";
    assert_eq!(store.error_as("alice", &["log"]), refused);
    assert_eq!(store.error_as("alice", &["log", "--json"]), refused);
    // Granted by name (and kept for the administrators, the store's owner among them).
    store.set(
        PRIVILEGES_KEY,
        "SeSecurityPrivilege",
        "REG_MULTI_SZ",
        r"bob\0BA",
    );
    let log = store.ok_as("bob", &["log", "--from", "2"]);
    assert!(log.starts_with("seq 2  "), "{log}");
    assert_eq!(store.error_as("alice", &["log"]), refused);
    store.ok(&["log", "--from", "2"]);
}

#[test]
fn a_group_in_the_configuration_gives_its_members_its_rights() {
    let store = Store::new();
    store.ok(&["init"]);
    let create = ["layers", "create", "corp", "--precedence", "10"];
    let message = store.error_as("alice", &create);
    assert!(
        message.starts_with("access denied: alice lacks ")
            && message.ends_with(" on Machine (needed to create or drop a layer)"),
        "{message}"
    );
    // Alice, an administrator, has full control of Machine and holds SeSecurityPrivilege.
    store.set(GROUPS_KEY, "BA", "REG_MULTI_SZ", "alice");
    assert_eq!(store.ok_as("alice", &create), "");
    let log = store.ok_as("alice", &["log", "--from", "3"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("seq 3  ") && lines[0].ends_with("  alice"),
        "{log}"
    );
    assert_eq!(lines[1], "  create layer  corp    precedence 10");
}

#[test]
fn layers_are_listed_created_and_refused_when_they_would_collide() {
    let store = Store::new();
    store.ok(&["init"]);
    assert_eq!(
        store.ok(&["layers"]),
        layers_listing(&[(65535, "policy"), (0, "base")])
    );
    for (name, precedence) in [("corp", "100"), ("low", "1"), ("high", "65534")] {
        let args = ["layers", "create", name, "--precedence", precedence];
        assert_eq!(store.ok(&args), "");
    }
    let seq = store.seq();
    let cases = [
        (
            "team",
            "100",
            r#"precedence 100 belongs to layer "corp"; precedences are unique"#,
        ),
        ("corp", "7", r#"layer "corp" exists already"#),
        (
            "top",
            "65535",
            r#"precedence 65535 belongs to layer "policy""#,
        ),
        ("bottom", "0", r#"precedence 0 belongs to layer "base""#),
        ("bad name", "5", r#"invalid layer name "bad name""#),
    ];
    for (name, precedence, expected) in cases {
        let message = store.error(&["layers", "create", name, "--precedence", precedence]);
        assert!(message.starts_with(expected), "{name}: {message}");
    }
    store
        .run(&["layers", "create", "huge", "--precedence", "65536"])
        .usage_error();
    let message = store.error_as("alice", &["layers", "create", "mine", "--precedence", "5"]);
    assert!(
        message.starts_with("access denied: alice lacks "),
        "{message}"
    );
    assert_eq!(store.seq(), seq, "a refused layer committed");
    // Anyone may list them.
    let all = [
        (65535, "policy"),
        (65534, "high"),
        (100, "corp"),
        (1, "low"),
        (0, "base"),
    ];
    assert_eq!(store.ok_as("alice", &["layers"]), layers_listing(&all));
}

/// `LAYERED` with `Color` in base, corp (precedence 100) and policy, `Only` in base, `Size`
/// in corp.
fn store_with_layers() -> Store {
    let store = Store::new();
    store.ok(&["init"]);
    store.ok(&["layers", "create", "corp", "--precedence", "100"]);
    store.set(LAYERED, "Color", "REG_SZ", "blue");
    store.ok(&[
        "add", LAYERED, "-v", "Color", "-d", "red", "--layer", "corp",
    ]);
    store.ok(&[
        "add", LAYERED, "-v", "Color", "-d", "green", "--layer", "policy",
    ]);
    store.ok(&[
        "add",
        LAYERED,
        "-v",
        "Size",
        "-t",
        "REG_DWORD",
        "-d",
        "3",
        "--layer",
        "corp",
    ]);
    store.set(LAYERED, "Only", "REG_SZ", "base");
    store
}

/// The key `store_with_layers` fills, and the path `query` prints for it.
const LAYERED: &str = r"HKLM\Software\Layered";
const LAYERED_PATH: &str = r"HKEY_LOCAL_MACHINE\Software\Layered";

#[test]
fn query_shows_the_highest_layers_values_or_one_layers_or_every_layers() {
    let store = store_with_layers();
    let effective = [
        ("Color", "REG_SZ", "green"),
        ("Only", "REG_SZ", "base"),
        ("Size", "REG_DWORD", "0x3"),
    ];
    assert_eq!(
        store.ok(&["query", LAYERED]),
        key_block(LAYERED_PATH, &effective)
    );
    assert_eq!(
        store.ok(&["query", LAYERED, "--layer", "corp"]),
        key_block(
            LAYERED_PATH,
            &[("Color", "REG_SZ", "red"), ("Size", "REG_DWORD", "0x3")]
        )
    );
    assert_eq!(
        store.ok(&["query", LAYERED, "--layer", "base", "-v", "Color"]),
        key_block(LAYERED_PATH, &[("Color", "REG_SZ", "blue")]) + "\n"
    );
    let color = [
        "    Color\n".to_string(),
        stack_line("policy", "REG_SZ", "green", "effective"),
        stack_line("corp", "REG_SZ", "red", "shadowed"),
        stack_line("base", "REG_SZ", "blue", "shadowed"),
    ]
    .concat();
    let stack = [
        format!("\n{LAYERED_PATH}\n"),
        color.clone(),
        "    Only\n".to_string(),
        stack_line("base", "REG_SZ", "base", "effective"),
        "    Size\n".to_string(),
        stack_line("corp", "REG_DWORD", "0x3", "effective"),
    ]
    .concat();
    assert_eq!(store.ok(&["query", LAYERED, "--stack"]), stack);
    assert_eq!(
        store.ok(&["query", LAYERED, "--stack", "-v", "Color"]),
        format!("\n{LAYERED_PATH}\n{color}")
    );
    let json = store.json(&["query", LAYERED, "--layer", "corp", "--json"]);
    let names: Vec<&Json> = json_values(&json).iter().map(|v| &v["name"]).collect();
    assert_eq!(names, ["Color", "Size"]);
}

#[test]
fn delete_in_a_layer_lets_the_lower_layers_show_through() {
    let store = store_with_layers();
    let seq = store.seq();
    let color = |data: &str| key_block(LAYERED_PATH, &[("Color", "REG_SZ", data)]) + "\n";
    store.ok(&["delete", LAYERED, "-v", "Color", "--layer", "policy"]);
    assert_eq!(store.ok(&["query", LAYERED, "-v", "Color"]), color("red"));
    store.ok(&["delete", LAYERED, "-v", "Color", "--layer", "corp"]);
    assert_eq!(store.ok(&["query", LAYERED, "-v", "Color"]), color("blue"));
    assert_eq!(store.seq(), seq + 2);
    // A layer without the value has nothing to delete, whatever the others hold.
    let message = store.error(&["delete", LAYERED, "-v", "Only", "--layer", "corp"]);
    assert!(
        message.contains(r#"value "Only" does not exist"#),
        "{message}"
    );
    // --va in a layer empties that layer only.
    store.ok(&["delete", LAYERED, "--va", "--layer", "corp"]);
    assert_eq!(
        store.ok(&["query", LAYERED]),
        key_block(
            LAYERED_PATH,
            &[("Color", "REG_SZ", "blue"), ("Only", "REG_SZ", "base")]
        )
    );
    assert_eq!(
        store.ok(&["query", LAYERED, "--layer", "corp"]),
        format!("\n{LAYERED_PATH}\n")
    );
}

#[test]
fn an_unknown_layer_is_an_error_naming_the_layers_there_are() {
    let store = store_with_layers();
    let seq = store.seq();
    let expected = r#"layer "nope" does not exist (layers: policy, corp, base)"#;
    let cases: [&[&str]; 3] = [
        &["add", LAYERED, "-v", "Color", "-d", "x", "--layer", "nope"],
        &["delete", LAYERED, "-v", "Color", "--layer", "nope"],
        &["query", LAYERED, "-v", "Color", "--layer", "nope"],
    ];
    for args in cases {
        assert_eq!(store.error(args), expected, "{args:?}");
    }
    assert_eq!(store.seq(), seq);
}

#[test]
fn dropping_a_layer_drops_its_values_in_one_transaction() {
    let store = store_with_layers();
    let seq = store.seq();
    assert_eq!(store.ok(&["layers", "drop", "corp"]), "");
    assert_eq!(store.seq(), seq + 1);
    assert_eq!(
        store.ok(&["layers"]),
        layers_listing(&[(65535, "policy"), (0, "base")])
    );
    assert_eq!(
        store.ok(&["query", LAYERED]),
        key_block(
            LAYERED_PATH,
            &[("Color", "REG_SZ", "green"), ("Only", "REG_SZ", "base")]
        )
    );
    // The past still holds them.
    let before = seq.to_string();
    assert_eq!(
        store.ok(&["query", LAYERED, "-v", "Size", "--at-seq", &before]),
        key_block(LAYERED_PATH, &[("Size", "REG_DWORD", "0x3")]) + "\n"
    );
    // A new layer of the same name starts empty.
    store.ok(&["layers", "create", "corp", "--precedence", "5"]);
    assert_eq!(
        store.ok(&["query", LAYERED, "--layer", "corp"]),
        format!("\n{LAYERED_PATH}\n")
    );
    let seq = store.seq();
    for builtin in ["base", "policy"] {
        let message = store.error(&["layers", "drop", builtin]);
        let expected = format!("layer {builtin:?} is built in and cannot be dropped");
        assert_eq!(message, expected);
    }
    let message = store.error(&["layers", "drop", "nope"]);
    assert_eq!(
        message,
        r#"layer "nope" does not exist (layers: policy, corp, base)"#
    );
    let message = store.error_as("alice", &["layers", "drop", "corp"]);
    assert!(
        message.starts_with("access denied: alice lacks "),
        "{message}"
    );
    assert_eq!(store.seq(), seq, "a refused drop committed");
}

#[test]
fn a_volatile_key_is_gone_by_the_next_command() {
    let store = Store::new();
    store.ok(&["init"]);
    let key = r"HKLM\Software\Volatile\Deep";
    assert_eq!(
        store.ok(&["add", key, "--volatile", "-v", "x", "-d", "1"]),
        ""
    );
    // The transaction took a sequence number, but nothing of the key reached the journal.
    assert_eq!(store.seq(), 2);
    store.not_found(&["query", key]);
    // The parents it created were volatile too.
    store.not_found(&["query", r"HKLM\Software\Volatile"]);
    store.not_found(&["query", r"HKLM\Software"]);
    let verified = store.ok(&["verify"]);
    assert!(verified.starts_with("ok: 2 transactions, "), "{verified}");
    let empty = store.json(&["log", "--json", "--from", "2"]);
    assert_eq!(empty["seq"], 2);
    assert_eq!(empty["ops"], json!([]));
}

/// The target of the link `LINK`, with a value, and `LINK`.
fn store_with_link() -> Store {
    let store = Store::new();
    store.set(TARGET, "T", "REG_SZ", "real");
    assert_eq!(store.ok(&["add", LINK, "--link", TARGET]), "");
    store
}

const TARGET: &str = r"HKLM\Software\Target";
const TARGET_PATH: &str = r"HKEY_LOCAL_MACHINE\Software\Target";
const LINK: &str = r"HKLM\Software\Link";

#[test]
fn a_link_redirects_opens_to_its_target() {
    let store = store_with_link();
    let link_path = r"HKEY_LOCAL_MACHINE\Software\Link";
    assert_eq!(
        store.ok(&["query", LINK]),
        key_block(link_path, &[("T", "REG_SZ", "real")])
    );
    // A key created through the link is created under the target.
    store.set(&format!(r"{LINK}\Sub"), "s", "REG_DWORD", "1");
    assert_eq!(
        store.ok(&["query", TARGET, "-s"]),
        [
            key_block(TARGET_PATH, &[("T", "REG_SZ", "real")]),
            key_block(&format!(r"{TARGET_PATH}\Sub"), &[("s", "REG_DWORD", "0x1")]),
        ]
        .concat()
    );
    // Deleting the link deletes the link, not its target.
    assert_eq!(store.ok(&["delete", LINK]), "");
    store.not_found(&["query", LINK]);
    assert_eq!(
        store.ok(&["query", TARGET]),
        key_block(TARGET_PATH, &[("T", "REG_SZ", "real")]) + &format!("\n{TARGET_PATH}\\Sub\n")
    );
    store.ok(&["verify"]);
}

#[test]
fn link_loops_existing_keys_and_bad_targets_are_errors() {
    let store = store_with_link();
    let (a, b) = (r"HKLM\Software\A", r"HKLM\Software\B");
    store.ok(&["add", a, "--link", b]);
    // A dangling link: the target does not exist (yet).
    store.not_found(&["query", a]);
    store.ok(&["add", b, "--link", a]);
    let seq = store.seq();
    let loops: [(&[&str], &str); 3] = [
        (&["query", a], r"Machine\Software\A"),
        (&["query", b], r"Machine\Software\B"),
        (&["add", r"HKLM\Software\A\x"], r"Machine\Software\A\x"),
    ];
    for (args, opened) in loops {
        let expected = format!(
            "opening {opened} follows more than 32 links (LINK_HOPS_MAX); is there a loop?"
        );
        assert_eq!(store.error(args), expected, "{args:?}");
    }
    assert_eq!(
        store.error(&["add", TARGET, "--link", a]),
        r"key Machine\Software\Target exists already"
    );
    let bad = r"HKLM\Software\Bad";
    let cases = [
        (r"Nowhere\x", r#"unknown root key "Nowhere""#),
        ("", "empty key path"),
        (r"HKLM\\x", "empty key name"),
    ];
    for (target, reason) in cases {
        let message = store.error(&["add", bad, "--link", target]);
        assert!(
            message.contains("has an invalid target: "),
            "{target:?}: {message}"
        );
        assert!(message.contains(reason), "{target:?}: {message}");
    }
    assert_eq!(store.seq(), seq, "a refused link committed");
    store.not_found(&["query", bad]);
    // A loop of links can still be deleted, link by link.
    store.ok(&["delete", a]);
    store.not_found(&["query", b]);
    store.ok(&["delete", b]);
}

#[test]
fn log_prints_layers_security_and_links_as_text_and_json() {
    let store = Store::new();
    let creator = expected_principal(store.tmp.path());
    let (key, link) = (r"HKLM\Software\T", r"HKLM\Software\L");
    store.ok(&["init"]);
    store.ok(&["layers", "create", "corp", "--precedence", "100"]); // 2
    store.set(key, "V", "REG_SZ", "base"); // 3
    store.ok(&["add", key, "-v", "V", "-d", "corp", "--layer", "corp"]); // 4
    store.ok(&["delete", key, "-v", "V", "--layer", "corp"]); // 5
    store.ok(&["acl", "set", key, "D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)"]); // 6
    store.ok(&["add", link, "--link", key]); // 7
    store.ok(&["layers", "drop", "corp"]); // 8
    let owner = sddl_account(creator);
    let sddl = format!("O:{owner}D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)");
    // A link names its target in the value Windows uses, as UTF-16 without a terminator.
    let target = r"Machine\Software\T";
    let target_hex = utf16_hex(&[target]);
    let target_hex = target_hex.strip_suffix("0000").expect("NUL-terminated");
    let out = store.ok(&["log", "--from", "2"]);
    let ops: Vec<&str> = out.lines().filter(|l| !l.starts_with("seq ")).collect();
    let set_security = format!(r"  set security  Machine\Software\T    {sddl}");
    let link_value = format!(
        r"  set value     Machine\Software\L    SymbolicLinkValue    REG_LINK    {target_hex}"
    );
    assert_eq!(
        ops,
        [
            "  create layer  corp    precedence 100",
            r"  create key    Machine\Software",
            r"  create key    Machine\Software\T",
            r"  set value     Machine\Software\T    V    REG_SZ    base",
            r"  set value     Machine\Software\T    V    REG_SZ    corp    (layer corp)",
            r"  delete value  Machine\Software\T    V    (layer corp)",
            &set_security,
            r"  create key    Machine\Software\L",
            r"  mark link     Machine\Software\L",
            &link_value,
            "  drop layer    corp",
        ]
    );
    let out = store.ok(&["log", "--json", "--from", "2"]);
    let txns: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let path = r"Machine\Software\T";
    let corp = value_json("V", "REG_SZ", 1, json!("corp"), &utf16_hex(&["corp"]));
    let link_json = value_json(
        "SymbolicLinkValue",
        "REG_LINK",
        6,
        json!(target_hex),
        target_hex,
    );
    let expected = [
        json!([{ "op": "create_layer", "name": "corp", "precedence": 100 }]),
        json!([
            { "op": "create_key", "path": r"Machine\Software" },
            { "op": "create_key", "path": path },
            {
                "op": "set_value", "path": path, "layer": "base",
                "value": value_json("V", "REG_SZ", 1, json!("base"), &utf16_hex(&["base"])),
            },
        ]),
        json!([{ "op": "set_value", "path": path, "layer": "corp", "value": corp }]),
        json!([{ "op": "delete_value", "path": path, "layer": "corp", "name": "V" }]),
        json!([{ "op": "set_security", "path": path, "sddl": sddl }]),
        json!([
            { "op": "create_key", "path": r"Machine\Software\L" },
            { "op": "mark_link", "path": r"Machine\Software\L" },
            { "op": "set_value", "path": r"Machine\Software\L", "layer": "base", "value": link_json },
        ]),
        json!([{ "op": "drop_layer", "name": "corp" }]),
    ];
    assert_eq!(txns.len(), expected.len(), "{out}");
    for ((txn, ops), seq) in txns.iter().zip(expected).zip(2..) {
        assert_eq!(txn["seq"], seq);
        assert_eq!(txn["principal"], creator);
        assert_eq!(txn["ops"], ops, "{txn}");
    }
}

#[test]
fn bench_short_run_reports_every_workload() {
    let store = Store::new();
    let scratch = store.tmp.path().join("scratch");
    std::fs::create_dir(&scratch).expect("scratch dir");
    let figures_path = store.tmp.path().join("figures.json");
    let mut bench = command();
    bench
        .arg("--store")
        .arg(&store.dir)
        .args(["bench", "--keys", "2000", "--seconds", "1", "--scratch"])
        .arg(&scratch)
        .arg("--json")
        .arg(&figures_path);
    let run = Run::of(bench);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("hivelog bench "), "{}", run.stdout);
    let starts = [
        "data set: 2000 keys x 10 = 20000 values",
        "W1 bulk load",
        "W3 point reads, 1 thr",
        "W3 point reads, 2 thr",
        "W4 subtree scan",
        "W5 reopen",
        "W6 disk",
        "fdatasync ceiling",
        "W2 durable, 1 thread",
        "W2 durable, 4 threads",
        "journal copy",
        "backup ",
        "restore ",
    ];
    for start in starts {
        let found = lines.iter().any(|l| l.starts_with(start));
        assert!(found, "no {start:?} line: {}", run.stdout);
    }
    let text = std::fs::read_to_string(&figures_path).expect("figures file");
    let figures: Json = serde_json::from_str(&text).expect("figures are JSON");
    let figures = figures.as_array().expect("an array of figures");
    for figure in figures {
        assert_eq!(figure["engine"], "hivelog", "{figure}");
        for field in ["workload", "metric", "unit"] {
            let named = figure[field].as_str().is_some_and(|s| !s.is_empty());
            assert!(named, "{field} in {figure}");
        }
        let value = figure["value"].as_f64().expect("value");
        // A difference ("% slower than plain W3") may come out below zero in a short run.
        let signed = figure["metric"]
            .as_str()
            .is_some_and(|metric| metric.starts_with('%'));
        assert!(value.is_finite() && (signed || value >= 0.0), "{figure}");
    }
    for workload in [
        "W1", "W2", "W3", "W4", "W5", "W6", "ceiling", "backup", "restore",
    ] {
        let found = figures.iter().any(|f| f["workload"] == workload);
        assert!(found, "no {workload} figure");
    }
    // Without --keep the scratch store is removed; the --store directory is never touched.
    assert_eq!(std::fs::read_dir(&scratch).expect("scratch").count(), 0);
    assert!(!store.dir.exists());
}

#[test]
fn bench_backup_reports_copy_backup_and_restore() {
    let store = Store::new();
    let scratch = store.tmp.path().join("scratch");
    std::fs::create_dir(&scratch).expect("scratch dir");
    let figures_path = store.tmp.path().join("figures.json");
    let mut bench = command();
    bench
        .arg("--store")
        .arg(&store.dir)
        .args([
            "bench",
            "--workload",
            "backup",
            "--keys",
            "500",
            "--scratch",
        ])
        .arg(&scratch)
        .arg("--json")
        .arg(&figures_path);
    let run = Run::of(bench);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    let starts = [
        "backup store            5,000 values under Machine\\Bench",
        "journal copy ",
        "backup ",
        "  backup is ",
        "backup memory ",
        "restore ",
        "restore readers ",
        "  readers' worst wait against each restore: ",
    ];
    for start in starts {
        let found = lines.iter().any(|l| l.starts_with(start));
        assert!(found, "no {start:?} line: {}", run.stdout);
    }
    // The backup workload loads its own store; W1's is not loaded for it.
    assert!(!run.stdout.contains("W1 bulk load"), "{}", run.stdout);
    let text = std::fs::read_to_string(&figures_path).expect("figures file");
    let figures: Json = serde_json::from_str(&text).expect("figures are JSON");
    let figure = |workload: &str, metric: &str| {
        figures
            .as_array()
            .expect("an array of figures")
            .iter()
            .find(|f| f["workload"] == workload && f["metric"] == metric)
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("no {workload} {metric:?} figure: {text}"))
    };
    for (workload, metric) in [
        ("backup", "journal copy MB/s"),
        ("backup", "backup MB/s"),
        ("backup", "backup/copy ratio"),
        ("restore", "seconds, median"),
        ("restore", "worst read latency ms"),
    ] {
        let value = figure(workload, metric);
        assert!(
            value.is_finite() && value > 0.0,
            "{workload} {metric}: {value}"
        );
    }
    assert_eq!(figure("backup", "values"), 5000.0);
    assert!(figure("restore", "reads during restores") >= 1.0);
    assert_eq!(std::fs::read_dir(&scratch).expect("scratch").count(), 0);
}

#[test]
fn bench_rejects_bad_arguments() {
    let store = Store::new();
    let scratch = store.tmp.path().join("scratch");
    std::fs::create_dir(&scratch).expect("scratch dir");
    let scratch_arg = scratch.to_str().expect("UTF-8 path");
    let cases = [
        ("--workload", "bogus", r#"unknown workload "bogus""#),
        ("--sync", "sometimes", r#"unknown sync policy "sometimes""#),
        ("--keys", "0", "must be at least 1"),
        ("--threads", "0", "must be at least 1"),
    ];
    for (flag, value, expected) in cases {
        let args = ["bench", "--scratch", scratch_arg, flag, value];
        let message = store.error(&args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    assert_eq!(std::fs::read_dir(&scratch).expect("scratch").count(), 0);
}

/// Lines of a child's stdout as they come, on a channel.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Reads `child`'s stdout until a line starts with `start`; returns the lines read.
fn wait_for_line(child: &mut Child, lines: &mpsc::Receiver<String>, start: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with(start)) {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no {start:?} line ({error}); stdout so far: {seen:#?}");
            }
        }
    }
    seen
}

/// Starts `bench --workload w2 --keep` on a scratch directory in `tmp` and returns once W1
/// and W5 are done and W2's durable commits are under way.
fn bench_in_w2(tmp: &Path, keys: u64) -> (Child, PathBuf) {
    let scratch = tmp.join("scratch");
    std::fs::create_dir(&scratch).expect("scratch dir");
    let mut bench = command();
    bench
        .arg("--store")
        .arg(tmp.join("unused"))
        .args(["bench", "--keys", &keys.to_string(), "--seconds", "5"])
        .args(["--keep", "--workload", "w2", "--scratch"])
        .arg(&scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = bench.spawn().expect("spawn bench");
    let lines = stdout_lines(&mut child);
    // W1 and W5 come first; W2 opens the store right after the ceiling line.
    let seen = wait_for_line(&mut child, &lines, "fdatasync ceiling");
    assert!(seen.iter().any(|l| l.starts_with("W5 reopen")), "{seen:#?}");
    std::thread::sleep(Duration::from_millis(1500));
    let running = child.try_wait().expect("try_wait").is_none();
    assert!(running, "bench ended before W2 was over: {seen:#?}");
    let store = format!("hivelog-bench-{}", child.id());
    (child, scratch.join(store).join("store"))
}

/// The first value W1 wrote reads back as written (or as W2 rewrites it: first byte flipped).
fn assert_first_w1_value_reads_back(store: &Store) {
    let first = store.json(&["log", "--json", "--from", "2", "--to", "2"]);
    let ops = first["ops"].as_array().expect("ops");
    let set = ops.iter().find(|op| op["op"] == "set_value");
    let set = set.expect("W1 sets values");
    let path = set["path"].as_str().expect("path");
    let name = set["value"]["name"].as_str().expect("name");
    let written = set["value"]["hex"].as_str().expect("hex");
    let mut args = vec!["query", path, "--json"];
    if name.is_empty() {
        args.push("--ve");
    } else {
        args.extend(["-v", name]);
    }
    let now = store.json(&args);
    let hex = json_values(&now)[0]["hex"].as_str().expect("hex");
    let first_byte = u8::from_str_radix(&written[..2], 16).expect("hex byte");
    let rewritten = format!("{:02X}{}", first_byte ^ 0xff, &written[2..]);
    assert!(hex == written || hex == rewritten, "{hex} vs {written}");
}

#[test]
fn writer_killed_during_bench_leaves_a_store_that_reopens_and_verifies() {
    const KEYS: u64 = 20_000;
    let tmp = TempDir::new().expect("temp dir");
    let (mut child, kept) = bench_in_w2(tmp.path(), KEYS);

    // W2 holds the store: a second writer is refused.
    let mut second = command();
    second.arg("--store").arg(&kept);
    second.args(["add", r"HKLM\Software\Intruder"]);
    let message = Run::of(second).error().to_string();
    assert!(message.contains("in use by another process"), "{message}");

    child.kill().expect("SIGKILL the bench");
    let status = child.wait().expect("wait for bench");
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");
    assert!(
        kept.join("journal").is_dir(),
        "no store at {}",
        kept.display()
    );
    let store = Store { tmp, dir: kept };

    // Reopened read-only, every record is sound, and everything W1 committed is there:
    // keys*10 values, 1,000 per transaction, after the transaction of the hives.
    let verified = store.ok(&["verify"]);
    let last = verified.lines().last().unwrap_or_default();
    assert!(last.starts_with("ok: "), "{verified}");
    let seq = store.seq();
    let w1_seq = KEYS * 10 / 1000 + 1;
    assert!(seq >= w1_seq, "seq {seq} < {w1_seq}");
    assert_first_w1_value_reads_back(&store);

    // Reopened for writing: a torn tail (if any) is cut, commits go on, and all verifies.
    store.set(r"HKLM\Software\AfterCrash", "ok", "REG_DWORD", "1");
    assert_eq!(store.seq(), seq + 1);
    let verified = store.ok(&["verify"]);
    let last = verified.lines().last().unwrap_or_default();
    let start = format!("ok: {} transactions, ", seq + 1);
    let end = format!(", 1 segments, last sequence number {}", seq + 1);
    assert!(last.starts_with(&start), "{verified}");
    assert!(last.ends_with(&end), "{verified}");
}

#[test]
fn owner_takes_a_principal_never_sddl() {
    let store = Store::new();
    store.set(r"HKLM\Software\K", "V", "REG_SZ", "x");
    let before = store.sddl(r"HKLM\Software\K");
    let seq = store.seq();
    let message = store.error(&["owner", r"HKLM\Software\K", "BAD:P"]);
    assert!(
        message.contains(r#"invalid principal "BAD:P""#),
        "{message}"
    );
    assert_eq!(store.seq(), seq, "nothing committed");
    assert_eq!(store.sddl(r"HKLM\Software\K"), before);
    store.ok(&["owner", r"HKLM\Software\K", "BA"]);
    assert!(store.sddl(r"HKLM\Software\K").starts_with("O:BAD:"));
}

#[test]
fn a_failed_query_prints_nothing_but_the_error() {
    let store = Store::new();
    store.set(r"HKLM\Software\L", "V", "REG_SZ", "x");
    let unknown_layer = store.error(&["query", r"HKLM\Software\L", "--layer", "nope"]);
    assert!(
        unknown_layer.starts_with(r#"layer "nope" does not exist"#),
        "{unknown_layer}"
    );
    let missing = store.error(&["query", r"HKLM\Software\L", "--stack", "-v", "Nope"]);
    assert!(
        missing.starts_with(r#"value "Nope" does not exist"#),
        "{missing}"
    );
    let usage = store.run(&["query", r"HKLM\Software\L", "--stack", "--json"]);
    assert!(usage.usage_error().contains("--json"));
}

#[test]
fn a_bad_link_target_is_reported_with_the_links_path() {
    let store = Store::new();
    let message = store.error(&["add", r"HKLM\Software\Bad", "--link", r"Nowhere\x"]);
    assert!(
        message.starts_with(r"link Machine\Software\Bad has an invalid target: "),
        "{message}"
    );
}

#[test]
fn a_recursive_query_lists_a_link_without_following_it() {
    let store = Store::new();
    store.set(r"HKLM\Software\Top\Leaf", "V", "REG_DWORD", "1");
    store.ok(&[
        "add",
        r"HKLM\Software\Top\Back",
        "--link",
        r"HKLM\Software\Top",
    ]);
    let out = store.ok(&["query", r"HKLM\Software\Top", "-s"]);
    assert_eq!(
        out,
        [
            "",
            r"HKEY_LOCAL_MACHINE\Software\Top",
            "",
            r"HKEY_LOCAL_MACHINE\Software\Top\Back",
            // REG_LINK is shown as its bytes, as other non-string types: UTF-16LE of
            // Machine\Software\Top without a terminator.
            &format!(
                "    SymbolicLinkValue    REG_LINK    {}",
                "Machine\\Software\\Top"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .map(|b| format!("{b:02X}"))
                    .collect::<String>()
            ),
            "",
            r"HKEY_LOCAL_MACHINE\Software\Top\Leaf",
            "    V    REG_DWORD    0x1",
            "",
        ]
        .join("\n")
    );
}

#[test]
fn hkcr_merges_the_users_and_the_machines_classes() {
    let store = Store::new();
    store.set(r"HKLM\Software\Classes\.txt", "", "REG_SZ", "txtfile");
    store.set(
        r"HKLM\Software\Classes\.txt",
        "Content Type",
        "REG_SZ",
        "text/plain",
    );
    assert_eq!(
        store.ok_as(
            "alice",
            &["add", r"HKCU\Software\Classes\.txt", "--ve", "-d", "mine"]
        ),
        ""
    );
    let as_alice = store.ok_as("alice", &["query", r"HKCR\.txt"]);
    assert_eq!(
        as_alice,
        [
            "",
            r"HKEY_CLASSES_ROOT\.txt",
            "    (Default)    REG_SZ    mine",
            "    Content Type    REG_SZ    text/plain",
            "",
        ]
        .join("\n")
    );
    let as_bob = store.ok_as("bob", &["query", r"HKEY_CLASSES_ROOT\.txt", "--ve"]);
    assert!(
        as_bob.contains("(Default)    REG_SZ    txtfile"),
        "{as_bob}"
    );
    // alice's write goes to her own copy, where the key exists.
    store.ok_as("alice", &["add", r"HKCR\.txt", "-v", "Editor", "-d", "vim"]);
    let hers = store.ok(&["query", r"HKU\alice\Software\Classes\.txt", "-v", "Editor"]);
    assert!(hers.contains("Editor    REG_SZ    vim"), "{hers}");
    // bob has no copy: his write would go to the machine's, which users may not change.
    let denied = store.error_as("bob", &["add", r"HKCR\.txt", "-v", "Editor", "-d", "x"]);
    assert!(
        denied.starts_with("access denied: bob lacks KEY_SET_VALUE"),
        "{denied}"
    );
}
