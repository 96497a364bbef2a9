//! End-to-end tests of `hivelog --hive FILE COMMAND`: a hive file edited without a store,
//! saved atomically, refused whole when it is damaged, and exchanged with a store through
//! `backup` and `restore` (a backup is a hive file).
//!
//! Run with `cargo test -p hivelog-cli --test hive`.

use std::path::{Path, PathBuf};

mod support;
use support::*;

/// `hivelog --hive FILE ARGS...`.
fn on_hive(file: &Path, args: &[&str]) -> Run {
    let mut command = command();
    command.arg("--hive").arg(file).args(args);
    Run::of(command)
}

fn ok(file: &Path, args: &[&str]) -> String {
    on_hive(file, args).ok().to_string()
}

fn error(file: &Path, args: &[&str]) -> String {
    on_hive(file, args).error().to_string()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the scratch directory")
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn read(file: &Path) -> Vec<u8> {
    std::fs::read(file).expect("read the hive file")
}

fn write(file: &Path, bytes: &[u8]) {
    std::fs::write(file, bytes).expect("write the hive file");
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            tmp: tempfile::TempDir::new().expect("temp dir"),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

#[test]
fn a_hive_is_built_queried_and_edited_from_nothing() {
    let scratch = Scratch::new();
    let hive = scratch.file("app.hive");
    assert_eq!(
        ok(
            &hive,
            &["add", r"Software\Contoso", "-v", "Version", "-d", "2.1"]
        ),
        ""
    );
    ok(
        &hive,
        &[
            "add",
            r"Software\Contoso",
            "-v",
            "Build",
            "-t",
            "REG_DWORD",
            "-d",
            "7",
        ],
    );
    ok(&hive, &["add", r"Software\Contoso\Sub", "--class", "Cls"]);
    ok(
        &hive,
        &[
            "add",
            r"Software\Contoso",
            "-v",
            "Build",
            "-t",
            "REG_DWORD",
            "-d",
            "9",
            "--layer",
            "policy",
        ],
    );
    assert_eq!(
        names_in(scratch.tmp.path()),
        ["app.hive"],
        "no temporary file is left"
    );

    // Paths are relative to the hive's root; a hive that stands for no key shows them so.
    assert_eq!(
        ok(&hive, &["query", r"software\CONTOSO"]),
        "\n\\Software\\Contoso\n    Build    REG_DWORD    0x9\n    Version    REG_SZ    2.1\n\n\\Software\\Contoso\\Sub\n"
    );
    assert_eq!(
        ok(
            &hive,
            &["query", r"Software\Contoso", "-v", "Build", "--stack"]
        ),
        "\n\\Software\\Contoso\n    Build\n        policy    REG_DWORD    0x9    (effective)\n        base    REG_DWORD    0x7    (shadowed)\n"
    );
    let json = ok(&hive, &["query", r"\Software\Contoso\Sub", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("query --json prints JSON");
    assert_eq!(json["keys"][0]["class"], "Cls");
    assert!(
        json.get("seq").is_none(),
        "a hive has no sequence number: {json}"
    );

    // --mount names the key the root stands for, and a save records it.
    ok(&hive, &["--mount", r"HKLM\Software\Apps", "add", "Other"]);
    assert_eq!(
        ok(&hive, &["query", ""]),
        "\nHKEY_LOCAL_MACHINE\\Software\\Apps\n\nHKEY_LOCAL_MACHINE\\Software\\Apps\\Other\nHKEY_LOCAL_MACHINE\\Software\\Apps\\Software\n"
    );

    ok(
        &hive,
        &[
            "delete",
            r"Software\Contoso",
            "-v",
            "Build",
            "--layer",
            "policy",
        ],
    );
    assert!(ok(&hive, &["query", r"Software\Contoso", "-v", "Build"]).contains("REG_DWORD    0x7"));
    ok(&hive, &["delete", r"Software\Contoso", "--va"]);
    assert_eq!(
        ok(&hive, &["query", r"Software\Contoso"]),
        "\nHKEY_LOCAL_MACHINE\\Software\\Apps\\Software\\Contoso\n\nHKEY_LOCAL_MACHINE\\Software\\Apps\\Software\\Contoso\\Sub\n"
    );
    ok(
        &hive,
        &[
            "acl",
            "set",
            "Software",
            "D:P(A;CI;KA;;;SY)(A;CI;KR;;;alice)",
        ],
    );
    ok(&hive, &["owner", "Software", "alice"]);
    // As RegSetKeySecurity: the keys below keep theirs, a new key inherits the new entries.
    let sub = ok(&hive, &["acl", "get", r"Software\Contoso\Sub"]);
    assert!(sub.contains("(A;CIID;KR;;;BU)"), "{sub}");
    ok(&hive, &["add", r"Software\New"]);
    assert_eq!(
        ok(&hive, &["acl", "get", r"Software\New"]),
        format!(
            "O:{}D:(A;CIID;KA;;;SY)(A;CIID;KR;;;alice)\n",
            expected_owner()
        )
    );
    assert_eq!(
        ok(&hive, &["acl", "get", "Software"]),
        "O:aliceD:P(A;CI;KA;;;SY)(A;CI;KR;;;alice)\n"
    );
    ok(&hive, &["--as", "bob", "add", r"Software\ByBob"]);
    assert!(ok(&hive, &["acl", "get", r"Software\ByBob"]).starts_with("O:bobD:"));
    ok(&hive, &["delete", r"Software"]);
    assert_eq!(
        ok(&hive, &["query", "", "-s"]),
        "\nHKEY_LOCAL_MACHINE\\Software\\Apps\n\nHKEY_LOCAL_MACHINE\\Software\\Apps\\Other\n"
    );
}

/// The owner the keys a test creates get: the OS user the CLI runs as (`$USER`), or SYSTEM
/// when the tests run as root.
fn expected_owner() -> String {
    let scratch = Scratch::new();
    let probe = scratch.file("probe.hive");
    ok(&probe, &["add", "Probe"]);
    let sddl = ok(&probe, &["acl", "get", "Probe"]);
    let owner = sddl
        .strip_prefix("O:")
        .and_then(|rest| rest.split('D').next());
    owner.expect("an owner").to_string()
}

#[test]
fn a_store_backup_is_edited_as_a_hive_and_restored() {
    let store = Store::new();
    store.ok(&["init"]);
    store.set(APP, "Color", "REG_SZ", "blue");
    store.set(&format!(r"{APP}\Sub"), "Size", "REG_DWORD", "7");
    let backup = store.tmp.path().join("app.backup");
    store.ok(&["backup", APP, arg(&backup)]);

    // The backup knows the key it came from: the hive shows the store's paths.
    assert_eq!(
        ok(&backup, &["query", "", "-s"]),
        format!(
            "\n{APP_PATH}\n    Color    REG_SZ    blue\n\n{APP_PATH}\\Sub\n    Size    REG_DWORD    0x7\n"
        )
    );
    ok(
        &backup,
        &["add", "Sub", "-v", "Size", "-t", "REG_DWORD", "-d", "8"],
    );
    ok(&backup, &["add", r"New\Deeper", "-v", "", "-d", "hello"]);
    ok(&backup, &["delete", "", "-v", "Color"]);

    store.ok(&["restore", r"HKLM\Software\Copy", arg(&backup)]);
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Copy", "-s"]),
        "\nHKEY_LOCAL_MACHINE\\Software\\Copy\n\nHKEY_LOCAL_MACHINE\\Software\\Copy\\New\n\nHKEY_LOCAL_MACHINE\\Software\\Copy\\New\\Deeper\n    (Default)    REG_SZ    hello\n\nHKEY_LOCAL_MACHINE\\Software\\Copy\\Sub\n    Size    REG_DWORD    0x8\n"
    );
    store.ok(&["verify", arg(&backup)]);
}

#[test]
fn a_refused_command_leaves_the_file_as_it_was() {
    let scratch = Scratch::new();
    let hive = scratch.file("app.hive");
    ok(&hive, &["add", r"App\Sub", "-v", "V", "-d", "x"]);
    let before = read(&hive);
    let refusals: [(&[&str], &str); 9] = [
        (&["delete", ""], "hive root"),
        (&["delete", r"App\Nope"], "does not exist"),
        (&["add", "X", "--volatile"], "volatile"),
        (
            &["add", "X", "-t", "REG_DWORD", "-d", "zz"],
            "invalid REG_DWORD data",
        ),
        (&["add", &"k".repeat(256)], "255"),
        (&["acl", "set", "App", "D:(A;;QQ;;;SY)"], "SDDL"),
        (&["query", "App", "--at-seq", "1"], "no history"),
        (&["seq"], "seq works on a store"),
        (&["backup", "App", "out"], "backup works on a store"),
    ];
    for (args, expected) in refusals {
        let message = error(&hive, args);
        assert!(message.contains(expected), "{args:?}: {message}");
        assert_eq!(read(&hive), before, "{args:?} changed the file");
        assert_eq!(
            names_in(scratch.tmp.path()),
            ["app.hive"],
            "{args:?} left a file"
        );
    }
    let missing = scratch.file("missing.hive");
    assert!(error(&missing, &["query", ""]).contains("no hive file at"));
    assert!(error(&missing, &["delete", "X"]).contains("no hive file at"));
    assert!(!missing.exists());
}

#[test]
fn a_damaged_hive_file_is_refused_and_kept() {
    let scratch = Scratch::new();
    let hive = scratch.file("app.hive");
    ok(&hive, &["add", r"App\Sub", "-v", "V", "-d", "x"]);
    let good = read(&hive);
    for at in [0, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        write(&hive, &bad);
        error(&hive, &["query", ""]);
        error(&hive, &["add", "More"]);
        assert_eq!(read(&hive), bad, "a damaged file is never repaired");
    }
    write(&hive, &good[..good.len() - 3]);
    error(&hive, &["query", ""]);
}

#[test]
fn hive_options_are_checked_as_usage() {
    let scratch = Scratch::new();
    let hive = scratch.file("app.hive");
    let mut mount_alone = command();
    mount_alone.args(["--mount", r"HKLM\X", "query", "X"]);
    Run::of(mount_alone).usage_error();
    let mut both = command();
    both.args(["--store", "somewhere", "--hive", arg(&hive), "query", "X"]);
    Run::of(both).usage_error();
    assert!(error(&hive, &["--mount", r"Nowhere\X", "add", "A"]).contains("Nowhere"));
    assert!(!hive.exists());
}

#[test]
fn a_hive_imports_and_exports_reg_files_under_its_mount() {
    let store = Store::new();
    store.set(APP, "Color", "REG_SZ", "blue");
    store.set(&format!(r"{APP}\Sub"), "Size", "REG_DWORD", "7");
    let exported = store.tmp.path().join("app.reg");
    store.ok(&["export", APP, arg(&exported)]);

    // A new hive stands for no key until --mount names one.
    let hive = store.tmp.path().join("app.hive");
    let message = error(&hive, &["import", arg(&exported)]);
    assert!(
        message.contains("stands for no key") && message.contains("--mount"),
        "{message}"
    );
    assert!(!hive.exists(), "a refused import creates no file");
    let out = ok(&hive, &["--mount", APP, "import", arg(&exported)]);
    assert_eq!(
        out,
        format!(
            "imported {}: 2 keys, 2 values set, 0 values deleted, 0 trees deleted\n",
            arg(&exported)
        )
    );

    // Exported again it is the store's file, byte for byte.
    let again = store.tmp.path().join("again.reg");
    ok(&hive, &["export", "", arg(&again)]);
    assert_eq!(read(&again), read(&exported));
    let run = on_hive(&hive, &["export", "Sub", "-", "--encoding", "utf8"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.stderr, "exported Sub: 1 keys, 1 values, 112 bytes\n",
        "the summary goes to stderr"
    );
    assert_eq!(
        run.stdout,
        format!(
            "Windows Registry Editor Version 5.00\r\n\r\n[{APP_PATH}\\Sub]\r\n\"Size\"=dword:00000007\r\n\r\n"
        )
    );

    // A key outside the mount names its line; the hive file is kept as it was.
    let before = read(&hive);
    let outside = store.tmp.path().join("outside.reg");
    write(
        &outside,
        b"Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\Other]\r\n\"X\"=dword:00000001\r\n",
    );
    let message = error(&hive, &["import", arg(&outside)]);
    assert!(
        message.starts_with(&format!(
            "{}:3: key HKEY_LOCAL_MACHINE\\Software\\Other is outside the hive",
            arg(&outside)
        )),
        "{message}"
    );
    assert_eq!(read(&hive), before);

    // And the store takes the hive back as a backup.
    store.ok(&["restore", r"HKLM\Software\Copy", arg(&hive)]);
    assert_eq!(
        store.ok(&["query", r"HKLM\Software\Copy\Sub"]),
        "\nHKEY_LOCAL_MACHINE\\Software\\Copy\\Sub\n    Size    REG_DWORD    0x7\n"
    );
}
