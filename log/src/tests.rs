//! Journal behaviour end to end, on the simulated file system (and the real one where it
//! matters: locks, preallocation).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sim::SimVfs;
use crate::{
    Journal, JournalOptions, Loc, LogError, Rejected, SEGMENT_SIZE_MIN_BYTES, Seq, SyncPolicy,
    TxnView,
};

/// An acknowledged commit: its sequence number and payloads.
type Acked = (Seq, Vec<Vec<u8>>);

/// A committed transaction as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Txn {
    seq: Seq,
    principal: String,
    ops: Vec<Vec<u8>>,
}

fn options(vfs: &SimVfs) -> JournalOptions {
    JournalOptions {
        segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        sync: SyncPolicy::Always,
        vfs: Arc::new(vfs.clone()),
        ..JournalOptions::default()
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn open(vfs: &SimVfs) -> Result<(Journal, Vec<Txn>), LogError> {
    open_with(options(vfs))
}

fn open_with(options: JournalOptions) -> Result<(Journal, Vec<Txn>), LogError> {
    let mut seen = Vec::new();
    let journal = Journal::open(&dir(), options, &mut |txn: &TxnView<'_>| {
        seen.push(to_txn(txn));
        Ok(())
    })?;
    Ok((journal, seen))
}

fn to_txn(txn: &TxnView<'_>) -> Txn {
    Txn {
        seq: txn.seq,
        principal: txn.commit.principal.to_string(),
        ops: txn.ops.iter().map(|op| op.payload.to_vec()).collect(),
    }
}

/// Commits `ops`, rolling over when they do not fit, as the registry does.
fn commit(journal: &Journal, ops: &[Vec<u8>]) -> Result<(Seq, Vec<Loc>), LogError> {
    let mut builder = journal.begin()?;
    loop {
        let mut locs = Vec::new();
        for op in ops {
            locs.push(builder.push(|buf| buf.extend_from_slice(op))?);
        }
        if builder.fits() {
            let seq = builder.commit("tester", 7)?;
            return Ok((seq, locs));
        }
        builder.rollover()?;
    }
}

fn payloads(seq: u64, count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            (0..len)
                .map(|j| (seq as usize * 31 + i * 7 + j) as u8)
                .collect()
        })
        .collect()
}

fn expected(seq: Seq, ops: Vec<Vec<u8>>) -> Txn {
    Txn {
        seq,
        principal: "tester".into(),
        ops,
    }
}

fn segment_paths(vfs: &SimVfs) -> Vec<PathBuf> {
    vfs.files()
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "seg") && p.parent() == Some(&dir().join("journal"))
        })
        .collect()
}

fn write_all(vfs: &SimVfs, count: u64, op_len: usize) -> Vec<Txn> {
    let (journal, seen) = open(vfs).unwrap();
    assert!(seen.is_empty());
    let mut written = Vec::new();
    for i in 0..count {
        let ops = payloads(i, 1 + (i % 3) as usize, op_len);
        let (seq, locs) = commit(&journal, &ops).unwrap();
        assert_eq!(seq, i + 1, "sequence numbers rise by one per commit");
        for (loc, op) in locs.iter().zip(&ops) {
            assert_eq!(journal.with_op(*loc, |p| p.to_vec()).as_ref(), Some(op));
        }
        written.push(expected(seq, ops));
    }
    journal.close().unwrap();
    written
}

#[test]
fn reopen_replays_every_transaction_in_order() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 50, 40);
    let (journal, seen) = open(&vfs).unwrap();
    assert_eq!(seen, written);
    assert_eq!(journal.last_seq(), 50);
    assert!(journal.recovery_report().torn_tail.is_none());
    let (seq, _) = commit(&journal, &payloads(99, 1, 5)).unwrap();
    assert_eq!(seq, 51);
}

#[test]
fn rollover_spreads_transactions_over_segments() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 300, 500);
    assert!(
        segment_paths(&vfs).len() > 3,
        "small segments must roll over"
    );
    let (journal, seen) = open(&vfs).unwrap();
    assert_eq!(seen, written);
    let mut iterated = Vec::new();
    journal
        .for_each_txn(100, 120, &mut |txn| {
            iterated.push(to_txn(txn));
            Ok(())
        })
        .unwrap();
    assert_eq!(iterated, written[99..120].to_vec());
}

#[test]
fn a_transaction_larger_than_a_segment_gets_a_segment_of_its_own() {
    let vfs = SimVfs::new();
    let (journal, _) = open(&vfs).unwrap();
    commit(&journal, &payloads(1, 1, 10)).unwrap();
    // Three times the segment size, in one record and in many.
    let big = vec![vec![1u8; 3 * SEGMENT_SIZE_MIN_BYTES as usize]];
    let many = vec![vec![2u8; 1000]; 200];
    let (seq, locs) = commit(&journal, &big).unwrap();
    assert_eq!(seq, 2);
    assert_eq!(journal.with_op(locs[0], |p| p.len()), Some(big[0].len()));
    assert_eq!(commit(&journal, &many).unwrap().0, 3);
    assert_eq!(commit(&journal, &payloads(4, 1, 10)).unwrap().0, 4);
    // Filling the big segment rolls over to one of the usual size.
    for i in 5..25 {
        assert_eq!(commit(&journal, &payloads(i, 1, 60_000)).unwrap().0, i);
    }
    journal.close().unwrap();
    let sizes: Vec<u64> = segment_paths(&vfs)
        .iter()
        .map(|path| vfs.read(path).unwrap().len() as u64)
        .collect();
    assert!(
        sizes.iter().any(|&size| size > SEGMENT_SIZE_MIN_BYTES),
        "the big transaction's segment is sized for it: {sizes:?}"
    );
    assert_eq!(
        sizes.last(),
        Some(&SEGMENT_SIZE_MIN_BYTES),
        "later segments have the usual size: {sizes:?}"
    );
    let (journal, seen) = open(&vfs).unwrap();
    assert_eq!(seen.len(), 24);
    assert_eq!(seen[1], expected(2, big));
    assert_eq!(seen[2], expected(3, many));
    assert_eq!(journal.last_seq(), 24);
}

#[test]
fn cut_at_every_byte_of_the_last_transaction_keeps_exactly_the_committed_prefix() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 5, 30);
    let path = segment_paths(&vfs)[0].clone();
    let image = vfs.read(&path).unwrap();
    // The last transaction ends before the Mark written at close; find both ends.
    let (_, seen) = open(&vfs).unwrap();
    assert_eq!(seen, written);
    let last_start = txn_start_offset(&image, 5);
    let last_end = txn_start_offset(&image, 6);
    for cut in last_start..last_end {
        if image[cut..last_end].iter().all(|&b| b == 0) {
            continue; // zeroing padding changes nothing
        }
        let mut damaged = image.clone();
        damaged[cut..].fill(0);
        let run = SimVfs::new();
        let file = dir().join("journal").join(path.file_name().unwrap());
        clone_into(&run, &file, &damaged);
        let (journal, seen) = open(&run).unwrap();
        assert_eq!(seen, written[..4].to_vec(), "cut at byte {cut}");
        let torn = journal.recovery_report().torn_tail.clone();
        assert_eq!(torn.is_some(), cut > last_start, "cut at byte {cut}");
        // The store keeps working after the cut, and the next commit takes sequence number 5.
        let (seq, _) = commit(&journal, &payloads(77, 2, 9)).unwrap();
        assert_eq!(seq, 5);
        drop(journal);
        let (_, again) = open(&run).unwrap();
        assert_eq!(again.len(), 5, "cut at byte {cut}");
        assert_eq!(again[4], expected(5, payloads(77, 2, 9)));
    }
}

/// Offset of the first frame of the transaction with sequence number `seq` (or of the frame
/// after the last transaction), found by walking the frames.
fn txn_start_offset(image: &[u8], seq: Seq) -> usize {
    let mut offset = crate::segment::HEADER_BYTES as usize;
    loop {
        match crate::frame::read(&image[offset..]) {
            crate::frame::Read::Frame(frame) => {
                if frame.seq >= seq || frame.kind == crate::Kind::Mark {
                    return offset;
                }
                offset += frame.total_bytes as usize;
            }
            _ => return offset,
        }
    }
}

/// Puts `content` at `path` in a fresh simulated file system, with its directory entry.
fn clone_into(vfs: &SimVfs, path: &Path, content: &[u8]) {
    use crate::vfs::Vfs;
    let file = vfs.create_mapped(path, content.len() as u64).unwrap();
    drop(file);
    vfs.overwrite(path, content).unwrap();
    vfs.sync_dir(path.parent().unwrap()).unwrap();
}

#[test]
fn a_flipped_byte_in_an_earlier_record_fails_the_open_naming_the_spot() {
    let vfs = SimVfs::new();
    write_all(&vfs, 6, 30);
    let path = segment_paths(&vfs)[0].clone();
    let image = vfs.read(&path).unwrap();
    let second = txn_start_offset(&image, 2);
    let mut damaged = image.clone();
    damaged[second + 20] ^= 0x01;
    vfs.overwrite(&path, &damaged).unwrap();
    match open(&vfs) {
        Err(LogError::Corrupt {
            segment,
            offset,
            seq,
            reason,
        }) => {
            assert_eq!(segment, "00000000000000000001.seg");
            assert_eq!(offset, second as u64);
            assert_eq!(seq, Some(2));
            assert!(reason.contains("synced"), "{reason}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, t)| t)),
    }
}

#[test]
fn damage_in_a_sealed_segment_fails_the_open() {
    let vfs = SimVfs::new();
    write_all(&vfs, 300, 500);
    let first = segment_paths(&vfs)[0].clone();
    let mut image = vfs.read(&first).unwrap();
    image[3000] ^= 0x40;
    vfs.overwrite(&first, &image).unwrap();
    let error = open(&vfs).err().expect("damage must fail the open");
    let text = error.to_string();
    assert!(text.contains("00000000000000000001.seg"), "{text}");
    assert!(matches!(error, LogError::Corrupt { .. }));
}

#[test]
fn a_missing_segment_is_a_gap_in_sequence_numbers() {
    let vfs = SimVfs::new();
    write_all(&vfs, 300, 500);
    let paths = segment_paths(&vfs);
    use crate::vfs::Vfs;
    vfs.remove_file(&paths[1]).unwrap();
    let error = open(&vfs).err().expect("a gap must fail the open");
    assert!(
        error.to_string().contains("follows segment number"),
        "{error}"
    );
}

#[test]
fn salvage_keeps_the_valid_prefix_and_moves_the_rest_aside() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 300, 500);
    let paths = segment_paths(&vfs);
    let mut image = vfs.read(&paths[1]).unwrap();
    let (_, before) = open(&vfs).unwrap();
    assert_eq!(before.len(), 300);
    let first_of_second = {
        let header = crate::segment::Header::decode(&image).unwrap();
        header.first_seq
    };
    let damaged_at = txn_start_offset(&image, first_of_second + 2);
    image[damaged_at + 12] ^= 0xff;
    vfs.overwrite(&paths[1], &image).unwrap();

    assert!(matches!(open(&vfs), Err(LogError::Corrupt { .. })));
    let (journal, seen) = open_with(JournalOptions {
        salvage: true,
        ..options(&vfs)
    })
    .unwrap();
    let kept = (first_of_second + 1) as usize;
    assert_eq!(seen, written[..kept].to_vec());
    let salvage = journal.recovery_report().salvage.clone().unwrap();
    assert_eq!(salvage.kept_through, first_of_second + 1);
    assert_eq!(salvage.dropped_segments.len(), paths.len() - 2);
    assert!(salvage.to_string().contains("kept transactions through"));
    let (seq, _) = commit(&journal, &payloads(5, 1, 5)).unwrap();
    assert_eq!(seq, first_of_second + 2);
    drop(journal);
    let (_, after) = open(&vfs).unwrap();
    assert_eq!(after.len(), kept + 1);
    let moved: Vec<_> = vfs
        .files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("salvaged-"))
        .collect();
    assert_eq!(
        moved.len(),
        paths.len() - 1,
        "damaged original and later segments kept"
    );
}

#[test]
fn a_torn_rollover_leaves_an_empty_segment_that_is_removed() {
    let vfs = SimVfs::new();
    let (journal, _) = open(&vfs).unwrap();
    let mut written = Vec::new();
    for i in 0..3 {
        let ops = payloads(i, 1, 10);
        written.push(expected(commit(&journal, &ops).unwrap().0, ops));
    }
    journal.roll(&mut crate::lock(&journal.writer)).unwrap();
    // The crash hit after the new segment's directory entry reached the disk but before its
    // header did (a file system may write the entry on its own).
    let reborn = vfs.cut_power();
    let new_segment = dir().join("journal").join(crate::segment::file_name(4));
    reborn
        .overwrite(&new_segment, &vec![0u8; SEGMENT_SIZE_MIN_BYTES as usize])
        .unwrap();
    let (journal, seen) = open(&reborn).unwrap();
    assert_eq!(seen, written);
    assert_eq!(
        journal.recovery_report().torn_segment.as_deref(),
        Some("00000000000000000004.seg")
    );
    assert_eq!(segment_paths(&reborn).len(), 1);
    let (seq, _) = commit(&journal, &payloads(9, 1, 10)).unwrap();
    assert_eq!(seq, 4);
}

#[test]
fn read_only_open_changes_nothing_and_refuses_writes() {
    let vfs = SimVfs::new();
    write_all(&vfs, 4, 10);
    let path = segment_paths(&vfs)[0].clone();
    let mut image = vfs.read(&path).unwrap();
    let end = txn_start_offset(&image, 5);
    image[end - 30..].fill(0);
    vfs.overwrite(&path, &image).unwrap();
    let (journal, seen) = open_with(JournalOptions {
        read_only: true,
        ..options(&vfs)
    })
    .unwrap();
    assert_eq!(seen.len(), 3);
    assert!(journal.recovery_report().torn_tail.is_some());
    assert!(matches!(journal.begin(), Err(LogError::ReadOnly)));
    drop(journal);
    assert_eq!(
        vfs.read(&path).unwrap(),
        image,
        "a read-only open writes nothing"
    );
}

#[test]
fn a_second_open_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        ..JournalOptions::default()
    };
    let first = Journal::open(tmp.path(), options.clone(), &mut |_| Ok(())).unwrap();
    let second = Journal::open(tmp.path(), options.clone(), &mut |_| Ok(()));
    let error = second.err().expect("second open must fail");
    assert!(matches!(error, LogError::Locked { .. }));
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
    drop(first);
    let reader = Journal::open(
        tmp.path(),
        JournalOptions {
            read_only: true,
            ..options.clone()
        },
        &mut |_| Ok(()),
    )
    .unwrap();
    let writer = Journal::open(tmp.path(), options, &mut |_| Ok(()));
    assert!(matches!(writer, Err(LogError::Locked { .. })));
    drop(reader);
}

#[test]
fn real_files_are_preallocated_not_sparse() {
    let tmp = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        segment_size_bytes: 1 << 20,
        ..JournalOptions::default()
    };
    let journal = Journal::open(tmp.path(), options, &mut |_| Ok(())).unwrap();
    let info = journal.segments();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].capacity_bytes, 1 << 20);
    assert!(
        info[0].disk_bytes >= 1 << 20,
        "allocated {} bytes",
        info[0].disk_bytes
    );
}

#[test]
fn a_rejected_replay_fails_the_open_naming_the_record() {
    let vfs = SimVfs::new();
    write_all(&vfs, 3, 10);
    let result = Journal::open(&dir(), options(&vfs), &mut |txn| {
        if txn.seq == 2 {
            Err(Rejected("payload does not decode".into()))
        } else {
            Ok(())
        }
    });
    let error = result.err().expect("rejection must fail the open");
    let text = error.to_string();
    assert!(
        text.contains("sequence number 2") && text.contains("payload does not decode"),
        "{text}"
    );
}

#[test]
fn group_commit_shares_syncs_between_concurrent_committers() {
    let vfs = SimVfs::new();
    vfs.set_sync_latency(std::time::Duration::from_micros(300));
    let (journal, _) = open_with(JournalOptions {
        segment_size_bytes: 1 << 20,
        ..options(&vfs)
    })
    .unwrap();
    let syncs_before = vfs.sync_count();
    let threads = 4;
    let per_thread = 200;
    let acked: Vec<Vec<Seq>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let journal = &journal;
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| commit(journal, &payloads(t * 1000 + i, 1, 16)).unwrap().0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<Seq> = acked.into_iter().flatten().collect();
    all.sort();
    assert_eq!(all, (1..=threads * per_thread).collect::<Vec<_>>());
    assert_eq!(journal.durable_seq(), threads * per_thread);
    let syncs = vfs.sync_count() - syncs_before;
    // While one sync runs the other committers append; the next sync covers them all.
    assert!(
        syncs * 2 < threads * per_thread,
        "concurrent committers must share syncs ({syncs} syncs for {} commits)",
        threads * per_thread
    );
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let vfs = SimVfs::new();
    let (journal, _) = open_with(JournalOptions {
        sync: SyncPolicy::Interval { ms: 5 },
        ..options(&vfs)
    })
    .unwrap();
    commit(&journal, &payloads(1, 1, 8)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while journal.durable_seq() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the syncer never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn options_out_of_range_are_refused() {
    let vfs = SimVfs::new();
    for bad in [
        JournalOptions {
            segment_size_bytes: 1000,
            ..options(&vfs)
        },
        JournalOptions {
            segment_size_bytes: SEGMENT_SIZE_MIN_BYTES + 3,
            ..options(&vfs)
        },
        JournalOptions {
            sync: SyncPolicy::Interval { ms: 0 },
            ..options(&vfs)
        },
        JournalOptions {
            salvage: true,
            read_only: true,
            ..options(&vfs)
        },
    ] {
        assert!(matches!(
            open_with(bad),
            Err(LogError::InvalidOption { .. })
        ));
    }
}

/// Power loss at random points of a durable workload, across group commit and rollover: every
/// acknowledged commit survives, and what survives is a prefix of what was written.
#[test]
fn power_loss_never_loses_an_acknowledged_commit() {
    for round in 0..12u64 {
        let vfs = SimVfs::new();
        let (journal, _) = open(&vfs).unwrap();
        let journal = Arc::new(journal);
        let cut_after = 20 + round * 37;
        let acked: Vec<Vec<Acked>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..3u64)
                .map(|t| {
                    let journal = journal.clone();
                    scope.spawn(move || {
                        let mut acked = Vec::new();
                        for i in 0.. {
                            let ops = payloads(t * 100_000 + i, 1 + (i % 2) as usize, 300);
                            match commit(&journal, &ops) {
                                Ok((seq, _)) => acked.push((seq, ops)),
                                Err(_) => break,
                            }
                        }
                        acked
                    })
                })
                .collect();
            while journal.durable_seq() < cut_after {
                std::thread::yield_now();
            }
            let reborn = vfs.cut_power();
            let acked: Vec<Vec<Acked>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            // Reboot: only durable bytes and directory entries remain.
            let (_, seen) = open(&reborn).unwrap();
            check_survivors(&seen, &acked);
            acked
        });
        assert!(acked.iter().map(Vec::len).sum::<usize>() >= cut_after as usize);
    }
}

fn check_survivors(seen: &[Txn], acked: &[Vec<Acked>]) {
    for (i, txn) in seen.iter().enumerate() {
        assert_eq!(txn.seq, i as u64 + 1, "survivors are a gapless prefix");
    }
    for (seq, ops) in acked.iter().flatten() {
        let survivor = seen
            .get(*seq as usize - 1)
            .unwrap_or_else(|| panic!("acknowledged commit {seq} was lost"));
        assert_eq!(
            &survivor.ops, ops,
            "commit {seq} survived with other content"
        );
    }
}

/// Power loss where the device wrote an arbitrary subset of the unsynced pages: recovery cuts
/// the torn tail and never reports acknowledged data as lost or corrupt.
#[test]
fn torn_unsynced_pages_are_cut_never_mistaken_for_corruption() {
    for seed in 0..20u64 {
        let vfs = SimVfs::new();
        let (journal, _) = open_with(JournalOptions {
            sync: SyncPolicy::Never,
            ..options(&vfs)
        })
        .unwrap();
        let mut acked = Vec::new();
        for i in 0..(10 + seed * 3) {
            let ops = payloads(i, 2, 700);
            let (seq, _) = commit(&journal, &ops).unwrap();
            if i % 5 == 0 {
                journal.sync().unwrap();
                acked.push((seq, ops));
            }
        }
        let reborn = vfs.cut_power_tearing(seed);
        drop(journal);
        let (_, seen) = open(&reborn)
            .unwrap_or_else(|e| panic!("seed {seed}: torn pages taken for corruption: {e}"));
        check_survivors(&seen, &[acked]);
    }
}

#[test]
fn a_builder_reads_back_what_it_pushed() {
    let vfs = SimVfs::new();
    let (journal, _) = open(&vfs).unwrap();
    commit(&journal, &payloads(1, 1, 10)).unwrap();
    let mut builder = journal.begin().unwrap();
    let first = builder.push(|buf| buf.extend_from_slice(b"first")).unwrap();
    let second = builder
        .push(|buf| buf.extend_from_slice(b"second!"))
        .unwrap();
    assert_eq!(builder.pushed(first), Some(&b"first"[..]));
    assert_eq!(builder.pushed(second), Some(&b"second!"[..]));
    let earlier = Loc {
        segment: first.segment,
        offset: 64,
        len: first.len,
    };
    assert_eq!(
        builder.pushed(earlier),
        None,
        "records of earlier transactions are not pushed ones"
    );
    let seq = builder.commit("tester", 1).unwrap();
    assert_eq!(
        journal.with_op(second, |p| p.to_vec()),
        Some(b"second!".to_vec())
    );
    assert_eq!(seq, 2);
}

#[test]
fn an_empty_segment_file_left_by_a_crash_is_removed_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        ..JournalOptions::default()
    };
    let journal = Journal::open(tmp.path(), options.clone(), &mut |_| Ok(())).unwrap();
    let mut builder = journal.begin().unwrap();
    builder.push(|buf| buf.extend_from_slice(b"kept")).unwrap();
    builder.commit("tester", 1).unwrap();
    journal.roll(&mut crate::lock(&journal.writer)).unwrap();
    drop(journal);
    // The crash came after the next segment's file was created, before its size was durable.
    let next = tmp
        .path()
        .join("journal")
        .join(crate::segment::file_name(2));
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&next)
        .unwrap();
    let mut seen = Vec::new();
    let journal = Journal::open(tmp.path(), options, &mut |txn| {
        seen.push(txn.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [1]);
    assert_eq!(
        journal.recovery_report().torn_segment.as_deref(),
        Some("00000000000000000002.seg")
    );
    assert!(!next.exists());
}

#[test]
fn a_tail_reader_sees_each_transaction_once_in_order_across_segments() {
    let vfs = SimVfs::new();
    let (journal, _) = open(&vfs).unwrap();
    let mut cursor = journal.tail_cursor(1).unwrap();
    let mut read = Vec::new();
    let mut written = Vec::new();
    let mut follow = |journal: &Journal, cursor: &mut crate::TailCursor, last: Seq| {
        journal
            .read_tail(cursor, last, &mut |txn| {
                read.push(to_txn(txn));
                Ok(())
            })
            .unwrap();
        assert_eq!(cursor.next_seq, last + 1, "the cursor stops after `last`");
        read.clone()
    };
    for i in 0..300u64 {
        let ops = payloads(i, 1 + (i % 3) as usize, 500);
        let (seq, _) = commit(&journal, &ops).unwrap();
        written.push(expected(seq, ops));
        // Follow every few commits, and stop short of the newest now and then: the next
        // read picks the rest up.
        if i % 7 == 0 {
            let last = if i % 2 == 0 { seq } else { seq - 1 };
            assert_eq!(
                follow(&journal, &mut cursor, last),
                written[..last as usize].to_vec()
            );
        }
    }
    assert!(segment_paths(&vfs).len() > 3, "the reads crossed rollovers");
    assert_eq!(follow(&journal, &mut cursor, 300), written);
    // Nothing new: nothing read, the cursor stays.
    assert_eq!(follow(&journal, &mut cursor, 300), written);

    // A cursor made at any point reads on from there.
    for start in [1, 2, 150, 299, 300, 301] {
        let mut cursor = journal.tail_cursor(start).unwrap();
        assert_eq!(cursor.next_seq, start);
        let mut seen = Vec::new();
        journal
            .read_tail(&mut cursor, 300, &mut |txn| {
                seen.push(to_txn(txn));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, written[start as usize - 1..].to_vec(), "from {start}");
    }
}

#[test]
fn the_sync_policy_and_segment_size_change_while_open() {
    let vfs = SimVfs::new();
    let (journal, _) = open_with(JournalOptions {
        sync: SyncPolicy::Never,
        ..options(&vfs)
    })
    .unwrap();
    let syncs = vfs.sync_count();
    commit(&journal, &payloads(1, 1, 10)).unwrap();
    assert_eq!(vfs.sync_count(), syncs, "never: a commit does not sync");

    // An interval policy starts its syncer; a bad one is refused and changes nothing.
    journal
        .set_sync_policy(SyncPolicy::Interval { ms: 5 })
        .unwrap();
    let before = vfs.sync_count();
    commit(&journal, &payloads(2, 1, 10)).unwrap();
    let waited = std::time::Instant::now();
    while vfs.sync_count() == before && waited.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(vfs.sync_count() > before, "the syncer synced the commit");
    assert!(
        journal
            .set_sync_policy(SyncPolicy::Interval { ms: 0 })
            .is_err()
    );
    assert_eq!(journal.sync_policy(), SyncPolicy::Interval { ms: 5 });

    assert!(journal.set_segment_size_bytes(1000).is_err());
    assert_eq!(journal.segment_size_bytes(), SEGMENT_SIZE_MIN_BYTES);
    journal
        .set_segment_size_bytes(2 * SEGMENT_SIZE_MIN_BYTES)
        .unwrap();
    // Fill the active segment: the next one gets the new size.
    for i in 3..40 {
        commit(&journal, &payloads(i, 1, 4000)).unwrap();
    }
    let sizes: Vec<u64> = journal
        .segments()
        .iter()
        .map(|s| s.capacity_bytes)
        .collect();
    assert_eq!(sizes.first(), Some(&SEGMENT_SIZE_MIN_BYTES));
    assert_eq!(
        sizes.last(),
        Some(&(2 * SEGMENT_SIZE_MIN_BYTES)),
        "{sizes:?}"
    );

    journal.set_sync_policy(SyncPolicy::Never).unwrap();
    commit(&journal, &payloads(40, 1, 10)).unwrap();
    journal.set_sync_policy(SyncPolicy::Always).unwrap();
    assert_eq!(journal.sync_policy(), SyncPolicy::Always);
    let (durable, _) = commit(&journal, &payloads(41, 1, 10)).unwrap();
    // Power fails now: everything acknowledged under Always survives.
    let after = vfs.cut_power();
    let (_, seen) = open_with(options(&after)).unwrap();
    assert_eq!(seen.last().map(|txn| txn.seq), Some(durable));
}

#[test]
fn a_follower_reads_what_a_writer_commits_across_segments() {
    let tmp = tempfile::TempDir::new().unwrap();
    let options = JournalOptions {
        segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        sync: SyncPolicy::Never,
        ..JournalOptions::default()
    };
    let writer = Journal::open(tmp.path(), options.clone(), &mut |_| Ok(())).unwrap();
    let mut written = Vec::new();
    for i in 0..5 {
        let ops = payloads(i, 1, 100);
        written.push(expected(commit(&writer, &ops).unwrap().0, ops));
    }
    let mut seen = Vec::new();
    let follow_options = JournalOptions {
        read_only: true,
        follow: true,
        ..options
    };
    let follower = Journal::open(tmp.path(), follow_options, &mut |txn| {
        seen.push(to_txn(txn));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, written, "the open reads what is there");
    for i in 5..400 {
        let ops = payloads(i, 1 + (i % 3) as usize, 400);
        written.push(expected(commit(&writer, &ops).unwrap().0, ops));
        if i % 37 == 0 {
            let last = follower
                .follow(&mut |txn| {
                    seen.push(to_txn(txn));
                    Ok(())
                })
                .unwrap();
            assert_eq!(last, i + 1);
            assert_eq!(seen, written);
        }
    }
    assert!(writer.segments().len() > 3, "the writer rolled over");
    let last = follower
        .follow(&mut |txn| {
            seen.push(to_txn(txn));
            Ok(())
        })
        .unwrap();
    assert_eq!(last, 400);
    assert_eq!(seen, written);
    assert_eq!(follower.segments().len(), writer.segments().len());
    // A read through the follower finds a record in a segment it discovered.
    let mut locs = Vec::new();
    follower
        .for_each_txn(399, 399, &mut |txn| {
            locs.extend(txn.ops.iter().map(|op| op.loc));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        follower.with_op(locs[0], |p| p.to_vec()),
        Some(written[398].ops[0].clone())
    );
}

/// An open that resumes after a checkpoint's transaction reads back only what follows it,
/// across segments, ends where a full recovery ends, and refuses a journal that no longer
/// holds the transaction where the checkpoint saw it, without writing anything.
#[test]
fn resume_reads_only_what_follows_the_checkpoint() {
    let vfs = SimVfs::new();
    let (journal, _) = open(&vfs).expect("open");
    // Large enough that the journal spans several segments before and after the point.
    for seq in 1..=40 {
        commit(&journal, &payloads(seq, 3, 2000)).expect("commit");
    }
    let resume = journal.resume_point().expect("a commit was made");
    assert_eq!(resume.point.seq, 40);
    assert!(
        !resume.sealed.is_empty(),
        "the point is past the first segment"
    );
    for seq in 41..=70 {
        commit(&journal, &payloads(seq, 3, 2000)).expect("commit");
    }
    journal.close().expect("close");

    let (full, everything) = open(&vfs).expect("full recovery");
    let full_end = (full.last_seq(), full.segments());
    drop(full);
    assert_eq!(everything.len(), 70);

    let resumed = open_with(JournalOptions {
        resume: Some(resume.clone()),
        ..options(&vfs)
    });
    let (journal, tail) = resumed.expect("resumed open");
    assert_eq!(
        tail,
        everything[40..].to_vec(),
        "only what follows the point"
    );
    assert_eq!((journal.last_seq(), journal.segments()), full_end);
    assert_eq!(journal.recovery_report().resumed_after, Some(40));
    commit(&journal, &payloads(71, 1, 10)).expect("the resumed journal takes commits");
    drop(journal);

    let mut moved = resume.clone();
    moved.point.commit_at += 8;
    let mut other_segment = resume.clone();
    other_segment.sealed[0].first_seq += 1;
    let mut short = resume.clone();
    short.sealed.pop();
    for wrong in [moved, other_segment, short] {
        let refused = open_with(JournalOptions {
            resume: Some(wrong),
            ..options(&vfs)
        });
        assert!(
            matches!(refused, Err(LogError::ResumeRejected { .. })),
            "{:?}",
            refused.err()
        );
    }
    let (_, after) = open(&vfs).expect("the refusals wrote nothing");
    assert_eq!(after.len(), 71);
}

/// Compaction: a journal of `count` transactions, and a base for its second cut holding
/// `state` (the log does not read it; the registry writes the real state there).
fn begin_compaction(journal: &Journal) -> (crate::Cut, Vec<Vec<u8>>) {
    let cuts = journal.compaction_cuts();
    assert!(cuts.len() >= 3, "the test needs several sealed segments");
    let cut = cuts[1];
    let state: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    (cut, state)
}

fn write_base(journal: &Journal, cut: crate::Cut, state: &[Vec<u8>]) -> Vec<Loc> {
    let bytes = state.iter().map(|op| crate::op_frame_bytes(op.len())).sum();
    let mut base = journal.begin_base(cut, bytes, "compactor").unwrap();
    state.iter().map(|op| base.push(op).unwrap()).collect()
}

fn compact(journal: &Journal, cut: crate::Cut, state: &[Vec<u8>]) -> (Vec<Loc>, crate::Installed) {
    let bytes = state.iter().map(|op| crate::op_frame_bytes(op.len())).sum();
    let mut base = journal.begin_base(cut, bytes, "compactor").unwrap();
    let locs = state.iter().map(|op| base.push(op).unwrap()).collect();
    (locs, base.install("compactor").unwrap())
}

/// What a reopen must replay after a compaction at `cut`: the base, then what followed.
fn after_base(cut: crate::Cut, state: &[Vec<u8>], written: &[Txn]) -> Vec<Txn> {
    let mut txns = vec![Txn {
        seq: cut.seq,
        principal: "compactor".into(),
        ops: state.to_vec(),
    }];
    txns.extend(written.iter().filter(|txn| txn.seq > cut.seq).cloned());
    txns
}

fn journal_files(vfs: &SimVfs) -> Vec<String> {
    vfs.files()
        .into_iter()
        .filter(|p| p.parent() == Some(&dir().join("journal")))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_base_replaces_the_segments_before_its_cut() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 120, 1500);
    let (journal, _) = open(&vfs).unwrap();
    // A record of the first transaction, for a reader of an old snapshot.
    let mut old_locs = Vec::new();
    journal
        .for_each_txn(1, 1, &mut |txn| {
            old_locs.push(txn.ops[0].loc);
            Ok(())
        })
        .unwrap();
    let (cut, state) = begin_compaction(&journal);
    assert!(cut.replaced_bytes >= 2 * SEGMENT_SIZE_MIN_BYTES);
    let (locs, installed) = compact(&journal, cut, &state);
    assert_eq!(journal.base_seq(), cut.seq);
    assert_eq!(
        installed.replaced.len(),
        2,
        "two segments up to the second cut"
    );
    for (loc, op) in locs.iter().zip(&state) {
        assert_eq!(journal.with_op(*loc, |p| p.to_vec()).as_ref(), Some(op));
    }
    // Replaced, but still mapped for old snapshots until removed.
    let first = journal.with_op(old_locs[0], |p| p.to_vec());
    assert_eq!(first.as_ref(), Some(&written[0].ops[0]));
    assert!(matches!(
        journal.tail_cursor(cut.seq),
        Err(LogError::Compacted { oldest, .. }) if oldest == cut.seq + 1
    ));
    journal.tail_cursor(cut.seq + 1).unwrap();
    // Archives: the whole journal starts at the base; a range needs what follows `from`.
    assert!(matches!(
        crate::archive::archive(&journal, 1, written.len() as u64, Path::new("/archive-1")),
        Err(LogError::Compacted { oldest, .. }) if oldest == cut.seq
    ));
    let (seq, _) = commit(&journal, &payloads(999, 1, 10)).unwrap();
    assert_eq!(seq, written.len() as u64 + 1, "numbering goes on");
    assert!(journal.remove_replaced().unwrap() > 0);
    assert_eq!(journal.with_op(old_locs[0], |p| p.to_vec()), None);
    for (loc, op) in locs.iter().zip(&state) {
        assert_eq!(journal.with_op(*loc, |p| p.to_vec()).as_ref(), Some(op));
    }
    journal.close().unwrap();
    let mut expected = after_base(cut, &state, &written);
    expected.push(self::expected(seq, payloads(999, 1, 10)));
    let (journal, seen) = open(&vfs).unwrap();
    assert_eq!(seen, expected);
    assert_eq!(journal.base_seq(), cut.seq);
    // A second compaction replaces the first base too.
    let cut2 = *journal.compaction_cuts().last().unwrap();
    assert!(cut2.seq > cut.seq);
    let (_, second) = compact(&journal, cut2, &state);
    assert!(second.replaced.contains(&installed.name));
    journal.remove_replaced().unwrap();
    journal.close().unwrap();
    let (_, seen) = open(&vfs).unwrap();
    assert_eq!(seen, after_base(cut2, &state, &expected[1..]));
    assert_eq!(
        journal_files(&vfs)
            .iter()
            .filter(|n| n.ends_with(".base"))
            .count(),
        1
    );
}

/// A crash at every durable step of a compaction (every sync of the base, its rename, the
/// removal of the replaced segments) reopens to the journal before it or after it, with the
/// same commits from the cut on, and no leftover file.
#[test]
fn a_compaction_cut_short_at_any_step_reopens_before_or_after_it() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 120, 1500);
    let mut outcomes = (0, 0);
    for syncs in 0.. {
        let run = vfs.cut_power();
        let (journal, _) = open(&run).unwrap();
        let (cut, state) = begin_compaction(&journal);
        run.power_off_after_syncs(syncs);
        let finished = (|| {
            let bytes = state.iter().map(|op| crate::op_frame_bytes(op.len())).sum();
            let mut base = journal.begin_base(cut, bytes, "compactor")?;
            for op in &state {
                base.push(op)?;
            }
            base.install("compactor")?;
            journal.remove_replaced()
        })()
        .is_ok();
        drop(journal);
        let reborn = run.cut_power();
        let (journal, seen) = open(&reborn).unwrap();
        if seen == written {
            outcomes.0 += 1;
            assert_eq!(journal.base_seq(), 0);
        } else {
            assert_eq!(
                seen,
                after_base(cut, &state, &written),
                "after {syncs} syncs"
            );
            outcomes.1 += 1;
        }
        journal.close().unwrap();
        assert!(
            journal_files(&reborn)
                .iter()
                .all(|name| !name.ends_with(".unfinished")),
            "an unfinished base is removed"
        );
        let replaced = journal_files(&reborn)
            .iter()
            .filter(|name| name.ends_with(".seg"))
            .filter_map(|name| name[..20].parse::<Seq>().ok())
            .any(|first| outcomes.1 > 0 && seen[0].seq == cut.seq && first <= cut.seq);
        assert!(!replaced, "a replaced segment is removed at the open");
        if finished {
            break;
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

#[test]
fn an_unfinished_base_leaves_the_journal_as_it_was() {
    let vfs = SimVfs::new();
    let written = write_all(&vfs, 120, 1500);
    let (journal, _) = open(&vfs).unwrap();
    let (cut, state) = begin_compaction(&journal);
    write_base(&journal, cut, &state[..10]);
    assert_eq!(journal.base_seq(), 0);
    journal.close().unwrap();
    assert!(
        journal_files(&vfs)
            .iter()
            .any(|n| n.ends_with(".unfinished"))
    );
    let (journal, seen) = open(&vfs).unwrap();
    assert_eq!(seen, written);
    assert!(
        !journal_files(&vfs)
            .iter()
            .any(|n| n.ends_with(".unfinished"))
    );
    // A base that does not come out the size it was planned at is refused, not installed.
    let bytes: u64 = state.iter().map(|op| crate::op_frame_bytes(op.len())).sum();
    let mut base = journal.begin_base(cut, bytes + 8, "compactor").unwrap();
    for op in &state {
        base.push(op).unwrap();
    }
    assert!(matches!(
        base.install("compactor"),
        Err(LogError::Compaction { .. })
    ));
    assert_eq!(journal.base_seq(), 0);
}

#[test]
fn a_damaged_base_fails_the_open_naming_it() {
    let vfs = SimVfs::new();
    write_all(&vfs, 120, 1500);
    let (journal, _) = open(&vfs).unwrap();
    let (cut, state) = begin_compaction(&journal);
    let (_, installed) = compact(&journal, cut, &state);
    journal.remove_replaced().unwrap();
    journal.close().unwrap();
    let path = dir().join("journal").join(&installed.name);
    let mut image = vfs.read(&path).unwrap();
    image[300] ^= 0x10;
    vfs.overwrite(&path, &image).unwrap();
    match open(&vfs) {
        Err(LogError::Corrupt { segment, .. }) => assert_eq!(segment, installed.name),
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|(_, seen)| seen.len())
        ),
    }
}
