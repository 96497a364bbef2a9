//! Puts each engine crate's version from Cargo.lock into the binary, so that a printed run
//! names exactly what it measured.

use std::fs;

const CRATES: [(&str, &str); 5] = [
    ("hivelog", "BENCH_VERSION_HIVELOG"),
    ("redb", "BENCH_VERSION_REDB"),
    ("heed", "BENCH_VERSION_HEED"),
    ("rusqlite", "BENCH_VERSION_RUSQLITE"),
    ("fjall", "BENCH_VERSION_FJALL"),
];

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (name, var) in CRATES {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, name));
    }
}

/// The version after `name = "<name>"` in a Cargo.lock, or "?" before the first lock.
fn locked_version(lock: &str, name: &str) -> String {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == wanted
            && let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'))
        {
            return version.to_string();
        }
    }
    "?".to_string()
}
