//! Watches: a key's (or its subtree's) changes delivered after commit, in sequence order, on
//! a bounded queue per watch, as `RegNotifyChangeKeyValue` reports them but with what
//! changed.
//!
//! Committers do not deliver anything: they wake the pump (`pump.rs`), one thread per store
//! that follows the journal with a tail cursor and hands each committed transaction's
//! events to the watches that want them. So the events are the journal's changes by
//! construction, a watch that starts in the past replays the journal through the same code
//! as a live one, and no consumer, however slow, can slow a committer: the pump only ever
//! `try_send`s. Volatile keys are not journaled: their changes reach the pump through a side
//! table the resolver fills while any watch exists (`Watches::volatile`), so they are
//! delivered live but not replayed from the past.
//!
//! A queue holds `watch_queue_depth` events. A watch whose queue cannot take a commit's
//! events whole gets one `Overflow { rescan_from: S }` event instead (S: the last sequence
//! number whose events it has in full), then nothing until it has emptied its queue; a
//! consumer that rescans, or watches again from S, has lost nothing.

mod event;
mod pump;

use std::collections::BTreeMap;
use std::ops::{BitAnd, BitOr, Deref};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use hivelog_log::{Seq, TailCursor};

pub(crate) use event::is_within;
pub use event::{WatchEvent, WatchEventKind};

/// Most events one watch's queue holds (the `watch_queue_depth` option's upper bound).
pub const WATCH_QUEUE_DEPTH_MAX: usize = 1 << 20;
/// The default depth of a watch's queue.
pub const WATCH_QUEUE_DEPTH_DEFAULT: usize = 4096;
/// Most watches a store holds at once.
pub const WATCHES_MAX: usize = 65_536;

/// What a watch reports, as `RegNotifyChangeKeyValue`'s filter flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchFilter(u8);

impl WatchFilter {
    /// Subkeys created or deleted (`REG_NOTIFY_CHANGE_NAME`).
    pub const SUBKEYS: WatchFilter = WatchFilter(1);
    /// Values set or deleted (`REG_NOTIFY_CHANGE_LAST_SET`).
    pub const VALUES: WatchFilter = WatchFilter(2);
    /// Security descriptors changed (`REG_NOTIFY_CHANGE_SECURITY`).
    pub const SECURITY: WatchFilter = WatchFilter(4);
    /// Everything.
    pub const ALL: WatchFilter = WatchFilter(7);

    /// Whether every change `other` reports, this one reports too.
    pub fn contains(self, other: WatchFilter) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether it reports nothing.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for WatchFilter {
    type Output = WatchFilter;

    fn bitor(self, other: WatchFilter) -> WatchFilter {
        WatchFilter(self.0 | other.0)
    }
}

impl BitAnd for WatchFilter {
    type Output = WatchFilter;

    fn bitand(self, other: WatchFilter) -> WatchFilter {
        WatchFilter(self.0 & other.0)
    }
}

/// A watch: the receiving end of its queue ([`Deref`]s to a crossbeam [`Receiver`]).
/// Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    events: Receiver<WatchEvent>,
    closed: Arc<AtomicBool>,
}

impl Watch {
    /// The queue's receiver.
    pub fn receiver(&self) -> &Receiver<WatchEvent> {
        &self.events
    }
}

impl Deref for Watch {
    type Target = Receiver<WatchEvent>;

    fn deref(&self) -> &Receiver<WatchEvent> {
        &self.events
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// What a watch looks at.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The watched key's path as the index names it (`Machine\Software\App`).
    pub path: String,
    /// The watched key's folded path (`MACHINE\SOFTWARE\APP`), as the index names it: a
    /// link handle watches the key it leads to.
    pub root: String,
    pub subtree: bool,
    pub filter: WatchFilter,
}

/// One watch, as the pump keeps it.
struct Watcher {
    scope: Scope,
    queue: Sender<WatchEvent>,
    closed: Arc<AtomicBool>,
    /// The next transaction this watch is to be shown.
    next_seq: Seq,
    /// The last transaction whose events this watch has in full.
    complete: Seq,
    /// An Overflow event is in its queue, or was taken from it since: nothing more is
    /// queued until the queue is empty.
    overflowed: bool,
}

/// Every store's watches, and the pump that serves them.
pub(crate) struct Watches {
    /// Watches registered (closed ones until the pump prunes them): while 0, committers skip
    /// everything watch-related but one load.
    active: AtomicUsize,
    hub: Mutex<Hub>,
    /// A token that wakes the pump: bounded to 1, so a committer's `try_send` never blocks
    /// and a wake already pending absorbs the next.
    wake: Sender<()>,
    woken: Receiver<()>,
    stopping: AtomicBool,
    /// Events of changes to volatile keys, by sequence number, until the pump passes them.
    volatile: Mutex<BTreeMap<Seq, Vec<WatchEvent>>>,
    queue_depth: AtomicUsize,
}

/// Stops the pump when dropped.
pub(crate) struct StopPump(pub Arc<Watches>);

impl Drop for StopPump {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct Hub {
    watchers: Vec<Watcher>,
    /// Where the pump stopped reading, and the sequence number it stopped after.
    cursor: Option<TailCursor>,
    pump: Option<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Watches {
    pub(crate) fn new(queue_depth: usize) -> Watches {
        debug_assert!((1..=WATCH_QUEUE_DEPTH_MAX).contains(&queue_depth));
        let (wake, woken) = crossbeam_channel::bounded(1);
        Watches {
            active: AtomicUsize::new(0),
            hub: Mutex::new(Hub {
                watchers: Vec::new(),
                cursor: None,
                pump: None,
            }),
            wake,
            woken,
            stopping: AtomicBool::new(false),
            volatile: Mutex::new(BTreeMap::new()),
            queue_depth: AtomicUsize::new(queue_depth),
        }
    }

    /// Whether any watch exists (so a committer has events to hand on).
    pub(crate) fn any(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// Called after a commit is published.
    pub(crate) fn committed(&self) {
        if self.any() {
            // Full: a wake is pending already, and the pump reads everything published
            // when it takes it.
            let _ = self.wake.try_send(());
        }
    }

    /// Keeps the events of changes to volatile keys that commit `seq` made.
    pub(crate) fn volatile_events(&self, seq: Seq, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            lock(&self.volatile).insert(seq, events);
        }
    }

    /// The depth new watches' queues get.
    pub(crate) fn set_queue_depth(&self, depth: usize) {
        debug_assert!((1..=WATCH_QUEUE_DEPTH_MAX).contains(&depth));
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    /// Tells the pump to stop (the store is going).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
    }

    /// Stops the pump and waits for it to end.
    pub(crate) fn shutdown(&self) {
        self.stop();
        let pump = lock(&self.hub).pump.take();
        if let Some(pump) = pump {
            // A pump that panicked has nothing left to stop.
            let _ = pump.join();
        }
    }

    /// The hub's lock: while it is held the pump holds no handle of the store.
    pub(crate) fn hold(&self) -> MutexGuard<'_, impl Sized> {
        lock(&self.hub)
    }
}
