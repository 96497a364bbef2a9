//! The store's table of security descriptors: each distinct descriptor once, by id, beside its
//! compiled form (principals interned), so that the access check on every read is a short loop
//! over small integers. Most keys inherit their parent's entries unchanged, so a whole subtree
//! shares one entry.
//!
//! The table only grows while the store is open: an id handed to the index stays valid for
//! every snapshot. Entries interned by a transaction that rolls back stay, unused.

use std::collections::HashMap;
use std::sync::Arc;

use crate::attrs::SdId;
use crate::error::{Error, Result};
use crate::security::{
    Access, Caller, CompiledSd, Identity, PrincipalId, Principals, SYSTEM, SecurityDescriptor,
    compile, identity, inherited, maximum_rights,
};

/// Most distinct descriptors a store holds at once.
pub(crate) const DESCRIPTORS_MAX: usize = 1 << 20;

struct Entry {
    descriptor: Arc<SecurityDescriptor>,
    compiled: CompiledSd,
}

pub(crate) struct Descriptors {
    principals: Principals,
    entries: Vec<Entry>,
    ids: HashMap<Arc<SecurityDescriptor>, SdId>,
    /// What a subkey of a key with descriptor `.0` created by principal `.1` gets: a bulk
    /// load creates thousands of keys under a few parents, and computing the inheritance
    /// (then hashing the result to intern it) for each cost more than the key itself.
    inherited: HashMap<(SdId, PrincipalId), SdId>,
    /// The last answer of `inherit`: a bulk load asks the same question key after key, and
    /// comparing a short name beats hashing it.
    last_inherited: Option<(SdId, Box<str>, SdId)>,
}

impl Descriptors {
    /// A table holding the descriptor of the root above the hives (id 0: owned by the system,
    /// no entries), which is what a hive root inherits from when it is created.
    pub(crate) fn new() -> Descriptors {
        let mut table = Descriptors {
            principals: Principals::new(),
            entries: Vec::new(),
            ids: HashMap::new(),
            inherited: HashMap::new(),
            last_inherited: None,
        };
        let root = SecurityDescriptor {
            owner: SYSTEM.to_string(),
            group: None,
            protected: true,
            dacl: Vec::new(),
        };
        let id = table.intern(root).expect("the root descriptor is valid");
        assert_eq!(id, SdId::default());
        table
    }

    /// The id of `descriptor`, adding it if it is new.
    pub(crate) fn intern(&mut self, descriptor: SecurityDescriptor) -> Result<SdId> {
        if let Some(&id) = self.ids.get(&descriptor) {
            return Ok(id);
        }
        if self.entries.len() >= DESCRIPTORS_MAX {
            return Err(Error::TooMany {
                what: "distinct security descriptors",
                max: DESCRIPTORS_MAX,
            });
        }
        let compiled = compile(&descriptor, &mut self.principals)?;
        let id = SdId(u32::try_from(self.entries.len()).expect("DESCRIPTORS_MAX fits u32"));
        let descriptor = Arc::new(descriptor);
        self.ids.insert(descriptor.clone(), id);
        self.entries.push(Entry {
            descriptor,
            compiled,
        });
        Ok(id)
    }

    /// The descriptor a new subkey of a key with descriptor `parent` gets when `creator`
    /// creates it without naming one: the parent's inheritable entries, owned by the creator
    /// (replay computes the same, so the journal records only the key).
    pub(crate) fn inherit(&mut self, parent: SdId, creator: &str) -> Result<SdId> {
        if let Some((last_parent, last_creator, id)) = &self.last_inherited
            && *last_parent == parent
            && **last_creator == *creator
        {
            return Ok(*id);
        }
        let principal = self.principals.intern(creator)?;
        let id = match self.inherited.get(&(parent, principal)) {
            Some(&id) => id,
            None => {
                let descriptor = inherited(self.get(parent), creator);
                descriptor.validate()?;
                let id = self.intern(descriptor)?;
                self.inherited.insert((parent, principal), id);
                id
            }
        };
        self.last_inherited = Some((parent, creator.into(), id));
        Ok(id)
    }

    fn entry(&self, id: SdId) -> &Entry {
        self.entries
            .get(id.0 as usize)
            .expect("descriptor ids come from this table")
    }

    /// Every descriptor, by id.
    pub(crate) fn all(&self) -> impl Iterator<Item = &SecurityDescriptor> {
        self.entries.iter().map(|entry| &*entry.descriptor)
    }

    /// The number of descriptors.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The descriptor with id `id`.
    pub(crate) fn get(&self, id: SdId) -> &SecurityDescriptor {
        &self.entry(id).descriptor
    }

    /// The interned identity of `caller`: its principal and groups as ids of this table.
    pub(crate) fn identity(&mut self, caller: &Caller) -> Result<Identity> {
        identity(caller, &mut self.principals)
    }

    /// Every right descriptor `id` grants `who` (see `security::check`).
    pub(crate) fn maximum_rights(&self, id: SdId, who: &Identity) -> Access {
        maximum_rights(&self.entry(id).compiled, who)
    }
}
