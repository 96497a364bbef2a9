//! Group commit: committers that wait for durability share one sync.
//!
//! The first committer to find no sync running becomes the leader: it notes how far the journal
//! is written, syncs the segment without holding any lock, then wakes everyone whose commit that
//! sync covered. Committers that arrive while it syncs queue behind it and the next leader syncs
//! for all of them at once, so N concurrent committers cost about one sync per round instead of
//! N. Appending never waits for a sync: the writer lock is not held here.
//!
//! A leader gathers before it syncs: committers woken by the previous sync need a moment to
//! append their next transaction, and a leader that syncs at once covers only itself, leaving
//! the rest for the sync after (batches alternate 1, N-1). So when the previous sync covered
//! several commits, the leader waits until as many are pending again, or for half a sync's
//! time at most (GATHER_MAX_MICROS caps it). A lone committer never waits: its previous batch
//! was one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::LogError;
use crate::segment::Segment;
use crate::{Seq, lock};

/// Longest a leader waits for more committers before it syncs.
const GATHER_MAX_MICROS: u64 = 1000;

pub(crate) struct GroupCommit {
    state: Mutex<SyncState>,
    synced: Condvar,
    /// Signalled when a commit is appended while a leader gathers.
    appended: Condvar,
}

struct SyncState {
    /// Last committed (appended) transaction and where it ends.
    written: Seq,
    written_segment: Option<Arc<Segment>>,
    written_end: u64,
    /// Last transaction known durable.
    durable: Seq,
    leader_syncing: bool,
    leader_gathering: bool,
    /// Commits the last sync covered.
    last_batch: u64,
    /// Moving average of a sync's duration.
    sync_micros: u64,
    /// Set when a sync failed: nothing later can be promised durable.
    failure: Option<String>,
}

impl GroupCommit {
    /// Everything up to `durable` is already on disk (recovery read it back and synced it).
    pub(crate) fn new(durable: Seq) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(SyncState {
                written: durable,
                written_segment: None,
                written_end: 0,
                durable,
                leader_syncing: false,
                leader_gathering: false,
                last_batch: 1,
                sync_micros: 0,
                failure: None,
            }),
            synced: Condvar::new(),
            appended: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, SyncState> {
        lock(&self.state)
    }

    /// The writer appended transaction `seq`, ending at `end` of `segment`.
    pub(crate) fn note_written(&self, seq: Seq, segment: &Arc<Segment>, end: u64) {
        let mut state = self.state();
        assert!(
            seq > state.written,
            "commits must be noted in sequence order"
        );
        state.written = seq;
        state.written_end = end;
        let same = state
            .written_segment
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, segment));
        if !same {
            state.written_segment = Some(segment.clone());
        }
        if state.leader_gathering {
            self.appended.notify_one();
        }
    }

    /// Everything through `seq` is durable by other means (a segment was sealed and synced).
    pub(crate) fn note_durable(&self, seq: Seq) {
        let mut state = self.state();
        if seq > state.durable {
            state.durable = seq;
            self.synced.notify_all();
        }
    }

    /// The last durable transaction.
    pub(crate) fn durable(&self) -> Seq {
        self.state().durable
    }

    /// Why durability can no longer be promised, if it cannot.
    pub(crate) fn failure(&self) -> Option<String> {
        self.state().failure.clone()
    }

    /// Records a failure from outside (the writer failed to seal or create a segment).
    pub(crate) fn fail(&self, why: String) {
        let mut state = self.state();
        state.failure.get_or_insert(why);
        self.synced.notify_all();
    }

    /// Returns once transaction `seq` is durable; returns the last durable transaction.
    pub(crate) fn wait_durable(&self, seq: Seq) -> Result<Seq, LogError> {
        let mut state = self.state();
        loop {
            // Durable first: a commit a sync covered stays acknowledged even if a later
            // sync failed.
            if state.durable >= seq {
                return Ok(state.durable);
            }
            if let Some(why) = &state.failure {
                return Err(LogError::Poisoned(why.clone()));
            }
            if state.leader_syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            } else {
                state = self.lead(state);
            }
        }
    }

    /// Syncs whatever is written now (the interval syncer and close use it).
    pub(crate) fn sync_now(&self) -> Result<Seq, LogError> {
        let written = self.state().written;
        self.wait_durable(written)
    }

    /// Waits (briefly) for as many pending commits as the last sync covered.
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        let expected = state.last_batch;
        if expected <= 1 {
            return state;
        }
        let wait = Duration::from_micros((state.sync_micros / 2).min(GATHER_MAX_MICROS));
        let deadline = Instant::now() + wait;
        state.leader_gathering = true;
        while state.written - state.durable < expected {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .appended
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        state.leader_gathering = false;
        state
    }

    /// Syncs everything written so far, with the state unlocked during the sync.
    fn lead<'a>(&'a self, mut state: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        state.leader_syncing = true;
        state = self.gather(state);
        let target = state.written;
        let end = state.written_end;
        let Some(segment) = state.written_segment.clone() else {
            // Nothing was appended since open: everything written is already durable.
            state.durable = state.durable.max(target);
            state.leader_syncing = false;
            return state;
        };
        drop(state);
        // Earlier segments were synced when they were sealed, so syncing the one holding the
        // newest transaction makes everything through `target` durable.
        let started = Instant::now();
        let result = segment.sync(end);
        let took = started.elapsed().as_micros() as u64;
        let mut state = self.state();
        state.leader_syncing = false;
        match result {
            Ok(()) => {
                state.last_batch = target.saturating_sub(state.durable).max(1);
                state.sync_micros = (state.sync_micros * 7 + took) / 8;
                state.durable = state.durable.max(target);
            }
            Err(error) => {
                // After a failed fdatasync the kernel may have dropped the dirty pages: what is
                // on disk is unknown, so refuse to promise anything again (fsyncgate).
                let why = format!("sync of segment {} failed: {error}", segment.name());
                state.failure.get_or_insert(why);
            }
        }
        self.synced.notify_all();
        state
    }
}
