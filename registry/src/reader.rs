//! Reads: find the key and its value version in the index (under its read lock), check the
//! caller's access against the key's descriptor, then copy the data out of the journal's map
//! (after releasing the lock). Reads never wait on journal I/O and never block other readers.

use std::cell::RefCell;

use hivelog_index::{LayerSel, NodeId};
use hivelog_log::Seq;

use crate::attrs::SdId;
use crate::error::{Error, Result};
use crate::links::locate;
use crate::op::Op;
use crate::path::{KeyPath, fold_path, fold_value_name};
use crate::security::{Access, grant};
use crate::store::{Inner, Session, State, read_state};
use crate::stored::Stored;
use crate::value::{Value, ValueType};

thread_local! {
    /// Scratch space for folding a path and a value name: a point read allocates nothing
    /// but its result.
    static SCRATCH: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// Checks that `session` may do `desired` to a key with descriptor `sd`; `path` names the key
/// in the error (computed only on denial).
#[inline]
pub(crate) fn check_access(
    state: &State,
    session: &Session,
    sd: SdId,
    desired: Access,
    path: impl FnOnce() -> String,
) -> Result<Access> {
    let maximum = match session.grants.get(sd) {
        Some(rights) => rights,
        None => {
            let rights = state.descriptors.maximum_rights(sd, &session.identity);
            session.grants.put(sd, rights);
            rights
        }
    };
    grant(maximum, desired).map_err(|missing| Error::AccessDenied {
        path: path(),
        principal: session.principal().to_string(),
        missing: missing.to_string(),
    })
}

/// How a read picks among layers: the effective value, or one named layer as of `at`.
pub(crate) fn layer_sel(state: &State, layer: Option<&str>, at: Seq) -> Result<LayerSel> {
    match layer {
        None => Ok(LayerSel::Effective),
        Some(name) => Ok(LayerSel::Only(state.layers.require(name, at)?)),
    }
}

/// Where value `name` of the key at `path` is, as of `at`, once the caller's
/// KEY_QUERY_VALUE on the key is checked.
pub(crate) fn stored_by_path(
    inner: &Inner,
    session: &Session,
    path: &str,
    name: &str,
    layer: Option<&str>,
    at: Seq,
) -> Result<Stored> {
    let stored = SCRATCH.with(|scratch| {
        let (folded_path, folded_name) = &mut *scratch.borrow_mut();
        folded_path.clear();
        folded_name.clear();
        fold_path(path, session.principal(), folded_path)?;
        fold_value_name(name, folded_name)?;
        let state = read_state(&inner.state);
        let sel = layer_sel(&state, layer, at)?;
        let found = state
            .index
            .value_by_path(folded_path, folded_name, sel, at)
            .filter(|point| !point.attrs.is_link());
        match found {
            Some(point) => {
                check_access(
                    &state,
                    session,
                    point.attrs.sd,
                    Access::KEY_QUERY_VALUE,
                    || display(session, path),
                )?;
                Ok(point.value)
            }
            None => through_links(&state, session, path, folded_name, sel, at),
        }
    })?;
    stored.ok_or_else(|| Error::ValueNotFound {
        path: display(session, path),
        name: name.to_string(),
    })
}

/// The slow path of a point read: the path was not found as written, or ends at a link.
fn through_links(
    state: &State,
    session: &Session,
    path: &str,
    folded_name: &str,
    sel: LayerSel,
    at: Seq,
) -> Result<Option<Stored>> {
    let key_path = KeyPath::parse(path, session.principal())?;
    let located = locate(state, &key_path, at, true)?.ok_or_else(|| Error::KeyNotFound {
        path: key_path.to_string(),
    })?;
    let attrs = state.index.attrs_at(located, at);
    check_access(state, session, attrs.sd, Access::KEY_QUERY_VALUE, || {
        key_path.to_string()
    })?;
    Ok(state.index.value_at(located, sel, folded_name, at))
}

/// Times a read looks its value up again after a compaction moved the value's record.
const RELOOKUPS_MAX: usize = 4;

/// Looks values up with `find` (under the state's lock) and reads their data with `read`
/// (with it released); looks them up again if `read` found a record missing because a
/// compaction removed, in between, the segment the lookup had found it in: the index names
/// its place in the base by then. Any other miss is damage, reported as such.
pub(crate) fn reading<T, R>(
    inner: &Inner,
    mut find: impl FnMut() -> Result<T>,
    mut read: impl FnMut(T) -> Result<R>,
) -> Result<R> {
    let mut relookups = 0;
    loop {
        let generation = inner.journal.generation();
        let found = find()?;
        match read(found) {
            Err(Error::Damaged { .. })
                if relookups < RELOOKUPS_MAX && inner.journal.generation() != generation =>
            {
                relookups += 1;
            }
            result => return result,
        }
    }
}

/// The value `name` of the key at `path` as of `at` (in `layer` only, if one is named).
pub(crate) fn get(
    inner: &Inner,
    session: &Session,
    path: &str,
    name: &str,
    layer: Option<&str>,
    at: Seq,
) -> Result<Value> {
    reading(
        inner,
        || stored_by_path(inner, session, path, name, layer, at),
        |stored| read_value(inner, stored),
    )
}

/// Value `name` of the key at `node` as `sel` picks it, as of `at`, checking and folding the
/// name in scratch space.
pub(crate) fn value_at(
    state: &State,
    node: NodeId,
    name: &str,
    sel: LayerSel,
    at: Seq,
) -> Result<Option<Stored>> {
    SCRATCH.with(|scratch| {
        let (_, folded_name) = &mut *scratch.borrow_mut();
        folded_name.clear();
        fold_value_name(name, folded_name)?;
        Ok(state.index.value_at(node, sel, folded_name, at))
    })
}

/// A path as error messages show it (the slow path: only when a read fails).
fn display(session: &Session, path: &str) -> String {
    KeyPath::parse(path, session.principal())
        .map_or_else(|_| path.to_string(), |key| key.to_string())
}

/// The data of a stored value: inline if small, else from its journal record (or the
/// volatile table).
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
    if let Some(slot) = stored.volatile_slot() {
        let state = read_state(&inner.state);
        let (_, value) = state.volatile.get(slot).ok_or_else(|| damaged(stored))?;
        return Ok(visit(value.ty, &value.data));
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

/// The name (as written) and data of a stored value, from its journal record (or the volatile
/// table).
pub(crate) fn read_record(inner: &Inner, stored: Stored) -> Result<(String, Value)> {
    if let Some(slot) = stored.volatile_slot() {
        let state = read_state(&inner.state);
        let (name, value) = state.volatile.get(slot).ok_or_else(|| damaged(stored))?;
        return Ok((name.to_string(), value.clone()));
    }
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
