//! Helpers shared by hivelog's cross-crate tests and the crash-writer binary.
//!
//! - [`frames`] walks a segment image with its own reading of the format (FORMAT.md;
//!   `log/src/segment.rs`, `log/src/frame.rs`), so a test can find transaction boundaries
//!   without reaching into the journal's private code.
//! - [`crash`] is the contract between `hivelog-crash-writer` and `tests/crash.rs`: which keys
//!   and values the writer's transaction number `counter` sets, so the test can check every
//!   acknowledged one after a SIGKILL.

use std::path::{Path, PathBuf};

/// Bytes of a segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Frames start at multiples of this.
pub const FRAME_ALIGN_BYTES: usize = 8;

/// A record kind, the byte after the sequence number in a frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An operation of a transaction.
    Op,
    /// Closes a transaction.
    Commit,
    /// Closes a segment.
    Seal,
    /// Written at a clean close.
    Mark,
}

/// One frame found in a segment image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    /// Offset of the frame (its length field) in the segment.
    pub offset: usize,
    /// Bytes the frame occupies, padding included.
    pub total_bytes: usize,
    /// Offset one past the last body byte: the padding runs from here to `offset + total_bytes`.
    pub body_end: usize,
    /// The record's sequence number.
    pub seq: u64,
    /// The record's kind.
    pub kind: FrameKind,
}

fn u32_at(image: &[u8], offset: usize) -> Option<u32> {
    let bytes = image.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(image: &[u8], offset: usize) -> Option<u64> {
    let bytes = image.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Every well-formed frame of a segment image, in order, up to the first zero or invalid frame.
/// Frames are `len u32 | crc32c u32 | body`, padded to 8 bytes; the CRC is not checked here
/// (the journal checks it; the tests only need to find boundaries in images they wrote).
pub fn frames(image: &[u8]) -> Vec<FrameAt> {
    let mut found = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let (Some(len), Some(crc)) = (u32_at(image, offset), u32_at(image, offset + 4)) {
        if len == 0 && crc == 0 {
            break;
        }
        let len = len as usize;
        let body = offset + 8;
        let (Some(seq), Some(&kind)) = (u64_at(image, body), image.get(body + 8)) else {
            break;
        };
        let kind = match kind {
            1 => FrameKind::Op,
            2 => FrameKind::Commit,
            3 => FrameKind::Seal,
            4 => FrameKind::Mark,
            _ => break,
        };
        let total_bytes = 8 + len.div_ceil(FRAME_ALIGN_BYTES) * FRAME_ALIGN_BYTES;
        if len < 9 || offset + total_bytes > image.len() {
            break;
        }
        found.push(FrameAt {
            offset,
            total_bytes,
            body_end: body + len,
            seq,
            kind,
        });
        offset += total_bytes;
    }
    found
}

/// The byte range `[start, end)` of the transaction with sequence number `seq` in a segment
/// image: from its first record to the end of its Commit frame (padding included).
pub fn txn_range(image: &[u8], seq: u64) -> Option<(usize, usize)> {
    let frames = frames(image);
    let first = frames
        .iter()
        .find(|f| f.seq == seq && f.kind != FrameKind::Mark)?;
    let commit = frames
        .iter()
        .find(|f| f.seq == seq && f.kind == FrameKind::Commit)?;
    Some((first.offset, commit.offset + commit.total_bytes))
}

/// The segment files (`*.seg`) of the store in `store_dir`, in journal order.
pub fn segment_files(store_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store_dir.join("journal"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "seg"));
    files.sort();
    Ok(files)
}

/// What the crash writer's transaction number `counter` writes.
pub mod crash {
    use hivelog::{Options, SyncPolicy, Value};

    /// How the writer (and the test, reopening its store) opens the store: every commit
    /// durable before it returns, and 64 KiB segments so the journal rolls over often.
    pub fn options() -> Options {
        Options {
            sync: SyncPolicy::Always,
            segment_size_bytes: 64 * 1024,
            value_size_max_bytes: 16 * 1024,
            ..Options::default()
        }
    }

    /// The key holding the writer's progress.
    pub const ROOT: &str = r"HKLM\Software\CrashWriter";
    /// The value of [`ROOT`] holding the counter of the last committed transaction (REG_QWORD).
    pub const COUNTER_VALUE: &str = "Counter";
    /// Keys the writer spreads its values over.
    pub const GROUPS: u64 = 7;

    /// The key transaction `counter` writes its main value to.
    pub fn group_key(counter: u64) -> String {
        format!(r"{ROOT}\Group{}", counter % GROUPS)
    }

    /// The name of transaction `counter`'s main value.
    pub fn value_name(counter: u64) -> String {
        format!("V{counter}")
    }

    /// Transaction `counter`'s main value: binary data whose length (1..=3000 bytes) and
    /// bytes are a function of the counter, starting with the counter itself.
    pub fn value(counter: u64) -> Value {
        let len = 8 + (counter.wrapping_mul(2_654_435_761) % 2993) as usize;
        let mut data = counter.to_le_bytes().to_vec();
        data.extend((8..len).map(|i| (counter as usize).wrapping_mul(31).wrapping_add(i) as u8));
        Value::binary(data)
    }

    /// Every third transaction also writes to a second key, created by that transaction.
    pub fn has_extra(counter: u64) -> bool {
        counter.is_multiple_of(3)
    }

    /// The second key of a transaction for which [`has_extra`] holds.
    pub fn extra_key(counter: u64) -> String {
        format!(r"{ROOT}\Extra\E{counter}")
    }

    /// The value the second key holds.
    pub fn extra_value(counter: u64) -> Value {
        Value::string(&format!("extra {counter}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stop_at_zeros() {
        let mut image = vec![0u8; 256];
        // One Op frame with a 9-byte body at offset 64: padded to 8 + 16 bytes.
        image[64..68].copy_from_slice(&9u32.to_le_bytes());
        image[68..72].copy_from_slice(&1u32.to_le_bytes());
        image[72..80].copy_from_slice(&5u64.to_le_bytes());
        image[80] = 1;
        let found = frames(&image);
        assert_eq!(
            found,
            [FrameAt {
                offset: 64,
                total_bytes: 24,
                body_end: 81,
                seq: 5,
                kind: FrameKind::Op
            }]
        );
    }

    #[test]
    fn crash_values_encode_their_counter() {
        for counter in [0u64, 1, 2, 1000, 123_456] {
            let value = crash::value(counter);
            assert_eq!(value.data[..8], counter.to_le_bytes());
            assert!((8..=3000).contains(&value.data.len()));
        }
    }
}
