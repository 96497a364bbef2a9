//! Reads: find the value version in the index (under its read lock), then copy the data out
//! of the journal's map (after releasing it). Reads never wait on journal I/O and never block
//! other readers.

use hivelog_index::fold::fold;
use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::op::Op;
use crate::path::{KeyPath, check_value_name};
use crate::store::{Inner, read_index};
use crate::stored::Stored;
use crate::txn::BASE;
use crate::value::Value;

/// Value `name` of the key at `path`, as of `at`.
pub(crate) fn get_by_path(inner: &Inner, path: &str, name: &str, at: Seq) -> Result<Value> {
    let key = KeyPath::parse(path, &inner.principal)?;
    check_value_name(name)?;
    let folded = key.folded();
    let stored = {
        let index = read_index(&inner.index);
        let found = index
            .key_by_path(&folded, at)
            .ok_or_else(|| Error::KeyNotFound {
                path: key.to_string(),
            })?;
        index.value_at(found.node, BASE, &fold(name), at)
    };
    let stored = stored.ok_or_else(|| Error::ValueNotFound {
        path: key.to_string(),
        name: name.to_string(),
    })?;
    read_value(inner, stored)
}

/// The data of a stored value: inline if small, else from its journal record.
#[inline]
pub(crate) fn read_value(inner: &Inner, stored: Stored) -> Result<Value> {
    if let Some(value) = stored.small_value() {
        return Ok(value);
    }
    read_record(inner, stored).map(|(_, value)| value)
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
        .ok_or_else(|| Error::Damaged {
            what: format!(
                "value record at segment {}, offset {}",
                stored.loc.segment, stored.loc.offset
            ),
        })
}
