//! Reads: find the value version in the index (under its read lock), then copy the data out
//! of the journal's map (after releasing it). Reads never wait on journal I/O and never block
//! other readers.

use std::cell::RefCell;

use hivelog_index::{Index, NodeId};
use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::op::Op;
use crate::path::{KeyPath, fold_path, fold_value_name};
use crate::store::{Inner, read_index};
use crate::stored::Stored;
use crate::txn::BASE;
use crate::value::{Value, ValueType};

thread_local! {
    /// Scratch space for folding a path and a value name: a point read allocates nothing
    /// but its result.
    static SCRATCH: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// Where value `name` of the key at `path` is, as of `at`.
pub(crate) fn stored_by_path(inner: &Inner, path: &str, name: &str, at: Seq) -> Result<Stored> {
    let stored = SCRATCH.with(|scratch| {
        let (folded_path, folded_name) = &mut *scratch.borrow_mut();
        folded_path.clear();
        folded_name.clear();
        fold_path(path, &inner.principal, folded_path)?;
        fold_value_name(name, folded_name)?;
        let index = read_index(&inner.index);
        index
            .value_by_path(folded_path, BASE, folded_name, at)
            .ok_or_else(|| Error::KeyNotFound {
                path: display(inner, path),
            })
    })?;
    stored.ok_or_else(|| Error::ValueNotFound {
        path: display(inner, path),
        name: name.to_string(),
    })
}

/// Value `name` of the key at `node` as of `at`, checking and folding the name in scratch
/// space.
pub(crate) fn value_at(
    index: &Index<Stored>,
    node: NodeId,
    name: &str,
    at: Seq,
) -> Result<Option<Stored>> {
    SCRATCH.with(|scratch| {
        let (_, folded_name) = &mut *scratch.borrow_mut();
        folded_name.clear();
        fold_value_name(name, folded_name)?;
        Ok(index.value_at(node, BASE, folded_name, at))
    })
}

/// A path as error messages show it (the slow path: only when a read fails).
fn display(inner: &Inner, path: &str) -> String {
    KeyPath::parse(path, &inner.principal).map_or_else(|_| path.to_string(), |key| key.to_string())
}

/// The data of a stored value: inline if small, else from its journal record.
#[inline]
pub(crate) fn read_value(inner: &Inner, stored: Stored) -> Result<Value> {
    visit_value(inner, stored, |ty, data| Value::new(ty, data.to_vec()))
}

/// Hands the type and bytes of a stored value to `visit`, without copying them out.
#[inline]
pub(crate) fn visit_value<R>(
    inner: &Inner,
    stored: Stored,
    visit: impl FnOnce(ValueType, &[u8]) -> R,
) -> Result<R> {
    if let Some(data) = stored.small_data() {
        return Ok(visit(stored.ty, data));
    }
    inner
        .journal
        .with_op(stored.loc, |payload| {
            Some(visit(stored.ty, stored.data_in(payload)?))
        })
        .flatten()
        .ok_or_else(|| damaged(stored))
}

fn damaged(stored: Stored) -> Error {
    Error::Damaged {
        what: format!(
            "value record at segment {}, offset {}",
            stored.loc.segment, stored.loc.offset
        ),
    }
}

/// The name (as written) and data of a stored value, from its journal record.
pub(crate) fn read_record(inner: &Inner, stored: Stored) -> Result<(String, Value)> {
    inner
        .journal
        .with_op(stored.loc, |payload| match Op::decode(payload) {
            Ok(Op::SetValue { name, ty, data, .. }) => {
                Some((name.to_string(), Value::new(ty, data.to_vec())))
            }
            _ => None,
        })
        .flatten()
        .ok_or_else(|| damaged(stored))
}
