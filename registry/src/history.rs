//! Reading the journal back as history: what each committed transaction did, with keys named
//! by their paths at that time. `hivelog log` prints it.

use hivelog_index::KeyId;
use hivelog_log::{Rejected, Seq};

use crate::error::Error;
use crate::op::{AuditEvent, Op, decode_descriptor};
use crate::path::KeyPath;
use crate::security::principals::resolve_alias;
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
    /// An audit event: a backup, a restore, a revert, or a change that needed a privilege.
    Audit {
        /// What happened.
        event: AuditEvent,
        /// The key it concerned.
        path: String,
        /// A restore: the source path of the stream. A privilege use: the privilege's
        /// Windows name. Else "".
        source: String,
        /// The sequence number it concerned: a backup's cut, a revert's target, a restored
        /// stream's cut; for a privilege use, its own transaction's.
        seq: Seq,
    },
}

impl HistoryOp {
    /// The kind of change, as `hivelog log --json` names it in its `op` field.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryOp::CreateKey { .. } => "create_key",
            HistoryOp::DeleteKey { .. } => "delete_key",
            HistoryOp::DeleteTree { .. } => "delete_tree",
            HistoryOp::ClearSubtree { .. } => "clear_subtree",
            HistoryOp::SetValue { .. } => "set_value",
            HistoryOp::DeleteValue { .. } => "delete_value",
            HistoryOp::SetSecurity { .. } => "set_security",
            HistoryOp::MarkLink { .. } => "mark_link",
            HistoryOp::SetClass { .. } => "set_class",
            HistoryOp::CreateLayer { .. } => "create_layer",
            HistoryOp::DropLayer { .. } => "drop_layer",
            HistoryOp::Audit { .. } => "audit",
        }
    }

    /// The key the change concerned, `None` for layer changes (they span the registry).
    pub fn path(&self) -> Option<&str> {
        match self {
            HistoryOp::CreateKey { path }
            | HistoryOp::DeleteKey { path }
            | HistoryOp::DeleteTree { path }
            | HistoryOp::ClearSubtree { path }
            | HistoryOp::SetValue { path, .. }
            | HistoryOp::DeleteValue { path, .. }
            | HistoryOp::SetSecurity { path, .. }
            | HistoryOp::MarkLink { path }
            | HistoryOp::SetClass { path, .. }
            | HistoryOp::Audit { path, .. } => Some(path),
            HistoryOp::CreateLayer { .. } | HistoryOp::DropLayer { .. } => None,
        }
    }
}

/// The kinds [`HistoryFilter::kinds`] accepts: every [`HistoryOp::kind`], and the audit
/// events by name (`backup`, `restore`, `revert`, `privilege`, `stage`, `unstage`).
pub const HISTORY_KINDS: [&str; 19] = [
    "create_key",
    "delete_key",
    "delete_tree",
    "clear_subtree",
    "set_value",
    "delete_value",
    "set_security",
    "mark_link",
    "set_class",
    "create_layer",
    "drop_layer",
    "audit",
    "backup",
    "restore",
    "revert",
    "privilege",
    "stage",
    "unstage",
    "parameter",
];

/// Which changes of the history to keep: those of a subtree, by a principal, of some
/// kinds. Every condition set must hold; a transaction with no change left once changes are
/// filtered is dropped.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only changes of this key and its subtree, by path as it was at each transaction's
    /// sequence number (so a key restored, or deleted and created again, under the same
    /// path stays in view). Layer changes concern no key and are left out.
    subtree: Option<KeyPath>,
    /// Only transactions committed by this principal (aliases resolved, case ignored).
    principal: Option<String>,
    /// Only changes of these kinds ([`HISTORY_KINDS`]); empty: every kind.
    kinds: Vec<&'static str>,
}

impl HistoryFilter {
    /// Keeps every change.
    pub fn new() -> HistoryFilter {
        HistoryFilter::default()
    }

    /// Keeps only changes of the key at `path` and its subtree. `caller` is the principal
    /// `HKEY_CURRENT_USER` stands for.
    pub fn subtree(mut self, path: &str, caller: &str) -> Result<HistoryFilter, Error> {
        self.subtree = Some(KeyPath::parse(path, caller)?);
        Ok(self)
    }

    /// Keeps only transactions committed by `principal` (a SID, an alias or a name).
    pub fn principal(mut self, principal: &str) -> HistoryFilter {
        self.principal = Some(resolve_alias(principal).to_string());
        self
    }

    /// Keeps only changes of kind `kind` (this and any other kinds asked for): one of
    /// [`HISTORY_KINDS`], case ignored.
    pub fn kind(mut self, kind: &str) -> Result<HistoryFilter, Error> {
        let known = HISTORY_KINDS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(kind))
            .ok_or_else(|| Error::UnknownHistoryKind {
                kind: kind.to_string(),
                known: HISTORY_KINDS.join(", "),
            })?;
        self.kinds.push(known);
        Ok(self)
    }

    /// `txn` with only the changes the filter keeps, or `None` if none is left.
    pub fn apply(&self, mut txn: HistoryTxn) -> Option<HistoryTxn> {
        if let Some(principal) = &self.principal
            && !resolve_alias(&txn.principal).eq_ignore_ascii_case(principal)
        {
            return None;
        }
        if self.subtree.is_none() && self.kinds.is_empty() {
            // Nothing filters changes: a transaction that made none (its keys were all
            // volatile) is still part of the history.
            return Some(txn);
        }
        txn.ops.retain(|op| self.keeps(op));
        (!txn.ops.is_empty()).then_some(txn)
    }

    fn keeps(&self, op: &HistoryOp) -> bool {
        if let Some(subtree) = &self.subtree {
            let under = op
                .path()
                .and_then(|path| KeyPath::parse(path, "").ok())
                .is_some_and(|path| is_within(path.folded(), subtree.folded()));
            if !under {
                return false;
            }
        }
        self.kinds.is_empty()
            || self.kinds.iter().any(|&kind| {
                kind == op.kind()
                    || matches!(op, HistoryOp::Audit { event, .. } if event.name() == kind)
            })
    }
}

/// Whether folded path `path` is `root` or below it.
fn is_within(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('\\'))
}

/// The path of key `id` as of `at`, or, for a key that transaction `seq` created and
/// deleted itself (at no snapshot at all), as it was inside that transaction; a placeholder
/// naming the id if neither (a record the index no longer knows).
pub(crate) fn path_of(state: &State, id: KeyId, at: Seq, seq: Seq) -> String {
    let node = state.index.node_of(id);
    node.and_then(|node| {
        state
            .index
            .display_path(node, at)
            .or_else(|| state.index.display_path_during(node, seq))
    })
    .unwrap_or_else(|| format!("<key #{id}>"))
}

fn describe(state: &State, op: Op<'_>, seq: Seq) -> Result<HistoryOp, Rejected> {
    let before = seq.saturating_sub(1);
    let layer = |id| state.layers.name_at(id, seq);
    Ok(match op {
        Op::CreateKey { id, .. } => HistoryOp::CreateKey {
            path: path_of(state, id, seq, seq),
        },
        Op::DeleteKey { id } => HistoryOp::DeleteKey {
            path: path_of(state, id, before, seq),
        },
        Op::DeleteTree { id } => HistoryOp::DeleteTree {
            path: path_of(state, id, before, seq),
        },
        Op::ClearSubtree { id } => HistoryOp::ClearSubtree {
            path: path_of(state, id, seq, seq),
        },
        Op::SetValue {
            key,
            layer: id,
            ty,
            name,
            data,
        } => HistoryOp::SetValue {
            path: path_of(state, key, seq, seq),
            layer: layer(id),
            name: name.to_string(),
            value: Value::new(ValueType(ty.0), data.to_vec()),
        },
        Op::DeleteValue {
            key,
            layer: id,
            name,
        } => HistoryOp::DeleteValue {
            path: path_of(state, key, seq, seq),
            layer: layer(id),
            name: name.to_string(),
        },
        Op::SetSecurity { id, descriptor } => HistoryOp::SetSecurity {
            path: path_of(state, id, seq, seq),
            sddl: sddl::format(
                &decode_descriptor(descriptor).map_err(|short| Rejected(short.0.to_string()))?,
            ),
        },
        Op::SetKeyFlags { id, .. } => HistoryOp::MarkLink {
            path: path_of(state, id, seq, seq),
        },
        Op::SetKeyClass { id, class } => HistoryOp::SetClass {
            path: path_of(state, id, seq, seq),
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
    /// The first transaction [`Store::history`] can show: 1, or after a compaction the one
    /// after its cut.
    pub fn history_start(&self) -> Seq {
        match self.inner().retention.oldest() {
            0 => 1,
            oldest => oldest + 1,
        }
    }

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
        // The base a compaction left holds a state, not a change: history starts after it.
        let start = self.history_start();
        if from < start && start > 1 {
            return Err(Error::Compacted {
                seq: from,
                oldest: start,
            }
            .into());
        }
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
