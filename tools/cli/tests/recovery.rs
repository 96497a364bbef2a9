//! End-to-end tests of backup, restore, point-in-time recovery and audit replay through the
//! `hivelog` binary: `backup`, `restore`, `verify FILE`, `revert`, `recover`, `archive`,
//! `audit`, `checkpoint`, and the filters of `log`. Every successful run here has its stderr
//! checked empty (but the one that must warn of a damaged checkpoint), so the progress bars
//! are proven quiet when stderr is a pipe.
//!
//! Run with `cargo test -p hivelog-cli --test recovery`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value as Json;

mod support;
use support::*;

const ROOT: &str = r"HKLM\Software\Fabrikam";

/// A subtree with values in two layers, a descriptor of its own, a class, and a subkey.
fn store_with_subtree() -> Store {
    let store = Store::new();
    store.ok(&["init"]);
    store.ok(&["layers", "create", "corp", "--precedence", "50"]);
    store.ok(&["add", ROOT, "--class", "FabrikamClass"]);
    store.set(ROOT, "Color", "REG_SZ", "blue");
    store.ok(&["add", ROOT, "-v", "Color", "-d", "red", "--layer", "corp"]);
    store.set(&format!(r"{ROOT}\Sub"), "Size", "REG_DWORD", "7");
    store.ok(&[
        "acl",
        "set",
        &format!(r"{ROOT}\Sub"),
        "D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KA;;;alice)",
    ]);
    store
}

/// Everything `query -s --stack` shows of a subtree, as of `at` or now, with its root's
/// path replaced so subtrees at different places compare.
fn dump(store: &Store, key: &str, at: Option<u64>) -> String {
    let mut args = vec!["query", key, "-s", "--stack"];
    let seq;
    if let Some(at) = at {
        seq = at.to_string();
        args.extend(["--at-seq", &seq]);
    }
    let run = store.run(&args);
    if run.code != Some(0) {
        // A key missing at that point is part of the state.
        return format!("missing: {}", run.error());
    }
    let shown = run.ok().to_string();
    let printed_root = key.replacen("HKLM", "HKEY_LOCAL_MACHINE", 1);
    shown.replace(&printed_root, "<root>")
}

fn file_in(store: &Store, name: &str) -> PathBuf {
    store.tmp.path().join(name)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn a_backup_restores_whole_into_another_store_and_another_key() {
    let source = store_with_subtree();
    let backup = file_in(&source, "fabrikam.hvb");
    let seq = source.seq();
    let out = source.ok(&["backup", ROOT, path_arg(&backup)]);
    assert_eq!(
        out,
        format!(
            "backup of {ROOT} at sequence number {seq}: 2 keys, 3 values, {} bytes written to {}\n",
            std::fs::metadata(&backup).expect("backup written").len(),
            backup.display()
        )
    );
    let verified = source.ok(&["verify", path_arg(&backup)]);
    assert!(
        verified.starts_with(&format!(
            r"ok: backup {}: Machine\Software\Fabrikam at sequence number {seq}, taken by ",
            backup.display()
        )) && verified.ends_with("layers policy (65535), corp (50), base (0)\n"),
        "{verified}"
    );

    let target = Store::new();
    target.ok(&["init"]);
    target.ok(&["layers", "create", "corp", "--precedence", "50"]);
    target.set(r"HKLM\Software\Elsewhere\Old", "Stale", "REG_SZ", "x");
    let out = target.ok(&["restore", r"HKLM\Software\Elsewhere", path_arg(&backup)]);
    assert_eq!(
        out,
        format!(
            "restored HKLM\\Software\\Elsewhere from {} (a backup of Machine\\Software\\Fabrikam \
             at sequence number {seq}, 8 records): sequence number {}\n",
            backup.display(),
            target.seq()
        )
    );
    // Replace, not merge: Old is gone; layers, descriptor and class came along.
    assert_eq!(
        dump(&target, r"HKLM\Software\Elsewhere", None),
        dump(&source, ROOT, None)
    );
    assert_eq!(
        target.sddl(r"HKLM\Software\Elsewhere\Sub"),
        source.sddl(&format!(r"{ROOT}\Sub"))
    );
    let json = target.json(&["query", r"HKLM\Software\Elsewhere", "--json"]);
    assert_eq!(json["keys"][0]["class"], "FabrikamClass", "{json}");
    target.not_found(&["query", r"HKLM\Software\Elsewhere\Old"]);
    // The source recorded the backup, the target the restore.
    let audit = source.ok(&["audit"]);
    assert!(
        audit.contains(&format!(
            r"audit         backup    Machine\Software\Fabrikam    seq {seq}"
        )),
        "{audit}"
    );
    let audit = target.ok(&["audit", "--json"]);
    let event: Json = serde_json::from_str(audit.trim_end()).expect("one JSON line");
    assert_eq!(event["ops"][0]["event"], "restore");
    assert_eq!(event["ops"][0]["source"], r"Machine\Software\Fabrikam");
    assert_eq!(event["ops"][0]["seq"], seq);
}

#[test]
fn backup_and_restore_stream_through_a_pipe_on_one_store() {
    let store = store_with_subtree();
    let mut backup = command()
        .arg("--store")
        .arg(&store.dir)
        .args(["backup", ROOT, "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start backup");
    let stream = backup.stdout.take().expect("backup's stdout");
    let restore = command()
        .arg("--store")
        .arg(&store.dir)
        .args(["restore", r"HKLM\Software\Copy", "-"])
        .stdin(stream)
        .output()
        .expect("run restore");
    let backup = backup.wait_with_output().expect("backup ends");
    assert!(backup.status.success(), "{backup:?}");
    // With the stream on stdout, the summary is the one line on stderr.
    let summary = String::from_utf8(backup.stderr).expect("UTF-8");
    assert!(
        summary.starts_with(&format!("backup of {ROOT} at sequence number"))
            && summary.lines().count() == 1,
        "{summary}"
    );
    assert!(restore.status.success(), "{restore:?}");
    assert!(restore.stderr.is_empty(), "{restore:?}");
    assert!(
        String::from_utf8_lossy(&restore.stdout)
            .starts_with(r"restored HKLM\Software\Copy from stdin")
    );
    assert_eq!(
        dump(&store, r"HKLM\Software\Copy", None),
        dump(&store, ROOT, None)
    );
}

#[test]
fn a_failed_backup_leaves_no_file_and_an_existing_one_needs_force() {
    let store = store_with_subtree();
    let backup = file_in(&store, "b.hvb");
    let missing = store.error(&["backup", r"HKLM\Software\Nope", path_arg(&backup)]);
    assert!(missing.contains("does not exist"), "{missing}");
    assert!(!backup.exists());
    let leftovers: Vec<_> = std::fs::read_dir(store.tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|name| name != "store")
        .collect();
    assert!(leftovers.is_empty(), "spool files left: {leftovers:?}");
    let nowhere = file_in(&store, "missing-dir").join("b.hvb");
    let message = store.error(&["backup", ROOT, path_arg(&nowhere)]);
    assert!(
        message.starts_with(&format!(
            "writing the backup in {}: ",
            file_in(&store, "missing-dir").display()
        )),
        "{message}"
    );
    // Neither failure took a backup, so neither left an audit record.
    assert_eq!(store.ok(&["audit"]), "");
    store.ok(&["backup", ROOT, path_arg(&backup)]);
    let exists = store.error(&["backup", ROOT, path_arg(&backup)]);
    assert_eq!(
        exists,
        format!("{} exists; pass --force to replace it", backup.display())
    );
    store.ok(&["backup", ROOT, path_arg(&backup), "--force"]);
    store.ok(&["verify", path_arg(&backup)]);
    // The past, too.
    let early = file_in(&store, "early.hvb");
    store.ok(&["backup", ROOT, path_arg(&early), "--at-seq", "3"]);
    let verified = store.ok(&["verify", path_arg(&early)]);
    assert!(verified.contains("at sequence number 3,"), "{verified}");
}

#[test]
fn a_damaged_or_truncated_backup_is_refused_and_changes_nothing() {
    let store = store_with_subtree();
    let backup = file_in(&store, "b.hvb");
    store.ok(&["backup", ROOT, path_arg(&backup)]);
    let bytes = std::fs::read(&backup).expect("read backup");
    let before = (store.seq(), dump(&store, ROOT, None));
    let damaged = file_in(&store, "damaged.hvb");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    for (what, content) in [
        ("flipped", flipped),
        ("truncated", bytes[..bytes.len() - 9].to_vec()),
        ("empty", Vec::new()),
        ("foreign", b"MZ\x90\x00 not a backup at all".to_vec()),
    ] {
        std::fs::write(&damaged, &content).expect("write");
        let message = store.error(&["restore", ROOT, path_arg(&damaged)]);
        assert!(
            message.contains("backup") || message.contains("stream"),
            "{what}: {message}"
        );
        store.error(&["verify", path_arg(&damaged)]);
        assert_eq!((store.seq(), dump(&store, ROOT, None)), before, "{what}");
    }
    let message = store.error(&["restore", ROOT, path_arg(&file_in(&store, "nope"))]);
    assert!(message.starts_with("cannot open "), "{message}");
}

#[test]
fn revert_puts_a_subtree_back_as_one_new_audited_transaction() {
    let store = store_with_subtree();
    let good = store.seq();
    let then = dump(&store, ROOT, Some(good));
    store.set(ROOT, "Color", "REG_SZ", "purple");
    store.ok(&["delete", &format!(r"{ROOT}\Sub")]);
    store.set(&format!(r"{ROOT}\New"), "X", "REG_SZ", "y");
    let out = store.ok(&["revert", ROOT, "--to-seq", &good.to_string()]);
    let reverted = store.seq();
    assert_eq!(
        out,
        format!("reverted {ROOT} to sequence number {good}: sequence number {reverted}\n")
    );
    assert_eq!(dump(&store, ROOT, None), then);
    // History is kept: the states between are still readable.
    assert!(dump(&store, ROOT, Some(reverted - 1)).contains("purple"));
    let audit = store.ok(&["audit", "--from", &reverted.to_string()]);
    assert!(
        audit.contains(&format!(
            r"audit         revert    Machine\Software\Fabrikam    seq {good}"
        )),
        "{audit}"
    );
    let future = store.error(&["revert", ROOT, "--to-seq", "999"]);
    assert!(future.contains("999"), "{future}");
}

#[test]
fn recover_to_a_sequence_number_builds_a_store_of_exactly_that_state() {
    let store = store_with_subtree();
    store.set(ROOT, "Color", "REG_SZ", "purple");
    store.ok(&["delete", ROOT]);
    let last = store.seq();
    for n in 1..=last {
        let into = file_in(&store, &format!("recovered-{n}"));
        let out = store.ok(&[
            "recover",
            "--to-seq",
            &n.to_string(),
            "--into",
            path_arg(&into),
        ]);
        assert!(
            out.starts_with(&format!("recovered the state at sequence number {n} into ")),
            "{out}"
        );
        let recovered = Store::at(&into);
        assert_eq!(recovered.seq(), n);
        assert_eq!(
            dump(&recovered, ROOT, None),
            dump(&store, ROOT, Some(n)),
            "at {n}"
        );
        recovered.ok(&["verify"]);
    }
    let into = file_in(&store, "recovered-1");
    let exists = store.error(&["recover", "--to-seq", "1", "--into", path_arg(&into)]);
    assert!(exists.contains("is not empty"), "{exists}");
}

#[test]
fn a_registry_backup_and_archives_rebuild_every_later_state() {
    let store = store_with_subtree();
    let base = store.seq();
    let backup = file_in(&store, "registry.hvb");
    let out = store.ok(&["backup", r"\", path_arg(&backup)]);
    assert!(out.starts_with(&format!(
        "backup of the whole registry at sequence number {base}"
    )));
    store.set(ROOT, "Color", "REG_SZ", "purple");
    store.ok(&["delete", &format!(r"{ROOT}\Sub")]);
    store.set(r"HKLM\Software\Later", "Z", "REG_QWORD", "9");
    let last = store.seq();
    let archive = file_in(&store, "archive");
    let out = store.ok(&["archive", "--from", &base.to_string(), path_arg(&archive)]);
    assert_eq!(
        out,
        format!(
            "archived transactions {} to {last} into 1 file in {}\n",
            base + 1,
            archive.display()
        )
    );
    let verified = store.ok(&["verify", path_arg(&archive)]);
    assert_eq!(
        verified,
        format!(
            "ok: archive {}: 1 files, transactions {} to {last} ({})\n",
            archive.display(),
            base + 1,
            last - base
        )
    );
    for n in base..=last {
        let into = file_in(&store, &format!("rebuilt-{n}"));
        store.ok(&[
            "recover",
            "--from-backup",
            path_arg(&backup),
            "--archive",
            path_arg(&archive),
            "--to-seq",
            &n.to_string(),
            "--into",
            path_arg(&into),
        ]);
        let rebuilt = Store::at(&into);
        for key in [ROOT, r"HKLM\Software\Later"] {
            assert_eq!(
                dump(&rebuilt, key, None),
                dump(&store, key, Some(n)),
                "{key} at {n}"
            );
        }
    }
    let into = file_in(&store, "beyond");
    let beyond = store.error(&[
        "recover",
        "--from-backup",
        path_arg(&backup),
        "--archive",
        path_arg(&archive),
        "--to-seq",
        &(last + 5).to_string(),
        "--into",
        path_arg(&into),
    ]);
    assert!(
        beyond.contains(&format!("end at sequence number {last}")),
        "{beyond}"
    );
    // An archive flag without a backup is a usage error.
    store
        .run(&["recover", "--archive", "x", "--to-seq", "1", "--into", "y"])
        .usage_error();
}

#[test]
fn log_filters_by_subtree_principal_and_kind() {
    let store = store_with_subtree();
    store.set(r"HKLM\Software\Fabrikamish", "Other", "REG_SZ", "no");
    store.ok(&[
        "add",
        r"HKLM\Software\Fabrikam\Sub",
        "-v",
        "ByAlice",
        "-d",
        "a",
        "--as",
        "alice",
    ]);
    let subtree = store.ok(&["log", "--key", r"hklm\software\fabrikam\SUB"]);
    assert!(
        subtree.contains("ByAlice") && subtree.contains("Size"),
        "{subtree}"
    );
    assert!(
        !subtree.contains("Color") && !subtree.contains("Fabrikamish"),
        "{subtree}"
    );
    let by_alice = store.ok(&["log", "--principal", "alice", "--json"]);
    let lines: Vec<Json> = by_alice
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{by_alice}");
    assert_eq!(lines[0]["principal"], "alice");
    let kinds = store.ok(&["log", "--kind", "set_security,create_layer", "--json"]);
    let ops: Vec<String> = kinds
        .lines()
        .flat_map(|l| {
            let txn: Json = serde_json::from_str(l).expect("JSON line");
            txn["ops"]
                .as_array()
                .expect("ops")
                .iter()
                .map(|op| op["op"].as_str().expect("op").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    // The hives' descriptors (written by the store's creation), the layer, Sub's.
    assert_eq!(
        ops,
        [
            "set_security",
            "set_security",
            "create_layer",
            "set_security"
        ]
    );
    let unknown = store.error(&["log", "--kind", "rename"]);
    assert!(
        unknown.starts_with(r#"unknown kind of change "rename" (kinds: create_key,"#),
        "{unknown}"
    );
    let backwards = store.error(&["log", "--from", "5", "--to", "2"]);
    assert_eq!(backwards, "--to 2 is before --from 5: nothing to print");
}

#[test]
fn privileged_changes_and_operations_need_their_privileges_and_are_audited() {
    let store = store_with_subtree();
    let backup = file_in(&store, "b.hvb");
    let denied = store.error_as("alice", &["backup", ROOT, path_arg(&backup)]);
    assert_eq!(
        denied,
        r"alice does not hold SeBackupPrivilege, which a backup of Machine\Software\Fabrikam requires"
    );
    assert!(!backup.exists());
    store.ok(&["backup", ROOT, path_arg(&backup)]);
    let denied = store.error_as("alice", &["restore", ROOT, path_arg(&backup)]);
    assert!(denied.contains("SeRestorePrivilege"), "{denied}");
    let denied = store.error_as("alice", &["revert", ROOT, "--to-seq", "1"]);
    assert!(denied.contains("SeRestorePrivilege"), "{denied}");
    // Giving a key away needs, and records, the restore privilege.
    store.ok(&["owner", ROOT, "alice"]);
    let audit = store.ok(&["audit", "--json"]);
    let last: Json = serde_json::from_str(audit.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["ops"][0]["event"], "privilege");
    assert_eq!(last["ops"][0]["privilege"], "SeRestorePrivilege");
    assert_eq!(last["ops"][0]["path"], r"Machine\Software\Fabrikam");
    let text = store.ok(&["audit"]);
    assert!(
        text.ends_with(
            "  audit         privilege    Machine\\Software\\Fabrikam    SeRestorePrivilege\n"
        ),
        "{text}"
    );
}

#[test]
fn verify_tells_what_a_file_is_or_why_it_is_not_one() {
    let store = store_with_subtree();
    let archive = file_in(&store, "archive");
    store.ok(&["archive", "--from", "2", "--to", "4", path_arg(&archive)]);
    let segment = std::fs::read_dir(&archive)
        .expect("archive dir")
        .next()
        .expect("one file")
        .expect("entry")
        .path();
    assert_eq!(
        store.ok(&["verify", path_arg(&segment)]),
        format!(
            "ok: archive {}: transactions 3 to 4 (2)\n",
            segment.display()
        )
    );
    let other = file_in(&store, "notes.txt");
    std::fs::File::create(&other)
        .and_then(|mut f| f.write_all(b"hello"))
        .expect("write");
    let message = store.error(&["verify", path_arg(&other)]);
    assert!(
        message.contains("is neither a hivelog backup nor an archive segment"),
        "{message}"
    );
    let empty = file_in(&store, "empty-dir");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_eq!(
        store.error(&["verify", path_arg(&empty)]),
        format!("{} holds no archive files", empty.display())
    );
    let range = store.error(&["archive", "--from", "4", "--to", "2", path_arg(&archive)]);
    assert!(range.contains('4') && range.contains('2'), "{range}");
}

#[test]
fn copy_file_and_a_staged_restore_file_replace_the_registry_at_the_next_open() {
    let source = store_with_subtree();
    let copy = file_in(&source, "registry.hvb");
    let out = source.ok(&["copy-file", path_arg(&copy)]);
    assert!(
        out.starts_with("backup of the whole registry at sequence number "),
        "{out}"
    );
    let target = Store::new();
    target.set(r"HKLM\Software\Other", "Gone", "REG_SZ", "soon");
    let out = target.ok(&["restore-file", path_arg(&copy)]);
    assert!(
        out.starts_with(&format!(
            "staged {} (the whole registry at sequence number ",
            copy.display()
        )) && out.ends_with("it replaces the registry at the store's next open\n"),
        "{out}"
    );
    // The next command's open applies it: the target now holds the source's registry.
    assert_eq!(dump(&target, ROOT, None), dump(&source, ROOT, None));
    target.not_found(&["query", r"HKLM\Software\Other"]);
    let audit = target.ok(&["log", "--kind", "stage,restore"]);
    assert!(
        audit.contains("audit         stage") && audit.contains("audit         restore"),
        "{audit}"
    );
    // Staging and cancelling.
    target.ok(&["restore-file", path_arg(&copy)]);
    assert_eq!(
        target.ok(&["restore-file", "--cancel"]),
        "cancelled the staged restore\n"
    );
    assert_eq!(
        target.ok(&["restore-file", "--cancel"]),
        "no restore was staged\n"
    );
    target.run(&["restore-file"]).usage_error();
    // Only a copy of the whole registry can be staged.
    let key_backup = file_in(&source, "key.hvb");
    source.ok(&["backup", ROOT, path_arg(&key_backup)]);
    let refused = target.error(&["restore-file", path_arg(&key_backup)]);
    assert!(refused.contains("not of the whole registry"), "{refused}");
}

#[test]
fn flush_makes_every_commit_durable_and_checks_its_key() {
    let store = store_with_subtree();
    let seq = store.seq();
    assert_eq!(
        store.ok(&["flush"]),
        format!("durable through sequence number {seq}\n")
    );
    store.ok(&["flush", ROOT]);
    store.not_found(&["flush", r"HKLM\Software\Nope"]);
}

#[test]
fn checkpoint_writes_one_the_next_open_starts_from_and_a_damaged_one_is_named() {
    let store = store_with_subtree();
    let seq = store.seq();
    let written = store.ok(&["checkpoint"]);
    assert!(
        written.starts_with(&format!("checkpoint at sequence number {seq}: ")),
        "{written}"
    );
    assert_eq!(
        store.ok(&["checkpoint"]),
        format!("the last checkpoint holds sequence number {seq} already\n")
    );
    let file = std::fs::read_dir(store.dir.join("checkpoints"))
        .expect("the checkpoint directory")
        .map(|entry| entry.expect("an entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "hvc"))
        .expect("a checkpoint file");
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).expect("write");
    // Nothing is lost: the journal is replayed; stderr names the file and the reason.
    let run = store.run(&["query", ROOT, "-v", "Color"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(run.stdout.contains("Color"), "{}", run.describe());
    assert!(
        run.stderr.contains("warning: passed over checkpoint")
            && run.stderr.contains("checksum mismatch"),
        "{}",
        run.describe()
    );
}

#[test]
fn compact_keeps_the_state_and_refuses_reads_before_its_cut() {
    // Small segments (an open's option the tool does not set), so a few hundred commits
    // fill several.
    let store = Store::new();
    let library = hivelog::Store::open(
        &store.dir,
        hivelog::Options {
            segment_size_bytes: 64 << 10,
            value_size_max_bytes: 16 << 10,
            ..hivelog::Options::default()
        },
    )
    .expect("the store opens");
    library
        .create_key(&format!(r"{ROOT}\Sub"))
        .and_then(|key| key.set_value("Size", &7u32))
        .expect("a commit");
    for i in 0..300 {
        library
            .create_key(&format!(r"{ROOT}\Churn"))
            .and_then(|key| key.set_value("Data", &format!("{i}{}", "v".repeat(400))))
            .expect("a commit");
    }
    library.close().expect("close");
    let now = dump(&store, ROOT, None);
    let nothing = store.ok(&["compact"]);
    assert!(nothing.starts_with("nothing to compact"), "{nothing}");
    let done = store.ok(&["compact", "--keep-commits", "10", "--keep-seconds", "0"]);
    let cut: u64 = done
        .strip_prefix("compacted through sequence number ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        cut + 10 <= store.seq() && done.contains("bytes freed"),
        "{done}"
    );
    assert_eq!(dump(&store, ROOT, None), now);
    let early = store.run(&["query", ROOT, "--at-seq", "3"]);
    assert_eq!(early.code, Some(1), "{}", early.describe());
    assert!(
        early
            .error()
            .contains(&format!("compacted away: the oldest readable is {cut}")),
        "{}",
        early.describe()
    );
    store.ok(&["query", ROOT, "--at-seq", &cut.to_string()]);
    let stats = store.ok(&["stats"]);
    assert!(
        stats.contains(&format!("oldest readable     {cut}")),
        "{stats}"
    );
    // The log starts after the cut; asking for earlier history names where it starts.
    let log = store.ok(&["log", "--json"]);
    let first: Json = serde_json::from_str(log.lines().next().expect("a line")).expect("json");
    assert_eq!(first["seq"], cut + 1);
    let refused = store.run(&["log", "--from", "2"]);
    assert_eq!(refused.code, Some(1), "{}", refused.describe());
    store.ok(&["verify"]);
}
