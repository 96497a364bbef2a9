//! A parsed `.reg` file applied to the store: every change as one transaction, a refused
//! change named by its line.

use std::sync::Arc;

use super::ImportReport;
use super::parse::{RegFile, RegOp, key_path, parse};
use super::refused;
use crate::error::{Error, Result};
use crate::path::KeyPath;
use crate::store::Store;
use crate::txn::Transaction;

/// A journal record's bytes beyond its name and data (framing, ids, type): an estimate that
/// errs high, for sizing the transaction's segment.
const RECORD_OVERHEAD_BYTES: u64 = 64;

pub(super) fn import(store: &Store, input: &[u8], source_name: &str) -> Result<ImportReport> {
    let file = parse(input, source_name)?;
    apply(store, file, source_name)
}

/// Applies `file` as one transaction; `source_name` names it in errors.
fn apply(store: &Store, file: RegFile, source_name: &str) -> Result<ImportReport> {
    let at_line = |line: u64, source: Error| refused(source_name, line, source);
    let mut report = ImportReport::new(file.format);
    let mut tx = store.transaction();
    tx.reserve(file.ops.len());
    // The line of each intent, by its index in the transaction: one intent per op.
    let mut lines: Vec<u64> = Vec::with_capacity(file.ops.len());
    let mut journal_bytes = 0;
    let mut key: Option<Arc<KeyPath>> = None;
    for op in file.ops {
        let line = op.line();
        journal_bytes += RECORD_OVERHEAD_BYTES + op_bytes(&op);
        report.count(&op);
        add(&mut tx, op, &mut key).map_err(|error| at_line(line, error))?;
        lines.push(line);
        assert_eq!(tx.len(), lines.len(), "one intent per op");
    }
    report.seq = tx
        .commit_traced(journal_bytes)
        .map_err(|failed| match failed.intent {
            Some(i) => at_line(lines[i], failed.error),
            None => failed.error,
        })?;
    Ok(report)
}

/// Adds `op` to `tx`; `key` is the key the latest `[KEY]` resolved to.
fn add(tx: &mut Transaction, op: RegOp, key: &mut Option<Arc<KeyPath>>) -> Result<()> {
    // The parser puts a `[KEY]` before every value.
    let current = |key: &Option<Arc<KeyPath>>| key.clone().expect("a [KEY] before each value");
    match op {
        RegOp::Key { root, path, .. } => {
            *key = Some(tx.create_key_resolved(&key_path(root, &path))?);
        }
        RegOp::DeleteTree { root, path, .. } => {
            *key = None;
            tx.delete_tree_if_exists(&key_path(root, &path))?;
        }
        RegOp::SetValue { name, value, .. } => {
            tx.set_value_at(&current(key), name, value)?;
        }
        RegOp::DeleteValue { name, .. } => {
            tx.delete_value_if_exists(&current(key), &name)?;
        }
    }
    Ok(())
}

/// What `op` puts in its journal record besides the fixed part, at most.
fn op_bytes(op: &RegOp) -> u64 {
    let bytes = match op {
        // A key line may create every missing parent: a record per name.
        RegOp::Key { path, .. } => path.len() * 2 + path.matches('\\').count() * 64,
        RegOp::DeleteTree { .. } => 0,
        RegOp::SetValue { name, value, .. } => name.len() * 2 + value.data.len(),
        RegOp::DeleteValue { name, .. } => name.len() * 2,
    };
    bytes as u64
}
