//! `verify`: read every record of the journal again, replay it into a fresh index, and check
//! that the live index agrees with it key by key (volatile keys aside: the journal never
//! holds them).

use hivelog_index::{NodeId, Seq};

use crate::error::{Error, Result};
use crate::replay::Replayer;
use crate::store::{State, Store, read_state};

/// What `verify` checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Transactions read back and replayed.
    pub transactions: u64,
    /// Op records read back and replayed.
    pub ops: u64,
    /// Segments read.
    pub segments: u64,
    /// The last sequence number.
    pub last_seq: Seq,
}

impl Store {
    /// Reads every record of the journal again, checks each checksum and structure, replays
    /// everything into a fresh index and checks that it agrees with the live one: the same
    /// keys with the same ids, descriptors and flags, the same values in every layer.
    pub fn verify(&self) -> Result<VerifyReport> {
        let inner = self.inner();
        let last = inner.visible();
        let mut fresh = State::new();
        let mut replayer = Replayer::new(&mut fresh);
        let mut transactions = 0;
        inner.journal.for_each_txn(1, last, &mut |txn| {
            transactions += 1;
            replayer.replay(txn)
        })?;
        let ops = replayer.ops;
        let live = read_state(&inner.state);
        let floor = inner.journal.base_seq();
        let compared = compare(&live, &fresh, last, floor).map_err(|what| Error::Damaged {
            what: format!("the index ({what}, as the journal has it)"),
        })?;
        let replayed = fresh.index.stats(last).keys;
        if compared != replayed {
            return Err(Error::Damaged {
                what: format!("the index ({compared} durable keys; the journal has {replayed})"),
            });
        }
        Ok(VerifyReport {
            transactions,
            ops,
            segments: inner.journal.segments().len() as u64,
            last_seq: last,
        })
    }
}

/// Walks the live keys at `at` that are not volatile and checks each against the replayed
/// state; returns how many it compared (hive roots included). A value version older than
/// `floor` (the base a compaction left, which rewrote the state at `floor` as one
/// transaction) counts as written at `floor`.
fn compare(live: &State, replayed: &State, at: Seq, floor: Seq) -> Result<u64, String> {
    let mut compared = 0;
    let mut stack: Vec<NodeId> = vec![live.index.root()];
    while let Some(node) = stack.pop() {
        for child in live.index.children_at(node, at) {
            if live.index.attrs_at(child.node, at).is_volatile() {
                continue;
            }
            compare_key(live, replayed, child.node, child.id, at, floor)?;
            compared += 1;
            stack.push(child.node);
        }
    }
    Ok(compared)
}

fn compare_key(
    live: &State,
    replayed: &State,
    node: NodeId,
    id: u64,
    at: Seq,
    floor: Seq,
) -> Result<(), String> {
    let path = live.index.folded_path(node);
    let other = replayed
        .index
        .find(path)
        .and_then(|found| replayed.index.key_at(found, at))
        .filter(|key| key.id == id)
        .ok_or_else(|| format!("key {path} (id {id}) is missing"))?;
    let (mine, theirs) = (
        live.index.attrs_at(node, at),
        replayed.index.attrs_at(other.node, at),
    );
    let same_descriptor = live.descriptors.get(mine.sd) == replayed.descriptors.get(theirs.sd);
    let same_class = live.classes.get(mine.class) == replayed.classes.get(theirs.class);
    if !same_descriptor || !same_class || mine.flags != theirs.flags {
        return Err(format!(
            "key {path} has another descriptor, class or other flags"
        ));
    }
    let values = |state: &State, node| {
        state
            .index
            .values_at(node, at)
            .iter()
            .map(|v| (v.name.to_string(), v.layer, v.value, v.seq.max(floor)))
            .collect::<Vec<_>>()
    };
    if values(live, node) != values(replayed, other.node) {
        return Err(format!("key {path} has other values"));
    }
    Ok(())
}
