//! The layout every flat key-value peer stores, so that each holds what hivelog holds and a
//! vendor subtree is one range of keys.
//!
//! Key: the registry path, case-folded (names are case-insensitive in hivelog too), a NUL,
//! then the case-folded value name. No key name contains a NUL, so the key is unambiguous,
//! and a key's values sort before its subkeys (NUL < `\`); everything under a path is the
//! range of keys that begin with the folded path and a backslash.
//!
//! Value: the registry type as 4 bytes little-endian (hivelog keeps a `ValueType` per value),
//! then the data.

use crate::error::{Error, Result};

const TYPE_BYTES: usize = 4;

pub fn key(path: &str, name: &str) -> Vec<u8> {
    let mut key = path.to_lowercase().into_bytes();
    key.push(0);
    key.extend_from_slice(name.to_lowercase().as_bytes());
    key
}

/// The prefix of every key below `path`.
pub fn subtree_prefix(path: &str) -> Vec<u8> {
    let mut prefix = path.to_lowercase().into_bytes();
    prefix.push(b'\\');
    prefix
}

pub fn value(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(TYPE_BYTES + data.len());
    stored.extend_from_slice(&ty.to_le_bytes());
    stored.extend_from_slice(data);
    stored
}

/// The type and data of a stored value.
pub fn split<'a>(engine: &'static str, stored: &'a [u8]) -> Result<(u32, &'a [u8])> {
    match stored.split_first_chunk::<TYPE_BYTES>() {
        Some((ty, data)) => Ok((u32::from_le_bytes(*ty), data)),
        None => Err(Error::ShortValue {
            engine,
            len: stored.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_splits_back_into_type_and_data() {
        let stored = value(4, &[1, 2, 3, 4]);
        assert_eq!(split("test", &stored).ok(), Some((4, &[1u8, 2, 3, 4][..])));
        assert!(split("test", &stored[..3]).is_err());
    }

    #[test]
    fn a_subtree_prefix_covers_its_keys_and_no_sibling() {
        let prefix = subtree_prefix(r"Machine\software\vendor042");
        assert!(key(r"Machine\Software\Vendor042\app0001", "Version").starts_with(&prefix));
        assert!(!key(r"Machine\software\vendor0420\app0001", "Version").starts_with(&prefix));
        assert!(
            key(r"Machine\software\vendor042\a", "") < key(r"Machine\software\vendor042\a\b", "")
        );
    }
}
