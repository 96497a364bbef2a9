//! What the index keeps for a value version: where its record sits in the journal, and either
//! the data itself (eight bytes or less: DWORDs, QWORDs, most registry values), so a point
//! read of a small value never touches the journal, or where the data starts in the record,
//! so a read of a larger one slices it out without decoding the record.

use hivelog_log::Loc;

use crate::value::ValueType;

const SMALL_MAX_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    /// The bytes themselves.
    Small {
        len: u8,
        bytes: [u8; SMALL_MAX_BYTES],
    },
    /// `len` bytes at `at` in the record's payload.
    InRecord { at: u32, len: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The SetValue record (also the source of the value's name as written).
    pub loc: Loc,
    pub ty: ValueType,
    data: Data,
}

impl Stored {
    /// A value whose record is at `loc`, with `data` starting at `data_at` in its payload.
    pub(crate) fn new(loc: Loc, ty: ValueType, data: &[u8], data_at: usize) -> Stored {
        let data = if data.len() <= SMALL_MAX_BYTES {
            let mut bytes = [0u8; SMALL_MAX_BYTES];
            bytes[..data.len()].copy_from_slice(data);
            Data::Small {
                len: data.len() as u8,
                bytes,
            }
        } else {
            // Both fit: a record is shorter than a segment, and segments are below 4 GiB.
            Data::InRecord {
                at: data_at as u32,
                len: data.len() as u32,
            }
        };
        Stored { loc, ty, data }
    }

    /// The data, if it is kept inline.
    #[inline]
    pub(crate) fn small_data(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Small { len, bytes } => bytes.get(..usize::from(*len)),
            Data::InRecord { .. } => None,
        }
    }

    /// The data within the record's payload (`None` for inline data, or a range that does not
    /// fit the payload: damage).
    #[inline]
    pub(crate) fn data_in<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        match self.data {
            Data::Small { .. } => None,
            Data::InRecord { at, len } => {
                let start = at as usize;
                payload.get(start..start.checked_add(len as usize)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_data_is_inline_and_large_is_sliced_from_the_record() {
        let loc = Loc {
            segment: 1,
            offset: 64,
            len: 40,
        };
        for len in 0..=8 {
            let data: Vec<u8> = (0..len as u8).collect();
            let stored = Stored::new(loc, ValueType::BINARY, &data, 0);
            assert_eq!(stored.small_data(), Some(&data[..]));
        }
        let payload: Vec<u8> = (0..40).collect();
        let large = Stored::new(loc, ValueType::BINARY, &payload[5..25], 5);
        assert_eq!(large.small_data(), None);
        assert_eq!(large.data_in(&payload), Some(&payload[5..25]));
        assert_eq!(
            large.data_in(&payload[..20]),
            None,
            "a range past the payload is damage"
        );
        assert!(std::mem::size_of::<Stored>() <= 28);
    }
}
