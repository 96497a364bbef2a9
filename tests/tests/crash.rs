//! Crashes and corruption through the Store API: a journal cut at every byte of the last
//! transaction, a flipped byte in an earlier record (with and without salvage), SIGKILL of a
//! writer process, and power loss on the simulated disk (synced and unsynced policies).
//!
//! Default run: 6 SIGKILL rounds, 30 power cuts under SyncPolicy::Always, 150 torn-page
//! seeds (3 power cuts each). Long run: 40 SIGKILL rounds, 300 power cuts, 1,000 seeds:
//!
//! ```text
//! HIVELOG_TORTURE=1 cargo test -p hivelog-tests --test crash --release
//! ```

// Test code: a panic is the failure report. (clippy.toml's allow-unwrap-in-tests covers
// only #[test] functions, not the helpers they share.)
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hivelog::sim::SimVfs;
use hivelog::vfs::Vfs;
use hivelog::{Access, Error, LogError, Options, Seq, Store, SyncPolicy, Value};
use hivelog_tests::{FrameKind, crash, frames, segment_files, txn_range};
use tempfile::TempDir;

const SEGMENT_BYTES: u64 = 64 * 1024;

fn torture() -> bool {
    std::env::var_os("HIVELOG_TORTURE").is_some_and(|v| v == "1")
}

fn store_dir() -> PathBuf {
    PathBuf::from("/store")
}

fn sim_options(vfs: &SimVfs, sync: SyncPolicy) -> Options {
    Options {
        sync,
        segment_size_bytes: SEGMENT_BYTES,
        value_size_max_bytes: 32 * 1024,
        vfs: Arc::new(vfs.clone()),
        ..Options::default()
    }
}

fn open_sim(vfs: &SimVfs) -> Result<Store, Error> {
    Store::open(store_dir(), sim_options(vfs, SyncPolicy::Always))
}

/// The store's segment files on the simulated disk, in journal order.
fn sim_segments(vfs: &SimVfs) -> Vec<PathBuf> {
    let journal = store_dir().join("journal");
    vfs.files()
        .into_iter()
        .filter(|p| p.parent() == Some(&journal) && p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A fresh simulated disk holding `files` (path, bytes), every entry durable.
fn sim_with(files: &[(PathBuf, Vec<u8>)]) -> SimVfs {
    let vfs = SimVfs::new();
    for (path, content) in files {
        drop(vfs.create_mapped(path, content.len() as u64).unwrap());
        vfs.overwrite(path, content).unwrap();
        vfs.sync_dir(path.parent().unwrap()).unwrap();
    }
    vfs
}

/// Binary data that names its writer: `len` bytes derived from `tag`.
fn data(tag: u64, len: usize) -> Vec<u8> {
    let mut out = tag.to_le_bytes().to_vec();
    out.extend(
        (out.len()..len.max(8)).map(|i| (tag as usize).wrapping_mul(131).wrapping_add(i) as u8),
    );
    out
}

fn value_of(store: &Store, path: &str, name: &str) -> Option<Value> {
    match store.get_raw_value(path, name) {
        Ok(value) => Some(value),
        Err(Error::KeyNotFound { .. } | Error::ValueNotFound { .. }) => None,
        Err(error) => panic!("read {path} {name}: {error}"),
    }
}

// ---- a. a cut at every byte of the last transaction ------------------------------------------

/// Transactions the cut test writes after the hives: the first `CUT_TXNS - 1` each set
/// `N{i}` in `HKLM\Software\Cut`; the last creates a key, sets three values there (one kept
/// inline in the index, two read from the journal) and deletes `N1`.
const CUT_TXNS: u64 = 6;

fn write_cut_workload(store: &Store) -> Seq {
    for i in 1..CUT_TXNS {
        let mut tx = store.transaction();
        tx.create_key(r"HKLM\Software\Cut").unwrap();
        tx.set_value(
            r"HKLM\Software\Cut",
            &format!("N{i}"),
            &Value::binary(data(i, 40 + 13 * i as usize)),
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut tx = store.transaction();
    tx.create_key(r"HKLM\Software\Cut\Last").unwrap();
    tx.set_value(r"HKLM\Software\Cut\Last", "", &42u32).unwrap();
    tx.set_value(r"HKLM\Software\Cut\Last", "Text", "the last transaction")
        .unwrap();
    tx.set_value(
        r"HKLM\Software\Cut\Last",
        "Blob",
        &Value::binary(data(99, 150)),
    )
    .unwrap();
    tx.delete_value(r"HKLM\Software\Cut", "N1").unwrap();
    tx.commit().unwrap()
}

/// Checks the store holds the cut workload's first `CUT_TXNS - 1` transactions, and the last
/// one exactly when `with_last`.
fn check_cut_workload(store: &Store, with_last: bool, at: &str) {
    for i in 1..CUT_TXNS {
        let expected = (i != 1 || !with_last).then(|| Value::binary(data(i, 40 + 13 * i as usize)));
        assert_eq!(
            value_of(store, r"HKLM\Software\Cut", &format!("N{i}")),
            expected,
            "{at}"
        );
    }
    let last = r"HKLM\Software\Cut\Last";
    assert_eq!(store.open_key(last).is_ok(), with_last, "{at}");
    if with_last {
        assert_eq!(value_of(store, last, ""), Some(Value::dword(42)), "{at}");
        assert_eq!(
            value_of(store, last, "text"),
            Some(Value::string("the last transaction")),
            "{at}"
        );
        assert_eq!(
            value_of(store, last, "BLOB"),
            Some(Value::binary(data(99, 150))),
            "{at}"
        );
    }
}

#[test]
fn a_cut_anywhere_in_the_last_transaction_keeps_exactly_the_committed_prefix() {
    let vfs = SimVfs::new();
    let store = open_sim(&vfs).unwrap();
    let last_seq = write_cut_workload(&store);
    assert_eq!(last_seq, CUT_TXNS + 1, "the hives are transaction 1");
    store.close().unwrap();
    let segments = sim_segments(&vfs);
    assert_eq!(segments.len(), 1);
    let path = segments[0].clone();
    let image = vfs.read(&path).unwrap();
    let (start, end) = txn_range(&image, last_seq).expect("the last transaction is in the segment");
    let commit = frames(&image)
        .into_iter()
        .find(|f| f.seq == last_seq && f.kind == FrameKind::Commit)
        .unwrap();
    assert_eq!(commit.offset + commit.total_bytes, end);
    assert!(
        end - start > 200,
        "the last transaction spans several frames"
    );
    for cut in start..=end {
        let mut damaged = image.clone();
        damaged[cut..].fill(0);
        let run = sim_with(&[(path.clone(), damaged)]);
        let at = format!("cut at byte {cut} (transaction {start}..{end})");
        let store = open_sim(&run).unwrap_or_else(|e| panic!("{at}: {e}"));
        // Zeros in the Commit frame's padding change nothing: the frame is whole.
        let with_last = cut >= commit.body_end;
        let expected_seq = if with_last { last_seq } else { last_seq - 1 };
        assert_eq!(store.seq(), expected_seq, "{at}");
        check_cut_workload(&store, with_last, &at);
        let torn = store.recovery_report().torn_tail.clone();
        let written_bytes_cut = !with_last && image[start..cut].iter().any(|&b| b != 0);
        assert_eq!(torn.is_some(), written_bytes_cut, "{at}: {torn:?}");
        let report = store
            .verify()
            .unwrap_or_else(|e| panic!("{at}: verify: {e}"));
        assert_eq!(report.transactions, expected_seq, "{at}");
        let next = store
            .create_key(r"HKLM\Software\AfterCut")
            .unwrap()
            .set_value("Seq", &(expected_seq + 1))
            .unwrap();
        assert_eq!(
            next,
            expected_seq + 2,
            "{at}: the next commits take the next numbers"
        );
        store.close().unwrap();
        let store = open_sim(&run).unwrap();
        assert_eq!(store.seq(), expected_seq + 2, "{at}");
        check_cut_workload(&store, with_last, &at);
        assert_eq!(
            value_of(&store, r"HKLM\Software\AfterCut", "Seq"),
            Some(Value::qword(expected_seq + 1)),
            "{at}"
        );
        store.verify().unwrap();
    }
}

// ---- b. a flipped byte in an earlier record --------------------------------------------------

/// Writes transaction `i` for i in 2..=last: value `N{i}` (2 KB) in `HKLM\Software\Flip`.
fn write_flip_workload(store: &Store, count: u64) -> Seq {
    let mut last = 0;
    for _ in 0..count {
        let i = store.seq() + 1;
        let mut tx = store.transaction();
        tx.create_key(r"HKLM\Software\Flip").unwrap();
        tx.set_value(
            r"HKLM\Software\Flip",
            &format!("N{i}"),
            &Value::binary(data(i, 2000)),
        )
        .unwrap();
        last = tx.commit().unwrap();
        assert_eq!(last, i);
    }
    last
}

fn check_flip_workload(store: &Store, through: Seq) {
    assert_eq!(store.seq(), through);
    for i in 2..=through + 3 {
        let expected = (i <= through).then(|| Value::binary(data(i, 2000)));
        assert_eq!(
            value_of(store, r"HKLM\Software\Flip", &format!("N{i}")),
            expected,
            "N{i}"
        );
    }
}

/// Flips one byte at `offset` of segment `segment` (an index into the segment list) of a copy
/// of `vfs`, and checks what opening it, and salvaging it, does. `damaged_seq` is the
/// transaction holding the byte, `frame_offset` the frame it is in.
fn flip_and_check(
    vfs: &SimVfs,
    segment: usize,
    offset: usize,
    damaged_seq: Seq,
    frame_offset: usize,
    last: Seq,
) {
    let segments = sim_segments(vfs);
    let files: Vec<(PathBuf, Vec<u8>)> = segments
        .iter()
        .map(|p| (p.clone(), vfs.read(p).unwrap()))
        .collect();
    let mut damaged = files.clone();
    damaged[segment].1[offset] ^= 0x20;
    let run = sim_with(&damaged);
    let name = file_name(&segments[segment]);
    let at =
        format!("flip at {name} byte {offset} (transaction {damaged_seq}, frame {frame_offset})");
    match open_sim(&run) {
        Err(Error::Log(LogError::Corrupt {
            segment,
            offset,
            seq,
            reason,
        })) => {
            assert_eq!(segment, name, "{at}: {reason}");
            assert_eq!(offset, frame_offset as u64, "{at}: {reason}");
            assert_eq!(seq, Some(damaged_seq), "{at}: {reason}");
        }
        Err(other) => panic!("{at}: expected corruption, got {other}"),
        Ok(store) => panic!(
            "{at}: the open succeeded at sequence number {}",
            store.seq()
        ),
    }
    let salvaged = Store::open(
        store_dir(),
        Options {
            salvage: true,
            ..sim_options(&run, SyncPolicy::Always)
        },
    )
    .unwrap_or_else(|e| panic!("{at}: salvage: {e}"));
    check_flip_workload(&salvaged, damaged_seq - 1);
    let report = salvaged
        .recovery_report()
        .salvage
        .clone()
        .expect("a salvage report");
    assert_eq!(report.segment, name, "{at}");
    assert_eq!(report.offset, frame_offset as u64, "{at}");
    assert_eq!(report.seq, Some(damaged_seq), "{at}");
    assert_eq!(report.kept_through, damaged_seq - 1, "{at}");
    let later: Vec<String> = segments[segment + 1..]
        .iter()
        .map(|p| file_name(p))
        .collect();
    assert_eq!(report.dropped_segments, later, "{at}");
    assert!(
        report
            .to_string()
            .contains(&format!("through sequence number {}", damaged_seq - 1))
    );
    assert!(last > damaged_seq);
    salvaged.verify().unwrap();
    // The salvaged store goes on from the kept prefix, and opens normally from now on.
    let next = write_flip_workload(&salvaged, 1);
    assert_eq!(next, damaged_seq, "{at}");
    salvaged.close().unwrap();
    let store = open_sim(&run).unwrap_or_else(|e| panic!("{at}: reopen after salvage: {e}"));
    check_flip_workload(&store, damaged_seq);
    assert!(store.recovery_report().salvage.is_none());
    store.verify().unwrap();
}

#[test]
fn a_flipped_byte_in_an_earlier_record_is_reported_and_salvage_keeps_the_prefix() {
    let vfs = SimVfs::new();
    let store = open_sim(&vfs).unwrap();
    let last = write_flip_workload(&store, 100);
    store.close().unwrap();
    let segments = sim_segments(&vfs);
    assert!(segments.len() >= 3, "{} segments", segments.len());
    // Damage a sealed middle segment and the last (open) segment, in an Op frame's payload,
    // in a Commit frame, and in a length field.
    for segment in [1, segments.len() - 1] {
        let image = vfs.read(&segments[segment]).unwrap();
        let found = frames(&image);
        let txns: Vec<Seq> = {
            let mut seqs: Vec<Seq> = found
                .iter()
                .filter(|f| f.kind == FrameKind::Commit)
                .map(|f| f.seq)
                .collect();
            seqs.retain(|&s| s < last);
            seqs
        };
        assert!(txns.len() >= 3);
        let victims = [txns[0], txns[txns.len() / 2], *txns.last().unwrap()];
        for (n, seq) in victims.into_iter().enumerate() {
            let op = found
                .iter()
                .find(|f| f.seq == seq && f.kind == FrameKind::Op)
                .unwrap();
            let commit = found
                .iter()
                .find(|f| f.seq == seq && f.kind == FrameKind::Commit)
                .unwrap();
            let (offset, frame) = match n {
                0 => (op.offset + 200, op.offset),
                1 => (commit.offset + 20, commit.offset),
                _ => (op.offset + 1, op.offset),
            };
            flip_and_check(&vfs, segment, offset, seq, frame, last);
        }
    }
}

// ---- c. SIGKILL of a writer process ------------------------------------------------------------

/// An acknowledged commit of the crash writer: its sequence number and counter.
#[derive(Debug, Clone, Copy)]
struct Ack {
    seq: Seq,
    counter: u64,
}

fn parse_ack(line: &str) -> Ack {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["acked", seq, counter] => Ack {
            seq: seq.parse().unwrap(),
            counter: counter.parse().unwrap(),
        },
        _ => panic!("unexpected line from the crash writer: {line:?}"),
    }
}

/// Runs the writer until it has acknowledged `acks` commits, SIGKILLs it, and returns every
/// acknowledgement it printed (the pipe keeps what it wrote before it died).
fn run_and_kill(dir: &Path, acks: usize, extra_wait_ms: u64) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hivelog-crash-writer"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < acks {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!(
                "the crash writer stopped after {} acks: {status}",
                seen.len()
            );
        }
        seen.push(parse_ack(&line));
    }
    std::thread::sleep(std::time::Duration::from_millis(extra_wait_ms));
    // std's kill is SIGKILL on Unix: no destructor, no close, no final sync.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed: {status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    seen.extend(rest.lines().map(parse_ack));
    seen
}

fn check_acks(store: &Store, acks: &[Ack]) {
    for ack in acks {
        let group = crash::group_key(ack.counter);
        let name = crash::value_name(ack.counter);
        let at = format!("acknowledged commit {} (counter {})", ack.seq, ack.counter);
        assert_eq!(
            value_of(store, &group, &name),
            Some(crash::value(ack.counter)),
            "{at}"
        );
        if crash::has_extra(ack.counter) {
            assert_eq!(
                value_of(store, &crash::extra_key(ack.counter), "E"),
                Some(crash::extra_value(ack.counter)),
                "{at}"
            );
        }
        // The commit is exactly the transaction with its sequence number.
        let at_seq = store.snapshot_at(ack.seq).unwrap();
        let before = store.snapshot_at(ack.seq - 1).unwrap();
        assert_eq!(
            at_seq.get_raw_value(&group, &name).ok(),
            Some(crash::value(ack.counter)),
            "{at}"
        );
        assert!(before.get_raw_value(&group, &name).is_err(), "{at}");
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_commit() {
    let dir = TempDir::new().unwrap();
    let rounds = if torture() { 40 } else { 6 };
    let mut all: Vec<Ack> = Vec::new();
    for round in 0..rounds {
        let acks = run_and_kill(dir.path(), 10 + (round * 37) % 60, (round * 7 % 5) as u64);
        assert!(!acks.is_empty());
        let newest = acks.iter().map(|a| a.seq).max().unwrap();
        all.extend(acks);
        let store = Store::open(dir.path(), crash::options())
            .unwrap_or_else(|e| panic!("round {round}: open after SIGKILL: {e}"));
        assert!(
            store.seq() >= newest,
            "round {round}: seq {} < acked {newest}",
            store.seq()
        );
        let report = store
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: verify: {e}"));
        assert_eq!(report.transactions, store.seq(), "round {round}: no gaps");
        check_acks(&store, &all);
        store.close().unwrap();
    }
    let segments = segment_files(dir.path()).unwrap();
    assert!(
        segments.len() > 1,
        "the writer's small segments rolled over"
    );
    // Counters continue across rounds: each round resumed after the last committed one.
    let mut counters: Vec<u64> = all.iter().map(|a| a.counter).collect();
    counters.sort_unstable();
    counters.dedup();
    assert_eq!(
        counters.len(),
        all.len(),
        "no counter was acknowledged twice"
    );
}

/// A closed store of three segments, the newest of which the rollover tests replace by what a
/// writer killed while creating it would leave.
struct Rollover {
    _source: TempDir,
    /// The segments before the victim, the last of them sealed.
    kept: Vec<PathBuf>,
    victim_name: String,
    victim_size: usize,
    /// The victim's first sequence number: the first the killed store never committed.
    first_lost: Seq,
}

fn rollover_store() -> Rollover {
    let source = TempDir::new().unwrap();
    let store = Store::open(source.path(), crash::options()).unwrap();
    while segment_files(source.path()).unwrap().len() < 3 {
        let i = store.seq() + 1;
        let mut tx = store.transaction();
        tx.create_key(r"HKLM\Software\Roll").unwrap();
        tx.set_value(
            r"HKLM\Software\Roll",
            &format!("N{i}"),
            &Value::binary(data(i, 3000)),
        )
        .unwrap();
        assert_eq!(tx.commit().unwrap(), i);
    }
    store.close().unwrap();
    let mut kept = segment_files(source.path()).unwrap();
    // Dropping the newest segment leaves the journal as it was right after the rollover
    // sealed the one before it: the state a kill during the next segment's creation finds.
    let victim = kept.pop().unwrap();
    let victim_name = file_name(&victim);
    Rollover {
        first_lost: victim_name.trim_end_matches(".seg").parse().unwrap(),
        victim_size: std::fs::metadata(&victim).unwrap().len() as usize,
        victim_name,
        kept,
        _source: source,
    }
}

/// Copies the rollover store into a fresh directory with the victim segment's file holding
/// `content` (or absent), opens it and checks it holds exactly the committed prefix and goes
/// on from there.
fn check_killed_rollover(rollover: &Rollover, content: Option<Vec<u8>>, what: &str) {
    let dir = TempDir::new().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    for segment in &rollover.kept {
        std::fs::copy(segment, journal.join(file_name(segment))).unwrap();
    }
    if let Some(content) = &content {
        std::fs::write(journal.join(&rollover.victim_name), content).unwrap();
    }
    let at = format!("next segment left as {what}");
    let store = Store::open(dir.path(), crash::options())
        .unwrap_or_else(|e| panic!("{at}: the open failed: {e}"));
    let first_lost = rollover.first_lost;
    assert_eq!(store.seq(), first_lost - 1, "{at}");
    let expected_torn = content.is_some().then(|| rollover.victim_name.clone());
    assert_eq!(store.recovery_report().torn_segment, expected_torn, "{at}");
    store
        .verify()
        .unwrap_or_else(|e| panic!("{at}: verify: {e}"));
    for i in 2..first_lost {
        let expected = Value::binary(data(i, 3000));
        let name = format!("N{i}");
        assert_eq!(
            value_of(&store, r"HKLM\Software\Roll", &name),
            Some(expected),
            "{at}"
        );
    }
    let next = store
        .open_key_with(r"HKLM\Software\Roll", Access::KEY_ALL_ACCESS)
        .unwrap()
        .set_value("After", &1u32)
        .unwrap();
    assert_eq!(
        next, first_lost,
        "{at}: the next commit takes the next number"
    );
    store.close().unwrap();
    let store =
        Store::open(dir.path(), crash::options()).unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    assert_eq!(store.seq(), first_lost, "{at}");
    store.verify().unwrap();
}

/// What a writer killed in the middle of a rollover leaves: the previous segment sealed
/// (sealing syncs it), and the next segment's file missing, empty (killed between creating and
/// preallocating it) or preallocated but all zeros (killed before its header was copied in).
/// None of it was acknowledged: the store opens at the sealed segment's last transaction.
#[test]
fn a_writer_killed_during_a_rollover_leaves_a_store_that_opens() {
    let rollover = rollover_store();
    check_killed_rollover(&rollover, None, "no file");
    check_killed_rollover(&rollover, Some(Vec::new()), "an empty file");
    let zeros = vec![0u8; rollover.victim_size];
    check_killed_rollover(&rollover, Some(zeros), "a preallocated file of zeros");
}

/// A writer killed during the 64-byte copy of a new segment's header (`Segment::create`)
/// leaves the last segment with a partial header and zeros after it. No transaction in it was
/// ever written, and the segment before it is sealed: recovery must take it for a torn
/// rollover and open the store (DESIGN.md: "a torn or invalid tail of the last segment was
/// never acknowledged and is cut off"). Regression test for a recovery that accepted only an
/// all-zero header.
#[test]
fn a_writer_killed_while_writing_a_segment_header_leaves_a_store_that_opens() {
    let rollover = rollover_store();
    let mut partial_header = vec![0u8; rollover.victim_size];
    partial_header[..8].copy_from_slice(b"HVLGSEG\0");
    check_killed_rollover(
        &rollover,
        Some(partial_header),
        "a file with only the first 8 header bytes (the magic) written",
    );
}

// ---- d. power loss ----------------------------------------------------------------------------

/// Transaction `i` of thread `t` in the power-loss workload: value `N{i}` in key `T{t}`, with
/// data whose length varies from 8 to about 3 KB; every fourth also writes to a shared key.
fn power_key(t: u64) -> String {
    format!(r"HKLM\Software\Power\T{t}")
}

fn power_value(t: u64, i: u64) -> Value {
    let tag = t << 32 | i;
    Value::binary(data(
        tag,
        8 + (tag.wrapping_mul(0x9e37_79b9) % 3000) as usize,
    ))
}

fn power_commit(store: &Store, t: u64, i: u64) -> Result<Seq, Error> {
    let mut tx = store.transaction();
    tx.create_key(&power_key(t))?;
    tx.set_value(&power_key(t), &format!("N{i}"), &power_value(t, i))?;
    if i.is_multiple_of(4) {
        tx.create_key(r"HKLM\Software\Power\Shared")?;
        tx.set_value(r"HKLM\Software\Power\Shared", &format!("T{t}"), &i)?;
    }
    tx.commit()
}

/// Checks a store reopened after a power cut: `promised[t]` are thread t's commits (counter
/// i, sequence number) that must be there; `attempted[t]` is how many thread t tried. What
/// survives must be a gapless prefix: each thread's survivors are its first k commits, and the
/// survivors, plus the hives, account for every sequence number.
fn check_survivors(store: &Store, promised: &[Vec<(u64, Seq)>], attempted: &[u64], at: &str) {
    let report = store
        .verify()
        .unwrap_or_else(|e| panic!("{at}: verify: {e}"));
    assert_eq!(
        report.transactions,
        store.seq(),
        "{at}: sequence numbers 1..=last, no gaps"
    );
    let mut survivors = 0;
    for (t, tried) in attempted.iter().enumerate() {
        let t = t as u64;
        let kept = (0..*tried)
            .take_while(|i| value_of(store, &power_key(t), &format!("N{i}")).is_some())
            .count() as u64;
        for i in kept..*tried {
            assert!(
                value_of(store, &power_key(t), &format!("N{i}")).is_none(),
                "{at}: thread {t} commit {i} survived after a lost one"
            );
        }
        for i in 0..kept {
            assert_eq!(
                value_of(store, &power_key(t), &format!("N{i}")),
                Some(power_value(t, i)),
                "{at}"
            );
        }
        for &(i, seq) in &promised[t as usize] {
            assert!(
                i < kept,
                "{at}: thread {t} commit {i} (sequence number {seq}) was lost"
            );
            let name = format!("N{i}");
            let exact = store
                .snapshot_at(seq)
                .unwrap()
                .get_raw_value(&power_key(t), &name);
            assert_eq!(exact.ok(), Some(power_value(t, i)), "{at}: commit {seq}");
            let before = store
                .snapshot_at(seq - 1)
                .unwrap()
                .get_raw_value(&power_key(t), &name);
            assert!(
                before.is_err(),
                "{at}: commit {seq} is the transaction with its number"
            );
        }
        survivors += kept;
    }
    // Transaction 1 creates the hives (again, if the cut lost it).
    assert_eq!(
        survivors + 1,
        store.seq(),
        "{at}: every surviving transaction is accounted for"
    );
}

/// Several threads commit under SyncPolicy::Always while the power is cut at a random moment:
/// every commit that returned Ok is there, with its content, in a gapless prefix.
#[test]
fn power_loss_under_sync_always_keeps_every_returned_commit() {
    let rounds = if torture() { 300 } else { 30 };
    let threads = 4u64;
    let mut rolled_over = false;
    for round in 0..rounds {
        let vfs = SimVfs::new();
        let store = open_sim(&vfs).unwrap();
        let cut_at = 5 + (round * 7919) % 240;
        let stop = AtomicBool::new(false);
        let (results, reborn) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let store = store.clone();
                    let stop = &stop;
                    scope.spawn(move || {
                        let mut acked = Vec::new();
                        let mut attempted = 0;
                        while !stop.load(Ordering::Relaxed) {
                            attempted += 1;
                            match power_commit(&store, t, attempted - 1) {
                                Ok(seq) => acked.push((attempted - 1, seq)),
                                // Only the power cut may fail a commit: the sync (poisoning
                                // the journal) or the creation of a segment.
                                Err(Error::Log(LogError::Poisoned(_) | LogError::Io { .. })) => {
                                    break;
                                }
                                Err(other) => panic!("thread {t}: {other}"),
                            }
                        }
                        (acked, attempted)
                    })
                })
                .collect();
            while store.seq() < cut_at {
                std::thread::yield_now();
            }
            let reborn = vfs.cut_power();
            stop.store(true, Ordering::Relaxed);
            let results: Vec<(Vec<(u64, Seq)>, u64)> =
                workers.into_iter().map(|w| w.join().unwrap()).collect();
            (results, reborn)
        });
        drop(store);
        let promised: Vec<Vec<(u64, Seq)>> = results.iter().map(|r| r.0.clone()).collect();
        let attempted: Vec<u64> = results.iter().map(|r| r.1).collect();
        let acks: u64 = promised.iter().map(|p| p.len() as u64).sum();
        // Every commit through `cut_at` was appended and synced before the cut; only a
        // thread's one commit in flight may have seen the cut's failure instead of its Ok.
        assert!(
            acks + 1 + threads >= cut_at,
            "round {round}: only {acks} of the first {cut_at} commits returned Ok"
        );
        let store = open_sim(&reborn).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
        assert!(
            store.seq() >= cut_at,
            "round {round}: {} < {cut_at}",
            store.seq()
        );
        check_survivors(&store, &promised, &attempted, &format!("round {round}"));
        rolled_over |= store.stats().segments > 1;
        // The reopened store takes the next sequence number.
        let next = store.seq() + 1;
        assert_eq!(power_commit(&store, 99, 0).unwrap(), next, "round {round}");
    }
    assert!(rolled_over, "the workload must roll segments over");
}

/// Under SyncPolicy::Never only what `sync()` covered is promised. The power is cut while the
/// device writes a random subset of the unsynced pages, three times in a row on one store:
/// reopening never reports corruption, and every commit a successful sync covered is there.
#[test]
fn power_loss_with_torn_pages_keeps_every_synced_commit() {
    let seeds = if torture() { 1000 } else { 150 };
    for seed in 0..seeds {
        let mut vfs = SimVfs::new();
        let mut promised = Vec::new();
        let mut attempted = 0;
        for generation in 0..3 {
            let at = format!("seed {seed}, generation {generation}");
            let store = Store::open(store_dir(), sim_options(&vfs, SyncPolicy::Never))
                .unwrap_or_else(|e| panic!("{at}: torn unsynced pages taken for corruption: {e}"));
            assert!(store.recovery_report().salvage.is_none());
            check_survivors(&store, &[promised.clone()], &[attempted], &at);
            // Go on after the last surviving commit.
            let first = store.seq() - 1;
            attempted = first + 5 + (seed * 13 + generation * 29) % 90;
            let mut pending = Vec::new();
            for i in first..attempted {
                let seq = power_commit(&store, 0, i).unwrap();
                pending.push((i, seq));
                if (i + seed).is_multiple_of(7) {
                    let durable = store.sync().unwrap();
                    assert!(durable >= seq, "{at}: sync returns the last durable number");
                    promised.append(&mut pending);
                }
            }
            // Nothing writes now: the store is idle, its unsynced pages still in memory.
            let reborn = vfs.cut_power_tearing(seed * 3 + generation);
            drop(store);
            vfs = reborn;
        }
        let store = Store::open(store_dir(), sim_options(&vfs, SyncPolicy::Always))
            .unwrap_or_else(|e| panic!("seed {seed}: torn pages taken for corruption: {e}"));
        check_survivors(&store, &[promised], &[attempted], &format!("seed {seed}"));
    }
}

/// Sets value `name` of `HKLM\Software\Torn` to `len` bytes derived from `tag`.
fn torn_commit(store: &Store, tag: u64, len: usize) -> Seq {
    let mut tx = store.transaction();
    tx.create_key(r"HKLM\Software\Torn").unwrap();
    tx.set_value(
        r"HKLM\Software\Torn",
        &format!("N{tag}"),
        &Value::binary(data(tag, len)),
    )
    .unwrap();
    tx.commit().unwrap()
}

/// Cuts the power of `vfs` while the device wrote, of the unsynced pages of the store's one
/// segment, only the 4 KiB page holding byte `offset` (a device may write pages in any order).
fn cut_power_keeping_page(vfs: &SimVfs, offset: usize) -> SimVfs {
    const PAGE_BYTES: usize = 4096;
    let path = sim_segments(vfs).pop().unwrap();
    let volatile = vfs.read(&path).unwrap();
    let reborn = vfs.cut_power();
    let mut image = reborn.read(&path).unwrap();
    let page = offset / PAGE_BYTES * PAGE_BYTES;
    image[page..page + PAGE_BYTES].copy_from_slice(&volatile[page..page + PAGE_BYTES]);
    reborn.overwrite(&path, &image).unwrap();
    reborn
}

/// Regression test, first found by `power_loss_with_torn_pages_keeps_every_synced_commit`
/// under HIVELOG_TORTURE=1 (seed 224); this is the same sequence, made deterministic.
///
/// 1. Under SyncPolicy::Never a power cut leaves a torn tail: zeros at the end of the synced
///    data, then a later page of unsynced transactions the device happened to write.
/// 2. Recovery cuts the tail, zeroes it through its last non-zero byte D and syncs through D.
///    That sync must not count as making anything past the data end durable.
/// 3. New commits are appended where the data ends; each Commit record carries how far the
///    segment was synced. Had the recovery sync counted, the second new commit would claim the
///    first one's bytes durable, though nothing synced them.
/// 4. Another power cut writes the page with the second commit but not the first: recovery
///    would find a missing record before a record claiming it durable and refuse to open the
///    store. Nothing acknowledged was lost; the open must succeed.
#[test]
fn commits_after_a_recovered_torn_tail_are_not_claimed_durable_before_a_sync() {
    let vfs = SimVfs::new();
    let store = Store::open(store_dir(), sim_options(&vfs, SyncPolicy::Never)).unwrap();
    let promised = torn_commit(&store, 1, 1000);
    assert_eq!(store.sync().unwrap(), promised);
    let synced_end = {
        let path = sim_segments(&vfs).pop().unwrap();
        txn_range(&vfs.read(&path).unwrap(), promised).unwrap().1
    };
    // Unsynced transactions over some 30 KB; the device writes only the page of the last.
    for tag in 2..=6 {
        torn_commit(&store, tag, 6000);
    }
    let image = vfs.read(&sim_segments(&vfs)[0]).unwrap();
    let last_written = txn_range(&image, promised + 5).unwrap().1 - 1;
    let vfs = cut_power_keeping_page(&vfs, last_written);
    drop(store);

    let store = Store::open(store_dir(), sim_options(&vfs, SyncPolicy::Never))
        .unwrap_or_else(|e| panic!("first reopen: {e}"));
    assert_eq!(store.seq(), promised);
    let torn = store
        .recovery_report()
        .torn_tail
        .clone()
        .expect("a torn tail");
    assert_eq!(torn.offset, synced_end as u64);
    // Two unsynced commits where the torn tail was; the device writes only the second's last
    // page, which lies wholly after the first.
    let first = torn_commit(&store, 7, 6000);
    let second = torn_commit(&store, 8, 6000);
    let image = vfs.read(&sim_segments(&vfs)[0]).unwrap();
    let (_, first_end) = txn_range(&image, first).unwrap();
    let (_, second_end) = txn_range(&image, second).unwrap();
    assert!((second_end - 1) / 4096 * 4096 >= first_end);
    let vfs = cut_power_keeping_page(&vfs, second_end - 1);
    drop(store);

    let store = Store::open(store_dir(), sim_options(&vfs, SyncPolicy::Never))
        .unwrap_or_else(|e| panic!("second reopen: only unsynced commits were torn: {e}"));
    assert_eq!(store.seq(), promised);
    assert_eq!(
        value_of(&store, r"HKLM\Software\Torn", "N1"),
        Some(Value::binary(data(1, 1000)))
    );
    store.verify().unwrap();
}
