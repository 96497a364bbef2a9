//! The record kinds the journal itself writes, with their payload codecs side by side.
//!
//! `Op` payloads belong to the journal's user (the registry encodes its operations there); the
//! journal only frames them. `Commit` closes a transaction, `Seal` closes a segment, `Mark`
//! records at a clean close how far the segment is known to be durable.

use crate::codec::{Put, Reader, Short};

/// Longest principal name a commit record carries.
pub const PRINCIPAL_MAX_BYTES: usize = 1024;

/// A record's kind, the byte after its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// An operation of a transaction; the payload is the journal user's.
    Op = 1,
    /// Closes a transaction: the transaction exists only if this record is intact.
    Commit = 2,
    /// Closes a segment; nothing follows it in that segment.
    Seal = 3,
    /// Written at a clean close: evidence of how far the segment was durable.
    Mark = 4,
}

impl Kind {
    pub(crate) fn from_u8(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Op),
            2 => Some(Kind::Commit),
            3 => Some(Kind::Seal),
            4 => Some(Kind::Mark),
            _ => None,
        }
    }
}

/// What a Commit record says about its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit<'a> {
    /// Who committed.
    pub principal: &'a str,
    /// Wall-clock time of the commit, nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Number of Op records in the transaction.
    pub op_count: u32,
    /// Offset in this segment up to which the segment was known durable when this record was
    /// written. Recovery uses it to tell a torn tail from damage to acknowledged data.
    pub synced_through: u64,
}

impl Commit<'_> {
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        debug_assert!(self.principal.len() <= PRINCIPAL_MAX_BYTES);
        buf.put_u32(self.op_count);
        buf.put_u64(self.synced_through);
        buf.put_i64(self.time_unix_nanos);
        buf.put_u16(self.principal.len() as u16);
        buf.put_bytes(self.principal.as_bytes());
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Commit<'_>, Short> {
        let mut r = Reader::new(payload);
        let op_count = r.u32("commit op count")?;
        let synced_through = r.u64("commit synced offset")?;
        let time_unix_nanos = r.i64("commit time")?;
        let principal_len = usize::from(r.u16("commit principal length")?);
        if principal_len > PRINCIPAL_MAX_BYTES {
            return Err(Short("commit principal longer than PRINCIPAL_MAX_BYTES"));
        }
        let principal = r.str(principal_len, "commit principal")?;
        r.finish("trailing bytes after commit record")?;
        Ok(Commit {
            principal,
            time_unix_nanos,
            op_count,
            synced_through,
        })
    }
}

/// Closes a segment: its data ends at `data_end`, the offset of the Seal frame itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seal {
    pub data_end: u64,
}

impl Seal {
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_u64(self.data_end);
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Seal, Short> {
        let mut r = Reader::new(payload);
        let data_end = r.u64("seal data end")?;
        r.finish("trailing bytes after seal record")?;
        Ok(Seal { data_end })
    }
}

/// Evidence that the segment was durable up to `synced_through` when the store closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub synced_through: u64,
}

impl Mark {
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_u64(self.synced_through);
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Mark, Short> {
        let mut r = Reader::new(payload);
        let synced_through = r.u64("mark synced offset")?;
        r.finish("trailing bytes after mark record")?;
        Ok(Mark { synced_through })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_round_trip_and_rejections() {
        let commit = Commit {
            principal: "S-1-5-18",
            time_unix_nanos: 1_700_000_000_123,
            op_count: 3,
            synced_through: 4096,
        };
        let mut buf = Vec::new();
        commit.encode(&mut buf);
        assert_eq!(Commit::decode(&buf), Ok(commit));
        for cut in 0..buf.len() {
            assert!(Commit::decode(&buf[..cut]).is_err(), "short by {cut}");
        }
        let mut long = buf.clone();
        long.push(0);
        assert!(Commit::decode(&long).is_err(), "trailing byte");
        let mut bad_utf8 = buf.clone();
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert!(Commit::decode(&bad_utf8).is_err(), "principal not UTF-8");
        let mut too_long = Vec::new();
        too_long.put_u32(0);
        too_long.put_u64(0);
        too_long.put_i64(0);
        too_long.put_u16(PRINCIPAL_MAX_BYTES as u16 + 1);
        too_long.extend(std::iter::repeat_n(b'a', PRINCIPAL_MAX_BYTES + 1));
        assert!(
            Commit::decode(&too_long).is_err(),
            "principal over the limit"
        );
    }

    #[test]
    fn seal_and_mark_round_trip_and_rejections() {
        let mut buf = Vec::new();
        Seal { data_end: 77 }.encode(&mut buf);
        assert_eq!(Seal::decode(&buf), Ok(Seal { data_end: 77 }));
        assert!(Seal::decode(&buf[..7]).is_err());
        let mut buf = Vec::new();
        Mark { synced_through: 99 }.encode(&mut buf);
        assert_eq!(Mark::decode(&buf), Ok(Mark { synced_through: 99 }));
        buf.push(1);
        assert!(Mark::decode(&buf).is_err());
    }

    #[test]
    fn kinds() {
        for kind in [Kind::Op, Kind::Commit, Kind::Seal, Kind::Mark] {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(5), None);
    }
}
