//! Compaction (`--workload compact`): what it gives back on disk, and what it costs writers.
//!
//! - Disk: W1, then every value overwritten 10 times, then a compaction keeping no history:
//!   the store's directory against its size right after W1 (target ≤ 1.2×).
//! - Online: W2 with 4 durable writer threads on the W1 store, alone and with a compaction
//!   of the whole store started a third of the way in, in three alternated rounds. Every
//!   1-second window's throughput against the run alone (target: none below 50%), commit
//!   latencies of both runs, and the longest the compaction held the state's write lock
//!   (target: no commit waits more than 10 ms on it).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hivelog::{CompactReport, Options, Store, SyncPolicy};
use hivelog_workload::{Dataset, percentile};

use super::workloads::{load, load_round, micros, w2_writers};
use super::{Report, grouped, machine};
use crate::store_dir::{Failure, fail};

/// Overwrites of every value before the disk figure's compaction.
const OVERWRITES: u8 = 10;
/// Writer threads of the online figure.
const THREADS: usize = 4;
/// Shortest round of the online figure on the full data set: its compaction runs about 7 s
/// (paced), and the round holds windows before and after it.
const ONLINE_SECONDS_MIN: u64 = 12;
/// ... and on a small one (the tests' short run), which compacts in well under a second.
const ONLINE_SECONDS_MIN_SMALL: u64 = 3;
/// Values from which a data set counts as full.
const FULL_DATA_VALUES: usize = 1_000_000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

pub(crate) fn compaction(
    dir: &Path,
    data: &Dataset,
    seconds: u64,
    report: &mut Report,
) -> Result<(), Failure> {
    // The online figure first: the disk figure's gigabyte and a half of writes and removals
    // leave the device busy for a while.
    let shortest = if data.values() >= FULL_DATA_VALUES {
        ONLINE_SECONDS_MIN
    } else {
        ONLINE_SECONDS_MIN_SMALL
    };
    online(&dir.join("online"), data, seconds.max(shortest), report)?;
    machine::settle();
    disk(&dir.join("disk"), data, report)
}

fn bulk_options() -> Options {
    Options {
        sync: SyncPolicy::Never,
        compaction: false,
        ..Options::default()
    }
}

/// W1 into a new store in `dir`, closed.
fn w1_store(dir: &Path, data: &Dataset) -> Result<(), Failure> {
    let store = Store::open(dir, bulk_options())?;
    load(&store, data, |key| data.registry_path(key), "W1 bulk load")?;
    Ok(store.close()?)
}

fn disk(dir: &Path, data: &Dataset, report: &mut Report) -> Result<(), Failure> {
    w1_store(dir, data)?;
    let after_w1 = machine::disk_usage(dir)?;
    let store = Store::open(dir, bulk_options())?;
    for round in 1..=OVERWRITES {
        load_round(
            &store,
            data,
            |key| data.registry_path(key),
            "overwrite",
            round,
        )?;
    }
    store.sync()?;
    let overwritten = machine::disk_usage(dir)?;
    let compacted = store
        .compact_keeping(0, 0)?
        .ok_or_else(|| fail("no sealed segment to compact after the overwrites"))?;
    store.close()?;
    let after = machine::disk_usage(dir)?;
    let ratio = after as f64 / after_w1 as f64;
    println!(
        "compaction disk         {ratio:>12.2} x          ({:.1} MiB after W1, {:.1} MiB after {OVERWRITES} overwrites of every value, {:.1} MiB after the compaction; target <= 1.2 x)",
        mib(after_w1),
        mib(overwritten),
        mib(after)
    );
    describe(&compacted);
    report.add("compact", "disk after / after W1", ratio, "x");
    report.add("compact", "bytes after W1", after_w1 as f64, "bytes");
    report.add(
        "compact",
        "bytes after overwrites",
        overwritten as f64,
        "bytes",
    );
    report.add("compact", "bytes after compaction", after as f64, "bytes");
    report.add(
        "compact",
        "compaction s",
        compacted.elapsed.as_secs_f64(),
        "s",
    );
    Ok(())
}

fn describe(compacted: &CompactReport) {
    println!(
        "  the compaction         {:>12.2} s          (a base of {} values, {:.1} MiB, replacing {} files; longest hold of the write lock {:.2} ms)",
        compacted.elapsed.as_secs_f64(),
        grouped(compacted.values as f64),
        mib(compacted.base_bytes),
        compacted.replaced_files.len(),
        compacted.longest_lock_hold.as_secs_f64() * 1000.0
    );
}

/// One W2 run: commits per 1-second window, and every commit's latency (sorted).
struct Run {
    windows: Vec<u64>,
    latencies: Vec<u64>,
}

fn w2_run(
    store: &Store,
    data: &Dataset,
    seconds: u64,
    label: &'static str,
    during: impl FnOnce() -> Result<Option<CompactReport>, Failure> + Send,
) -> Result<(Run, Option<CompactReport>), Failure> {
    let windows: Vec<AtomicU64> = (0..=seconds + 1).map(|_| AtomicU64::new(0)).collect();
    let start = Instant::now();
    let count = |_seq: u64| {
        let window = start.elapsed().as_secs() as usize;
        if let Some(counter) = windows.get(window) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    };
    let (written, compacted) = std::thread::scope(|scope| {
        let compaction = scope.spawn(during);
        let written = w2_writers(store, data, THREADS, seconds, label, &count);
        let compacted = compaction
            .join()
            .unwrap_or_else(|_| Err(fail("the compaction thread panicked")));
        (written, compacted)
    });
    let (mut latencies, _) = written?;
    latencies.sort_unstable();
    // Whole windows only: the last one is cut short by the deadline.
    let windows = windows
        .iter()
        .take(seconds as usize)
        .map(|w| w.load(Ordering::Relaxed))
        .collect();
    Ok((Run { windows, latencies }, compacted?))
}

fn online(dir: &Path, data: &Dataset, seconds: u64, report: &mut Report) -> Result<(), Failure> {
    w1_store(dir, data)?;
    machine::settle();
    let store = Store::open(
        dir,
        Options {
            sync: SyncPolicy::Always,
            compaction: false,
            ..Options::default()
        },
    )?;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
        let figures = online_round(&store, data, seconds)?;
        figures.print(round);
        rounds.push(figures);
    }
    store.close()?;
    let median = |figure: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ratio = median(|r| r.worst / r.steady);
    let before = median(|r| r.worst / r.before);
    let alone_worst = median(|r| r.alone_worst / r.steady);
    let hold = median(|r| r.compacted.longest_lock_hold.as_secs_f64() * 1000.0);
    println!(
        "compaction online       {ratio:>12.2} x          (median of {ROUNDS} alternated rounds: the worst 1-second window with a compaction running against the median window alone; {before:.2} x against the same round's windows before the compaction; the run alone's own worst window {alone_worst:.2} x; longest lock hold {hold:.2} ms; targets >= 0.5 x and <= 10 ms)"
    );
    report.add("compact", "worst window / steady", ratio, "x");
    report.add(
        "compact",
        "worst window / median window before it",
        before,
        "x",
    );
    report.add("compact", "worst window alone / steady", alone_worst, "x");
    report.add("compact", "longest lock hold ms", hold, "ms");
    report.add(
        "compact",
        "max commit ms alone",
        median(|r| r.alone.max_ms()),
        "ms",
    );
    report.add(
        "compact",
        "max commit ms with compaction",
        median(|r| r.with.max_ms()),
        "ms",
    );
    Ok(())
}

/// Rounds of the online figure, alternated (alone, with a compaction).
const ROUNDS: usize = 3;

/// One round of the online figure.
struct Round {
    alone: Run,
    with: Run,
    compacted: CompactReport,
    /// When the compaction began, and how long it ran with the checkpoint after it.
    delay: Duration,
    ran: Duration,
    /// The median window alone, its worst, the median window of the round with the
    /// compaction before it began, and that round's worst.
    steady: f64,
    alone_worst: f64,
    before: f64,
    worst: f64,
}

fn median_window(windows: &[u64]) -> f64 {
    let mut sorted = windows.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2] as f64
}

fn online_round(store: &Store, data: &Dataset, seconds: u64) -> Result<Round, Failure> {
    let (alone, _) = w2_run(store, data, seconds, "W2, 4 threads, alone", || Ok(None))?;
    machine::settle();
    let delay = Duration::from_secs(seconds / 3);
    let ran = std::sync::Mutex::new(Duration::ZERO);
    let (with, compacted) = w2_run(store, data, seconds, "W2 + compaction", || {
        std::thread::sleep(delay);
        let start = Instant::now();
        let compacted = store.compact_keeping(0, 0)?;
        *ran.lock().unwrap_or_else(|p| p.into_inner()) = start.elapsed();
        Ok(compacted)
    })?;
    machine::settle();
    let ran = *ran.lock().unwrap_or_else(|p| p.into_inner());
    let compacted = compacted.ok_or_else(|| fail("no sealed segment to compact"))?;
    Ok(Round {
        steady: median_window(&alone.windows),
        alone_worst: alone.windows.iter().copied().min().unwrap_or(0) as f64,
        // This disk drifts between runs: the same round's windows before the compaction
        // began are the other baseline.
        before: median_window(&with.windows[..delay.as_secs() as usize]),
        worst: with.windows.iter().copied().min().unwrap_or(0) as f64,
        alone,
        with,
        compacted,
        delay,
        ran,
    })
}

impl Run {
    fn max_ms(&self) -> f64 {
        micros(self.latencies.last().copied().unwrap_or(0)) / 1000.0
    }
}

impl Round {
    fn print(&self, round: usize) {
        println!(
            "compaction online, round {round}: {:.2} x (worst window {} commits against a median {} alone; {:.2} x the windows before it; the run alone's worst {:.2} x)",
            self.worst / self.steady,
            grouped(self.worst),
            grouped(self.steady),
            self.worst / self.before,
            self.alone_worst / self.steady
        );
        for (name, run) in [("alone", &self.alone), ("with it", &self.with)] {
            println!(
                "  windows {name:8}      {}",
                run.windows
                    .iter()
                    .map(|w| grouped(*w as f64))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        for (name, run) in [("alone", &self.alone), ("with compaction", &self.with)] {
            println!(
                "  commit latency {name:16} p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.1} ms",
                micros(percentile(&run.latencies, 0.50)),
                micros(percentile(&run.latencies, 0.99)),
                micros(percentile(&run.latencies, 0.999)),
                run.max_ms()
            );
        }
        describe(&self.compacted);
        println!(
            "  it started at {:.1} s and returned at {:.1} s (with the checkpoint after it)",
            self.delay.as_secs_f64(),
            (self.delay + self.ran).as_secs_f64()
        );
    }
}
