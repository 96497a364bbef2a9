//! hivelog's in-memory index: a trie of keys whose existence and values carry sequence
//! numbers, so a read can be answered at any snapshot.
//!
//! - A full-path table answers "which node is this path" in one probe; the trie (children in
//!   name order) serves enumeration and subtree work.
//! - Each key node keeps its incarnations (created at, deleted at, id) and, per (layer, value
//!   name), a version chain of what the caller stores for a value (for the registry: where
//!   the value sits in the journal).
//! - A subtree tombstone removes everything below a key at one sequence number while the key
//!   itself stays; a read before it sees the old subtree, a read at or after it does not.
//! - A writer applies one transaction at a time with an undo log (`begin` … `commit` or
//!   `rollback`); GC drops versions no snapshot needs.
//!
//! Architecture invariant: this crate never opens a file and never sees journal bytes. Names
//! arrive validated; case folding and name order live here (`fold`) so every layer agrees.

#![warn(missing_docs)]

mod apply;
mod arena;
mod checkpoint;
pub mod fold;
mod gc;
mod inline_path;
mod key_block;
mod memory;
mod names;
mod path_table;
mod trie;
mod version_chain;

pub use checkpoint::{ArchivedIndexImage, Export, ExportRules, ImageError, IndexImage};
pub use gc::GcStats;
pub use memory::prefetch;
pub use trie::{Index, IndexStats, KeyAt, LayerSel, PointRead, ValueAt};
pub use version_chain::Version;

/// A sequence number (the journal's).
pub type Seq = u64;
/// A key's stable 64-bit id. Never reused.
pub type KeyId = u64;
/// A layer's id; layer 0 is `base`.
pub type LayerId = u16;

/// A node of the trie: one path. Stable while the index holds the path; a node collected by GC
/// may be reused for another path, so a caller holding a `NodeId` across GC checks the key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub(crate) u32);

#[cfg(test)]
mod tests;
