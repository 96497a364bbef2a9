//! Compaction (`--workload compact`): what it gives back on disk, and what it costs writers.
//!
//! - Disk: W1, then every value overwritten 10 times, then a compaction keeping no history:
//!   the store's directory against its size right after W1 (target ≤ 1.2×).
//! - Online: W2 with 4 durable writer threads on the W1 store, once alone and once with a
//!   compaction of the whole store started a third of the way in. Every 1-second window's
//!   throughput against the run alone (target: none below 50%), commit latencies of both
//!   runs, and the longest the compaction held the state's write lock (target: no commit
//!   waits more than 10 ms on it).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hivelog::{CompactReport, Options, Store, SyncPolicy};
use hivelog_workload::{Dataset, percentile};

use super::workloads::{load_round, micros, w2_writers};
use super::{Report, grouped, machine};
use crate::store_dir::{Failure, fail};

/// Overwrites of every value before the disk figure's compaction.
const OVERWRITES: u8 = 10;
/// Writer threads of the online figure.
const THREADS: usize = 4;
/// Shortest run of the online figure.
const ONLINE_SECONDS_MIN: u64 = 12;

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
    online(
        &dir.join("online"),
        data,
        seconds.max(ONLINE_SECONDS_MIN),
        report,
    )?;
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

fn disk(dir: &Path, data: &Dataset, report: &mut Report) -> Result<(), Failure> {
    let store = Store::open(dir, bulk_options())?;
    load_round(
        &store,
        data,
        |key| data.registry_path(key),
        "W1 bulk load",
        0,
    )?;
    store.close()?;
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
    let store = Store::open(dir, bulk_options())?;
    load_round(
        &store,
        data,
        |key| data.registry_path(key),
        "W1 bulk load",
        0,
    )?;
    store.close()?;
    machine::settle();
    let store = Store::open(
        dir,
        Options {
            sync: SyncPolicy::Always,
            compaction: false,
            ..Options::default()
        },
    )?;
    let (alone, _) = w2_run(&store, data, seconds, "W2, 4 threads, alone", || Ok(None))?;
    machine::settle();
    let delay = Duration::from_secs(seconds / 3);
    let ran = std::sync::Mutex::new(Duration::ZERO);
    let (with, compacted) = w2_run(&store, data, seconds, "W2 + compaction", || {
        std::thread::sleep(delay);
        let start = Instant::now();
        let compacted = store.compact_keeping(0, 0)?;
        *ran.lock().unwrap_or_else(|p| p.into_inner()) = start.elapsed();
        Ok(compacted)
    })?;
    let ran = *ran.lock().unwrap_or_else(|p| p.into_inner());
    store.close()?;
    let compacted = compacted.ok_or_else(|| fail("no sealed segment to compact after W1"))?;
    // The steady rate: the median window of the run alone (this machine's disk has stalls
    // of its own, which the run alone shows as its own worst window).
    let mut sorted = alone.windows.clone();
    sorted.sort_unstable();
    let steady = sorted[sorted.len() / 2] as f64;
    let worst = with.windows.iter().copied().min().unwrap_or(0) as f64;
    let alone_worst = sorted[0] as f64;
    let ratio = worst / steady;
    // This disk drifts between runs: the same run's windows before the compaction began are
    // the other baseline.
    let mut before: Vec<u64> = with.windows[..delay.as_secs() as usize].to_vec();
    before.sort_unstable();
    let before_median = before[before.len() / 2] as f64;
    println!(
        "compaction online       {ratio:>12.2} x          (worst 1-second window {} commits with a compaction running, against a median {} commits/s alone, whose own worst window was {:.2} x; {:.2} x the median window of the same run before the compaction began; target >= 0.5 x)",
        grouped(worst),
        grouped(steady),
        alone_worst / steady,
        worst / before_median
    );
    for (name, run) in [("alone", &alone), ("with it", &with)] {
        println!(
            "  windows {name:8}      {}",
            run.windows
                .iter()
                .map(|w| grouped(*w as f64))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for (name, run) in [("alone", &alone), ("with compaction", &with)] {
        println!(
            "  commit latency {name:16} p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.1} ms",
            micros(percentile(&run.latencies, 0.50)),
            micros(percentile(&run.latencies, 0.99)),
            micros(percentile(&run.latencies, 0.999)),
            micros(run.latencies.last().copied().unwrap_or(0)) / 1000.0
        );
    }
    describe(&compacted);
    println!(
        "  it started at {:.1} s and returned at {:.1} s (with the checkpoint after it)",
        delay.as_secs_f64(),
        (delay + ran).as_secs_f64()
    );
    report.add("compact", "worst window / steady", ratio, "x");
    report.add(
        "compact",
        "worst window / median window before it",
        worst / before_median,
        "x",
    );
    report.add(
        "compact",
        "worst window alone / steady",
        alone_worst / steady,
        "x",
    );
    report.add("compact", "steady commits/s", steady, "commits/s");
    report.add(
        "compact",
        "max commit ms alone",
        micros(alone.latencies.last().copied().unwrap_or(0)) / 1000.0,
        "ms",
    );
    report.add(
        "compact",
        "max commit ms with compaction",
        micros(with.latencies.last().copied().unwrap_or(0)) / 1000.0,
        "ms",
    );
    report.add(
        "compact",
        "longest lock hold ms",
        compacted.longest_lock_hold.as_secs_f64() * 1000.0,
        "ms",
    );
    Ok(())
}
