//! A follower: a read-only store (`Options::follow`) that another process writes. It takes
//! no lock; a thread reads the writer's new commits from the journal every FOLLOW_INTERVAL,
//! replays them into the index as an open does, and publishes them, so reads see them and
//! watches report them (`hivelog watch` beside a running writer).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::replay::Replayer;
use crate::store::{Inner, write_state};

/// How often a follower looks for new commits.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(10);

pub(crate) fn start(inner: &Arc<Inner>) -> Result<()> {
    let store = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("hivelog-follow".into())
        .spawn(move || run(&store))
        .map_err(|source| Error::Io {
            what: "starting the follower thread".into(),
            source,
        })?;
    Ok(())
}

/// Follows until the store is dropped, or its journal fails to read back (the store then
/// stays at what it had read).
fn run(store: &Weak<Inner>) {
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let Some(inner) = store.upgrade() else {
            return;
        };
        if catch_up(&inner).is_err() {
            return;
        }
    }
}

fn catch_up(inner: &Inner) -> Result<()> {
    let last = {
        let mut state = write_state(&inner.state);
        let mut replayer = Replayer::new(&mut state);
        inner.journal.follow(&mut |txn| replayer.replay(txn))?
    };
    if last > inner.visible() {
        inner.publish(last);
        inner.watches.committed();
    }
    Ok(())
}
