//! End-to-end tests of `hivelog watch` (a process that reports what other processes commit),
//! `hivelog config` (parameters in force, a rejected value and its audit record) and
//! `hivelog init --seed` (a first boot from a backup, its parameters in force).
//!
//! Run with `cargo test -p hivelog-cli --test watch`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value as Json;

mod support;
use support::*;

const PARAMETERS: &str = r"HKLM\System\Registry\Parameters";

/// A running `hivelog watch`, its lines read as they come.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(store: &Store, args: &[&str]) -> Watcher {
        let mut command = command();
        command
            .arg("--store")
            .arg(&store.dir)
            .arg("watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("start hivelog watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next `n` lines (fewer if the watch goes quiet for long).
    fn take(&self, n: usize) -> Vec<String> {
        (0..n)
            .map_while(|_| self.lines.recv_timeout(Duration::from_secs(20)).ok())
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_watch_reports_what_other_processes_commit() {
    let store = Store::new();
    store.ok(&["add", APP]);
    let from = store.seq().to_string();
    // From the current sequence number: nothing is missed while the watch starts.
    let watcher = Watcher::start(
        &store,
        &[r"HKLM\Software\Contoso", "-s", "--from-seq", &from],
    );
    store.set(&format!(r"{APP}\Sub"), "Color", "REG_SZ", "blue");
    store.ok(&["delete", &format!(r"{APP}\Sub"), "-v", "Color"]);
    store.ok(&["acl", "set", APP, "O:BA"]);
    store.ok(&["delete", &format!(r"{APP}\Sub")]);
    store.ok(&["add", r"HKLM\Software\Elsewhere", "-v", "X", "-d", "1"]);
    let seq = |n: u64| from.parse::<u64>().unwrap_or(0) + n;
    let sub = r"Machine\Software\Contoso\App\Sub";
    let app = r"Machine\Software\Contoso\App";
    assert_eq!(
        watcher.take(5),
        [
            format!("{}  key_created       {sub}", seq(1)),
            format!("{}  value_set         {sub}  Color (base)", seq(1)),
            format!("{}  value_deleted     {sub}  Color (base)", seq(2)),
            format!("{}  security_changed  {app}", seq(3)),
            format!("{}  key_deleted       {sub}", seq(4)),
        ]
    );
    drop(watcher);

    // JSON, a key alone (its own values and descriptor, its subkeys' comings and goings),
    // replayed from the start.
    let watcher = Watcher::start(&store, &[APP, "--from-seq", "0", "--json"]);
    let parsed: Vec<Json> = watcher
        .take(4)
        .iter()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let shown: Vec<(String, String)> = parsed
        .iter()
        .map(|event| (event["kind"].to_string(), event["path"].to_string()))
        .collect();
    let quoted = |text: &str| Json::from(text).to_string();
    assert_eq!(
        shown,
        [
            (quoted("key_created"), quoted(app)),
            (quoted("key_created"), quoted(sub)),
            (quoted("security_changed"), quoted(app)),
            (quoted("key_deleted"), quoted(sub)),
        ]
    );
    assert_eq!(parsed[2]["seq"], seq(3));
}

#[test]
fn watch_refusals_are_one_line_errors() {
    let store = Store::new();
    assert!(store.error(&["watch", APP]).contains("no store at"));
    store.ok(&["add", APP]);
    store.not_found(&["watch", r"HKLM\Software\Nope"]);
    let future = (store.seq() + 5).to_string();
    assert!(
        store
            .error(&["watch", APP, "--from-seq", &future])
            .contains("sequence number")
    );
}

#[test]
fn config_shows_defaults_stored_values_and_rejections() {
    let store = Store::new();
    store.ok(&["init"]);
    let config = store.json(&["config", "--json"]);
    assert_eq!(config["key"], r"Machine\System\Registry\Parameters");
    let depth = |config: &Json| {
        config["parameters"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["name"] == "WatchQueueDepth"))
            .cloned()
            .unwrap_or(Json::Null)
    };
    assert_eq!(depth(&config)["in_force"], "4096");
    assert_eq!(depth(&config)["stored"], Json::Null);

    store.ok(&[
        "add",
        PARAMETERS,
        "-v",
        "WatchQueueDepth",
        "-t",
        "REG_DWORD",
        "-d",
        "64",
    ]);
    assert_eq!(depth(&store.json(&["config", "--json"]))["in_force"], "64");
    // Out of range: rejected, the value in force kept, an audit record written.
    store.ok(&[
        "add",
        PARAMETERS,
        "-v",
        "WatchQueueDepth",
        "-t",
        "REG_DWORD",
        "-d",
        "0",
    ]);
    let rejected = depth(&store.json(&["config", "--json"]));
    assert_eq!(rejected["stored"], "0x0");
    assert_eq!(rejected["in_force"], "64", "never clamped");
    assert!(
        rejected["rejected"]
            .as_str()
            .unwrap_or_default()
            .contains("1 to 1048576")
    );
    let text = store.ok(&["config"]);
    assert!(
        text.contains("stored value rejected: is 0; it must be 1 to 1048576"),
        "{text}"
    );
    let audit = store.ok(&["audit"]);
    assert!(
        audit.contains("WatchQueueDepth: rejected REG_DWORD 0") && audit.contains("in force: 64"),
        "{audit}"
    );
}

#[test]
fn init_seed_restores_a_first_boot_with_its_parameters() {
    let source = Store::new();
    source.ok(&["add", PARAMETERS, "-v", "SyncPolicy", "-d", "never"]);
    source.set(APP, "Color", "REG_SZ", "blue");
    let seed = source.tmp.path().join("seed.hvb");
    source.ok(&["backup", "HKLM", seed.to_str().unwrap_or_default()]);

    let store = Store::new();
    let out = store.ok(&["init", "--seed", seed.to_str().unwrap_or_default()]);
    assert!(out.starts_with("seeded Machine from "), "{out}");
    assert!(
        store
            .ok(&["query", APP])
            .contains("Color    REG_SZ    blue")
    );
    let config = store.ok(&["config"]);
    let policy = config.lines().find(|line| line.starts_with("SyncPolicy"));
    assert!(
        policy.is_some_and(|line| line.contains("never") && !line.contains("rejected")),
        "{config}"
    );

    // Only a first boot: a store with content is refused, and changes nothing.
    let before = store.seq();
    let message = store.error(&["init", "--seed", seed.to_str().unwrap_or_default()]);
    assert!(message.contains("not empty"), "{message}");
    assert_eq!(store.seq(), before);
    // A damaged seed is refused before anything is created.
    let other = Store::new();
    let bad = other.tmp.path().join("bad.hvb");
    std::fs::write(&bad, b"not a backup").expect("write the bad seed");
    other.error(&["init", "--seed", bad.to_str().unwrap_or_default()]);
    assert!(!other.dir.exists(), "no store was created");
}
