//! Reading the journal back as history: what each committed transaction did, with keys named
//! by their paths at that time. `hivelog log` prints it.

use hivelog_index::KeyId;
use hivelog_log::{Rejected, Seq};

use crate::error::Error;
use crate::op::{AuditEvent, Op, decode_descriptor};
use crate::security::{Privileges, sddl};
use crate::store::{State, Store, read_state};
use crate::value::{Value, ValueType};

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTxn {
    /// Its sequence number.
    pub seq: Seq,
    /// When it committed, nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Who committed it.
    pub principal: String,
    /// What it did, in order.
    pub ops: Vec<HistoryOp>,
}

/// One change of a transaction. Paths are as the keys were named at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOp {
    /// A key was created.
    CreateKey {
        /// Its path.
        path: String,
    },
    /// A key without subkeys was deleted.
    DeleteKey {
        /// Its path.
        path: String,
    },
    /// A key and its subtree were deleted.
    DeleteTree {
        /// Its path.
        path: String,
    },
    /// Everything below a key, and its values, were replaced (restore).
    ClearSubtree {
        /// Its path.
        path: String,
    },
    /// A value was set.
    SetValue {
        /// The key's path.
        path: String,
        /// The layer's name.
        layer: String,
        /// The value name.
        name: String,
        /// The value.
        value: Value,
    },
    /// A value was deleted.
    DeleteValue {
        /// The key's path.
        path: String,
        /// The layer's name.
        layer: String,
        /// The value name.
        name: String,
    },
    /// A key's security descriptor was set.
    SetSecurity {
        /// The key's path.
        path: String,
        /// The new descriptor, as SDDL.
        sddl: String,
    },
    /// A key was made a link (right after its creation).
    MarkLink {
        /// The key's path.
        path: String,
    },
    /// A key's class was set (right after its creation).
    SetClass {
        /// The key's path.
        path: String,
        /// The class.
        class: String,
    },
    /// A layer was created.
    CreateLayer {
        /// Its name.
        name: String,
        /// Its precedence.
        precedence: u16,
    },
    /// A layer was dropped, with every value it held.
    DropLayer {
        /// Its name.
        name: String,
    },
    /// An audit event: a backup, a restore, a revert.
    Audit {
        /// What happened.
        event: AuditEvent,
        /// The key it concerned.
        path: String,
        /// The source path of a restored stream ("" if none).
        source: String,
        /// The sequence number it concerned: a backup's cut, a revert's target.
        seq: Seq,
    },
}

/// The path of key `id` as of `at`, or a placeholder naming the id when it had none then
/// (a key created and deleted by the same transaction).
fn path_of(state: &State, id: KeyId, at: Seq) -> String {
    state
        .index
        .node_of(id)
        .and_then(|node| state.index.display_path(node, at))
        .unwrap_or_else(|| format!("<key #{id}>"))
}

fn describe(state: &State, op: Op<'_>, seq: Seq) -> Result<HistoryOp, Rejected> {
    let before = seq.saturating_sub(1);
    let layer = |id| state.layers.name_at(id, seq);
    Ok(match op {
        Op::CreateKey { id, .. } => HistoryOp::CreateKey {
            path: path_of(state, id, seq),
        },
        Op::DeleteKey { id } => HistoryOp::DeleteKey {
            path: path_of(state, id, before),
        },
        Op::DeleteTree { id } => HistoryOp::DeleteTree {
            path: path_of(state, id, before),
        },
        Op::ClearSubtree { id } => HistoryOp::ClearSubtree {
            path: path_of(state, id, seq),
        },
        Op::SetValue {
            key,
            layer: id,
            ty,
            name,
            data,
        } => HistoryOp::SetValue {
            path: path_of(state, key, seq),
            layer: layer(id),
            name: name.to_string(),
            value: Value::new(ValueType(ty.0), data.to_vec()),
        },
        Op::DeleteValue {
            key,
            layer: id,
            name,
        } => HistoryOp::DeleteValue {
            path: path_of(state, key, seq),
            layer: layer(id),
            name: name.to_string(),
        },
        Op::SetSecurity { id, descriptor } => HistoryOp::SetSecurity {
            path: path_of(state, id, seq),
            sddl: sddl::format(
                &decode_descriptor(descriptor).map_err(|short| Rejected(short.0.to_string()))?,
            ),
        },
        Op::SetKeyFlags { id, .. } => HistoryOp::MarkLink {
            path: path_of(state, id, seq),
        },
        Op::SetKeyClass { id, class } => HistoryOp::SetClass {
            path: path_of(state, id, seq),
            class: class.to_string(),
        },
        Op::CreateLayer { id, name } => HistoryOp::CreateLayer {
            name: name.to_string(),
            precedence: id,
        },
        Op::DropLayer { id } => HistoryOp::DropLayer {
            name: state.layers.name_at(id, before),
        },
        Op::Audit {
            event,
            path,
            source,
            seq: at,
        } => HistoryOp::Audit {
            event,
            path: path.to_string(),
            source: source.to_string(),
            seq: at,
        },
    })
}

impl Store {
    /// Hands every committed transaction with a sequence number in `[from, to]` to `visit`,
    /// in order, verifying each record as it is read. An error from `visit` stops the walk
    /// and is returned as it is. The history shows every key whatever its descriptor, so it
    /// needs SeSecurityPrivilege (as Windows' audit log does).
    pub fn history<E: From<Error>>(
        &self,
        from: Seq,
        to: Seq,
        visit: &mut dyn FnMut(HistoryTxn) -> Result<(), E>,
    ) -> Result<(), E> {
        self.session_ref()
            .require(Privileges::SECURITY, "reading the history")?;
        let inner = self.inner();
        let to = to.min(inner.visible());
        let mut stopped: Option<E> = None;
        let scanned = inner.journal.for_each_txn(from, to, &mut |txn| {
            let ops = {
                let state = read_state(&inner.state);
                txn.ops
                    .iter()
                    .map(|op| {
                        let decoded = Op::decode(op.payload)
                            .map_err(|short| Rejected(short.0.to_string()))?;
                        describe(&state, decoded, txn.seq)
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let entry = HistoryTxn {
                seq: txn.seq,
                time_unix_nanos: txn.commit.time_unix_nanos,
                principal: txn.commit.principal.to_string(),
                ops,
            };
            visit(entry).map_err(|error| {
                stopped = Some(error);
                Rejected("stopped by the caller".into())
            })
        });
        match stopped {
            Some(error) => Err(error),
            None => scanned.map_err(|error| E::from(Error::from(error))),
        }
    }
}
