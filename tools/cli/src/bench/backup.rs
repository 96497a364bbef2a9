//! Backup and restore of one key's subtree holding the whole data set (1,000,000 values by
//! default), against a plain copy of the same store's journal measured in the same run, and
//! the wait of point readers while a restore replaces a subtree.
//!
//! The data set is loaded under one key, `Machine\Bench\<hive>\software\...`, so a backup of
//! that key streams every value. The copy and the backup both read from the page cache (the
//! journal was just written, and the backup reads it through the store's map) and neither
//! syncs its output, so their rates compare the work each does, not the disk. Each restore
//! replaces `Machine\Restored` with the stream, as one transaction, while reader threads time
//! every point read of both subtrees.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hivelog::{BackupReport, Error, Options, Store, SyncPolicy};
use hivelog_workload::{Dataset, SplitMix64, VALUES_PER_KEY};

use super::workloads::{hash, load, thread_count};
use super::{Report, grouped, machine};
use crate::store_dir::{Failure, fail};

const SOURCE: &str = r"Machine\Bench";
const TARGET: &str = r"Machine\Restored";
/// Copy and backup rounds, alternated so that a noisy neighbour slows both alike.
const COPY_ROUNDS: usize = 5;
const RESTORE_ROUNDS: usize = 3;
/// Distinct values a reader cycles through: few enough to plan in no time, spread over the
/// whole subtree.
const READ_PROBES: usize = 4096;
const RATIO_TARGET: f64 = 0.5;
const RESTORE_TARGET_SECONDS: f64 = 2.0;
const MB: f64 = 1e6;
const MIB: f64 = (1 << 20) as f64;

/// Loads the store, then times the copies and backups, then the restores.
pub(crate) fn backup_restore(
    dir: &Path,
    data: &Dataset,
    report: &mut Report,
) -> Result<(), Failure> {
    let store_dir = dir.join("store");
    let store = load_store(&store_dir, data)?;
    let stream = dir.join("subtree.backup");
    let journal = store_dir.join("journal");
    copies_and_backups(&store, &journal, &dir.join("journal-copy"), &stream, report)?;
    restores(&store, data, &stream, report)?;
    Ok(store.close()?)
}

fn source_path(data: &Dataset, key: usize) -> String {
    format!("{SOURCE}\\{}", data.registry_path(key))
}

fn load_store(dir: &Path, data: &Dataset) -> Result<Store, Failure> {
    let started = Instant::now();
    let options = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let loading = Store::open(dir, options)?;
    load(
        &loading,
        data,
        |key| source_path(data, key),
        "backup store load",
    )?;
    loading.close()?;
    // Reopened with the default policy, so that the backup's audit record and each restore
    // are durable when they return, as an operator's are.
    let store = Store::open(dir, Options::default())?;
    println!(
        "backup store            {} values under {SOURCE}, loaded and reopened in {:.1} s (not a figure)",
        grouped(data.values() as f64),
        started.elapsed().as_secs_f64()
    );
    Ok(store)
}

/// Bytes moved in one round, and how long it took.
struct Timed {
    bytes: u64,
    time: Duration,
}

impl Timed {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MB / self.time.as_secs_f64()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Copies every file of `journal` into `to` as `cp` does: `std::fs::copy` (copy_file_range,
/// as coreutils uses), no sync. The
/// previous round's copy is removed first, outside the clock, so every round writes new files.
fn copy_journal(journal: &Path, to: &Path) -> Result<Timed, Failure> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir(to)?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(journal)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((entry.path(), to.join(entry.file_name())));
        }
    }
    let start = Instant::now();
    let mut bytes = 0;
    for (from, to) in &files {
        bytes += std::fs::copy(from, to)?;
    }
    Ok(Timed {
        bytes,
        time: start.elapsed(),
    })
}

/// One backup round: its rate, what it wrote, and the growth of the peak RSS over the RSS
/// before it.
struct BackupRound {
    timed: Timed,
    written: BackupReport,
    peak_growth: u64,
}

/// Backs the subtree up to `stream` (removed first, outside the clock, as the copy's files
/// are). The peak is reset first, so the growth is this backup's and not the load's.
fn backup_once(store: &Store, stream: &Path) -> Result<BackupRound, Failure> {
    if stream.exists() {
        std::fs::remove_file(stream)?;
    }
    let before = machine::resident();
    let peak_reset = machine::reset_peak().is_ok();
    let start = Instant::now();
    // Unbuffered on purpose: the backup buffers its output itself (1 MiB).
    let written = store.backup(SOURCE, store.seq(), File::create(stream)?)?;
    let time = start.elapsed();
    let after = machine::resident();
    // Without a reset VmHWM is the load's peak; the RSS after the backup is all there is.
    let peak = if peak_reset { after.peak } else { after.rss };
    Ok(BackupRound {
        timed: Timed {
            bytes: written.bytes,
            time,
        },
        written,
        peak_growth: peak.saturating_sub(before.rss),
    })
}

/// Alternated rounds of the journal copy and the backup; reports the medians and their ratio.
fn copies_and_backups(
    store: &Store,
    journal: &Path,
    copy_dir: &Path,
    stream: &Path,
    report: &mut Report,
) -> Result<(), Failure> {
    let anon_before = machine::resident().anon;
    let (mut copies, mut backups) = (Vec::new(), Vec::new());
    for _ in 0..COPY_ROUNDS {
        copies.push(copy_journal(journal, copy_dir)?);
        backups.push(backup_once(store, stream)?);
    }
    let anon_growth = machine::resident().anon.saturating_sub(anon_before);
    std::fs::remove_dir_all(copy_dir)?;
    let copy_bytes = copies.first().map_or(0, |c| c.bytes);
    let Some(last) = backups.last().map(|b| b.written) else {
        return Err(fail("backup: no round ran"));
    };
    let copy_rate = median(copies.iter().map(Timed::mb_per_s).collect());
    let backup_rate = median(backups.iter().map(|b| b.timed.mb_per_s()).collect());
    let ratio = backup_rate / copy_rate;
    let peak = backups.iter().map(|b| b.peak_growth).max().unwrap_or(0);
    let stats = store.stats();
    println!(
        "journal copy            {copy_rate:>12.0} MB/s       (std::fs::copy of journal/: {} segment file(s), {:.1} MB, of which {:.1} MB records and the rest preallocated; no sync)",
        stats.segments,
        copy_bytes as f64 / MB,
        stats.journal_bytes as f64 / MB
    );
    println!(
        "backup                  {backup_rate:>12.0} MB/s       ({SOURCE}: {} keys, {} values, a {:.1} MB stream = {:.0}% of the journal's records, to a file, no sync)",
        grouped(last.keys as f64),
        grouped(last.values as f64),
        last.bytes as f64 / MB,
        100.0 * last.bytes as f64 / stats.journal_bytes as f64
    );
    println!(
        "  backup is {:.0}% of the copy's rate, medians of {COPY_ROUNDS} alternated rounds, both reading the page cache in this run (target: at least {:.0}%: {})",
        100.0 * ratio,
        100.0 * RATIO_TARGET,
        verdict(ratio >= RATIO_TARGET)
    );
    println!(
        "backup memory           {:>12.1} MiB        (worst peak RSS growth during one backup, mapped journal pages included; heap after the rounds {:+.1} MiB)",
        peak as f64 / MIB,
        anon_growth as f64 / MIB
    );
    report.add("backup", "journal copy MB/s", copy_rate, "MB/s");
    report.add("backup", "backup MB/s", backup_rate, "MB/s");
    report.add("backup", "backup/copy ratio", ratio, "ratio");
    report.add("backup", "stream bytes", last.bytes as f64, "bytes");
    report.add("backup", "values", last.values as f64, "values");
    report.add("backup", "peak RSS growth", peak as f64, "bytes");
    Ok(())
}

/// A value the readers read in both subtrees, and a hash of the bytes it must have.
struct Probe {
    source: String,
    restored: String,
    name: &'static str,
    expected: u64,
}

fn probes(data: &Dataset) -> Vec<Probe> {
    let mut rng = SplitMix64::new(0xbac0);
    (0..READ_PROBES)
        .map(|_| {
            let key = rng.below(data.keys() as u64) as usize;
            let slot = rng.below(VALUES_PER_KEY as u64) as usize;
            Probe {
                source: source_path(data, key),
                restored: format!("{TARGET}\\{}", data.registry_path(key)),
                name: data.registry_value_name(key, slot),
                expected: hash(&data.value(key, slot).data),
            }
        })
        .collect()
}

/// What the readers saw during a restore. The worst reads of the two subtrees are kept apart:
/// the source is not the restore's, so a wait there is the index's lock, not the subtree's.
#[derive(Default)]
struct Reads {
    count: u64,
    worst_source: Duration,
    worst_restored: Duration,
}

impl Reads {
    fn merge(&mut self, other: Reads) {
        self.count += other.count;
        self.worst_source = self.worst_source.max(other.worst_source);
        self.worst_restored = self.worst_restored.max(other.worst_restored);
    }

    fn worst(&self) -> Duration {
        self.worst_source.max(self.worst_restored)
    }
}

/// One timed read of `probe`'s value at `path`: wrong bytes fail, and so does a missing key
/// or value unless `may_miss`.
fn timed_read(
    store: &Store,
    probe: &Probe,
    path: &str,
    may_miss: bool,
) -> Result<Duration, Failure> {
    let start = Instant::now();
    let seen = store.with_value(path, probe.name, |_, data| hash(data));
    let took = start.elapsed();
    match seen {
        Ok(seen) if seen == probe.expected => Ok(took),
        Ok(_) => Err(fail(format!(
            "restore: wrong bytes for {path} {:?}",
            probe.name
        ))),
        Err(Error::KeyNotFound { .. } | Error::ValueNotFound { .. }) if may_miss => Ok(took),
        Err(error) => Err(fail(format!(
            "restore: reading {path} {:?} during a restore: {error}",
            probe.name
        ))),
    }
}

/// Reads the probes from `first` on, each value in the source and then in the restored
/// subtree, until `stop`. The restored subtree may be missing only until the first restore
/// commits (`restored_exists` is false in that round): a restore replaces it in one
/// transaction, so a reader sees the old copy or the new, never none.
fn read_until(
    store: &Store,
    probes: &[Probe],
    first: usize,
    stop: &AtomicBool,
    restored_exists: bool,
) -> Result<Reads, Failure> {
    let mut reads = Reads::default();
    for probe in probes.iter().cycle().skip(first) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let source = timed_read(store, probe, &probe.source, false)?;
        let restored = timed_read(store, probe, &probe.restored, !restored_exists)?;
        reads.worst_source = reads.worst_source.max(source);
        reads.worst_restored = reads.worst_restored.max(restored);
        reads.count += 2;
    }
    Ok(reads)
}

/// One restore of `stream` into the target, with `readers` threads reading throughout.
fn restore_once(
    store: &Store,
    probes: &[Probe],
    stream: &Path,
    readers: usize,
    restored_exists: bool,
) -> Result<(Duration, Reads), Failure> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let stop = &stop;
                let first = r * probes.len() / readers;
                // Named, so a profile can pick the readers out.
                std::thread::Builder::new()
                    .name(format!("restore-reader-{r}"))
                    .spawn_scoped(scope, move || {
                        read_until(store, probes, first, stop, restored_exists)
                    })
            })
            .collect();
        let start = Instant::now();
        let restored = store.restore_file(TARGET, stream);
        let time = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut reads = Reads::default();
        for handle in handles {
            let seen = match handle {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(fail("a reader thread panicked"))),
                Err(error) => Err(Failure::from(error)),
            };
            reads.merge(seen?);
        }
        restored?;
        Ok((time, reads))
    })
}

/// Restores the stream into the target in rounds, each replacing the last one's copy;
/// reports the median and worst restore and the readers' worst read.
fn restores(
    store: &Store,
    data: &Dataset,
    stream: &Path,
    report: &mut Report,
) -> Result<(), Failure> {
    let probes = probes(data);
    // Timed once on its own: the part of a restore before its transaction.
    let start = Instant::now();
    hivelog::verify_backup_file(stream)?;
    let verify = start.elapsed().as_secs_f64();
    // A reader per spare core: a reader on the restore's core would time the scheduler.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let readers = cores.saturating_sub(1).clamp(1, 2);
    let mut times = Vec::with_capacity(RESTORE_ROUNDS);
    let mut waits = Vec::with_capacity(RESTORE_ROUNDS);
    let mut reads = Reads::default();
    for round in 0..RESTORE_ROUNDS {
        let (time, seen) = restore_once(store, &probes, stream, readers, round > 0)?;
        times.push(time.as_secs_f64());
        waits.push(format!(
            "{:.2} s of {:.2} s",
            seen.worst().as_secs_f64(),
            time.as_secs_f64()
        ));
        reads.merge(seen);
    }
    let worst = times.iter().copied().fold(0.0, f64::max);
    let median = median(times);
    let worst_read = reads.worst().as_secs_f64();
    println!(
        "restore                 {median:>12.2} s median   (into {TARGET}, replacing the last round's copy; worst {worst:.2} s of {RESTORE_ROUNDS}; target: at most {RESTORE_TARGET_SECONDS:.0} s: {})",
        verdict(median <= RESTORE_TARGET_SECONDS)
    );
    println!(
        "restore readers         {:>12.1} ms worst    ({} point reads on {} during the restores; worst in {SOURCE} {:.1} ms, in {TARGET} {:.1} ms)",
        worst_read * 1000.0,
        grouped(reads.count as f64),
        thread_count(readers),
        reads.worst_source.as_secs_f64() * 1000.0,
        reads.worst_restored.as_secs_f64() * 1000.0
    );
    // Verification reads only the stream, and the journal write and sync happen outside the
    // index's lock; the apply gives the lock up every few thousand records, so what readers
    // wait on is its longest step (the old subtree's tombstone, a growth of the path table).
    println!(
        "  readers' worst wait against each restore: {}: the longest step of its apply, which lets readers in every 4,096 records (verifying the stream, {verify:.2} s alone, and the journal write and sync are outside the lock)",
        waits.join(", ")
    );
    report.add("restore", "seconds, median", median, "s");
    report.add("restore", "seconds, worst", worst, "s");
    report.add(
        "restore",
        "worst read latency ms",
        worst_read * 1000.0,
        "ms",
    );
    report.add("restore", "verify seconds", verify, "s");
    report.add(
        "restore",
        "reads during restores",
        reads.count as f64,
        "reads",
    );
    Ok(())
}
