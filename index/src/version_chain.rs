//! A version chain: the history of one item, by sequence number.
//!
//! The newest version sits inline, so a read at the newest snapshot touches no other memory;
//! older versions follow in a boxed vector, oldest first (one pointer when there are none,
//! which is most of the time).

use crate::Seq;

/// One version of a value: `None` means deleted as of `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<V> {
    /// The transaction that wrote this version.
    pub seq: Seq,
    /// The value, or `None` for a deletion.
    pub value: Option<V>,
}

#[derive(Debug, Clone)]
pub(crate) struct Chain<V> {
    head: Version<V>,
    /// Versions before `head`, ascending by sequence number; `None` rather than empty.
    // Boxed: one word in every value slot instead of three, and most values have no history.
    #[allow(clippy::box_collection)]
    older: Option<Box<Vec<Version<V>>>>,
}

/// How a push changed the chain, so it can be undone.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pushed<V> {
    /// A new head was added.
    New,
    /// The head had the same sequence number (a transaction wrote the item twice) and was
    /// replaced; here is what it was.
    Replaced(Version<V>),
}

impl<V: Copy> Chain<V> {
    pub(crate) fn new(first: Version<V>) -> Chain<V> {
        Chain {
            head: first,
            older: None,
        }
    }

    /// A chain of `versions` (ascending by sequence number), or `None` if there are none.
    pub(crate) fn from_versions(mut versions: Vec<Version<V>>) -> Option<Chain<V>> {
        let head = versions.pop()?;
        debug_assert!(versions.is_sorted_by(|a, b| a.seq < b.seq));
        Some(Chain {
            head,
            older: (!versions.is_empty()).then(|| Box::new(versions)),
        })
    }

    /// Every version, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Version<V>> {
        self.older
            .as_deref()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&self.head))
    }

    pub(crate) fn head(&self) -> &Version<V> {
        &self.head
    }

    /// The newest version visible at snapshot `at`.
    #[inline]
    pub(crate) fn at(&self, at: Seq) -> Option<&Version<V>> {
        if self.head.seq <= at {
            return Some(&self.head);
        }
        let older = self.older.as_deref()?;
        let visible = older.partition_point(|v| v.seq <= at);
        visible.checked_sub(1).map(|i| &older[i])
    }

    /// As [`Chain::at`], to change the version in place.
    pub(crate) fn at_mut(&mut self, at: Seq) -> Option<&mut Version<V>> {
        if self.head.seq <= at {
            return Some(&mut self.head);
        }
        let older = self.older.as_deref_mut()?;
        let visible = older.partition_point(|v| v.seq <= at);
        visible.checked_sub(1).map(|i| &mut older[i])
    }

    pub(crate) fn push(&mut self, version: Version<V>) -> Pushed<V> {
        assert!(
            version.seq >= self.head.seq,
            "version chain must stay sorted"
        );
        if version.seq == self.head.seq {
            let before = std::mem::replace(&mut self.head, version);
            return Pushed::Replaced(before);
        }
        let before = std::mem::replace(&mut self.head, version);
        self.older.get_or_insert_default().push(before);
        Pushed::New
    }

    /// Undoes the last push. Returns false if the chain is left empty (the push created it).
    pub(crate) fn undo(&mut self, pushed: Pushed<V>) -> bool {
        match pushed {
            Pushed::Replaced(before) => {
                self.head = before;
                true
            }
            Pushed::New => {
                let Some(older) = self.older.as_deref_mut() else {
                    return false;
                };
                let before = older.pop().expect("an older vector is never empty");
                if older.is_empty() {
                    self.older = None;
                }
                self.head = before;
                true
            }
        }
    }

    /// Drops versions no snapshot at or after `horizon` can see. Returns false if nothing
    /// visible remains (the item is deleted as of `horizon` and never written since).
    pub(crate) fn collect(&mut self, horizon: Seq) -> bool {
        let mut all: Vec<Version<V>> = self.older.take().map(|older| *older).unwrap_or_default();
        all.push(self.head);
        // The newest version at or before the horizon is what a read at the horizon sees.
        let first_kept = all.partition_point(|v| v.seq <= horizon).saturating_sub(1);
        let mut kept: Vec<Version<V>> = all.split_off(first_kept);
        if kept
            .first()
            .is_some_and(|v| v.seq <= horizon && v.value.is_none())
        {
            // A deletion nobody can see past: reads find nothing either way.
            kept.remove(0);
        }
        let Some(head) = kept.pop() else {
            return false;
        };
        self.head = head;
        kept.shrink_to_fit();
        self.older = (!kept.is_empty()).then(|| Box::new(kept));
        true
    }

    /// Number of versions.
    pub(crate) fn len(&self) -> usize {
        self.older.as_ref().map_or(0, |older| older.len()) + 1
    }

    #[cfg(test)]
    pub(crate) fn versions(&self) -> Vec<Version<V>> {
        let mut all = self.older.as_deref().cloned().unwrap_or_default();
        all.push(self.head);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(seq: Seq, value: Option<u32>) -> Version<u32> {
        Version { seq, value }
    }

    #[test]
    fn reads_at_every_snapshot() {
        let mut chain = Chain::new(v(3, Some(30)));
        chain.push(v(5, None));
        chain.push(v(9, Some(90)));
        let at = |s| chain.at(s).map(|v| v.value);
        assert_eq!(at(2), None);
        assert_eq!(at(3), Some(Some(30)));
        assert_eq!(at(4), Some(Some(30)));
        assert_eq!(at(5), Some(None));
        assert_eq!(at(8), Some(None));
        assert_eq!(at(9), Some(Some(90)));
        assert_eq!(at(u64::MAX), Some(Some(90)));
    }

    #[test]
    fn same_sequence_number_replaces_and_undo_restores() {
        let mut chain = Chain::new(v(3, Some(30)));
        let pushed = chain.push(v(3, Some(31)));
        assert_eq!(chain.versions(), vec![v(3, Some(31))]);
        assert!(chain.undo(pushed));
        assert_eq!(chain.versions(), vec![v(3, Some(30))]);
        let pushed = chain.push(v(4, None));
        assert!(chain.undo(pushed));
        assert_eq!(chain.versions(), vec![v(3, Some(30))]);
        assert!(
            !chain.undo(Pushed::New),
            "undoing the first version empties the chain"
        );
    }

    #[test]
    fn collect_keeps_what_the_horizon_can_see() {
        let mut chain = Chain::new(v(1, Some(1)));
        chain.push(v(4, Some(4)));
        chain.push(v(6, None));
        chain.push(v(8, Some(8)));
        let mut c = chain.clone();
        assert!(c.collect(5));
        assert_eq!(c.versions(), vec![v(4, Some(4)), v(6, None), v(8, Some(8))]);
        let mut c = chain.clone();
        assert!(c.collect(7));
        assert_eq!(
            c.versions(),
            vec![v(8, Some(8))],
            "a deletion at the horizon goes too"
        );
        let mut c = chain.clone();
        assert!(c.collect(0));
        assert_eq!(c.versions().len(), 4);
        let mut dead = Chain::new(v(1, Some(1)));
        dead.push(v(2, None));
        assert!(!dead.collect(2), "deleted before the horizon: nothing left");
        let mut alive = Chain::new(v(1, Some(1)));
        alive.push(v(2, None));
        assert!(alive.collect(1));
        assert_eq!(alive.versions(), vec![v(1, Some(1)), v(2, None)]);
    }
}
