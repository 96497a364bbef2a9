//! What the index keeps for a value version: where its record sits in the journal, and either
//! the data itself (eight bytes or less: DWORDs, QWORDs, most registry values), so a point
//! read of a small value never touches the journal, or where the data starts in the record,
//! so a read of a larger one slices it out without decoding the record. Values of volatile
//! keys have no record: they live in [`VolatileValues`], and their `loc` names a slot there.

use hivelog_log::Loc;

use crate::error::{Error, Result};
use crate::value::{Value, ValueType};

const SMALL_MAX_BYTES: usize = 8;

/// The `segment` of a volatile value's `loc`: no journal segment has this number.
const VOLATILE_SEGMENT: u32 = u32::MAX;

/// Most volatile value versions one open of a store holds.
pub(crate) const VOLATILE_VALUES_MAX: usize = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    /// The bytes themselves.
    Small {
        len: u8,
        bytes: [u8; SMALL_MAX_BYTES],
    },
    /// `len` bytes at `at` in the record's payload.
    InRecord { at: u32, len: u32 },
    /// In the volatile table, at the slot `loc.offset` names.
    Volatile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The SetValue record (also the source of the value's name as written), or for a
    /// volatile value its slot in the volatile table.
    pub loc: Loc,
    pub ty: ValueType,
    data: Data,
}

fn small(data: &[u8]) -> Option<Data> {
    (data.len() <= SMALL_MAX_BYTES).then(|| {
        let mut bytes = [0u8; SMALL_MAX_BYTES];
        bytes[..data.len()].copy_from_slice(data);
        Data::Small {
            len: data.len() as u8,
            bytes,
        }
    })
}

impl Stored {
    /// A value whose record is at `loc`, with `data` starting at `data_at` in its payload.
    pub(crate) fn new(loc: Loc, ty: ValueType, data: &[u8], data_at: usize) -> Stored {
        // Both fit: a record is shorter than a segment, and segments are below 4 GiB.
        let data = small(data).unwrap_or(Data::InRecord {
            at: data_at as u32,
            len: data.len() as u32,
        });
        Stored { loc, ty, data }
    }

    /// A volatile value kept in slot `slot` of the volatile table.
    pub(crate) fn volatile(slot: u32, value: &Value) -> Stored {
        Stored {
            loc: Loc {
                segment: VOLATILE_SEGMENT,
                offset: slot,
                len: 0,
            },
            ty: value.ty,
            data: small(&value.data).unwrap_or(Data::Volatile),
        }
    }

    /// The slot of a volatile value in the volatile table.
    #[inline]
    pub(crate) fn volatile_slot(&self) -> Option<u32> {
        (self.loc.segment == VOLATILE_SEGMENT).then_some(self.loc.offset)
    }

    /// The data, if it is kept inline.
    #[inline]
    pub(crate) fn small_data(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Small { len, bytes } => bytes.get(..usize::from(*len)),
            Data::InRecord { .. } | Data::Volatile => None,
        }
    }

    /// The data within the record's payload (`None` for inline or volatile data, or a range
    /// that does not fit the payload: damage).
    #[inline]
    pub(crate) fn data_in<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        match self.data {
            Data::Small { .. } | Data::Volatile => None,
            Data::InRecord { at, len } => {
                let start = at as usize;
                payload.get(start..start.checked_add(len as usize)?)
            }
        }
    }
}

/// A value version as a checkpoint stores it: `kind` 0 for inline data (`len` bytes of
/// `bytes`), 1 for data at `at` (`len` bytes) in the record's payload.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub(crate) struct StoredImage {
    segment: u32,
    offset: u32,
    record_len: u32,
    ty: u32,
    kind: u8,
    bytes: [u8; SMALL_MAX_BYTES],
    at: u32,
    len: u32,
}

impl Stored {
    /// Its image, or `None` for a volatile value (which no checkpoint holds).
    pub(crate) fn image(&self) -> Option<StoredImage> {
        if self.volatile_slot().is_some() {
            return None;
        }
        let (kind, bytes, at, len) = match self.data {
            Data::Small { len, bytes } => (0, bytes, 0, u32::from(len)),
            Data::InRecord { at, len } => (1, [0; SMALL_MAX_BYTES], at, len),
            Data::Volatile => return None,
        };
        Some(StoredImage {
            segment: self.loc.segment,
            offset: self.loc.offset,
            record_len: self.loc.len,
            ty: self.ty.0,
            kind,
            bytes,
            at,
            len,
        })
    }

    /// The value version an image holds, if it makes sense: inline data of at most eight
    /// bytes, or data within its record, which lies before `end_of(segment)`.
    pub(crate) fn from_image(
        image: &ArchivedStoredImage,
        end_of: impl Fn(u32) -> Option<u64>,
    ) -> std::result::Result<Stored, String> {
        let loc = Loc {
            segment: image.segment.to_native(),
            offset: image.offset.to_native(),
            len: image.record_len.to_native(),
        };
        let (at, len) = (image.at.to_native(), image.len.to_native());
        let data = match image.kind {
            0 if len as usize <= SMALL_MAX_BYTES => Data::Small {
                len: len as u8,
                bytes: image.bytes,
            },
            1 if u64::from(at) + u64::from(len) <= u64::from(loc.len) => Data::InRecord { at, len },
            _ => return Err(format!("a value's data is out of place ({loc:?})")),
        };
        let record_end = u64::from(loc.offset) + 8 + u64::from(loc.len);
        if end_of(loc.segment).is_none_or(|end| record_end > end) {
            return Err(format!("a value's record is outside the journal ({loc:?})"));
        }
        Ok(Stored {
            loc,
            ty: ValueType(image.ty.to_native()),
            data,
        })
    }
}

/// Values of volatile keys: name as written and value, by slot. Append-only while the store
/// is open, like the history the index keeps of them.
#[derive(Debug, Default)]
pub(crate) struct VolatileValues {
    slots: Vec<(Box<str>, Value)>,
}

impl VolatileValues {
    /// Keeps `value` named `name`; returns its slot.
    pub(crate) fn push(&mut self, name: &str, value: Value) -> Result<u32> {
        if self.slots.len() >= VOLATILE_VALUES_MAX {
            return Err(Error::TooMany {
                what: "volatile value versions",
                max: VOLATILE_VALUES_MAX,
            });
        }
        let slot = self.slots.len() as u32;
        self.slots.push((name.into(), value));
        Ok(slot)
    }

    /// The name and value in `slot`.
    pub(crate) fn get(&self, slot: u32) -> Option<(&str, &Value)> {
        self.slots
            .get(slot as usize)
            .map(|(name, value)| (&**name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Loc {
        Loc {
            segment: 1,
            offset: 64,
            len: 40,
        }
    }

    #[test]
    fn small_data_is_inline_and_large_is_sliced_from_the_record() {
        let loc = loc();
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

    #[test]
    fn volatile_values_name_their_slot() {
        let mut table = VolatileValues::default();
        let big = Value::binary(vec![7; 40]);
        let slot = table.push("Big", big.clone()).unwrap();
        let stored = Stored::volatile(slot, &big);
        assert_eq!(stored.volatile_slot(), Some(slot));
        assert_eq!(stored.small_data(), None);
        assert_eq!(stored.data_in(&[0; 64]), None);
        assert_eq!(table.get(slot), Some(("Big", &big)));
        let dword = Value::dword(5);
        let stored = Stored::volatile(table.push("D", dword.clone()).unwrap(), &dword);
        assert_eq!(
            stored.small_data(),
            Some(&dword.data[..]),
            "small data stays inline"
        );
        assert!(
            Stored::new(loc(), ValueType::DWORD, &[1], 0)
                .volatile_slot()
                .is_none()
        );
    }
}
