//! A stream: one transaction's records outside the journal, for backups (and everything built
//! on them: restores, offline hives, whole-registry copies). It is a journal run of its own:
//! the same frames (`len | crc32c | body`, 8-byte aligned) with one sequence number, closed by
//! a Commit record, between a header that carries the journal user's description of the
//! stream and a trailer that counts the records and checksums everything before it.
//!
//! ```text
//! header   magic "HVLGSTR\0" | version u32 | info length u32 | seq u64 | info | zero padding to 8
//! frames   Op records (seq as in the header) ... then one Commit (op count = the Op records)
//! trailer  magic "HVLGEND\0" | record count u64 | crc32c u32 of every byte before the trailer | 0 u32
//! ```
//!
//! A writer streams in bounded memory (one record at a time); a reader verifies the whole
//! stream (every frame's checksum and structure, the trailer's count and checksum, nothing
//! after it) before anyone acts on it, copying it aside as it goes so a stream read from a
//! pipe can be applied afterwards. FORMAT.md describes every byte.

use std::io::{self, Read, Write};

use crate::Seq;
use crate::codec::{Put, Reader, Short};
use crate::error::LogError;
use crate::frame;
use crate::record::{Commit, Kind, PRINCIPAL_MAX_BYTES};
use crate::scan::RECORDS_PER_TRANSACTION_MAX;

/// The first eight bytes of every stream.
pub const STREAM_MAGIC: [u8; 8] = *b"HVLGSTR\0";
/// The stream format this code writes; a reader refuses others.
pub const STREAM_VERSION: u32 = 1;
/// The longest description a stream's header carries.
pub const STREAM_INFO_MAX_BYTES: usize = 1 << 20;
/// The largest record a stream carries (a value of the largest size with its name).
pub const STREAM_RECORD_MAX_BYTES: u32 = 80 << 20;

const TRAILER_MAGIC: [u8; 8] = *b"HVLGEND\0";
/// Bytes of records a writer gathers before it checksums and writes them.
const BATCH_BYTES: usize = 64 << 10;
const TRAILER_BYTES: usize = 24;
const FIXED_HEADER_BYTES: usize = 24;

fn padding(len: usize) -> usize {
    len.next_multiple_of(8) - len
}

/// Writes a stream to `out`, one record at a time.
pub struct StreamWriter<W: Write> {
    out: W,
    seq: Seq,
    crc: u32,
    records: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<W: Write> StreamWriter<W> {
    /// Starts a stream of transaction `seq` described by `info` (the journal user's bytes).
    pub fn new(out: W, seq: Seq, info: &[u8]) -> io::Result<StreamWriter<W>> {
        assert!(info.len() <= STREAM_INFO_MAX_BYTES, "stream info too long");
        let mut writer = StreamWriter {
            out,
            seq,
            crc: 0,
            records: 0,
            bytes: 0,
            buf: Vec::with_capacity(FIXED_HEADER_BYTES + info.len() + 8),
        };
        writer.buf.put_bytes(&STREAM_MAGIC);
        writer.buf.put_u32(STREAM_VERSION);
        writer.buf.put_u32(info.len() as u32);
        writer.buf.put_u64(seq);
        writer.buf.put_bytes(info);
        writer
            .buf
            .resize(writer.buf.len() + padding(writer.buf.len()), 0);
        writer.flush_buf()?;
        Ok(writer)
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.bytes += self.buf.len() as u64;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Appends one Op record whose payload `encode` writes.
    pub fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), LogError> {
        if self.records >= u64::from(RECORDS_PER_TRANSACTION_MAX) {
            return Err(LogError::TooManyRecords {
                max: RECORDS_PER_TRANSACTION_MAX,
            });
        }
        let start = frame::begin(&mut self.buf, self.seq, Kind::Op);
        encode(&mut self.buf);
        let body = self.buf.len() - start - frame::HEADER_BYTES as usize;
        if body > STREAM_RECORD_MAX_BYTES as usize {
            self.buf.truncate(start);
            return Err(LogError::BadStream {
                offset: self.bytes + start as u64,
                reason: format!("a record of {body} bytes is over STREAM_RECORD_MAX_BYTES"),
            });
        }
        frame::finish(&mut self.buf, start);
        self.records += 1;
        // Records are checksummed and written in batches: a CRC over a few hundred bytes at a
        // time, once per record, cost as much as everything else a backup does per record.
        if self.buf.len() >= BATCH_BYTES {
            self.flush_buf()
                .map_err(|e| LogError::io("write", "the stream", e))?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    /// Closes the stream: the Commit record (by `principal`, at `time_unix_nanos`) and the
    /// trailer. Returns the output and the stream's length.
    pub fn finish(mut self, principal: &str, time_unix_nanos: i64) -> Result<(W, u64), LogError> {
        if principal.len() > PRINCIPAL_MAX_BYTES {
            return Err(LogError::PrincipalTooLong {
                len: principal.len(),
                max: PRINCIPAL_MAX_BYTES,
            });
        }
        let io = |e| LogError::io("write", "the stream", e);
        let start = frame::begin(&mut self.buf, self.seq, Kind::Commit);
        Commit {
            principal,
            time_unix_nanos,
            op_count: self.records as u32,
            synced_through: 0,
        }
        .encode(&mut self.buf);
        frame::finish(&mut self.buf, start);
        self.flush_buf().map_err(io)?;
        let mut trailer = Vec::with_capacity(TRAILER_BYTES);
        trailer.put_bytes(&TRAILER_MAGIC);
        trailer.put_u64(self.records);
        trailer.put_u32(self.crc);
        trailer.put_u32(0);
        self.out.write_all(&trailer).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok((self.out, self.bytes + TRAILER_BYTES as u64))
    }
}

/// What a verified stream says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The transaction's sequence number (for a backup: its cut).
    pub seq: Seq,
    /// The journal user's description from the header.
    pub info: Vec<u8>,
    /// Op records.
    pub records: u64,
    /// Who wrote the stream, and when (its Commit record).
    pub principal: String,
    /// Nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// The stream's length.
    pub bytes: u64,
}

/// Reads `input` to its end, checking everything, and copies every byte to `copy` (a spool,
/// or `io::sink()`). An error names the offset and what is wrong; nothing in the stream
/// may be trusted unless this returns `Ok`.
pub fn verify_stream(input: impl Read, copy: impl Write) -> Result<StreamInfo, LogError> {
    let mut reader = Checked {
        input,
        copy,
        crc: 0,
        offset: 0,
    };
    let header = reader.exact(FIXED_HEADER_BYTES)?;
    let mut r = Reader::new(&header);
    let bad = |offset, reason: &str| LogError::BadStream {
        offset,
        reason: reason.to_string(),
    };
    if r.bytes(8, "magic").map_err(|_| bad(0, "too short"))? != STREAM_MAGIC {
        return Err(bad(0, "not a hivelog stream (bad magic)"));
    }
    let short = |s: Short| bad(0, s.0);
    let version = r.u32("stream version").map_err(short)?;
    if version != STREAM_VERSION {
        return Err(bad(8, &format!("unsupported stream version {version}")));
    }
    let info_len = r.u32("stream info length").map_err(short)? as usize;
    if info_len > STREAM_INFO_MAX_BYTES {
        return Err(bad(12, "stream info longer than STREAM_INFO_MAX_BYTES"));
    }
    let seq = r.u64("stream sequence number").map_err(short)?;
    let info = reader.exact(info_len)?;
    reader.padding(FIXED_HEADER_BYTES + info_len)?;
    let mut records = 0u64;
    let commit = loop {
        let at = reader.offset;
        let frame = reader.frame()?;
        let (frame_seq, kind, payload) = frame_parts(&frame).map_err(|s| bad(at, s.0))?;
        if frame_seq != seq {
            return Err(bad(at, "record of another transaction"));
        }
        match kind {
            Kind::Op => {
                records += 1;
                if records > u64::from(RECORDS_PER_TRANSACTION_MAX) {
                    return Err(bad(at, "more records than RECORDS_PER_TRANSACTION_MAX"));
                }
            }
            Kind::Commit => {
                let commit = Commit::decode(payload).map_err(|s| bad(at, s.0))?;
                if u64::from(commit.op_count) != records {
                    return Err(bad(at, "commit record counts another number of records"));
                }
                break (commit.principal.to_string(), commit.time_unix_nanos);
            }
            Kind::Seal | Kind::Mark => return Err(bad(at, "segment record in a stream")),
        }
    };
    let crc = reader.crc;
    let at = reader.offset;
    let trailer = reader.exact(TRAILER_BYTES)?;
    let mut r = Reader::new(&trailer);
    let short = |s: Short| bad(at, s.0);
    if r.bytes(8, "trailer magic").map_err(short)? != TRAILER_MAGIC {
        return Err(bad(at, "no trailer after the commit record"));
    }
    if r.u64("trailer record count").map_err(short)? != records {
        return Err(bad(at + 8, "trailer counts another number of records"));
    }
    if r.u32("trailer checksum").map_err(short)? != crc {
        return Err(bad(at + 16, "stream checksum mismatch"));
    }
    if r.u32("trailer padding").map_err(short)? != 0 {
        return Err(bad(at + 20, "trailer padding is not zero"));
    }
    reader.end()?;
    Ok(StreamInfo {
        seq,
        info,
        records,
        principal: commit.0,
        time_unix_nanos: commit.1,
        bytes: reader.offset,
    })
}

/// The sequence number, kind and payload of a frame's body.
fn frame_parts(body: &[u8]) -> Result<(Seq, Kind, &[u8]), Short> {
    let mut r = Reader::new(body);
    let seq = r.u64("record sequence number")?;
    let kind = Kind::from_u8(r.u8("record kind")?).ok_or(Short("unknown record kind"))?;
    Ok((seq, kind, r.bytes(r.remaining(), "record payload")?))
}

/// A reader that checksums and copies what it reads.
struct Checked<R: Read, C: Write> {
    input: R,
    copy: C,
    crc: u32,
    offset: u64,
}

impl<R: Read, C: Write> Checked<R, C> {
    fn exact(&mut self, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.input
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => LogError::BadStream {
                    offset: self.offset,
                    reason: "the stream ends early (truncated)".to_string(),
                },
                _ => LogError::io("read", "the stream", e),
            })?;
        self.crc = crc32c::crc32c_append(self.crc, &buf);
        self.offset += len as u64;
        self.copy
            .write_all(&buf)
            .map_err(|e| LogError::io("copy", "the stream", e))?;
        Ok(buf)
    }

    fn padding(&mut self, written: usize) -> Result<(), LogError> {
        let at = self.offset;
        if self.exact(padding(written))?.iter().any(|&b| b != 0) {
            return Err(LogError::BadStream {
                offset: at,
                reason: "padding is not zero".to_string(),
            });
        }
        Ok(())
    }

    /// One frame's body, its checksum verified.
    fn frame(&mut self) -> Result<Vec<u8>, LogError> {
        let at = self.offset;
        let header = self.exact(frame::HEADER_BYTES as usize)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let bad = |reason: &str| LogError::BadStream {
            offset: at,
            reason: reason.to_string(),
        };
        if (len as usize) < frame::BODY_PREFIX_BYTES || len > STREAM_RECORD_MAX_BYTES {
            return Err(bad("frame length out of range"));
        }
        let body = self.exact(len as usize)?;
        if frame::crc(len, &body) != stored {
            return Err(bad("frame checksum mismatch"));
        }
        self.padding(len as usize)?;
        Ok(body)
    }

    fn end(&mut self) -> Result<(), LogError> {
        let mut extra = [0u8; 1];
        match self.input.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(LogError::BadStream {
                offset: self.offset,
                reason: "bytes after the trailer".to_string(),
            }),
            Err(e) => Err(LogError::io("read", "the stream", e)),
        }
    }
}

/// The Op payloads of a stream that [`verify_stream`] accepted, in order.
pub fn stream_ops(stream: &[u8]) -> Result<StreamOps<'_>, LogError> {
    let bad = |reason: &str| LogError::BadStream {
        offset: 0,
        reason: reason.to_string(),
    };
    let info_len = stream
        .get(12..16)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("too short"))?;
    let start = FIXED_HEADER_BYTES + info_len;
    Ok(StreamOps {
        stream,
        at: start + padding(start),
    })
}

/// An iterator over a verified stream's Op payloads.
pub struct StreamOps<'a> {
    stream: &'a [u8],
    at: usize,
}

impl<'a> Iterator for StreamOps<'a> {
    type Item = Result<&'a [u8], LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.stream.get(self.at..)?;
        match frame::read(rest) {
            frame::Read::Frame(frame) if frame.kind == Kind::Op => {
                self.at += frame.total_bytes as usize;
                Some(Ok(frame.payload))
            }
            frame::Read::Frame(_) => None,
            _ => Some(Err(LogError::BadStream {
                offset: self.at as u64,
                reason: "record changed since it was verified".to_string(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(records: usize) -> Vec<u8> {
        let mut writer = StreamWriter::new(Vec::new(), 42, b"the info").unwrap();
        for i in 0..records {
            writer
                .push(|buf| buf.extend_from_slice(format!("record {i}").as_bytes()))
                .unwrap();
        }
        writer.finish("tester", 7).unwrap().0
    }

    #[test]
    fn a_stream_round_trips() {
        let stream = sample(5);
        let mut copy = Vec::new();
        let info = verify_stream(&stream[..], &mut copy).unwrap();
        assert_eq!(copy, stream, "the copy is the stream");
        assert_eq!(
            info,
            StreamInfo {
                seq: 42,
                info: b"the info".to_vec(),
                records: 5,
                principal: "tester".into(),
                time_unix_nanos: 7,
                bytes: stream.len() as u64,
            }
        );
        let ops: Vec<Vec<u8>> = stream_ops(&stream)
            .unwrap()
            .map(|op| op.unwrap().to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("record {i}").into_bytes()).collect();
        assert_eq!(ops, expected);
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let stream = sample(3);
        for cut in 0..stream.len() {
            assert!(
                verify_stream(&stream[..cut], io::sink()).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..stream.len() {
            for bit in 0..8 {
                let mut bad = stream.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    verify_stream(&bad[..], io::sink()).is_err(),
                    "flip of bit {bit} of byte {i}"
                );
            }
        }
        let mut longer = stream.clone();
        longer.push(0);
        assert!(
            verify_stream(&longer[..], io::sink()).is_err(),
            "a byte after the trailer"
        );
        let foreign = b"PK\x03\x04 not a stream at all, just some bytes long enough".to_vec();
        let error = verify_stream(&foreign[..], io::sink()).unwrap_err();
        assert!(error.to_string().contains("bad magic"), "{error}");
    }

    #[test]
    fn an_empty_stream_is_a_commit_and_a_trailer() {
        let stream = sample(0);
        let info = verify_stream(&stream[..], io::sink()).unwrap();
        assert_eq!(info.records, 0);
        assert_eq!(stream_ops(&stream).unwrap().count(), 0);
    }
}
