//! Segments written outside a running journal: archives of a range of transactions, and
//! journals assembled from a base (a stream holding the whole state at a sequence number) and
//! archives. Every file is an ordinary sealed segment, so recovery reads it like any other.
//!
//! - [`archive`]: the transactions in (A, B], framed anew into segments numbered from 0 and
//!   named by their first sequence number. A copy of the journal through N is the archive of
//!   (0, N] written into a new store's `journal/` directory.
//! - [`assemble`]: a journal whose first segment is a base's one transaction (at its sequence
//!   number A) and whose next ones hold archived transactions A+1..N. Opening it rebuilds the
//!   state at N, with sequence number N.
//! - [`verify_segment_file`]: checks one segment file on its own.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::frame;
use crate::journal::Journal;
use crate::record::{Commit, Kind, Seal};
use crate::scan::{self, End};
use crate::segment::{HEADER_BYTES, Header, file_name, parse_file_name};
use crate::stream::stream_ops;
use crate::{Rejected, Seq, TxnView, unix_nanos_now};

/// A segment being built in memory, written whole when sealed.
struct Image {
    number: u64,
    first_seq: Seq,
    buf: Vec<u8>,
    /// The last transaction in it (`first_seq - 1` while empty).
    last_seq: Seq,
}

impl Image {
    fn new(number: u64, first_seq: Seq) -> Image {
        Image {
            number,
            first_seq,
            buf: vec![0; HEADER_BYTES as usize],
            last_seq: first_seq - 1,
        }
    }

    fn is_empty(&self) -> bool {
        self.last_seq < self.first_seq
    }

    fn frame(&mut self, seq: Seq, kind: Kind, payload: impl FnOnce(&mut Vec<u8>)) {
        let start = frame::begin(&mut self.buf, seq, kind);
        payload(&mut self.buf);
        frame::finish(&mut self.buf, start);
    }

    /// Appends transaction `seq`: its op payloads, then its Commit record.
    fn txn<'p>(&mut self, seq: Seq, ops: impl Iterator<Item = &'p [u8]>, commit: &Commit<'_>) {
        assert_eq!(
            seq,
            self.last_seq + 1,
            "transactions in order, without gaps"
        );
        let mut count = 0;
        for op in ops {
            self.frame(seq, Kind::Op, |buf| buf.extend_from_slice(op));
            count += 1;
        }
        assert_eq!(
            count, commit.op_count,
            "a commit counts its transaction's ops"
        );
        self.frame(seq, Kind::Commit, |buf| {
            Commit {
                synced_through: 0,
                ..commit.clone()
            }
            .encode(buf)
        });
        self.last_seq = seq;
    }

    /// Seals the segment and writes it into `dir`, synced.
    fn write(mut self, dir: &Path) -> Result<PathBuf, LogError> {
        let data_end = self.buf.len() as u64;
        self.frame(self.last_seq, Kind::Seal, |buf| {
            Seal { data_end }.encode(buf)
        });
        let header = Header {
            number: self.number,
            first_seq: self.first_seq,
            capacity: self.buf.len() as u64,
            created_unix_nanos: unix_nanos_now(),
        }
        .encode();
        self.buf[..HEADER_BYTES as usize].copy_from_slice(&header);
        let path = dir.join(file_name(self.first_seq));
        let written = File::create(&path)
            .and_then(|mut file| {
                file.write_all(&self.buf)?;
                file.sync_all()
            })
            .map_err(|e| LogError::io("write", &path, e));
        written.map(|()| path)
    }
}

/// Writes transactions into segment files in `dir`, a new segment once one holds
/// `segment_bytes`.
struct Segments<'d> {
    dir: &'d Path,
    segment_bytes: u64,
    image: Image,
    written: Vec<PathBuf>,
}

impl<'d> Segments<'d> {
    fn new(dir: &'d Path, segment_bytes: u64, number: u64, first_seq: Seq) -> Segments<'d> {
        Segments {
            dir,
            segment_bytes,
            image: Image::new(number, first_seq),
            written: Vec::new(),
        }
    }

    fn txn<'p>(
        &mut self,
        seq: Seq,
        ops: impl Iterator<Item = &'p [u8]>,
        commit: &Commit<'_>,
    ) -> Result<(), LogError> {
        if !self.image.is_empty() && self.image.buf.len() as u64 >= self.segment_bytes {
            let next = Image::new(self.image.number + 1, seq);
            let full = std::mem::replace(&mut self.image, next);
            self.written.push(full.write(self.dir)?);
        }
        self.image.txn(seq, ops, commit);
        Ok(())
    }

    fn last_seq(&self) -> Seq {
        self.image.last_seq
    }

    fn finish(mut self) -> Result<Vec<PathBuf>, LogError> {
        if !self.image.is_empty() {
            self.written.push(self.image.write(self.dir)?);
        }
        File::open(self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| LogError::io("sync directory", self.dir, e))?;
        Ok(self.written)
    }
}

fn create_dir(dir: &Path) -> Result<(), LogError> {
    fs::create_dir_all(dir).map_err(|e| LogError::io("create directory", dir, e))
}

/// Writes the transactions of `journal` in (`from`, `to`] into segment files in `dir`
/// (created if need be); returns their paths.
pub fn archive(
    journal: &Journal,
    from: Seq,
    to: Seq,
    dir: &Path,
) -> Result<Vec<PathBuf>, LogError> {
    let last = journal.last_seq();
    if from >= to || to > last {
        return Err(LogError::BadRange { from, to, last });
    }
    // From 0 is the whole journal, which may start from a base; anything else needs every
    // transaction after `from`.
    let base = journal.base_seq();
    if from > 0 && from < base {
        return Err(LogError::Compacted {
            seq: from,
            oldest: base,
        });
    }
    create_dir(dir)?;
    let first = if from == 0 { base.max(1) } else { from + 1 };
    let mut out = Segments::new(dir, journal.segment_size_bytes(), 0, first);
    let mut failed = None;
    journal
        .for_each_txn(from + 1, to, &mut |txn: &TxnView<'_>| {
            out.txn(txn.seq, txn.ops.iter().map(|op| op.payload), &txn.commit)
                .map_err(|error| {
                    let reason = error.to_string();
                    failed = Some(error);
                    Rejected(reason)
                })
        })
        .map_err(|error| failed.take().unwrap_or(error))?;
    out.finish()
}

/// The first transaction of an assembled journal: a verified stream's bytes and what its
/// header and Commit record say.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    /// The stream (verified by `verify_stream`).
    pub stream: &'a [u8],
    /// Its sequence number.
    pub seq: Seq,
    /// Its Commit record's principal.
    pub principal: &'a str,
    /// Its Commit record's time.
    pub time_unix_nanos: i64,
}

/// Builds in `into` (a new store's `journal/` directory, created if need be, and empty) a
/// journal holding `base` as its first transaction (at the base's sequence number A), then
/// the transactions A+1..`to` from the segment files in `archives` (directories of them, or
/// files). Returns the paths written.
pub fn assemble(
    base: Base<'_>,
    archives: &[PathBuf],
    to: Seq,
    segment_bytes: u64,
    into: &Path,
) -> Result<Vec<PathBuf>, LogError> {
    if to < base.seq {
        return Err(LogError::BadRange {
            from: base.seq,
            to,
            last: base.seq,
        });
    }
    create_dir(into)?;
    if fs::read_dir(into)
        .map_err(|e| LogError::io("read directory", into, e))?
        .next()
        .is_some()
    {
        return Err(LogError::NotEmpty {
            path: into.to_path_buf(),
        });
    }
    let mut out = Segments::new(into, segment_bytes, 0, base.seq);
    let ops: Vec<&[u8]> = stream_ops(base.stream)?.collect::<Result<_, _>>()?;
    let commit = Commit {
        principal: base.principal,
        time_unix_nanos: base.time_unix_nanos,
        op_count: u32::try_from(ops.len()).expect("a stream's records are bounded"),
        synced_through: 0,
    };
    out.txn(base.seq, ops.into_iter(), &commit)?;
    for file in archive_files(archives)? {
        if out.last_seq() >= to {
            break;
        }
        let bytes = fs::read(&file).map_err(|e| LogError::io("read", &file, e))?;
        let name = file.display().to_string();
        let mut failed = None;
        each_txn(&bytes, &name, &mut |txn| {
            if txn.seq <= out.last_seq() || txn.seq > to {
                return Ok(());
            }
            if txn.seq != out.last_seq() + 1 {
                return Err(Rejected(format!(
                    "the archives lack transactions {} to {}",
                    out.last_seq() + 1,
                    txn.seq - 1
                )));
            }
            out.txn(txn.seq, txn.ops.iter().map(|op| op.payload), &txn.commit)
                .map_err(|error| {
                    let reason = error.to_string();
                    failed = Some(error);
                    Rejected(reason)
                })
        })
        .map_err(|error| failed.take().unwrap_or(error))?;
    }
    if out.last_seq() < to {
        return Err(LogError::ArchiveShort {
            wanted: to,
            last: out.last_seq(),
        });
    }
    out.finish()
}

/// The segment files in `dirs` (each a directory or one file), ordered by first sequence
/// number.
fn archive_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, LogError> {
    let mut files = Vec::new();
    for dir in dirs {
        if dir.is_file() {
            files.push(dir.clone());
            continue;
        }
        for entry in fs::read_dir(dir).map_err(|e| LogError::io("read directory", dir, e))? {
            let path = entry
                .map_err(|e| LogError::io("read directory", dir, e))?
                .path();
            let segment = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(parse_file_name);
            if segment.is_some() {
                files.push(path);
            }
        }
    }
    files.sort_by_key(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .and_then(parse_file_name)
    });
    Ok(files)
}

/// Hands every transaction of one sealed segment file's bytes to `visit`, checking them.
fn each_txn(
    bytes: &[u8],
    name: &str,
    visit: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<(Seq, Seq), LogError> {
    let corrupt = |offset, seq, reason: String| LogError::Corrupt {
        segment: name.to_string(),
        offset,
        seq,
        reason,
    };
    let header = Header::decode(bytes).map_err(|short| corrupt(0, None, short.0.into()))?;
    let number = u32::try_from(header.number)
        .map_err(|_| corrupt(16, None, "segment number too large".into()))?;
    let mut next_seq = header.first_seq;
    match scan::scan_segment(number, bytes, &mut next_seq, visit) {
        Ok(End::Sealed { .. }) => Ok((header.first_seq, next_seq - 1)),
        Ok(End::Stopped { at, .. }) => Err(corrupt(
            at,
            Some(next_seq),
            "segment ends without a seal record".into(),
        )),
        Err(fault) => Err(corrupt(fault.offset, fault.seq, fault.reason)),
    }
}

/// What one segment file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Its first transaction's sequence number.
    pub first_seq: Seq,
    /// Its last transaction's.
    pub last_seq: Seq,
    /// Transactions in it.
    pub transactions: u64,
}

/// Checks a sealed segment file (an archive) on its own: header, every frame, every
/// transaction's structure, the seal; `visit` sees each transaction and may refuse it (a
/// payload that does not decode), which fails the check naming the place.
pub fn verify_segment_file(
    path: &Path,
    visit: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<SegmentSummary, LogError> {
    let bytes = fs::read(path).map_err(|e| LogError::io("read", path, e))?;
    let mut transactions = 0;
    let (first_seq, last_seq) = each_txn(&bytes, &path.display().to_string(), &mut |txn| {
        transactions += 1;
        visit(txn)
    })?;
    Ok(SegmentSummary {
        first_seq,
        last_seq,
        transactions,
    })
}
