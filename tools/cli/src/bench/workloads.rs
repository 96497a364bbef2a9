//! W1–W5 of WORKLOADS.md against hivelog, and the fdatasync ceiling W2 is measured against.
//!
//! Only the store's work is timed: value data is generated before the clock starts, and the
//! read workloads walk a plan laid out in access order, so the harness itself adds no cache
//! misses to the figures.

use std::hash::BuildHasher;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hivelog::{Options, Store, SyncPolicy, Value, ValueType};
use hivelog_workload::{Dataset, SplitMix64, VALUES_PER_KEY, ValueKind, ValueSpec, percentile};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Report, grouped, machine};
use crate::store_dir::{Failure, fail};

const VALUES_PER_TXN: usize = 1000;
pub(crate) const W3_GETS: usize = 1_000_000;
pub(crate) const W3_WARMUP_GETS: usize = 200_000;
const W3_SAMPLE_EVERY: usize = 100;
const W4_PASSES: usize = 100;
const CEILING_SECONDS: u64 = 3;

fn progress(len: u64, label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}

pub(crate) fn to_value(spec: &ValueSpec) -> Value {
    let ty = match spec.kind {
        ValueKind::Dword => ValueType::DWORD,
        ValueKind::Qword => ValueType::QWORD,
        ValueKind::Text(_) => ValueType::SZ,
    };
    Value::new(ty, spec.data.clone())
}

pub(crate) fn hash(data: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(data)
}

pub(crate) fn thread_count(threads: usize) -> String {
    if threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{threads} threads")
    }
}

pub(crate) fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

/// Loads every value of `data` into `store`, 1,000 per transaction, key `key` at
/// `path_of(key)`; returns the time spent in the store (the values are generated outside it).
pub(crate) fn load(
    store: &Store,
    data: &Dataset,
    path_of: impl Fn(usize) -> String,
    label: &'static str,
) -> Result<Duration, Failure> {
    load_round(store, data, path_of, label, 0)
}

/// [`load`], with the first byte of every value's data flipped by `round` (round 0 writes
/// the data set as it is; each later round overwrites every value with other data).
pub(crate) fn load_round(
    store: &Store,
    data: &Dataset,
    path_of: impl Fn(usize) -> String,
    label: &'static str,
    round: u8,
) -> Result<Duration, Failure> {
    let bar = progress(data.values() as u64, label);
    let keys_per_txn = VALUES_PER_TXN / VALUES_PER_KEY;
    let mut timed = Duration::ZERO;
    let mut batch: Vec<(String, Vec<(&'static str, Value)>)> = Vec::with_capacity(keys_per_txn);
    for first in (0..data.keys()).step_by(keys_per_txn) {
        batch.clear();
        for key in first..(first + keys_per_txn).min(data.keys()) {
            let values = (0..VALUES_PER_KEY)
                .map(|slot| {
                    let spec = data.value(key, slot);
                    let mut value = to_value(&spec);
                    if let Some(first) = value.data.first_mut() {
                        *first ^= round;
                    }
                    (spec.registry_name(), value)
                })
                .collect();
            batch.push((path_of(key), values));
        }
        let start = Instant::now();
        let mut tx = store.transaction();
        for (path, values) in &batch {
            tx.create_key(path)?;
            for (name, value) in values {
                tx.set_value(path, name, value)?;
            }
        }
        tx.commit()?;
        timed += start.elapsed();
        bar.inc((batch.len() * VALUES_PER_KEY) as u64);
    }
    bar.finish_and_clear();
    Ok(timed)
}

/// W1: every value, 1,000 per transaction, no sync per transaction, one sync at the end.
pub(crate) fn w1_bulk_load(dir: &Path, data: &Dataset, report: &mut Report) -> Result<(), Failure> {
    let rss_before = machine::rss_bytes();
    let store = Store::open(
        dir,
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )?;
    let mut timed = load(&store, data, |key| data.registry_path(key), "W1 bulk load")?;
    let start = Instant::now();
    store.sync()?;
    let sync = start.elapsed();
    timed += sync;
    let rate = data.values() as f64 / timed.as_secs_f64();
    println!(
        "W1 bulk load            {:>12} values/s   ({} values in {:.2} s, 1,000 per transaction; the one sync at the end took {:.2} s)",
        grouped(rate),
        grouped(data.values() as f64),
        timed.as_secs_f64(),
        sync.as_secs_f64()
    );
    report.add("W1", "values/s", rate, "values/s");
    let rss = machine::rss_bytes().saturating_sub(rss_before) as f64 / data.values() as f64;
    let huge = machine::huge_page_bytes() as f64 / (1 << 20) as f64;
    let stats = store.stats();
    let index = stats.index_memory_bytes as f64 / data.values() as f64;
    println!(
        "memory after W1         {rss:>12.0} B/value    (RSS growth, mapped journal pages included; index alone {index:.0} B/value; {huge:.0} MiB on huge pages)"
    );
    report.add("memory", "RSS growth per value", rss, "bytes");
    report.add("memory", "index per value", index, "bytes");
    // The close writes a checkpoint (the index as of the last commit), which W5 starts from.
    let start = Instant::now();
    store.close()?;
    let close = start.elapsed();
    let checkpoint = machine::disk_usage(&dir.join(hivelog::CHECKPOINT_DIR)).unwrap_or(0);
    println!(
        "close after W1          {:>12.1} ms         (writes the checkpoint: {:.1} MiB)",
        close.as_secs_f64() * 1000.0,
        checkpoint as f64 / (1 << 20) as f64
    );
    report.add(
        "W5",
        "checkpoint at close ms",
        close.as_secs_f64() * 1000.0,
        "ms",
    );
    report.add("W6", "checkpoint bytes", checkpoint as f64, "bytes");
    let disk = machine::disk_usage(dir)?;
    println!(
        "W6 disk                 {:>12.1} MiB        ({} bytes on disk after W1)",
        disk as f64 / (1 << 20) as f64,
        grouped(disk as f64)
    );
    report.add("W6", "bytes on disk", disk as f64, "bytes");
    Ok(())
}

/// W5: open the store written by W1 and serve one get.
pub(crate) fn w5_reopen(dir: &Path, data: &Dataset, report: &mut Report) -> Result<Store, Failure> {
    let expected = data.value(0, 0);
    let start = Instant::now();
    let store = Store::open(dir, Options::default())?;
    let value = store.get_raw_value(&data.registry_path(0), expected.registry_name())?;
    let elapsed = start.elapsed();
    if value.data != expected.data {
        return Err(fail(
            "W5: the value read after reopen differs from the one written",
        ));
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    let from = match &store.checkpoint_report().loaded {
        Some((_, seq)) => format!(
            "load the checkpoint at {seq}, replay the {} transactions after it",
            store.seq() - seq
        ),
        None => "replay the whole journal".to_string(),
    };
    println!("W5 reopen               {ms:>12.1} ms         (open: {from}; one get)");
    report.add("W5", "reopen ms", ms, "ms");
    Ok(store)
}

/// The gets of W3, laid out in the order they are made.
pub(crate) struct GetPlan {
    paths: String,
    gets: Vec<PlannedGet>,
}

struct PlannedGet {
    path_start: u32,
    path_len: u16,
    name: &'static str,
    expected: u64,
}

impl GetPlan {
    pub(crate) fn new(data: &Dataset, count: usize, seed: u64) -> GetPlan {
        let mut rng = SplitMix64::new(seed);
        let mut paths = String::new();
        let mut gets = Vec::with_capacity(count);
        let expected: Vec<u64> = (0..data.keys())
            .flat_map(|key| (0..VALUES_PER_KEY).map(move |slot| (key, slot)))
            .map(|(key, slot)| hash(&data.value(key, slot).data))
            .collect();
        for _ in 0..count {
            let key = rng.below(data.keys() as u64) as usize;
            let slot = rng.below(VALUES_PER_KEY as u64) as usize;
            let path = data.registry_path(key);
            gets.push(PlannedGet {
                path_start: paths.len() as u32,
                path_len: path.len() as u16,
                name: data.registry_value_name(key, slot),
                expected: expected[key * VALUES_PER_KEY + slot],
            });
            paths.push_str(&path);
        }
        GetPlan { paths, gets }
    }

    fn path(&self, get: &PlannedGet) -> &str {
        let start = get.path_start as usize;
        &self.paths[start..start + usize::from(get.path_len)]
    }
}

/// Runs gets `[from, to)` of the plan; returns latency samples (every 100th get), in ns.
fn run_gets(
    store: &Store,
    plan: &GetPlan,
    from: usize,
    to: usize,
    sample: bool,
) -> Result<Vec<u64>, Failure> {
    let mut samples = Vec::with_capacity((to - from) / W3_SAMPLE_EVERY + 1);
    for (i, get) in plan.gets[from..to].iter().enumerate() {
        let timed = sample && i % W3_SAMPLE_EVERY == 0;
        let start = timed.then(Instant::now);
        let seen = store.with_value(plan.path(get), get.name, |_, data| hash(data))?;
        if seen != get.expected {
            return Err(fail(format!(
                "W3: wrong bytes for {} {:?}",
                plan.path(get),
                get.name
            )));
        }
        if let Some(start) = start {
            samples.push(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(samples)
}

/// W3: 1,000,000 gets of random existing values after 200,000 warm-up gets, `threads`
/// threads sharing the total; every value's bytes are checked.
pub(crate) fn w3_point_reads(
    store: &Store,
    data: &Dataset,
    threads: usize,
    report: &mut Report,
) -> Result<(), Failure> {
    let plan = GetPlan::new(data, W3_WARMUP_GETS + W3_GETS, 0x3333 + threads as u64);
    let (rate, p50, p99) = w3_figures(store, &plan, threads)?;
    println!(
        "W3 point reads, {threads} thr   {:>12} gets/s     p50 {p50:.2} us, p99 {p99:.2} us",
        grouped(rate),
    );
    let suffix = thread_count(threads);
    report.add("W3", format!("gets/s, {suffix}"), rate, "gets/s");
    report.add("W3", format!("p50 us, {suffix}"), p50, "us");
    report.add("W3", format!("p99 us, {suffix}"), p99, "us");
    Ok(())
}

/// Runs the warm-up gets of `plan`, then the timed ones on `threads` threads: gets/s, and the
/// p50 and p99 latency in microseconds.
pub(crate) fn w3_figures(
    store: &Store,
    plan: &GetPlan,
    threads: usize,
) -> Result<(f64, f64, f64), Failure> {
    run_gets(store, plan, 0, W3_WARMUP_GETS, false)?;
    let per_thread = W3_GETS / threads;
    let start = Instant::now();
    let results: Vec<Result<Vec<u64>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let from = W3_WARMUP_GETS + t * per_thread;
                // Named, so a profile can pick the readers out.
                std::thread::Builder::new()
                    .name(format!("w3-reader-{t}"))
                    .spawn_scoped(scope, move || {
                        run_gets(store, plan, from, from + per_thread, true)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(fail("a reader thread panicked"))),
                Err(error) => Err(Failure::from(error)),
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut samples = Vec::new();
    for result in results {
        samples.extend(result?);
    }
    samples.sort_unstable();
    let rate = (per_thread * threads) as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    Ok((rate, micros(p50), micros(p99)))
}

/// W4: every value under the vendor subtree holding about 1% of the values, every byte
/// touched, 100 times.
pub(crate) fn w4_subtree_scan(
    store: &Store,
    data: &Dataset,
    report: &mut Report,
) -> Result<(), Failure> {
    let (vendor, expected) = data.one_percent_vendor();
    let path = format!(
        "Machine\\{}",
        vendor.strip_prefix("machine\\").unwrap_or(&vendor)
    );
    let snapshot = store.snapshot();
    let start = Instant::now();
    let mut values = 0usize;
    let mut checksum = 0u64;
    for _ in 0..W4_PASSES {
        let mut stack = vec![snapshot.open_key(&path)?];
        while let Some(key) = stack.pop() {
            for (name, value) in key.enum_values()? {
                values += 1;
                checksum = checksum.wrapping_add(name.len() as u64);
                checksum = value
                    .data
                    .iter()
                    .fold(checksum, |sum, &b| sum.wrapping_add(u64::from(b)));
            }
            for sub in key.enum_keys()? {
                stack.push(key.open_subkey(&sub)?);
            }
        }
    }
    let elapsed = start.elapsed();
    if values != expected * W4_PASSES {
        return Err(fail(format!(
            "W4: scanned {values} values, expected {}",
            expected * W4_PASSES
        )));
    }
    let rate = values as f64 / elapsed.as_secs_f64();
    println!(
        "W4 subtree scan         {:>12} values/s   ({path}: {} values x {W4_PASSES} passes, checksum {checksum:x})",
        grouped(rate),
        grouped(expected as f64)
    );
    report.add("W4", "values/s", rate, "values/s");
    Ok(())
}

/// This machine's ceiling for durable appends: write + fdatasync of one small record on a
/// preallocated file, repeated for 3 s.
pub(crate) fn ceiling(dir: &Path, report: &mut Report) -> Result<(), Failure> {
    const FILE_BYTES: i64 = 64 << 20;
    const RECORD_BYTES: usize = 64;
    let path = dir.join("ceiling.dat");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, FILE_BYTES) } != 0 {
        file.set_len(FILE_BYTES as u64)?;
        let zeros = vec![0u8; 1 << 20];
        for chunk in 0..(FILE_BYTES as u64 >> 20) {
            file.write_all_at(&zeros, chunk << 20)?;
        }
    }
    file.sync_all()?;
    let record = [0x5au8; RECORD_BYTES];
    let start = Instant::now();
    let mut syncs = 0u64;
    while start.elapsed() < Duration::from_secs(CEILING_SECONDS) {
        file.write_all_at(&record, syncs * RECORD_BYTES as u64)?;
        file.sync_data()?;
        syncs += 1;
    }
    let rate = syncs as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    println!(
        "fdatasync ceiling       {:>12} syncs/s    (64-byte write + fdatasync on a preallocated file, {CEILING_SECONDS} s)",
        grouped(rate)
    );
    report.add("ceiling", "syncs/s", rate, "syncs/s");
    Ok(())
}

/// W2: one value overwritten per transaction, each durable when it returns (by `sync`), for
/// `seconds`, on `threads` threads.
/// W2's writers: `threads` of them for `seconds`, each committing one changed value per
/// transaction, calling `committed` with each sequence number as its commit returns.
/// Returns every commit's latency (ns) and the time the run took.
pub(crate) fn w2_writers(
    store: &Store,
    data: &Dataset,
    threads: usize,
    seconds: u64,
    label: &'static str,
    committed: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<u64>, Duration), Failure> {
    let deadline = Duration::from_secs(seconds);
    let bar = progress(seconds, label);
    let start = Instant::now();
    let results: Vec<Result<Vec<u64>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = SplitMix64::new(0x2222 + t as u64);
                    let mut latencies = Vec::new();
                    while start.elapsed() < deadline {
                        let key = rng.below(data.keys() as u64) as usize;
                        let slot = rng.below(VALUES_PER_KEY as u64) as usize;
                        let spec = data.value(key, slot);
                        let mut value = to_value(&spec);
                        if let Some(first) = value.data.first_mut() {
                            *first ^= 0xff;
                        }
                        let path = data.registry_path(key);
                        let begun = Instant::now();
                        let mut tx = store.transaction();
                        tx.set_value(&path, spec.registry_name(), &value)?;
                        let seq = tx.commit()?;
                        latencies.push(begun.elapsed().as_nanos() as u64);
                        committed(seq);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        while start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            bar.set_position(start.elapsed().as_secs().min(seconds));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail("a writer thread panicked")))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    Ok((latencies, elapsed))
}

pub(crate) fn w2_durable_commits(
    dir: &Path,
    data: &Dataset,
    threads: usize,
    seconds: u64,
    sync: SyncPolicy,
    report: &mut Report,
) -> Result<(), Failure> {
    let store = Store::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    )?;
    let label = if threads == 1 {
        "W2 durable, 1 thread"
    } else {
        "W2 durable, threads"
    };
    let (mut latencies, elapsed) = w2_writers(&store, data, threads, seconds, label, &|_| {})?;
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let suffix = thread_count(threads);
    println!(
        "W2 durable, {suffix:9} {:>12} commits/s  p50 {:.0} us, p99 {:.0} us (sync {sync:?})",
        grouped(rate),
        micros(p50),
        micros(p99)
    );
    report.add("W2", format!("commits/s, {suffix}"), rate, "commits/s");
    report.add("W2", format!("p50 us, {suffix}"), micros(p50), "us");
    report.add("W2", format!("p99 us, {suffix}"), micros(p99), "us");
    store.close()?;
    Ok(())
}
