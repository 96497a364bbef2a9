//! A session's memo of what each descriptor grants it. A descriptor is immutable once
//! interned and a session's identity is fixed, so the rights a descriptor grants a session are
//! computed once (the ACE walk) and then answered with one load: the point read checks access
//! on every get, and with a few ACEs and groups the walk cost more than the rest of a get in
//! cache (W3 with four ACEs a key, `hivelog bench --workload w3s`).
//!
//! A small direct-mapped table of atomics: readers on several threads share a session, a miss
//! just recomputes, and a slot another descriptor took is recomputed too. Nothing is ever
//! wrong, only sometimes recomputed.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::attrs::SdId;
use crate::security::Access;

/// Slots in the table: a store with more distinct descriptors in use than this still works,
/// at the cost of walks on collisions.
const GRANTS_SLOTS: usize = 256;

pub(crate) struct Grants {
    /// `(descriptor id + 1) << 32 | rights`, or 0 for an empty slot.
    slots: Box<[AtomicU64]>,
}

impl Grants {
    pub(crate) fn new() -> Grants {
        Grants {
            slots: (0..GRANTS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, sd: SdId) -> &AtomicU64 {
        &self.slots[sd.0 as usize % GRANTS_SLOTS]
    }

    /// The rights `sd` grants, if they are known.
    #[inline]
    pub(crate) fn get(&self, sd: SdId) -> Option<Access> {
        // Relaxed: the value is the whole fact; no other memory is published with it.
        let entry = self.slot(sd).load(Ordering::Relaxed);
        (entry >> 32 == u64::from(sd.0) + 1).then_some(Access(entry as u32))
    }

    /// Remembers that `sd` grants `rights`.
    pub(crate) fn put(&self, sd: SdId, rights: Access) {
        let entry = ((u64::from(sd.0) + 1) << 32) | u64::from(rights.0);
        self.slot(sd).store(entry, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_replaces() {
        let grants = Grants::new();
        assert_eq!(grants.get(SdId(3)), None);
        grants.put(SdId(3), Access::KEY_READ);
        assert_eq!(grants.get(SdId(3)), Some(Access::KEY_READ));
        grants.put(SdId(0), Access::NONE);
        assert_eq!(
            grants.get(SdId(0)),
            Some(Access::NONE),
            "no rights is an answer too"
        );
        let colliding = SdId(3 + GRANTS_SLOTS as u32);
        grants.put(colliding, Access::KEY_ALL_ACCESS);
        assert_eq!(grants.get(SdId(3)), None, "a slot holds one descriptor");
        assert_eq!(grants.get(colliding), Some(Access::KEY_ALL_ACCESS));
    }
}
