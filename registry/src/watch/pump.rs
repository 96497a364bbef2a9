//! The pump: one thread per store (started by the first watch) that reads each committed
//! transaction once from the journal and offers its events to every watch, and the
//! registration of a watch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use hivelog_log::{Rejected, Seq};

use super::event::{Change, events_of, settle};
use super::{Hub, Scope, WATCHES_MAX, Watch, WatchEvent, WatchEventKind, Watcher, Watches, lock};
use crate::error::{Error, Result};
use crate::store::{Inner, read_state};

impl Watches {
    /// Registers a watch of `scope` that is shown every transaction after `after` (at most
    /// the newest visible one), and starts the pump if it is not running.
    pub(crate) fn register(inner: &Arc<Inner>, scope: Scope, after: Seq) -> Result<Watch> {
        let watches = &inner.watches;
        let visible = inner.visible();
        if after > visible {
            return Err(Error::FutureSeq {
                seq: after,
                last: visible,
            });
        }
        let mut hub = lock(&watches.hub);
        if hub.watchers.len() >= WATCHES_MAX {
            return Err(Error::TooMany {
                what: "watches",
                max: WATCHES_MAX,
            });
        }
        // The pump first: a watch that cannot be served is not registered.
        if hub.pump.is_none() {
            let weak = Arc::downgrade(inner);
            let shared = watches.clone();
            let pump = std::thread::Builder::new()
                .name("hivelog-watch".into())
                .spawn(move || run(&shared, &weak))
                .map_err(|source| Error::Io {
                    what: "starting the watch thread".into(),
                    source,
                })?;
            hub.pump = Some(pump);
        }
        // One slot beyond the depth is kept for the Overflow event (see `offer`).
        let depth = watches.queue_depth.load(Ordering::Relaxed);
        let (queue, events) = crossbeam_channel::bounded(depth + 1);
        let closed = Arc::new(AtomicBool::new(false));
        hub.watchers.push(Watcher {
            scope,
            queue,
            closed: closed.clone(),
            next_seq: after + 1,
            complete: after,
            overflowed: false,
        });
        watches.active.fetch_add(1, Ordering::AcqRel);
        drop(hub);
        // Past transactions to replay, or none: either way the pump looks now.
        let _ = watches.wake.try_send(());
        Ok(Watch { events, closed })
    }
}

/// How long the pump lets commits gather after a wake: the most it adds to an event's
/// delivery.
const PUMP_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);

/// The pump's loop: wait for a wake, deliver everything visible, until the store stops.
/// It holds the store only with the hub locked, so that `Store::close`, which takes the hub
/// lock, can tell whether it holds the last handle.
fn run(watches: &Watches, store: &Weak<Inner>) {
    while watches.woken.recv().is_ok() {
        // Commits that land meanwhile are delivered together: a wake per commit (a context
        // switch each, on a machine the committers keep busy) cost them 10% at W2's rate.
        std::thread::sleep(PUMP_PAUSE);
        if watches.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut hub = lock(&watches.hub);
        // The store is gone once no handle holds it.
        let Some(inner) = store.upgrade() else {
            return;
        };
        let delivered = deliver(&inner, &mut hub);
        drop(inner);
        if delivered.is_err() {
            // The journal failed to read back (which a store that opened cannot do short of
            // damage under it): every watch ends, and its receiver sees the queue
            // disconnected.
            watches
                .active
                .fetch_sub(hub.watchers.len(), Ordering::AcqRel);
            hub.watchers.clear();
            hub.cursor = None;
        }
    }
}

/// Offers every visible transaction that some watch has not been shown yet.
fn deliver(inner: &Inner, hub: &mut Hub) -> std::result::Result<(), String> {
    let watches = &*inner.watches;
    prune(watches, hub);
    let Some(from) = hub.watchers.iter().map(|w| w.next_seq).min() else {
        return Ok(());
    };
    let visible = inner.visible();
    if from > visible {
        return Ok(());
    }
    let Hub {
        watchers, cursor, ..
    } = hub;
    // The cursor stays where the last round stopped; a watch starting in the past moves it
    // back once.
    let mut at = match cursor.take() {
        Some(at) if at.next_seq == from => at,
        _ => inner
            .journal
            .tail_cursor(from)
            .map_err(|error| error.to_string())?,
    };
    inner
        .journal
        .read_tail(&mut at, visible, &mut |txn| {
            let mut changes = {
                let state = read_state(&inner.state);
                events_of(&state, txn)?
            };
            if let Some(volatile) = lock(&watches.volatile).remove(&txn.seq) {
                changes.extend(volatile.into_iter().map(Change::new));
            }
            let changes = settle(changes);
            for watcher in watchers.iter_mut() {
                if watcher.next_seq == txn.seq {
                    offer(watcher, txn.seq, &changes);
                }
            }
            Ok::<(), Rejected>(())
        })
        .map_err(|error| error.to_string())?;
    debug_assert_eq!(at.next_seq, visible + 1);
    *cursor = Some(at);
    // Volatile events of transactions no watch will be shown (made while a watch existed
    // that has gone since) are dropped with them.
    lock(&watches.volatile).retain(|&seq, _| seq > visible);
    Ok(())
}

/// Drops the watches whose `Watch` was dropped.
fn prune(watches: &Watches, hub: &mut Hub) {
    let before = hub.watchers.len();
    hub.watchers
        .retain(|watcher| !watcher.closed.load(Ordering::Acquire));
    watches
        .active
        .fetch_sub(before - hub.watchers.len(), Ordering::AcqRel);
}

/// Queues the events of transaction `seq` that `watcher` wants, all of them or (if they do
/// not fit) one Overflow event.
fn offer(watcher: &mut Watcher, seq: Seq, changes: &[Change]) {
    debug_assert_eq!(watcher.next_seq, seq);
    watcher.next_seq = seq + 1;
    if watcher.overflowed {
        // The consumer has taken the Overflow event and everything before it: whatever it
        // rescans from now covers what was dropped.
        if !watcher.queue.is_empty() {
            return;
        }
        watcher.overflowed = false;
    }
    let batch: Vec<&Change> = changes
        .iter()
        .filter(|change| watcher.scope.matches(change))
        .collect();
    let capacity = watcher.queue.capacity().expect("watch queues are bounded");
    let depth = capacity - 1;
    // Outside an overflow the queue never holds more than `depth`: the last slot is the
    // Overflow event's.
    debug_assert!(watcher.queue.len() <= depth);
    if watcher.queue.len() + batch.len() <= depth {
        for change in batch {
            // Only the pump sends, and there is room: a failure is a receiver gone.
            if watcher.queue.try_send(change.event.clone()).is_err() {
                return;
            }
        }
        watcher.complete = seq;
        return;
    }
    watcher.overflowed = true;
    let overflow = WatchEvent {
        seq,
        path: watcher.scope.path.as_str().into(),
        kind: WatchEventKind::Overflow {
            rescan_from: watcher.complete,
        },
    };
    let _ = watcher.queue.try_send(overflow);
}
