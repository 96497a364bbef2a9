//! Record framing: `len u32 | crc32c u32 | body`, padded to 8 bytes.
//!
//! The CRC covers the four length bytes and the body, so a torn length is caught as surely as a
//! torn body. The body starts with the sequence number and a kind (`record.rs` has the kinds).
//! Padding keeps every frame 8-byte aligned, which lets recovery look for frames past a damaged
//! one at aligned offsets only; it must be zero. FORMAT.md documents every byte.

use crate::codec::{Put, Reader, Short};
use crate::{Kind, Seq};

/// Bytes before the body: length and CRC.
pub(crate) const HEADER_BYTES: u64 = 8;
/// Frames start at multiples of this.
pub(crate) const ALIGN_BYTES: u64 = 8;
/// Sequence number and kind, at the start of every body.
pub(crate) const BODY_PREFIX_BYTES: usize = 9;

/// Bytes a frame with a body of `body_len` bytes occupies, padding included.
pub(crate) fn frame_bytes(body_len: u64) -> u64 {
    HEADER_BYTES + body_len.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

pub(crate) fn crc(len: u32, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body)
}

/// Starts a frame at the end of `buf`; returns its start for [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>, seq: Seq, kind: Kind) -> usize {
    debug_assert_eq!(buf.len() as u64 % ALIGN_BYTES, 0);
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u32(0);
    buf.put_u64(seq);
    buf.put_u8(kind as u8);
    start
}

/// Closes the frame begun at `start`: fills in length and CRC and pads to the alignment.
/// Returns the body length.
pub(crate) fn finish(buf: &mut Vec<u8>, start: usize) -> u32 {
    let body_start = start + HEADER_BYTES as usize;
    let body_len = buf.len() - body_start;
    let len = u32::try_from(body_len).expect("frame body length is bounded by the segment size");
    let crc = crc(len, &buf[body_start..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    let padded = start + frame_bytes(u64::from(len)) as usize;
    buf.resize(padded, 0);
    len
}

/// A frame read back and checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub seq: Seq,
    pub kind: Kind,
    /// The body after sequence number and kind.
    pub payload: &'a [u8],
    /// Body length, as in the frame header.
    pub body_len: u32,
    /// Bytes the frame occupies, padding included.
    pub total_bytes: u64,
    /// Its checksum.
    pub crc: u32,
}

/// What lies at an offset of a segment.
#[derive(Debug)]
pub(crate) enum Read<'a> {
    Frame(Frame<'a>),
    /// Eight zero bytes: the never-written (preallocated) part of a segment.
    Zero,
    /// Anything else: a torn write or damage.
    Invalid(&'static str),
}

/// Reads the frame at the start of `bytes`, which runs to the end of the segment.
pub(crate) fn read(bytes: &[u8]) -> Read<'_> {
    match read_checked(bytes) {
        Ok(Some(frame)) => Read::Frame(frame),
        Ok(None) => Read::Zero,
        Err(Short(reason)) => Read::Invalid(reason),
    }
}

fn read_checked(bytes: &[u8]) -> Result<Option<Frame<'_>>, Short> {
    let mut header = Reader::new(bytes);
    let len = header.u32("frame header runs past the end of the segment")?;
    let stored_crc = header.u32("frame header runs past the end of the segment")?;
    if len == 0 && stored_crc == 0 {
        return Ok(None);
    }
    if (len as usize) < BODY_PREFIX_BYTES {
        return Err(Short("frame length is shorter than a record body"));
    }
    let body = header.bytes(
        len as usize,
        "frame length runs past the end of the segment",
    )?;
    if crc(len, body) != stored_crc {
        return Err(Short("frame checksum mismatch"));
    }
    // The CRC does not cover the padding; zeros there are checked instead, so that no byte
    // of sealed data can change unnoticed.
    let padding = (frame_bytes(u64::from(len)) - HEADER_BYTES) as usize - len as usize;
    let padding = header.bytes(padding, "frame padding runs past the end of the segment")?;
    if padding.iter().any(|&byte| byte != 0) {
        return Err(Short("frame padding is not zero"));
    }
    let mut r = Reader::new(body);
    let seq = r.u64("record sequence number")?;
    let kind = Kind::from_u8(r.u8("record kind")?).ok_or(Short("unknown record kind"))?;
    let payload = r.bytes(r.remaining(), "record payload")?;
    Ok(Some(Frame {
        crc: stored_crc,
        seq,
        kind,
        payload,
        body_len: len,
        total_bytes: frame_bytes(u64::from(len)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin(&mut buf, 42, Kind::Op);
        buf.extend_from_slice(payload);
        finish(&mut buf, start);
        buf
    }

    #[test]
    fn round_trip() {
        for payload_len in 0..20 {
            let payload: Vec<u8> = (0..payload_len as u8).collect();
            let mut buf = one_frame(&payload);
            assert_eq!(buf.len() as u64 % ALIGN_BYTES, 0);
            buf.extend_from_slice(&[0; 16]);
            let Read::Frame(frame) = read(&buf) else {
                panic!("frame did not read back");
            };
            assert_eq!(frame.seq, 42);
            assert_eq!(frame.kind, Kind::Op);
            assert_eq!(frame.payload, &payload[..]);
            assert_eq!(frame.total_bytes, frame_bytes((payload_len + 9) as u64));
            assert!(matches!(
                read(&buf[frame.total_bytes as usize..]),
                Read::Zero
            ));
        }
    }

    #[test]
    fn every_byte_flip_is_caught() {
        // 25 bytes of body: 7 of padding, which are checked too.
        let buf = one_frame(b"registry payload");
        assert_eq!(buf.len(), 40);
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    matches!(read(&bad), Read::Invalid(_)),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn rejections() {
        assert!(matches!(read(&[0; 4]), Read::Invalid(_)), "short header");
        assert!(matches!(read(&[0; 8]), Read::Zero));
        let mut short_len = vec![0u8; 32];
        short_len[0] = 3;
        assert!(
            matches!(read(&short_len), Read::Invalid(_)),
            "length below a body"
        );
        let buf = one_frame(b"abc");
        assert!(
            matches!(read(&buf[..buf.len() - 8]), Read::Invalid(_)),
            "length past the end"
        );
        let mut bad_kind = Vec::new();
        let start = begin(&mut bad_kind, 1, Kind::Op);
        finish(&mut bad_kind, start);
        bad_kind[16] = 0x77;
        let len = u32::from_le_bytes([bad_kind[0], bad_kind[1], bad_kind[2], bad_kind[3]]);
        let crc = crc(len, &bad_kind[8..8 + len as usize]);
        bad_kind[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(
            matches!(read(&bad_kind), Read::Invalid("unknown record kind")),
            "unknown kind with a good checksum"
        );
    }
}
