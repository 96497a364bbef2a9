//! A segment: one preallocated, memory-mapped journal file.
//!
//! Layout: a 64-byte header, then frames from offset 64 up to the data end, then zeros (the
//! preallocated, never-written rest). The file is named by the sequence number of its first
//! transaction.
//!
//! Concurrency discipline: bytes `[0, published)` are immutable and may be read by any thread
//! through the (read-only) map; only the journal's writer, which holds the writer lock, writes
//! (with pwrite into the page cache the map shares), and only at or beyond `published`. A
//! reader learns of new bytes through the Release store of `published` (and the index's own
//! lock), so no byte is ever read while it is written.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Seq;
use crate::codec::{Put, Reader, Short};
use crate::frame;
use crate::vfs::{MappedFile, Vfs};

/// Bytes of the segment header; frames start here.
pub const HEADER_BYTES: u64 = 64;
/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HVLGSEG\0";
/// The journal format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FILE_SUFFIX: &str = ".seg";
/// The suffix of a compaction's base segment (`base.rs`).
const BASE_SUFFIX: &str = ".base";
/// A base segment's number has this bit set over the number of the last ordinary segment it
/// replaces: while old snapshots still read the replaced segments, a location in the base
/// never names one of them. Ordinary numbers stay below it (`SEGMENTS_MAX`).
pub const BASE_NUMBER_FLAG: u64 = 1 << 31;

/// The fixed header at the start of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Position in the journal: 0 for the first segment, then +1 per segment.
    pub number: u64,
    /// Sequence number of the first transaction written into this segment.
    pub first_seq: Seq,
    /// File size; the segment never grows.
    pub capacity: u64,
    pub created_unix_nanos: i64,
}

impl Header {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER_BYTES as usize);
        buf.put_bytes(&SEGMENT_MAGIC);
        buf.put_u32(FORMAT_VERSION);
        buf.put_u32(HEADER_BYTES as u32);
        buf.put_u64(self.number);
        buf.put_u64(self.first_seq);
        buf.put_u64(self.capacity);
        buf.put_i64(self.created_unix_nanos);
        buf.resize(HEADER_BYTES as usize - 4, 0);
        let crc = crc32c::crc32c(&buf);
        buf.put_u32(crc);
        debug_assert_eq!(buf.len() as u64, HEADER_BYTES);
        buf
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, Short> {
        let header = bytes
            .get(..HEADER_BYTES as usize)
            .ok_or(Short("file shorter than a segment header"))?;
        let mut r = Reader::new(header);
        if r.bytes(8, "magic")? != SEGMENT_MAGIC {
            return Err(Short("not a hivelog segment (bad magic)"));
        }
        let crc_region = &header[..HEADER_BYTES as usize - 4];
        let mut crc_reader = Reader::new(&header[HEADER_BYTES as usize - 4..]);
        if crc32c::crc32c(crc_region) != crc_reader.u32("header checksum")? {
            return Err(Short("segment header checksum mismatch"));
        }
        let version = r.u32("format version")?;
        if version != FORMAT_VERSION {
            return Err(Short("unsupported journal format version"));
        }
        if u64::from(r.u32("header size")?) != HEADER_BYTES {
            return Err(Short("unexpected segment header size"));
        }
        let number = r.u64("segment number")?;
        let first_seq = r.u64("first sequence number")?;
        let capacity = r.u64("capacity")?;
        let created_unix_nanos = r.i64("creation time")?;
        if first_seq == 0 {
            return Err(Short("first sequence number is zero"));
        }
        if capacity != bytes.len() as u64 {
            return Err(Short("segment size differs from the size in its header"));
        }
        Ok(Header {
            number,
            first_seq,
            capacity,
            created_unix_nanos,
        })
    }
}

/// The file name of the segment whose first transaction is `first_seq`.
pub(crate) fn file_name(first_seq: Seq) -> String {
    format!("{first_seq:020}{FILE_SUFFIX}")
}

/// The first sequence number a segment file name carries, if it is a segment's name.
pub(crate) fn parse_file_name(name: &str) -> Option<Seq> {
    match parse_name(name)? {
        (seq, FileKind::Segment) => Some(seq),
        (_, FileKind::Base) => None,
    }
}

/// The file name of the base segment holding the state at `seq`.
pub(crate) fn base_file_name(seq: Seq) -> String {
    format!("{seq:020}{BASE_SUFFIX}")
}

/// Whether `number` is a base segment's.
pub(crate) fn is_base(number: u64) -> bool {
    number & BASE_NUMBER_FLAG != 0
}

/// The number of the ordinary segment that follows segment `number` (a base continues the
/// numbering of the segments it replaced).
pub(crate) fn next_number(number: u64) -> u64 {
    (number & !BASE_NUMBER_FLAG) + 1
}

/// What a journal file's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileKind {
    /// A base segment (sorts first among files of the same sequence number).
    Base,
    /// An ordinary segment.
    Segment,
}

/// The first sequence number and kind a journal file's name carries, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<(Seq, FileKind)> {
    let (digits, kind) = match name.strip_suffix(FILE_SUFFIX) {
        Some(digits) => (digits, FileKind::Segment),
        None => (name.strip_suffix(BASE_SUFFIX)?, FileKind::Base),
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, kind))
}

/// One journal file, mapped.
pub struct Segment {
    file: Arc<dyn MappedFile>,
    base: *const u8,
    capacity: u64,
    name: String,
    number: u64,
    first_seq: Seq,
    created_unix_nanos: i64,
    published: AtomicU64,
    synced: AtomicU64,
}

// SAFETY: `base` points into the mapping owned by `file`, which lives as long as the segment.
// Shared access follows the discipline in the module documentation: readers see only
// `[0, published)`, which no one writes again; the single writer writes only beyond it.
unsafe impl Send for Segment {}
// SAFETY: as for Send.
unsafe impl Sync for Segment {}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("number", &self.number)
            .field("published", &self.published())
            .finish()
    }
}

impl Segment {
    /// Creates, preallocates and maps a new segment, writes its header and syncs it.
    /// The caller syncs the directory.
    pub(crate) fn create(vfs: &dyn Vfs, dir: &Path, header: Header) -> io::Result<Segment> {
        Segment::create_named(vfs, dir, file_name(header.first_seq), header)
    }

    /// As [`Segment::create`], under another file name (a base being written).
    pub(crate) fn create_named(
        vfs: &dyn Vfs,
        dir: &Path,
        name: String,
        header: Header,
    ) -> io::Result<Segment> {
        let file = vfs.create_mapped(&dir.join(&name), header.capacity)?;
        let mut segment = Segment::from_file(file, name);
        segment.number = header.number;
        segment.first_seq = header.first_seq;
        segment.created_unix_nanos = header.created_unix_nanos;
        segment.write(0, &header.encode())?;
        segment.sync(HEADER_BYTES)?;
        segment.publish(HEADER_BYTES);
        Ok(segment)
    }

    /// Maps an existing segment. Its header is checked by recovery, which knows how to report it.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        name: &str,
        writable: bool,
    ) -> io::Result<Segment> {
        let file = vfs.open_mapped(&dir.join(name), writable)?;
        Ok(Segment::from_file(file, name.to_string()))
    }

    fn from_file(file: Arc<dyn MappedFile>, name: String) -> Segment {
        Segment {
            base: file.as_ptr(),
            capacity: file.len_bytes(),
            file,
            name,
            number: 0,
            first_seq: 0,
            created_unix_nanos: 0,
            published: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        }
    }

    /// Records what recovery learned from the header and where valid data ends.
    pub(crate) fn set_recovered(&mut self, header: Header, data_end: u64) {
        self.number = header.number;
        self.first_seq = header.first_seq;
        self.created_unix_nanos = header.created_unix_nanos;
        *self.published.get_mut() = data_end;
        // What survived a restart was read back from the file; whether it is on disk is not
        // known until the first sync, so claim nothing beyond the header.
        *self.synced.get_mut() = HEADER_BYTES.min(data_end);
    }

    /// The file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Position in the journal (0 for the first segment).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The file is now called `name` (a base renamed into place).
    pub(crate) fn set_name(&mut self, name: String) {
        self.name = name;
    }

    /// When the segment was created, by the wall clock.
    pub(crate) fn created_unix_nanos(&self) -> i64 {
        self.created_unix_nanos
    }

    /// Sequence number of the first transaction in this segment.
    pub fn first_seq(&self) -> Seq {
        self.first_seq
    }

    /// Size of the file.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// End of the bytes readers may see.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// End of the published bytes known to be durable.
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// The whole mapping, for recovery; `&mut` proves no writer or reader is about.
    pub(crate) fn contents(&mut self) -> &[u8] {
        // SAFETY: the mapping is `capacity` bytes long and alive; `&mut self` excludes writers.
        unsafe { std::slice::from_raw_parts(self.base, self.capacity as usize) }
    }

    /// Published bytes `[offset, offset + len)`, or `None` if the range is not published.
    pub(crate) fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.published() {
            return None;
        }
        // SAFETY: the range is within the mapping and published, hence immutable.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(offset as usize), len as usize) })
    }

    /// The whole mapping, for a follower: past `published`, bytes another process (the
    /// store's writer) may be writing as they are read. The scan that reads them trusts only
    /// frames whose checksums hold and publishes only complete transactions.
    pub(crate) fn mapping(&self) -> &[u8] {
        // SAFETY: the mapping is `capacity` bytes long and lives as long as `self.file`. Its
        // unpublished part may change while borrowed (the writer is another process, which
        // Rust's aliasing rules cannot see); it is read only by the frame scan, which checks
        // each frame's CRC before using it and keeps only committed transactions.
        unsafe { std::slice::from_raw_parts(self.base, self.capacity as usize) }
    }

    /// The payload of the Op frame at `offset` whose body is `body_len` bytes.
    pub(crate) fn op_payload(&self, offset: u32, body_len: u32) -> Option<&[u8]> {
        let body = self.bytes(u64::from(offset) + frame::HEADER_BYTES, u64::from(body_len))?;
        body.get(frame::BODY_PREFIX_BYTES..)
    }

    /// Writes `data` at `offset`, which must lie beyond everything published: no reader can be
    /// looking at these bytes. Only the writer (under the writer lock) and recovery (before the
    /// segment is shared) write.
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        assert!(self.file.is_writable(), "write to a read-only segment");
        let end = offset + data.len() as u64;
        assert!(
            end <= self.capacity,
            "write past the end of segment {}",
            self.name
        );
        assert!(
            offset >= self.published(),
            "write into published bytes of {}",
            self.name
        );
        self.file.write_at(offset, data)
    }

    /// Writes `[from, to)` back to the device now (see [`MappedFile::write_back`]).
    pub(crate) fn write_back(&self, from: u64, to: u64) -> io::Result<()> {
        self.file.write_back(from, to)
    }

    /// Overwrites `[from, to)` with zeros; used by recovery to cut a torn tail, so that stale
    /// frames past the cut can never be read as new ones.
    pub(crate) fn zero(&mut self, from: u64, to: u64) -> io::Result<()> {
        const CHUNK_BYTES: u64 = 1 << 20;
        assert!(from <= to && to <= self.capacity);
        let zeros = vec![0u8; CHUNK_BYTES.min(to - from) as usize];
        let mut at = from;
        while at < to {
            let n = (to - at).min(CHUNK_BYTES);
            self.write(at, &zeros[..n as usize])?;
            at += n;
        }
        Ok(())
    }

    /// Makes readers see `[0, end)`.
    pub(crate) fn publish(&self, end: u64) {
        let before = self.published.swap(end, Ordering::Release);
        assert!(
            before <= end,
            "published end of {} went backwards",
            self.name
        );
    }

    /// Makes `[0, through)` durable.
    pub(crate) fn sync(&self, through: u64) -> io::Result<()> {
        debug_assert!(through <= self.capacity);
        self.file.sync(through)?;
        // Only published bytes count: recovery syncs the zeros it wrote past the data end,
        // and frames appended there later must not inherit that claim (they were not synced).
        self.synced
            .fetch_max(through.min(self.published()), Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            number: 3,
            first_seq: 1000,
            capacity: 4096,
            created_unix_nanos: 17,
        }
    }

    fn file_of(header: &Header) -> Vec<u8> {
        let mut bytes = header.encode();
        bytes.resize(header.capacity as usize, 0);
        bytes
    }

    #[test]
    fn header_round_trip() {
        let bytes = file_of(&header());
        assert_eq!(Header::decode(&bytes), Ok(header()));
    }

    #[test]
    fn header_rejections() {
        let good = file_of(&header());
        assert!(Header::decode(&good[..10]).is_err(), "short file");
        for i in 0..HEADER_BYTES as usize {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(Header::decode(&bad).is_err(), "flip in header byte {i}");
        }
        let mut wrong_size = good.clone();
        wrong_size.push(0);
        assert!(
            Header::decode(&wrong_size).is_err(),
            "file size differs from header"
        );
        let other_version = Header { ..header() };
        let mut bytes = file_of(&other_version);
        bytes[8] = 2;
        let crc = crc32c::crc32c(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Header::decode(&bytes),
            Err(Short("unsupported journal format version"))
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
        assert_eq!(parse_name(&base_file_name(42)), Some((42, FileKind::Base)));
        assert_eq!(parse_file_name(&base_file_name(42)), None);
        assert_eq!(parse_name("00000000000000000042.base.tmp"), None);
        assert_eq!(next_number(BASE_NUMBER_FLAG | 7), 8);
        assert_eq!(next_number(7), 8);
    }
}
