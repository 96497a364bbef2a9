//! The harness the CLI's end-to-end tests share: running the binary, checking how a run
//! ended, and a scratch store to run it on.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_hivelog");
/// `$USER` of every run: the principal commits are attributed to, unless the tests run as root.
pub const TEST_USER: &str = "cli-tester";
pub const ERROR_PREFIX: &str = "hivelog: error: ";
/// LocalSystem: the store itself, and the principal of every run as root.
pub const SYSTEM: &str = "S-1-5-18";
/// The first segment of a store's journal.
pub const SEGMENT: &str = "00000000000000000001.seg";
/// The signal `Child::kill` sends.
pub const SIGKILL: i32 = 9;

/// The key most tests write, and the path `query` prints for it.
pub const APP: &str = r"HKLM\Software\Contoso\App";
pub const APP_PATH: &str = r"HKEY_LOCAL_MACHINE\Software\Contoso\App";

/// The binary, with no `$HIVELOG_STORE` inherited and a known `$USER`.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("HIVELOG_STORE").env("USER", TEST_USER);
    command
}

/// A finished run of the binary.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(mut command: Command) -> Run {
        let what = format!("{command:?}");
        let output = command.output().expect("run hivelog");
        Run {
            what,
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// Exit 0, nothing on stderr; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {}", self.describe());
        assert_eq!(self.stderr, "", "stderr on success: {}", self.describe());
        &self.stdout
    }

    /// Exit 1, nothing on stdout, exactly one line `hivelog: error: ...` on stderr; returns the
    /// message after the prefix.
    pub fn error(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected an error: {}", self.describe());
        assert_eq!(self.stdout, "", "stdout on error: {}", self.describe());
        assert!(
            self.stderr.ends_with('\n') && self.stderr.lines().count() == 1,
            "expected exactly one line on stderr: {}",
            self.describe()
        );
        let message = self.stderr.strip_prefix(ERROR_PREFIX);
        message
            .unwrap_or_else(|| panic!("no {ERROR_PREFIX:?}: {}", self.describe()))
            .trim_end()
    }

    /// Exit 2 with clap's message (and its pointer to `--help`) on stderr, nothing on stdout.
    pub fn usage_error(&self) -> &str {
        assert_eq!(
            self.code,
            Some(2),
            "expected a usage error: {}",
            self.describe()
        );
        assert_eq!(
            self.stdout,
            "",
            "stdout on usage error: {}",
            self.describe()
        );
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains("try '--help'"),
            "expected a usage message: {}",
            self.describe()
        );
        &self.stderr
    }
}

/// A store directory (not created until a command creates it) in its own temp dir.
pub struct Store {
    pub tmp: TempDir,
    pub dir: PathBuf,
}

impl Store {
    pub fn new() -> Store {
        let tmp = TempDir::new().expect("temp dir");
        let dir = tmp.path().join("store");
        Store { tmp, dir }
    }

    /// The store in `dir` (made by a command such as `recover`).
    pub fn at(dir: &Path) -> Store {
        Store {
            tmp: TempDir::new().expect("temp dir"),
            dir: dir.to_path_buf(),
        }
    }

    /// `hivelog --store DIR ARGS...`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = command();
        command.arg("--store").arg(&self.dir).args(args);
        Run::of(command)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok().to_string()
    }

    pub fn error(&self, args: &[&str]) -> String {
        self.run(args).error().to_string()
    }

    /// The command fails because a key or value it names does not exist.
    pub fn not_found(&self, args: &[&str]) {
        let message = self.error(args);
        assert!(message.contains("does not exist"), "{args:?}: {message}");
    }

    /// `add KEY -v NAME -t TYPE -d DATA`; the empty name is the default value (`--ve`).
    pub fn set(&self, key: &str, name: &str, ty: &str, data: &str) {
        let mut args = vec!["add", key];
        if name.is_empty() {
            args.push("--ve");
        } else {
            args.extend(["-v", name]);
        }
        args.extend(["-t", ty, "-d", data]);
        assert_eq!(self.ok(&args), "", "add prints nothing");
    }

    pub fn seq(&self) -> u64 {
        let out = self.ok(&["seq"]);
        let seq = out.strip_suffix('\n').and_then(|n| n.parse().ok());
        seq.unwrap_or_else(|| panic!("seq printed {out:?}"))
    }

    pub fn json(&self, args: &[&str]) -> Json {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `--as PRINCIPAL ARGS...`: acting as another principal (the OS user holds
    /// SeImpersonatePrivilege).
    pub fn ok_as(&self, principal: &str, args: &[&str]) -> String {
        self.ok(&[&["--as", principal][..], args].concat())
    }

    pub fn error_as(&self, principal: &str, args: &[&str]) -> String {
        self.error(&[&["--as", principal][..], args].concat())
    }

    /// `acl get KEY` without its newline.
    pub fn sddl(&self, key: &str) -> String {
        let out = self.ok(&["acl", "get", key]);
        let sddl = out.strip_suffix('\n');
        sddl.unwrap_or_else(|| panic!("acl get printed {out:?}"))
            .to_string()
    }
}

/// What `init` prints.
pub fn init_line(dir: &Path, seq: u64) -> String {
    format!("store at {} (sequence number {seq})\n", dir.display())
}

/// The principal the CLI records: the OS user, or the system principal for root.
pub fn expected_principal(tmp: &Path) -> &'static str {
    // A new file's owner is the effective uid of the process that created it.
    let probe = tmp.join("uid-probe");
    File::create(&probe).expect("create probe");
    let uid = std::fs::metadata(&probe).expect("probe metadata").uid();
    if uid == 0 { SYSTEM } else { TEST_USER }
}

/// A value line of `reg query`: `    NAME    TYPE    DATA`.
pub fn line(name: &str, ty: &str, data: &str) -> String {
    format!("    {name}    {ty}    {data}\n")
}

/// A key as `reg query` prints it: a blank line, the path, one line per value.
pub fn key_block(path: &str, values: &[(&str, &str, &str)]) -> String {
    let lines: String = values.iter().map(|&(n, t, d)| line(n, t, d)).collect();
    format!("\n{path}\n{lines}")
}
