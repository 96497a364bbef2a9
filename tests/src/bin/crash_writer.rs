//! `hivelog-crash-writer STORE_DIR [MAX_COMMITS]`: commits transactions into the store at
//! STORE_DIR until it is killed (or MAX_COMMITS commits, or its stdout closes), printing
//! `acked <seq> <counter>` after each commit returns. `tests/crash.rs` SIGKILLs it and checks
//! that every acknowledged commit survived.
//!
//! The store runs with SyncPolicy::Always and 64 KiB segments, so a commit is durable when it
//! returns and the journal rolls over every few dozen transactions. Transaction number `counter`
//! writes what `hivelog_tests::crash` says; the writer resumes after the last counter the store
//! holds, so rounds can follow one another on one store.

use std::io::Write;
use std::process::ExitCode;

use hivelog::{Error, Store, Value};
use hivelog_tests::crash;

/// The counter of the last transaction the store holds (0 if none).
fn last_counter(store: &Store) -> Result<u64, Error> {
    match store.get_raw_value(crash::ROOT, crash::COUNTER_VALUE) {
        Ok(value) => value.number().ok_or_else(|| Error::BadData {
            name: crash::COUNTER_VALUE.into(),
            ty: value.ty.to_string(),
            reason: "the counter is not a QWORD",
        }),
        Err(Error::KeyNotFound { .. } | Error::ValueNotFound { .. }) => Ok(0),
        Err(error) => Err(error),
    }
}

fn commit(store: &Store, counter: u64) -> Result<u64, Error> {
    let mut tx = store.transaction();
    let group = crash::group_key(counter);
    tx.create_key(&group)?;
    tx.set_value(&group, &crash::value_name(counter), &crash::value(counter))?;
    if crash::has_extra(counter) {
        let extra = crash::extra_key(counter);
        tx.create_key(&extra)?;
        tx.set_value(&extra, "E", &crash::extra_value(counter))?;
    }
    tx.set_value(crash::ROOT, crash::COUNTER_VALUE, &Value::qword(counter))?;
    tx.commit()
}

fn run(dir: &str, max_commits: u64) -> Result<(), String> {
    let store = Store::open(dir, crash::options()).map_err(|e| format!("open {dir}: {e}"))?;
    let first = last_counter(&store).map_err(|e| format!("read the counter: {e}"))? + 1;
    let stdout = std::io::stdout();
    for counter in first..first.saturating_add(max_commits) {
        let seq = commit(&store, counter).map_err(|e| format!("commit {counter}: {e}"))?;
        let mut out = stdout.lock();
        // The test closed its end: nobody is listening, stop.
        if writeln!(out, "acked {seq} {counter}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    store.close().map_err(|e| format!("close: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (dir, max_commits) = match args.as_slice() {
        [_, dir] => (dir.as_str(), u64::MAX),
        [_, dir, max] => match max.parse() {
            Ok(max) => (dir.as_str(), max),
            Err(_) => {
                eprintln!("MAX_COMMITS must be a number, not {max:?}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: hivelog-crash-writer STORE_DIR [MAX_COMMITS]");
            return ExitCode::from(2);
        }
    };
    match run(dir, max_commits) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hivelog-crash-writer: {error}");
            ExitCode::FAILURE
        }
    }
}
