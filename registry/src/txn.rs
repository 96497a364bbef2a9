//! Transactions: several changes committed atomically under one sequence number.
//!
//! A transaction collects intents, validated for names and limits as they are added; its
//! commit hands them to the resolver (`resolver.rs`), which applies all of them or none.

use std::sync::Arc;

use hivelog_index::KeyId;
use hivelog_log::Seq;

use crate::attrs::check_class;
use crate::error::{Error, Result};
use crate::layers::{BASE_LAYER, check_layer_name};
use crate::links::parse_target;
use crate::op::AuditEvent;
use crate::path::{ClassesPath, Hive, KeyPath, check_value_name};
use crate::security::{Access, Sddl, SecurityDescriptor};
use crate::store::{Inner, Session};
use crate::value::{ToRegValue, Value};

/// Which key an intent acts on.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Whatever key is at the path when the transaction commits; the caller's access is
    /// checked against it then.
    Path(Arc<KeyPath>),
    /// One particular key (a handle's, whose rights were checked when it was opened): if it
    /// was deleted, the intent fails.
    Id { id: KeyId, path: Arc<KeyPath> },
}

impl Target {
    pub(crate) fn path(&self) -> &KeyPath {
        match self {
            Target::Path(path) | Target::Id { path, .. } => path,
        }
    }
}

/// How to create a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The key (and any parent this creates) lives in memory only: never journaled, gone at
    /// the next open. A non-volatile key cannot be created below a volatile one.
    pub volatile: bool,
    /// The key is a link: opens through it redirect to this path (an absolute path, as
    /// `Machine\Software\Target` or `\REGISTRY\MACHINE\Software\Target`). Needs
    /// `KEY_CREATE_LINK` on the parent; the key must not exist yet.
    pub link: Option<String>,
    /// The key's own descriptor: its entries come first, then the parent's inheritable ones
    /// unless it is protected. Default: only the inherited entries, owned by the creator.
    pub security: Option<SecurityDescriptor>,
    /// The key's class (Windows' `lpClass`, 1 to KEY_CLASS_MAX_CHARS characters).
    pub class: Option<String>,
}

/// `CreateOptions`, checked.
#[derive(Debug, Default)]
pub(crate) struct Create {
    pub volatile: bool,
    pub link: Option<Arc<KeyPath>>,
    pub security: Option<SecurityDescriptor>,
    pub class: Option<String>,
}

impl CreateOptions {
    /// The options checked, for creating the key at `path`.
    pub(crate) fn checked(&self, path: &KeyPath) -> Result<Create> {
        let link = match &self.link {
            Some(target) => Some(Arc::new(parse_target(&path.to_string(), target)?)),
            None => None,
        };
        if let Some(security) = &self.security {
            security.validate()?;
        }
        if let Some(class) = &self.class {
            check_class(class)?;
        }
        Ok(Create {
            volatile: self.volatile,
            link,
            security: self.security.clone(),
            class: self.class.clone(),
        })
    }
}

/// A layer an intent names: `None` is `base`.
pub(crate) type LayerName = Option<Arc<str>>;

pub(crate) fn layer_name(layer: &str) -> Result<LayerName> {
    if layer.eq_ignore_ascii_case(BASE_LAYER) {
        return Ok(None);
    }
    check_layer_name(layer)?;
    Ok(Some(layer.into()))
}

#[derive(Debug, Clone)]
pub(crate) enum Intent {
    /// The key must exist (a handle's key, before acting below it).
    Require(Target),
    /// Create the key and any missing parents.
    CreateKey {
        path: Arc<KeyPath>,
        options: Arc<Create>,
    },
    /// Create a hive root, with its default descriptor (only when a store is created).
    CreateHive(Hive),
    DeleteKey(Target),
    DeleteTree(Target),
    SetValue {
        target: Target,
        layer: LayerName,
        name: String,
        value: Value,
    },
    DeleteValue {
        target: Target,
        layer: LayerName,
        name: String,
    },
    SetSecurity {
        target: Target,
        change: Arc<Sddl>,
    },
    CreateLayer {
        name: String,
        precedence: u16,
    },
    DropLayer {
        name: String,
    },
    /// Replace `target` with a verified backup (the session's restore privilege was checked
    /// by whoever made it; access checks are off for it), audited as `event` from `source`.
    Restore {
        target: crate::restore::RestoreTarget,
        backup: Arc<crate::restore::Verified>,
        event: AuditEvent,
        source: String,
    },
    /// A deletion, or nothing if the key or value it deletes is not there (a `.reg` file's
    /// `[-KEY]` and `"name"=-`, which regedit does not refuse when there is nothing to
    /// delete). Only for deletions: they fail before changing anything when their target is
    /// missing, so dropping the error leaves the transaction as it was.
    IfExists(Box<Intent>),
    /// An audit record (the session's privilege was checked by whoever made it).
    Audit {
        event: AuditEvent,
        path: String,
        source: String,
        seq: Seq,
    },
}

/// The rights changing the parts of a descriptor that `change` names needs.
pub(crate) fn rights_to_change(change: &Sddl) -> Access {
    let mut rights = Access::NONE;
    if change.owner.is_some() {
        rights = rights.union(Access::WRITE_OWNER);
    }
    if change.group.is_some() || change.dacl.is_some() {
        rights = rights.union(Access::WRITE_DAC);
    }
    rights
}

/// Several changes committed atomically: all of them under one sequence number, or none.
///
/// ```no_run
/// # fn main() -> hivelog::Result<()> {
/// let store = hivelog::Store::open("/tmp/store", hivelog::Options::default())?;
/// let mut tx = store.transaction();
/// tx.set_value(r"HKLM\Software\A", "Enabled", &1u32)?;
/// tx.delete_tree(r"HKLM\Software\Old")?;
/// let seq = tx.commit()?;
/// # Ok(()) }
/// ```
pub struct Transaction {
    inner: Arc<Inner>,
    session: Arc<Session>,
    intents: Vec<Intent>,
    /// The last path parsed: consecutive changes to one key parse it once.
    last_path: Option<(String, Arc<KeyPath>)>,
}

impl Transaction {
    pub(crate) fn new(inner: Arc<Inner>, session: Arc<Session>) -> Transaction {
        Transaction {
            inner,
            session,
            intents: Vec::new(),
            last_path: None,
        }
    }

    fn path(&mut self, path: &str) -> Result<Arc<KeyPath>> {
        self.path_for(path, false)
    }

    /// The key path a change at `path` acts on (`creating`: a key to be created). A
    /// `HKEY_CLASSES_ROOT` path names the user's or the machine's copy, chosen now.
    fn path_for(&mut self, path: &str, creating: bool) -> Result<Arc<KeyPath>> {
        if let Some((text, parsed)) = &self.last_path
            && text == path
        {
            return Ok(parsed.clone());
        }
        let parsed = match KeyPath::parse(path, self.session.principal()) {
            Err(Error::ClassesView { .. }) => {
                let classes =
                    ClassesPath::parse(path, self.session.principal())?.expect("a classes path");
                // Not cached: which copy a change goes to depends on what it does.
                return Ok(Arc::new(crate::classes::target(
                    &self.inner,
                    &classes,
                    creating,
                )?));
            }
            parsed => Arc::new(parsed?),
        };
        self.last_path = Some((path.to_string(), parsed.clone()));
        Ok(parsed)
    }

    /// Creates the key at `path` and any missing parents (nothing if it exists).
    pub fn create_key(&mut self, path: &str) -> Result<&mut Transaction> {
        self.create_key_with(path, &CreateOptions::default())
    }

    /// Creates the key at `path` and any missing parents as `options` say.
    pub fn create_key_with(
        &mut self,
        path: &str,
        options: &CreateOptions,
    ) -> Result<&mut Transaction> {
        let path = self.path_for(path, true)?;
        let options = Arc::new(options.checked(&path)?);
        self.intents.push(Intent::CreateKey { path, options });
        Ok(self)
    }

    /// Sets value `name` (empty: the default value) of the key at `path` in `base`. The key
    /// must exist when the transaction commits (create it earlier in the same transaction if
    /// need be).
    pub fn set_value<T: ToRegValue + ?Sized>(
        &mut self,
        path: &str,
        name: &str,
        value: &T,
    ) -> Result<&mut Transaction> {
        let path = self.path(path)?;
        let intent = value_intent(
            &self.inner,
            Target::Path(path),
            None,
            name,
            value.to_reg_value(),
        )?;
        self.intents.push(intent);
        Ok(self)
    }

    /// Sets value `name` of the key at `path` in layer `layer`.
    pub fn set_value_in<T: ToRegValue + ?Sized>(
        &mut self,
        layer: &str,
        path: &str,
        name: &str,
        value: &T,
    ) -> Result<&mut Transaction> {
        let path = self.path(path)?;
        let intent = set_value_intent(
            &self.inner,
            Target::Path(path),
            layer,
            name,
            value.to_reg_value(),
        )?;
        self.intents.push(intent);
        Ok(self)
    }

    /// Deletes value `name` of the key at `path` from `base`; the commit fails if it is not
    /// there.
    pub fn delete_value(&mut self, path: &str, name: &str) -> Result<&mut Transaction> {
        self.delete_value_in(BASE_LAYER, path, name)
    }

    /// Deletes value `name` of the key at `path` from layer `layer` only.
    pub fn delete_value_in(
        &mut self,
        layer: &str,
        path: &str,
        name: &str,
    ) -> Result<&mut Transaction> {
        check_value_name(name)?;
        let layer = layer_name(layer)?;
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteValue {
            target,
            layer,
            name: name.to_string(),
        });
        Ok(self)
    }

    /// Deletes the key at `path`; the commit fails if it has subkeys. A link is deleted
    /// itself, not its target.
    pub fn delete_key(&mut self, path: &str) -> Result<&mut Transaction> {
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteKey(target));
        Ok(self)
    }

    /// Deletes the key at `path` and everything below it.
    pub fn delete_tree(&mut self, path: &str) -> Result<&mut Transaction> {
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteTree(target));
        Ok(self)
    }

    /// Changes the parts of the descriptor of the key at `path` that `change` names.
    pub fn set_security(&mut self, path: &str, change: &Sddl) -> Result<&mut Transaction> {
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::SetSecurity {
            target,
            change: Arc::new(change.clone()),
        });
        Ok(self)
    }

    /// Creates layer `name` with `precedence` (1 to 65534: `base` is 0, `policy` 65535).
    pub fn create_layer(&mut self, name: &str, precedence: u16) -> Result<&mut Transaction> {
        check_layer_name(name)?;
        self.intents.push(Intent::CreateLayer {
            name: name.to_string(),
            precedence,
        });
        Ok(self)
    }

    /// Drops layer `name` and every value it holds, in every key.
    pub fn drop_layer(&mut self, name: &str) -> Result<&mut Transaction> {
        check_layer_name(name)?;
        self.intents.push(Intent::DropLayer {
            name: name.to_string(),
        });
        Ok(self)
    }

    /// Creates the key at `path` and any missing parents, and returns the one key path the
    /// change acts on (for `HKEY_CLASSES_ROOT`, the copy chosen now), so that later changes
    /// to the key go to the same copy: a `.reg` import's `[KEY]`.
    pub(crate) fn create_key_resolved(&mut self, path: &str) -> Result<Arc<KeyPath>> {
        let path = self.path_for(path, true)?;
        let options = Arc::new(Create::default());
        self.intents.push(Intent::CreateKey {
            path: path.clone(),
            options,
        });
        Ok(path)
    }

    /// Deletes the key at `path` and everything below it, if there is such a key.
    pub(crate) fn delete_tree_if_exists(&mut self, path: &str) -> Result<&mut Transaction> {
        let change = Intent::DeleteTree(Target::Path(self.path(path)?));
        self.intents.push(Intent::IfExists(Box::new(change)));
        Ok(self)
    }

    /// Sets value `name` of the key at `path` in `base` to `value`, taken as it is (the
    /// public `set_value` copies what it is given).
    pub(crate) fn set_value_at(
        &mut self,
        path: &Arc<KeyPath>,
        name: &str,
        value: Value,
    ) -> Result<&mut Transaction> {
        let target = Target::Path(path.clone());
        let intent = value_intent(&self.inner, target, None, name, value)?;
        self.intents.push(intent);
        Ok(self)
    }

    /// Deletes value `name` of the key at `path` from `base`, if it is there.
    pub(crate) fn delete_value_if_exists(
        &mut self,
        path: &Arc<KeyPath>,
        name: &str,
    ) -> Result<&mut Transaction> {
        check_value_name(name)?;
        let change = Intent::DeleteValue {
            target: Target::Path(path.clone()),
            layer: None,
            name: name.to_string(),
        };
        self.intents.push(Intent::IfExists(Box::new(change)));
        Ok(self)
    }

    /// Adds an intent made elsewhere in the crate (an audit record).
    pub(crate) fn push_intent(&mut self, intent: Intent) {
        self.intents.push(intent);
    }

    /// Number of changes added so far.
    pub fn len(&self) -> usize {
        self.intents.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// Commits every change atomically and returns the transaction's sequence number. If no
    /// change was needed (every key already existed, say), nothing is written and the last
    /// committed sequence number is returned.
    pub fn commit(self) -> Result<Seq> {
        crate::resolver::commit(&self.inner, &self.session, &self.intents)
    }

    /// [`Transaction::commit`], naming the change that failed by its index in the order
    /// the changes were added. `journal_bytes` estimates the records it writes (see
    /// `resolver::commit_traced`).
    pub(crate) fn commit_traced(self, journal_bytes: u64) -> Result<Seq, crate::resolver::Failed> {
        crate::resolver::commit_traced(&self.inner, &self.session, &self.intents, journal_bytes)
    }
}

/// Validates a value write to layer `layer` before it joins a transaction.
pub(crate) fn set_value_intent(
    inner: &Inner,
    target: Target,
    layer: &str,
    name: &str,
    value: Value,
) -> Result<Intent> {
    value_intent(inner, target, layer_name(layer)?, name, value)
}

fn value_intent(
    inner: &Inner,
    target: Target,
    layer: LayerName,
    name: &str,
    value: Value,
) -> Result<Intent> {
    check_value_name(name)?;
    if value.data.len() > inner.value_size_max_bytes as usize {
        return Err(Error::ValueTooLarge {
            name: crate::error::clip(name),
            len: value.data.len(),
            max: inner.value_size_max_bytes,
        });
    }
    Ok(Intent::SetValue {
        target,
        layer,
        name: name.to_string(),
        value,
    })
}
