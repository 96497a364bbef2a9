//! The commit pipeline: resolving a transaction's intents against the newest state under the
//! journal's writer lock. Paths become key ids (through links), the caller's access is
//! checked against each key's descriptor, each change is checked (the key exists, has no
//! subkeys, ...), journaled and applied to the index in order, so later intents see earlier
//! ones. Any failure, a denial included, undoes the index changes and writes nothing.
//!
//! Changes to volatile keys reach the index only. A transaction that changed nothing but
//! volatile keys still takes the next sequence number (the journal gets its Commit record with
//! no ops), so sequence numbers stay gap-free and snapshots keep their meaning.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hivelog_index::fold::{fold, fold_into};
use hivelog_index::{KeyId, LayerId, NodeId};
use hivelog_log::{Seq, TxnBuilder, unix_nanos_now};

use crate::attrs::{ClassId, KeyAttrs, KeyFlags, SdId};
use crate::error::{Error, Result};
use crate::layers::BASE;
use crate::links::{LINK_VALUE_NAME, hop, link_value, target_of};
use crate::op::{AuditEvent, JOURNALED_KEY_FLAGS, Op, encode_descriptor, set_value_data_at};
use crate::path::{Hive, KeyPath};
use crate::reader::check_access;
use crate::security::principals::resolve_alias;
use crate::security::{
    Access, Privileges, Sddl, SecurityDescriptor, machine_default, user_home, users_default,
    with_explicit,
};
use crate::store::{Inner, Session, State, write_state};
use crate::stored::Stored;
use crate::value::Value;
use crossbeam_utils::sync::{ShardedLock, ShardedLockWriteGuard};

use crate::txn::{Create, Intent, LayerName, Target, rights_to_change};
use crate::watch::{WatchEvent, WatchEventKind};

/// Resolves, journals, applies and commits `intents` as one transaction of `session`.
pub(crate) fn commit(inner: &Inner, session: &Session, intents: &[Intent]) -> Result<Seq> {
    commit_traced(inner, session, intents, 0).map_err(|failed| failed.error)
}

/// A commit that failed: the error, and the index of the intent it came from (`None`: the
/// journal failed), so that a caller can say which of its changes was refused (a `.reg`
/// import names the line).
pub(crate) struct Failed {
    pub intent: Option<usize>,
    pub error: Error,
}

impl From<hivelog_log::LogError> for Failed {
    fn from(error: hivelog_log::LogError) -> Failed {
        Failed {
            intent: None,
            error: error.into(),
        }
    }
}

/// [`commit`], naming the intent that failed. `journal_bytes` is the caller's estimate of
/// the records the transaction writes (0: small): one too big for an ordinary segment starts
/// in a segment of its own sized to it, rather than being resolved once, found not to fit,
/// and resolved again.
pub(crate) fn commit_traced(
    inner: &Inner,
    session: &Session,
    intents: &[Intent],
    journal_bytes: u64,
) -> Result<Seq, Failed> {
    if inner.read_only {
        return Err(Failed {
            intent: None,
            error: Error::ReadOnly,
        });
    }
    let reconfigure = crate::parameters::touches(intents);
    let mut builder = inner.journal.begin()?;
    let seq = builder.seq();
    // A restore is one self-contained run of records in a segment of its own (DESIGN.md),
    // about as large as its stream.
    let restoring: u64 = intents
        .iter()
        .filter_map(|intent| match intent {
            Intent::Restore { backup, .. } => Some(backup.info.bytes),
            _ => None,
        })
        .sum();
    if restoring > 0 {
        builder.isolate(restoring + RESTORE_SLACK_BYTES)?;
    } else if journal_bytes > inner.journal.segment_size_bytes() {
        builder.isolate(journal_bytes)?;
    }
    loop {
        let mut state = StateGuard::lock(inner);
        state.index.begin(seq);
        // A large transaction (an import) makes at least a change per intent: its undo log
        // is grown once, not by doublings that copy it all with the state locked.
        if intents.len() > UNDO_RESERVED_FROM {
            state.index.reserve_changes(intents.len());
        }
        let mut resolver = Resolver {
            inner,
            session,
            state: &mut state,
            builder: &mut builder,
            seq,
            next_id: inner.next_key_id.load(Ordering::Relaxed),
            next_volatile_id: inner.next_volatile_id.load(Ordering::Relaxed),
            changed: false,
            bypass: false,
            last_target: None,
            folded_name: String::new(),
            volatile_events: Vec::new(),
        };
        let resolved = intents
            .iter()
            .enumerate()
            .try_for_each(|(i, intent)| resolver.apply(intent).map_err(|error| (i, error)));
        let (changed, next_id, next_volatile_id) = (
            resolver.changed,
            resolver.next_id,
            resolver.next_volatile_id,
        );
        let volatile_events = resolver.volatile_events;
        match resolved {
            Err((i, error)) => {
                rollback(&mut state, seq);
                return Err(Failed {
                    intent: Some(i),
                    error,
                });
            }
            Ok(()) if !changed => {
                rollback(&mut state, seq);
                return Ok(inner.visible());
            }
            Ok(()) if builder.fits() => {
                state.index.commit();
                inner.watches.volatile_events(seq, volatile_events);
                inner.next_key_id.store(next_id, Ordering::Relaxed);
                inner
                    .next_volatile_id
                    .store(next_volatile_id, Ordering::Relaxed);
                break;
            }
            Ok(()) => {
                // The transaction outgrew the active segment: undo, start a new segment, and
                // resolve again (locations change; a transaction never spans segments).
                rollback(&mut state, seq);
                drop(state);
                builder.rollover()?;
            }
        }
    }
    // The state lock is released: readers go on at the old snapshot while the journal write
    // (and, by policy, the sync) happens. The transaction becomes visible only after.
    let committed = builder.commit(session.principal(), unix_nanos_now())?;
    debug_assert_eq!(committed, seq);
    inner.publish(committed);
    inner.watches.committed();
    if reconfigure {
        // The commit stands whatever happens here: a failure to read the parameters back
        // or to audit a rejection is the journal failing, which the next operation reports.
        let _ = crate::parameters::reload(inner, committed, true);
    }
    Ok(committed)
}

fn rollback(state: &mut State, seq: Seq) {
    state.index.rollback();
    state.layers.rollback(seq);
}

/// Transactions with more intents than this reserve their undo log up front.
const UNDO_RESERVED_FROM: usize = 1 << 14;

/// Room a restore's segment keeps beyond its stream's length (the tombstone, the audit
/// record, keys created above the target).
const RESTORE_SLACK_BYTES: u64 = 1 << 16;

/// How long a long transaction leaves the state lock to readers at each turn.
const READERS_TURN: std::time::Duration = std::time::Duration::from_micros(20);

/// The state's write lock as a commit holds it: a long transaction (a restore) lets go of it
/// between steps ([`StateGuard::let_readers_in`]) so that readers wait for one step, not for
/// the whole apply. That is sound because every change an apply makes to the index is
/// versioned by the transaction's sequence number, which readers do not see before it is
/// published, and no other writer can come in: the transaction holds the journal's writer
/// lock from `begin` to its commit.
pub(crate) struct StateGuard<'a> {
    lock: &'a ShardedLock<State>,
    /// `None` only inside `let_readers_in`.
    guard: Option<ShardedLockWriteGuard<'a, State>>,
}

impl<'a> StateGuard<'a> {
    /// Takes the lock for a commit, which background work (compaction, checkpoints) lets
    /// go first: see [`Inner::yield_to_committers`].
    fn lock(inner: &'a Inner) -> StateGuard<'a> {
        inner.committers_waiting.fetch_add(1, Ordering::SeqCst);
        let guard = write_state(&inner.state);
        inner.committers_waiting.fetch_sub(1, Ordering::SeqCst);
        StateGuard {
            lock: &inner.state,
            guard: Some(guard),
        }
    }

    /// Releases the lock and takes it again, after the readers waiting for it had their turn.
    /// A yield is not enough: the lock is not fair, and a reader woken on another core loses
    /// the race to a writer that takes the lock straight back. A short sleep lets it in.
    pub(crate) fn let_readers_in(&mut self) {
        self.guard = None;
        std::thread::sleep(READERS_TURN);
        self.guard = Some(write_state(self.lock));
    }
}

impl Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.guard
            .as_deref()
            .expect("the state lock is held between steps")
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard
            .as_deref_mut()
            .expect("the state lock is held between steps")
    }
}

pub(crate) struct Resolver<'a, 'j> {
    inner: &'a Inner,
    pub(crate) session: &'a Session,
    pub(crate) state: &'a mut StateGuard<'j>,
    builder: &'a mut TxnBuilder<'j>,
    /// The transaction's sequence number: reads at it see the changes made so far.
    pub(crate) seq: Seq,
    next_id: KeyId,
    next_volatile_id: KeyId,
    /// Whether anything changed (journaled or not).
    changed: bool,
    /// Access checks are off: a restore, whose privilege was checked before it began,
    /// writes every key whatever its descriptor.
    bypass: bool,
    /// The last path target resolved: consecutive changes to one key resolve it once.
    last_target: Option<(Arc<KeyPath>, NodeId)>,
    /// Scratch space for folding value names.
    pub(crate) folded_name: String,
    /// Changes to volatile keys, for the watches.
    volatile_events: Vec<WatchEvent>,
}

impl Resolver<'_, '_> {
    pub(crate) fn push(&mut self, op: Op<'_>) -> Result<hivelog_log::Loc> {
        let loc = self.builder.push(|buf| op.encode(buf))?;
        self.changed = true;
        Ok(loc)
    }

    pub(crate) fn attrs(&self, node: NodeId) -> KeyAttrs {
        self.state.index.attrs_now(node)
    }

    /// The key `target` names now, following links (and the last one too unless the intent
    /// acts on a link itself).
    fn resolve(&mut self, target: &Target, follow_last: bool) -> Result<NodeId> {
        match target {
            Target::Path(path) => {
                if let Some((last, node)) = &self.last_target
                    && Arc::ptr_eq(last, path)
                    && self.state.index.is_alive(*node)
                {
                    return Ok(*node);
                }
                let located = crate::links::locate(self.state, path, self.seq, follow_last)?
                    .ok_or_else(|| Error::KeyNotFound {
                        path: path.to_string(),
                    })?;
                self.last_target = Some((path.clone(), located));
                Ok(located)
            }
            Target::Id { id, path } => self
                .state
                .index
                .node_of(*id)
                .filter(|&node| self.state.index.alive_id(node) == Some(*id))
                .ok_or_else(|| Error::KeyDeleted {
                    path: path.to_string(),
                }),
        }
    }

    /// Checks the caller may do `desired` to `node`, unless the target is a handle's (whose
    /// rights were checked when it was opened).
    fn check(&self, target: &Target, node: NodeId, desired: Access) -> Result<()> {
        if let Target::Path(path) = target {
            self.check_node(node, desired, || path.to_string())?;
        }
        Ok(())
    }

    fn check_node(
        &self,
        node: NodeId,
        desired: Access,
        path: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.bypass {
            return Ok(());
        }
        check_access(self.state, self.session, self.attrs(node).sd, desired, path).map(drop)
    }

    pub(crate) fn alive_id(&self, node: NodeId) -> KeyId {
        self.state
            .index
            .alive_id(node)
            .expect("a resolved key is alive in this transaction")
    }

    fn not_hive_root(&self, target: &Target) -> Result<()> {
        if target.path().is_hive_root() {
            return Err(Error::HiveRoot {
                path: target.path().to_string(),
            });
        }
        Ok(())
    }

    fn apply(&mut self, intent: &Intent) -> Result<()> {
        match intent {
            Intent::Require(target) => self.resolve(target, true).map(drop),
            Intent::CreateKey { path, options } => self.create_key(path, options),
            Intent::CreateHive(hive) => self.create_hive(*hive),
            Intent::DeleteKey(target) => self.delete_key(target),
            Intent::DeleteTree(target) => self.delete_tree(target),
            Intent::SetValue {
                target,
                layer,
                name,
                value,
            } => self.set_value(target, layer, name, value),
            Intent::DeleteValue {
                target,
                layer,
                name,
            } => self.delete_value(target, layer, name),
            Intent::SetSecurity { target, change } => self.set_security(target, change),
            Intent::CreateLayer { name, precedence } => self.create_layer(name, *precedence),
            Intent::DropLayer { name } => self.drop_layer(name),
            Intent::IfExists(change) => match self.apply(change) {
                Err(Error::KeyNotFound { .. } | Error::ValueNotFound { .. }) => Ok(()),
                applied => applied,
            },
            Intent::Restore {
                target,
                backup,
                event,
                source,
            } => {
                self.bypass = true;
                let restored = self.restore(target, backup, *event, source);
                self.bypass = false;
                restored
            }
            Intent::Audit {
                event,
                path,
                source,
                seq,
            } => self
                .push(Op::Audit {
                    event: *event,
                    path,
                    source,
                    seq: *seq,
                })
                .map(drop),
        }
    }

    fn delete_key(&mut self, target: &Target) -> Result<()> {
        self.not_hive_root(target)?;
        let node = self.resolve(target, false)?;
        self.check(target, node, Access::DELETE)?;
        if self.state.index.has_alive_children(node) {
            return Err(Error::HasSubkeys {
                path: target.path().to_string(),
            });
        }
        if self.attrs(node).is_volatile() {
            self.volatile_event(node, WatchEventKind::KeyDeleted);
        } else {
            self.push(Op::DeleteKey {
                id: self.alive_id(node),
            })?;
        }
        self.state.index.delete_key(node);
        self.changed = true;
        Ok(())
    }

    fn delete_tree(&mut self, target: &Target) -> Result<()> {
        self.not_hive_root(target)?;
        let node = self.resolve(target, false)?;
        if let Target::Path(path) = target {
            // DELETE on every key that goes, as Windows' RegDeleteTree needs.
            for key in std::iter::once(node).chain(self.state.index.live_subtree(node)) {
                self.check_node(key, Access::DELETE, || {
                    let relative = self.state.index.folded_path(key);
                    if key == node {
                        path.to_string()
                    } else {
                        format!("{path} (below it: {relative})")
                    }
                })?;
            }
        }
        if self.attrs(node).is_volatile() {
            self.volatile_event(node, WatchEventKind::KeyDeleted);
        } else {
            self.push(Op::DeleteTree {
                id: self.alive_id(node),
            })?;
        }
        self.state.index.delete_tree(node);
        self.changed = true;
        Ok(())
    }

    fn create_hive(&mut self, hive: Hive) -> Result<()> {
        let index = &self.state.index;
        let root = index.root();
        let existing = index.find(KeyPath::hive_root(hive).folded());
        if existing.is_some_and(|node| index.is_alive(node)) {
            return Ok(());
        }
        let descriptor = match hive {
            Hive::Machine => machine_default(),
            Hive::Users => users_default(),
        };
        let id = self.new_id(false);
        self.push(Op::CreateKey {
            id,
            parent: 0,
            name: hive.name(),
        })?;
        let creator = self.session.principal().to_string();
        let parent_sd = self.attrs(root).sd;
        let inherited = self.state.descriptors.inherit(parent_sd, &creator)?;
        let node = self.state.index.create_key(
            root,
            hive.name(),
            id,
            KeyAttrs {
                sd: inherited,
                ..KeyAttrs::default()
            },
        );
        self.set_descriptor(node, descriptor)
    }

    /// Journals and applies `descriptor` as the descriptor of `node`.
    pub(crate) fn set_descriptor(
        &mut self,
        node: NodeId,
        descriptor: SecurityDescriptor,
    ) -> Result<()> {
        descriptor.validate()?;
        let attrs = self.attrs(node);
        if attrs.is_volatile() {
            self.volatile_event(node, WatchEventKind::SecurityChanged);
        } else {
            let encoded = encode_descriptor(&descriptor);
            self.push(Op::SetSecurity {
                id: self.alive_id(node),
                descriptor: &encoded,
            })?;
        }
        let sd = self.state.descriptors.intern(descriptor)?;
        self.state.index.set_attrs(node, KeyAttrs { sd, ..attrs });
        self.changed = true;
        Ok(())
    }

    /// Notes a change to volatile key `node` for the watches, which cannot read it from the
    /// journal (nothing while no watch exists). A key's deletion is noted before it goes.
    fn volatile_event(&mut self, node: NodeId, kind: WatchEventKind) {
        if !self.inner.watches.any() {
            return;
        }
        let path = self
            .state
            .index
            .display_path(node, self.seq)
            .unwrap_or_default();
        self.volatile_events.push(WatchEvent {
            seq: self.seq,
            path: path.into(),
            kind,
        });
    }

    pub(crate) fn new_id(&mut self, volatile: bool) -> KeyId {
        let next = if volatile {
            &mut self.next_volatile_id
        } else {
            &mut self.next_id
        };
        let id = *next;
        *next += 1;
        id
    }

    /// Creates the key at `path` and the missing keys above it, following links on the way.
    pub(crate) fn create_key(&mut self, path: &KeyPath, options: &Create) -> Result<()> {
        let mut current = Cow::Borrowed(path);
        let mut hops = 0;
        'hop: loop {
            let hive = KeyPath::hive_root(current.hive());
            let mut folded = hive.folded().to_string();
            let mut node = self
                .state
                .index
                .find(&folded)
                .filter(|&node| self.state.index.is_alive(node))
                .ok_or_else(|| Error::Damaged {
                    what: format!("hive {}", current.hive().name()),
                })?;
            let names: Vec<&str> = current.names().collect();
            for (i, name) in names.iter().enumerate() {
                let last = i + 1 == names.len();
                folded.push('\\');
                fold_into(name, &mut folded);
                let existing = self
                    .state
                    .index
                    .find(&folded)
                    .filter(|&node| self.state.index.is_alive(node));
                let Some(existing) = existing else {
                    node = self.create_child(node, name, &folded, last, options)?;
                    continue;
                };
                if last && options.link.is_some() {
                    return Err(Error::KeyExists {
                        path: current.to_string(),
                    });
                }
                if !self.attrs(existing).is_link() {
                    node = existing;
                    continue;
                }
                hop(&mut hops, path)?;
                let link = self.display_node(existing);
                let target = target_of(self.state, self.alive_id(existing), &link)?;
                let next = target.join(&names[i + 1..].join("\\"))?;
                current = Cow::Owned(next);
                continue 'hop;
            }
            return Ok(());
        }
    }

    /// Creates key `name` under `parent` (at folded path `folded`).
    fn create_child(
        &mut self,
        parent: NodeId,
        name: &str,
        folded: &str,
        last: bool,
        options: &Create,
    ) -> Result<NodeId> {
        let parent_attrs = self.attrs(parent);
        let display = || self.display(parent, name);
        if parent_attrs.is_volatile() && !options.volatile {
            return Err(Error::VolatileParent {
                path: display(),
                parent: self.display_node(parent),
            });
        }
        let link = options.link.as_ref().filter(|_| last);
        let creator = self.session.principal();
        let index = &self.state.index;
        let under_users =
            index.parent(parent) == index.root() && index.folded_path(parent) == "USERS";
        let own_home = under_users && fold(creator) == fold(name);
        if !own_home {
            let mut desired = Access::KEY_CREATE_SUB_KEY;
            if link.is_some() {
                desired = desired.union(Access::KEY_CREATE_LINK);
            }
            self.check_node(parent, desired, || self.display_node(parent))?;
        }
        let inherited = self.state.descriptors.inherit(parent_attrs.sd, creator)?;
        let creator = creator.to_string();
        let explicit = if own_home {
            Some(user_home(&creator))
        } else if last && let Some(security) = &options.security {
            let parent_sd = self.state.descriptors.get(parent_attrs.sd);
            Some(with_explicit(security.clone(), parent_sd, &creator))
        } else {
            None
        };
        let mut flags = KeyFlags::default();
        if options.volatile {
            flags = flags.with(KeyFlags::VOLATILE);
        }
        if link.is_some() {
            flags = flags.with(KeyFlags::LINK);
        }
        let class = options.class.as_deref().filter(|_| last);
        let id = self.new_id(options.volatile);
        if !options.volatile {
            let parent_id = self.alive_id(parent);
            self.push(Op::CreateKey {
                id,
                parent: parent_id,
                name,
            })?;
            if flags.0 & JOURNALED_KEY_FLAGS != 0 {
                self.push(Op::SetKeyFlags {
                    id,
                    flags: flags.0 & JOURNALED_KEY_FLAGS,
                })?;
            }
            if let Some(class) = class {
                self.push(Op::SetKeyClass { id, class })?;
            }
        }
        let class = match class {
            Some(class) => self.state.classes.intern(class)?,
            None => ClassId::default(),
        };
        let attrs = KeyAttrs {
            sd: inherited,
            class,
            flags,
        };
        let node = self.state.index.create_key(parent, name, id, attrs);
        debug_assert_eq!(self.state.index.find(folded), Some(node));
        self.changed = true;
        if options.volatile {
            self.volatile_event(node, WatchEventKind::KeyCreated);
        }
        if let Some(descriptor) = explicit {
            self.set_descriptor(node, descriptor)?;
        }
        if let Some(target) = link {
            self.state.link_targets.insert(id, target.clone());
            self.state.links = true;
            let value = link_value(target);
            self.write_value(node, BASE, LINK_VALUE_NAME, &fold(LINK_VALUE_NAME), &value)?;
        }
        Ok(node)
    }

    pub(crate) fn hive_root(&self, hive: Hive) -> NodeId {
        self.state
            .index
            .find(KeyPath::hive_root(hive).folded())
            .expect("the hives exist")
    }

    pub(crate) fn display_node(&self, node: NodeId) -> String {
        self.state
            .index
            .display_path(node, self.seq)
            .unwrap_or_else(|| self.state.index.folded_path(node).to_string())
    }

    fn display(&self, parent: NodeId, name: &str) -> String {
        format!("{}\\{name}", self.display_node(parent))
    }

    fn layer(&self, layer: &LayerName) -> Result<LayerId> {
        match layer {
            None => Ok(BASE),
            Some(name) => self.state.layers.require(name, self.seq),
        }
    }

    fn set_value(
        &mut self,
        target: &Target,
        layer: &LayerName,
        name: &str,
        value: &Value,
    ) -> Result<()> {
        let node = self.resolve(target, true)?;
        self.check(target, node, Access::KEY_SET_VALUE)?;
        let layer = self.layer(layer)?;
        let mut folded = std::mem::take(&mut self.folded_name);
        folded.clear();
        fold_into(name, &mut folded);
        let written = self.write_value(node, layer, name, &folded, value);
        self.folded_name = folded;
        written
    }

    /// Writes value `name` (folded: `folded`) of `node` in `layer`: journaled, or kept in the
    /// volatile table for a volatile key.
    fn write_value(
        &mut self,
        node: NodeId,
        layer: LayerId,
        name: &str,
        folded: &str,
        value: &Value,
    ) -> Result<()> {
        // An existing value keeps the name as first written (case-preserving, as Windows).
        let existing = self.state.index.value_now(node, layer, folded);
        let written: Cow<'_, str> = match existing {
            Some(stored) => Cow::Owned(self.written_name(stored, folded)?),
            None => Cow::Borrowed(name),
        };
        let stored = if self.attrs(node).is_volatile() {
            let kind = WatchEventKind::ValueSet {
                layer: self.state.layers.name_at(layer, self.seq).into(),
                name: written.as_ref().into(),
            };
            self.volatile_event(node, kind);
            let slot = self.state.volatile.push(&written, value.clone())?;
            Stored::volatile(slot, value)
        } else {
            let key = self.alive_id(node);
            let loc = self.push(Op::SetValue {
                key,
                layer,
                ty: value.ty,
                name: &written,
                data: &value.data,
            })?;
            let data_at = set_value_data_at(written.len());
            Stored::new(loc, value.ty, &value.data, data_at)
        };
        self.state.index.set_value(node, layer, folded, stored);
        self.changed = true;
        Ok(())
    }

    /// The name as written in the record of an existing value: one pushed earlier in this
    /// transaction, one already in the journal, or one in the volatile table.
    fn written_name(&self, stored: Stored, folded: &str) -> Result<String> {
        if let Some(slot) = stored.volatile_slot()
            && let Some((name, _)) = self.state.volatile.get(slot)
        {
            return Ok(name.to_string());
        }
        let decode = |payload: &[u8]| match Op::decode(payload) {
            Ok(Op::SetValue { name, .. }) => Some(name.to_string()),
            _ => None,
        };
        let name = match self.builder.pushed(stored.loc) {
            Some(payload) => decode(payload),
            None => self.inner.journal.with_op(stored.loc, decode).flatten(),
        };
        name.ok_or_else(|| Error::Damaged {
            what: format!("the record of value {folded:?}"),
        })
    }

    fn delete_value(&mut self, target: &Target, layer: &LayerName, name: &str) -> Result<()> {
        let node = self.resolve(target, true)?;
        self.check(target, node, Access::KEY_SET_VALUE)?;
        let layer_id = self.layer(layer)?;
        let folded = fold(name);
        let Some(existing) = self.state.index.value_now(node, layer_id, &folded) else {
            return Err(Error::ValueNotFound {
                path: target.path().to_string(),
                name: name.to_string(),
            });
        };
        if self.attrs(node).is_volatile() {
            let kind = WatchEventKind::ValueDeleted {
                layer: self.state.layers.name_at(layer_id, self.seq).into(),
                name: self.written_name(existing, &folded)?.into(),
            };
            self.volatile_event(node, kind);
        } else {
            // History names the value as it was written, whatever case the delete used.
            let written = self.written_name(existing, &folded)?;
            let key = self.alive_id(node);
            self.push(Op::DeleteValue {
                key,
                layer: layer_id,
                name: &written,
            })?;
        }
        self.state.index.delete_value(node, layer_id, &folded);
        self.changed = true;
        Ok(())
    }

    fn set_security(&mut self, target: &Target, change: &Sddl) -> Result<()> {
        let node = self.resolve(target, true)?;
        self.check(target, node, rights_to_change(change))?;
        let sd = self.attrs(node).sd;
        let current = self.state.descriptors.get(sd);
        if let Some(owner) = &change.owner
            && *owner != current.owner
        {
            let owner = owner.clone();
            if self.may_assign_owner(&owner, target)? {
                self.audit_privilege(Privileges::RESTORE, target)?;
            }
            if self.took_ownership(sd) {
                self.audit_privilege(Privileges::TAKE_OWNERSHIP, target)?;
            }
        }
        let descriptor = self.state.descriptors.get(sd).apply(change);
        self.set_descriptor(node, descriptor)
    }

    /// A caller may make itself, or a group it is in, the owner; anyone else needs the
    /// restore privilege (as on Windows). `Ok(true)`: the privilege was used.
    fn may_assign_owner(&self, owner: &str, target: &Target) -> Result<bool> {
        let caller = &self.session.caller;
        let owner = resolve_alias(owner);
        let is_self = resolve_alias(&caller.principal) == owner
            || caller
                .groups
                .iter()
                .any(|group| resolve_alias(group) == owner);
        if is_self {
            return Ok(false);
        }
        self.session.require(
            Privileges::RESTORE,
            &format!("making {owner} the owner of {}", target.path()),
        )?;
        Ok(true)
    }

    /// Whether WRITE_OWNER on descriptor `sd` came from SeTakeOwnershipPrivilege alone: the
    /// descriptor itself would not have granted it. Asked only once the access check passed.
    fn took_ownership(&self, sd: SdId) -> bool {
        if self.bypass
            || !self
                .session
                .identity
                .privileges
                .contains(Privileges::TAKE_OWNERSHIP)
        {
            return false;
        }
        let mut plain = self.session.identity.clone();
        plain.privileges = Privileges::NONE;
        !self
            .state
            .descriptors
            .maximum_rights(sd, &plain)
            .contains(Access::WRITE_OWNER)
    }

    /// Records in the transaction that a change of `target` needed `privilege`, for the
    /// audit trail (`hivelog audit`).
    fn audit_privilege(&mut self, privilege: Privileges, target: &Target) -> Result<()> {
        let path = target.path().to_string();
        let name = privilege.to_string();
        let seq = self.seq;
        self.push(Op::Audit {
            event: AuditEvent::Privilege,
            path: &path,
            source: &name,
            seq,
        })
        .map(drop)
    }

    /// Layers span the whole registry: creating or dropping one needs full control of the
    /// `Machine` hive (by default the system and administrators).
    fn check_layer_rights(&self) -> Result<()> {
        let machine = self.hive_root(Hive::Machine);
        self.check_node(machine, Access::KEY_ALL_ACCESS, || {
            "Machine (needed to create or drop a layer)".to_string()
        })
    }

    fn create_layer(&mut self, name: &str, precedence: u16) -> Result<()> {
        self.check_layer_rights()?;
        self.state.layers.check_new(name, precedence, self.seq)?;
        self.push(Op::CreateLayer {
            id: precedence,
            name,
        })?;
        self.state.layers.create(precedence, name, self.seq);
        Ok(())
    }

    fn drop_layer(&mut self, name: &str) -> Result<()> {
        self.check_layer_rights()?;
        let id = self.state.layers.require(name, self.seq)?;
        self.state.layers.check_drop(id, self.seq)?;
        self.push(Op::DropLayer { id })?;
        self.state.index.delete_layer(id);
        self.state.layers.drop_layer(id, self.seq);
        Ok(())
    }
}
