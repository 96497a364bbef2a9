//! Interned value names: each distinct folded value name is stored once and compared as a
//! 32-bit id, so a key's value slots stay small and a lookup compares integers.

use std::collections::HashMap;

/// A folded value name, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NameId(pub u32);

#[derive(Default)]
pub(crate) struct Names {
    ids: HashMap<Box<str>, NameId, foldhash::fast::RandomState>,
    names: Vec<Box<str>>,
}

impl Names {
    /// The id of `folded`, if any value ever had that name.
    #[inline]
    pub(crate) fn get(&self, folded: &str) -> Option<NameId> {
        self.ids.get(folded).copied()
    }

    /// The id of `folded`, interning it if new.
    pub(crate) fn intern(&mut self, folded: &str) -> NameId {
        if let Some(id) = self.get(folded) {
            return id;
        }
        let id = NameId(u32::try_from(self.names.len()).expect("fewer than 2^32 value names"));
        self.names.push(folded.into());
        self.ids.insert(folded.into(), id);
        id
    }

    /// The folded name of `id`.
    pub(crate) fn name(&self, id: NameId) -> &str {
        &self.names[id.0 as usize]
    }

    /// Every name, by id.
    pub(crate) fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|name| &**name)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * (n.len() + 16) + 8).sum()
    }
}
