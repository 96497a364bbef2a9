//! What the index keeps for a value version: where its record sits in the journal, and, for
//! data of eight bytes or less (DWORDs, QWORDs: most registry values), the data itself, so a
//! point read of a small value never touches the journal.

use hivelog_log::Loc;

use crate::value::ValueType;

const SMALL_MAX_BYTES: usize = 8;
const NOT_SMALL: u8 = u8::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The SetValue record (also the source of the value's name as written).
    pub loc: Loc,
    pub ty: ValueType,
    small_len: u8,
    small: [u8; SMALL_MAX_BYTES],
}

impl Stored {
    pub(crate) fn new(loc: Loc, ty: ValueType, data: &[u8]) -> Stored {
        let mut small = [0u8; SMALL_MAX_BYTES];
        let small_len = if data.len() <= SMALL_MAX_BYTES {
            small[..data.len()].copy_from_slice(data);
            data.len() as u8
        } else {
            NOT_SMALL
        };
        Stored {
            loc,
            ty,
            small_len,
            small,
        }
    }

    /// The data, if it is kept inline.
    #[inline]
    pub(crate) fn small_data(&self) -> Option<&[u8]> {
        self.small.get(..usize::from(self.small_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_data_is_inline_and_large_is_not() {
        let loc = Loc {
            segment: 1,
            offset: 64,
            len: 40,
        };
        for len in 0..=8 {
            let data: Vec<u8> = (0..len as u8).collect();
            let stored = Stored::new(loc, ValueType::BINARY, &data);
            assert_eq!(stored.small_data(), Some(&data[..]));
        }
        assert_eq!(
            Stored::new(loc, ValueType::BINARY, &[0; 9]).small_data(),
            None
        );
        assert!(std::mem::size_of::<Stored>() <= 28);
    }
}
