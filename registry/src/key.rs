//! Key handles: reads and writes of one key, as `winreg`'s `RegKey` offers them, with the
//! rights granted when the handle was opened (as a Windows key handle has them).

use std::cmp::Ordering;
use std::sync::Arc;

use hivelog_index::fold::{cmp_utf16, fold};
use hivelog_index::{KeyId, LayerSel, NodeId};
use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::links::locate;
use crate::path::{ClassesPath, KeyPath, check_value_name};
use crate::reader::{check_access, layer_sel, read_record, read_value, reading, value_at};
use crate::retention::Pinned;
use crate::security::{Access, Sddl, SecurityDescriptor};
use crate::store::{Inner, Session, State, read_state};
use crate::stored::Stored;
use crate::txn::{self, CreateOptions, Intent, Target, set_value_intent};
use crate::value::{FromRegValue, ToRegValue, Value};
use crate::watch::{Scope, Watch, WatchFilter, Watches};

/// An open key.
///
/// A handle names one key: if that key is deleted, operations through the handle fail with
/// [`Error::KeyDeleted`], even if a new key is later created at the same path. A handle from
/// [`crate::Store::open_key`] reads the newest committed state at each call; one from a
/// [`crate::Snapshot`] reads that snapshot and refuses writes. Each operation needs a right
/// the handle was granted at open (`KEY_QUERY_VALUE` to read values, `KEY_SET_VALUE` to write
/// them, ...), as on Windows; a change of the key's descriptor later does not change a handle.
#[derive(Clone)]
pub struct Key {
    inner: Arc<Inner>,
    session: Arc<Session>,
    path: Arc<KeyPath>,
    id: KeyId,
    node: NodeId,
    /// The snapshot the handle reads (pinned, so a compaction keeps it readable), or `None`
    /// for a live handle.
    at: Option<Pinned>,
    granted: Access,
    /// Opened through `HKEY_CLASSES_ROOT`: this handle is the user's copy where it exists
    /// (else the machine's), and reads merge in the machine's copy when both exist.
    classes: Option<Arc<Classes>>,
}

struct Classes {
    path: ClassesPath,
    /// The machine's copy, when this handle is the user's and the machine has one too.
    machine: Option<Key>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("path", &self.path.to_string())
            .field("id", &self.id)
            .field("at", &self.at)
            .field("granted", &self.granted)
            .finish()
    }
}

/// One layer's version of a value, as [`Key::value_stack`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayeredValue {
    /// The layer's name.
    pub layer: String,
    /// The layer's precedence.
    pub precedence: u16,
    /// The value in that layer.
    pub value: Value,
}

impl Key {
    /// Opens the key at `path` as of `at` (the newest state if `None`), asking for `access`;
    /// a link at the end of the path is followed unless `open_link` (which opens the link
    /// itself, as creating one does).
    pub(crate) fn open(
        inner: Arc<Inner>,
        session: Arc<Session>,
        path: &KeyPath,
        access: Access,
        at: Option<Pinned>,
        open_link: bool,
    ) -> Result<Key> {
        let seq = at.as_ref().map_or_else(|| inner.visible(), |at| at.seq);
        let (id, node, granted) = {
            let state = read_state(&inner.state);
            let not_found = || Error::KeyNotFound {
                path: path.to_string(),
            };
            let located = locate(&state, path, seq, !open_link)?.ok_or_else(not_found)?;
            let key = state.index.key_at(located, seq).ok_or_else(not_found)?;
            let attrs = state.index.attrs_at(located, seq);
            let granted = check_access(&state, &session, attrs.sd, access, || path.to_string())?;
            (key.id, located, granted)
        };
        Ok(Key {
            inner,
            session,
            path: Arc::new(path.clone()),
            id,
            node,
            at,
            granted,
            classes: None,
        })
    }

    /// Opens `classes`, the merged view: the user's copy and the machine's, whichever exist.
    pub(crate) fn open_classes(
        inner: Arc<Inner>,
        session: Arc<Session>,
        classes: &ClassesPath,
        access: Access,
        at: Option<Pinned>,
    ) -> Result<Key> {
        let open = |path: &KeyPath, access| match Key::open(
            inner.clone(),
            session.clone(),
            path,
            access,
            at.clone(),
            false,
        ) {
            Ok(key) => Ok(Some(key)),
            Err(Error::KeyNotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        };
        let (mut primary, machine) = match open(&classes.user, access)? {
            // The user's copy takes the writes; the machine's only fills in reads, so it is
            // opened for the reading part of the request, and left out if even that is denied.
            Some(user) => {
                let reading = Access(access.map_generic().0 & Access::KEY_READ.0);
                let machine = open(&classes.machine, reading).or_else(|error| match error {
                    Error::AccessDenied { .. } => Ok(None),
                    error => Err(error),
                })?;
                (user, machine)
            }
            None => match open(&classes.machine, access)? {
                Some(machine) => (machine, None),
                None => {
                    return Err(Error::KeyNotFound {
                        path: classes.windows(),
                    });
                }
            },
        };
        primary.classes = Some(Arc::new(Classes {
            path: classes.clone(),
            machine,
        }));
        Ok(primary)
    }

    /// The machine's copy merged into this handle's reads, if any.
    fn machine_copy(&self) -> Option<&Key> {
        self.classes
            .as_ref()
            .and_then(|classes| classes.machine.as_ref())
    }

    /// The path of the key this handle writes to (for a handle opened through
    /// `HKEY_CLASSES_ROOT`, the user's or the machine's copy).
    pub fn path(&self) -> &KeyPath {
        &self.path
    }

    /// The path as `reg` prints it: `HKEY_LOCAL_MACHINE\...`, or `HKEY_CLASSES_ROOT\...`
    /// for a handle opened through the merged view.
    pub fn windows_path(&self) -> String {
        match &self.classes {
            Some(classes) => classes.path.windows(),
            None => self.path.windows(),
        }
    }

    /// The key's stable id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The snapshot this handle reads, or `None` for a live handle.
    pub fn snapshot_seq(&self) -> Option<Seq> {
        self.at.as_ref().map(|at| at.seq)
    }

    /// The rights the handle was granted when it was opened.
    pub fn granted(&self) -> Access {
        self.granted
    }

    fn seq(&self) -> Seq {
        self.at
            .as_ref()
            .map_or_else(|| self.inner.visible(), |at| at.seq)
    }

    /// Watches this key, and with `subtree` everything below it, for the changes `filter`
    /// names (see [`Watch`]): every transaction committed after this handle's sequence
    /// number (a snapshot handle's first replays what committed since its snapshot). Needs
    /// KEY_NOTIFY. A link handle watches the key it leads to.
    pub fn watch(&self, subtree: bool, filter: WatchFilter) -> Result<Watch> {
        self.watch_from(self.seq(), subtree, filter)
    }

    /// [`watch`](Key::watch), starting after sequence number `after` (at most the newest
    /// committed): the events of the transactions since are replayed from the journal,
    /// then live ones follow, with no gap and no duplicate. Changes to volatile keys are
    /// not in the journal: only those committed after the watch starts are reported.
    pub fn watch_from(&self, after: Seq, subtree: bool, filter: WatchFilter) -> Result<Watch> {
        self.needs(Access::KEY_NOTIFY)?;
        if filter.is_empty() {
            return Err(Error::EmptyWatchFilter);
        }
        let seq = self.seq();
        let path = {
            let state = self.state(seq)?;
            state
                .index
                .display_path(self.node, seq)
                .ok_or_else(|| Error::KeyDeleted {
                    path: self.path.to_string(),
                })?
        };
        let scope = Scope {
            root: fold(&path),
            path,
            subtree,
            filter,
        };
        Watches::register(&self.inner, scope, after)
    }

    /// Fails unless the handle holds `rights`.
    fn needs(&self, rights: Access) -> Result<()> {
        let missing = rights.map_generic().minus(self.granted);
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::AccessDenied {
            path: self.path.to_string(),
            principal: self.session.principal().to_string(),
            missing: missing.to_string(),
        })
    }

    /// The state, once the handle's key is checked to still exist at `seq`.
    fn state(&self, seq: Seq) -> Result<crossbeam_utils::sync::ShardedLockReadGuard<'_, State>> {
        let state = read_state(&self.inner.state);
        match state.index.key_at(self.node, seq) {
            Some(key) if key.id == self.id => Ok(state),
            _ => Err(Error::KeyDeleted {
                path: self.path.to_string(),
            }),
        }
    }

    fn target(&self) -> Target {
        Target::Id {
            id: self.id,
            path: self.path.clone(),
        }
    }

    fn writable(&self) -> Result<()> {
        if self.at.is_some() {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Value `name` (empty: the default value), converted to `T`.
    pub fn get_value<T: FromRegValue>(&self, name: &str) -> Result<T> {
        T::from_reg_value(&self.get_raw_value(name)?, name)
    }

    /// The effective value `name` (the highest layer's) with its type and bytes as stored.
    pub fn get_raw_value(&self, name: &str) -> Result<Value> {
        self.read_in(None, name)
    }

    /// Value `name` as layer `layer` holds it.
    pub fn get_raw_value_in(&self, layer: &str, name: &str) -> Result<Value> {
        self.read_in(Some(layer), name)
    }

    fn read_in(&self, layer: Option<&str>, name: &str) -> Result<Value> {
        match (self.read_own(layer, name), self.machine_copy()) {
            (Err(Error::ValueNotFound { .. }), Some(machine)) => machine.read_own(layer, name),
            (result, _) => result,
        }
    }

    fn read_own(&self, layer: Option<&str>, name: &str) -> Result<Value> {
        self.needs(Access::KEY_QUERY_VALUE)?;
        let seq = self.seq();
        let find = || {
            let state = self.state(seq)?;
            let sel = layer_sel(&state, layer, seq)?;
            value_at(&state, self.node, name, sel, seq)?.ok_or_else(|| Error::ValueNotFound {
                path: self.path.to_string(),
                name: name.to_string(),
            })
        };
        reading(&self.inner, find, |stored| read_value(&self.inner, stored))
    }

    /// Every layer's version of value `name`, the effective one (highest precedence) first.
    pub fn value_stack(&self, name: &str) -> Result<Vec<LayeredValue>> {
        let own = self.own_stack(name)?;
        match self.machine_copy() {
            Some(machine) if own.is_empty() => machine.own_stack(name),
            _ => Ok(own),
        }
    }

    fn own_stack(&self, name: &str) -> Result<Vec<LayeredValue>> {
        self.needs(Access::KEY_QUERY_VALUE)?;
        check_value_name(name)?;
        let seq = self.seq();
        let folded = fold(name);
        let find = || -> Result<Vec<(String, u16, Stored)>> {
            let state = self.state(seq)?;
            Ok(state
                .index
                .values_at(self.node, seq)
                .iter()
                .rev()
                .filter(|value| value.name == folded)
                .map(|value| {
                    let layer = state.layers.name_at(value.layer, seq);
                    (layer, value.layer, value.value)
                })
                .collect())
        };
        let read = |found: Vec<(String, u16, Stored)>| {
            found
                .into_iter()
                .map(|(layer, precedence, stored)| {
                    Ok(LayeredValue {
                        layer,
                        precedence,
                        value: read_value(&self.inner, stored)?,
                    })
                })
                .collect()
        };
        reading(&self.inner, find, read)
    }

    /// Names of the subkeys, in case-insensitive order, as created (through
    /// `HKEY_CLASSES_ROOT`: both copies', the user's spelling first).
    pub fn enum_keys(&self) -> Result<Vec<String>> {
        let own = self.own_keys()?;
        match self.machine_copy() {
            Some(machine) => Ok(merge(own, machine.own_keys()?, |name| name)),
            None => Ok(own),
        }
    }

    fn own_keys(&self) -> Result<Vec<String>> {
        self.needs(Access::KEY_ENUMERATE_SUB_KEYS)?;
        let seq = self.seq();
        let state = self.state(seq)?;
        Ok(state
            .index
            .children_at(self.node, seq)
            .map(|key| key.name.to_string())
            .collect())
    }

    /// Every effective value (for each name, the highest layer's), in case-insensitive name
    /// order, with its name as written.
    pub fn enum_values(&self) -> Result<Vec<(String, Value)>> {
        self.enum_values_of(LayerSel::Effective)
    }

    /// Every value layer `layer` holds, in case-insensitive name order.
    pub fn enum_values_in(&self, layer: &str) -> Result<Vec<(String, Value)>> {
        let sel = layer_sel(&read_state(&self.inner.state), Some(layer), self.seq())?;
        self.enum_values_of(sel)
    }

    fn enum_values_of(&self, sel: LayerSel) -> Result<Vec<(String, Value)>> {
        let own = self.own_values(sel)?;
        match self.machine_copy() {
            Some(machine) => Ok(merge(own, machine.own_values(sel)?, |(name, _)| name)),
            None => Ok(own),
        }
    }

    fn own_values(&self, sel: LayerSel) -> Result<Vec<(String, Value)>> {
        self.needs(Access::KEY_QUERY_VALUE)?;
        let seq = self.seq();
        let find = || -> Result<Vec<Stored>> {
            let state = self.state(seq)?;
            let values = state.index.values_at(self.node, seq);
            // Sorted by name, then layer: the last of each name is the highest layer.
            Ok(values
                .iter()
                .enumerate()
                .filter(|(i, value)| match sel {
                    LayerSel::Only(layer) => value.layer == layer,
                    LayerSel::Effective => {
                        values.get(i + 1).is_none_or(|next| next.name != value.name)
                    }
                })
                .map(|(_, value)| value.value)
                .collect())
        };
        let read = |stored: Vec<Stored>| {
            stored
                .into_iter()
                .map(|stored| read_record(&self.inner, stored))
                .collect()
        };
        reading(&self.inner, find, read)
    }

    /// The key's class, if it was created with one (needs `KEY_QUERY_VALUE`, as Windows'
    /// RegQueryInfoKey).
    pub fn class(&self) -> Result<Option<String>> {
        self.needs(Access::KEY_QUERY_VALUE)?;
        let seq = self.seq();
        let state = self.state(seq)?;
        let attrs = state.index.attrs_at(self.node, seq);
        Ok(state.classes.get(attrs.class).map(str::to_string))
    }

    /// The key's security descriptor (needs `READ_CONTROL`).
    pub fn security(&self) -> Result<SecurityDescriptor> {
        self.needs(Access::READ_CONTROL)?;
        let seq = self.seq();
        let state = self.state(seq)?;
        let attrs = state.index.attrs_at(self.node, seq);
        Ok(state.descriptors.get(attrs.sd).clone())
    }

    /// Changes the parts of the key's descriptor that `change` names: the owner (needs
    /// `WRITE_OWNER`), the group and DACL (need `WRITE_DAC`).
    pub fn set_security(&self, change: &Sddl) -> Result<Seq> {
        self.writable()?;
        self.needs(txn::rights_to_change(change))?;
        self.commit(&[Intent::SetSecurity {
            target: self.target(),
            change: Arc::new(change.clone()),
        }])
    }

    fn commit(&self, intents: &[Intent]) -> Result<Seq> {
        crate::resolver::commit(&self.inner, &self.session, intents)
    }

    /// Whether this handle is a link key itself (opened with [`Key::open_subkey_link`]; an
    /// ordinary open goes through a link to its target).
    pub fn is_link(&self) -> Result<bool> {
        let seq = self.seq();
        let state = self.state(seq)?;
        Ok(state.index.attrs_at(self.node, seq).is_link())
    }

    /// Whether the key is volatile (in memory only, gone at the next open).
    pub fn is_volatile(&self) -> Result<bool> {
        let seq = self.seq();
        let state = self.state(seq)?;
        Ok(state.index.attrs_at(self.node, seq).is_volatile())
    }

    /// Opens the key `relative` names below this one for reading, without following it if it
    /// is a link (as Windows' REG_OPTION_OPEN_LINK): its own values, such as its target.
    pub fn open_subkey_link(&self, relative: &str) -> Result<Key> {
        self.state(self.seq())?;
        Key::open(
            self.inner.clone(),
            self.session.clone(),
            &self.below(relative, false)?,
            Access::KEY_READ,
            self.at.clone(),
            true,
        )
    }

    /// Opens a key below this one for reading (`relative` may hold several names: `a\b`).
    pub fn open_subkey(&self, relative: &str) -> Result<Key> {
        self.open_subkey_with(relative, Access::KEY_READ)
    }

    /// Opens a key below this one asking for `access`.
    pub fn open_subkey_with(&self, relative: &str, access: Access) -> Result<Key> {
        self.state(self.seq())?;
        if let Some(classes) = &self.classes {
            let path = classes.path.join(relative, self.session.principal())?;
            return Key::open_classes(
                self.inner.clone(),
                self.session.clone(),
                &path,
                access,
                self.at.clone(),
            );
        }
        let path = self.path.join(relative)?;
        Key::open(
            self.inner.clone(),
            self.session.clone(),
            &path,
            access,
            self.at.clone(),
            false,
        )
    }

    /// Creates a key below this one (and missing keys between); opens it if it exists.
    pub fn create_subkey(&self, relative: &str) -> Result<Key> {
        self.create_subkey_with(relative, &CreateOptions::default())
    }

    /// Creates a key below this one as `options` say (volatile, a link, a descriptor).
    pub fn create_subkey_with(&self, relative: &str, options: &CreateOptions) -> Result<Key> {
        self.needs(Access::KEY_CREATE_SUB_KEY)?;
        let open_link = options.link.is_some();
        let path = self.below(relative, true)?;
        let options = Arc::new(options.checked(&path)?);
        self.writable()?;
        self.commit(&[
            Intent::Require(self.target()),
            Intent::CreateKey {
                path: Arc::new(path.clone()),
                options,
            },
        ])?;
        match &self.classes {
            Some(_) if !open_link => self.open_subkey_with(relative, Access::MAXIMUM_ALLOWED),
            _ => Key::open(
                self.inner.clone(),
                self.session.clone(),
                &path,
                Access::MAXIMUM_ALLOWED,
                None,
                open_link,
            ),
        }
    }

    /// The key path `relative` names below this key (through `HKEY_CLASSES_ROOT`: the copy
    /// a change there goes to).
    fn below(&self, relative: &str, creating: bool) -> Result<KeyPath> {
        match &self.classes {
            Some(classes) => {
                let path = classes.path.join(relative, self.session.principal())?;
                crate::classes::target(&self.inner, &path, creating)
            }
            None => self.path.join(relative),
        }
    }

    /// Commits `change` to the key at `relative` below this one, in the same transaction as a
    /// check that this key still exists.
    fn change_below(
        &self,
        relative: &str,
        creating: bool,
        change: impl FnOnce(Arc<KeyPath>) -> Intent,
    ) -> Result<Seq> {
        self.writable()?;
        let path = Arc::new(self.below(relative, creating)?);
        self.commit(&[Intent::Require(self.target()), change(path)])
    }

    /// Sets value `name` (empty: the default value) from a Rust value, in `base`.
    pub fn set_value<T: ToRegValue + ?Sized>(&self, name: &str, value: &T) -> Result<Seq> {
        self.set_raw_value(name, &value.to_reg_value())
    }

    /// Sets value `name` to a type and bytes as given, in `base`.
    pub fn set_raw_value(&self, name: &str, value: &Value) -> Result<Seq> {
        self.set_raw_value_in(crate::BASE_LAYER, name, value)
    }

    /// Sets value `name` in layer `layer`.
    pub fn set_raw_value_in(&self, layer: &str, name: &str, value: &Value) -> Result<Seq> {
        self.writable()?;
        self.needs(Access::KEY_SET_VALUE)?;
        let intent = set_value_intent(&self.inner, self.target(), layer, name, value.clone())?;
        self.commit(&[intent])
    }

    /// Deletes value `name` from `base`; fails if it is not there.
    pub fn delete_value(&self, name: &str) -> Result<Seq> {
        self.delete_value_in(crate::BASE_LAYER, name)
    }

    /// Deletes value `name` from layer `layer` only: lower layers show through.
    pub fn delete_value_in(&self, layer: &str, name: &str) -> Result<Seq> {
        self.writable()?;
        self.needs(Access::KEY_SET_VALUE)?;
        check_value_name(name)?;
        self.commit(&[Intent::DeleteValue {
            target: self.target(),
            layer: txn::layer_name(layer)?,
            name: name.to_string(),
        }])
    }

    /// Deletes a subkey that has no subkeys of its own (`DELETE` on it).
    pub fn delete_subkey(&self, relative: &str) -> Result<Seq> {
        self.change_below(relative, false, |path| {
            Intent::DeleteKey(Target::Path(path))
        })
    }

    /// Deletes a subkey and everything below it (`DELETE` on every key removed).
    pub fn delete_subkey_all(&self, relative: &str) -> Result<Seq> {
        self.change_below(relative, false, |path| {
            Intent::DeleteTree(Target::Path(path))
        })
    }
}

/// `own` and `other`, each sorted by name in Windows order, merged: one entry per name
/// (case-insensitively), `own`'s where both have it.
fn merge<T>(own: Vec<T>, other: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    let folded = |item: &T| fold(name(item));
    let mut merged: Vec<T> = Vec::with_capacity(own.len() + other.len());
    let mut theirs = other.into_iter().peekable();
    for mine in own {
        let key = folded(&mine);
        while let Some(next) = theirs.peek() {
            match cmp_utf16(&folded(next), &key) {
                Ordering::Less => merged.extend(theirs.next()),
                Ordering::Equal => {
                    theirs.next();
                }
                Ordering::Greater => break,
            }
        }
        merged.push(mine);
    }
    merged.extend(theirs);
    merged
}
