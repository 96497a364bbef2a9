//! W1–W6 of WORKLOADS.md, run the same way against every engine.
//!
//! Only the engine's work is timed, as in `hivelog bench`: every entry (hivelog's path, name
//! and value, the peers' flat key and value) is built before the clock starts, and W3 walks a
//! plan laid out in access order, so the harness adds no cache misses of its own.

use std::hash::BuildHasher;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hivelog::{Value, ValueType};
use hivelog_workload::{Dataset, SplitMix64, VALUES_PER_KEY, ValueKind, percentile};

use crate::engines::{Engine, Entry, Kind, Lookup, Mode, Reader, Subtree, flat};
use crate::error::{Error, Result};
use crate::report::{Metric, Report};

const VALUES_PER_TXN: usize = 1000;
const W3_SAMPLE_EVERY: usize = 100;
const W4_PASSES: usize = 100;

/// A rate with the p50 and p99 latency of the operations sampled.
pub struct Latency {
    pub per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

fn value_type(kind: ValueKind) -> ValueType {
    match kind {
        ValueKind::Dword => ValueType::DWORD,
        ValueKind::Qword => ValueType::QWORD,
        ValueKind::Text(_) => ValueType::SZ,
    }
}

fn hash(data: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(data)
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

/// Value `slot` of key `key`, its first 4 bytes (every value has 4) XORed with `stamp`.
/// W1 writes stamp 0; W2 gives every commit its own stamp, so that no write repeats the bytes
/// already stored: SQLite, for one, leaves a page clean when a row is overwritten with equal
/// bytes, and a commit with nothing to write is not synced.
fn entry(data: &Dataset, key: usize, slot: usize, stamp: u32) -> Entry {
    let spec = data.value(key, slot);
    let name = spec.registry_name();
    let mut value = Value::new(value_type(spec.kind), spec.data);
    for (byte, mask) in value.data.iter_mut().zip(stamp.to_le_bytes()) {
        *byte ^= mask;
    }
    let path = data.registry_path(key);
    Entry {
        key: flat::key(&path, name),
        stored: flat::value(value.ty.0, &value.data),
        path,
        name,
        value,
    }
}

/// W1: every value, 1,000 per transaction, no sync per transaction, one sync at the end;
/// values/s.
pub fn w1_bulk_load(engine: &dyn Engine, data: &Dataset) -> Result<f64> {
    let keys_per_txn = VALUES_PER_TXN / VALUES_PER_KEY;
    let mut timed = Duration::ZERO;
    let mut batch = Vec::with_capacity(VALUES_PER_TXN);
    for first in (0..data.keys()).step_by(keys_per_txn) {
        batch.clear();
        for key in first..(first + keys_per_txn).min(data.keys()) {
            batch.extend((0..VALUES_PER_KEY).map(|slot| entry(data, key, slot, 0)));
        }
        let start = Instant::now();
        engine.load(&batch)?;
        timed += start.elapsed();
    }
    let start = Instant::now();
    engine.sync()?;
    timed += start.elapsed();
    Ok(data.values() as f64 / timed.as_secs_f64())
}

/// W5: open the store W1 wrote (for durable commits, as the later workloads use it) and
/// serve one get; the engine and the milliseconds that took.
pub fn w5_reopen(kind: Kind, dir: &Path, data: &Dataset) -> Result<(Box<dyn Engine>, f64)> {
    let expected = entry(data, 0, 0, 0);
    let at = Lookup {
        path: &expected.path,
        name: expected.name,
        key: &expected.key,
    };
    let mut seen = None;
    let start = Instant::now();
    let engine = kind.open(dir, Mode::Durable)?;
    let found = engine
        .reader()?
        .get(&at, &mut |ty, data| seen = Some((ty, data.to_vec())))?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if !found || seen != Some((expected.value.ty.0, expected.value.data)) {
        return Err(check(
            "W5",
            kind.name(),
            "the value read after reopen is not the one written",
        ));
    }
    Ok((engine, ms))
}

fn check(workload: &'static str, engine: &'static str, what: impl Into<String>) -> Error {
    Error::Check {
        workload,
        engine,
        what: what.into(),
    }
}

/// The gets of W3 (warm-up first), laid out in the order they are made, in both forms.
pub struct Plan {
    paths: String,
    keys: Vec<u8>,
    gets: Vec<PlannedGet>,
}

struct PlannedGet {
    path_start: u32,
    path_len: u16,
    key_start: u32,
    key_len: u16,
    name: &'static str,
    ty: u32,
    expected: u64,
}

impl Plan {
    /// `count` gets of uniformly random values; `expected` holds each value's type and data
    /// hash, key-major ([`expected_values`]).
    fn new(data: &Dataset, expected: &[(u32, u64)], count: usize, seed: u64) -> Plan {
        let mut rng = SplitMix64::new(seed);
        let mut plan = Plan {
            paths: String::new(),
            keys: Vec::new(),
            gets: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let key = rng.below(data.keys() as u64) as usize;
            let slot = rng.below(VALUES_PER_KEY as u64) as usize;
            let path = data.registry_path(key);
            let name = data.registry_value_name(key, slot);
            let flat_key = flat::key(&path, name);
            let (ty, expected) = expected[key * VALUES_PER_KEY + slot];
            plan.gets.push(PlannedGet {
                path_start: plan.paths.len() as u32,
                path_len: path.len() as u16,
                key_start: plan.keys.len() as u32,
                key_len: flat_key.len() as u16,
                name,
                ty,
                expected,
            });
            plan.paths.push_str(&path);
            plan.keys.extend_from_slice(&flat_key);
        }
        plan
    }

    fn lookup(&self, get: &PlannedGet) -> Lookup<'_> {
        let path = get.path_start as usize;
        let key = get.key_start as usize;
        Lookup {
            path: &self.paths[path..path + usize::from(get.path_len)],
            name: get.name,
            key: &self.keys[key..key + usize::from(get.key_len)],
        }
    }
}

/// W3's plans, one per reader thread count (each with its own seed, as in `hivelog bench`),
/// `sizes.w3_warmup + sizes.w3_gets` gets long.
pub fn w3_plans(data: &Dataset, sizes: &Sizes) -> Vec<(usize, Plan)> {
    let expected = expected_values(data);
    let count = sizes.w3_warmup + sizes.w3_gets;
    W3_THREADS
        .iter()
        .map(|&threads| {
            let seed = 0x3333 + threads as u64;
            (threads, Plan::new(data, &expected, count, seed))
        })
        .collect()
}

/// The type and data hash of every value, key-major, for the plans to check against.
fn expected_values(data: &Dataset) -> Vec<(u32, u64)> {
    (0..data.keys())
        .flat_map(|key| (0..VALUES_PER_KEY).map(move |slot| (key, slot)))
        .map(|(key, slot)| {
            let spec = data.value(key, slot);
            (value_type(spec.kind).0, hash(&spec.data))
        })
        .collect()
}

/// Runs the gets `range` of the plan, checking each value; latencies (ns) of every 100th get
/// if `sample`.
fn run_gets(
    engine: &dyn Engine,
    reader: &dyn Reader,
    plan: &Plan,
    range: Range<usize>,
    sample: bool,
) -> Result<Vec<u64>> {
    let mut samples = Vec::with_capacity(range.len() / W3_SAMPLE_EVERY + 1);
    for (i, get) in plan.gets[range].iter().enumerate() {
        let start = (sample && i % W3_SAMPLE_EVERY == 0).then(Instant::now);
        let at = plan.lookup(get);
        let mut seen = None;
        let found = reader.get(&at, &mut |ty, data| seen = Some((ty, hash(data))))?;
        if !found || seen != Some((get.ty, get.expected)) {
            return Err(check(
                "W3",
                engine.name(),
                format!("wrong or missing value {:?} of {}", at.name, at.path),
            ));
        }
        if let Some(start) = start {
            samples.push(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(samples)
}

/// W3: `gets` random gets after `warmup` warm-up gets, `threads` threads sharing both; each
/// thread has its own reader and warms it with its share. The clock runs from the first
/// timed get of any thread to the last of all.
pub fn w3_point_reads(
    engine: &dyn Engine,
    plan: &Plan,
    threads: usize,
    warmup: usize,
) -> Result<Latency> {
    let gets = plan.gets.len() - warmup;
    let (warm_each, gets_each) = (warmup / threads, gets / threads);
    let gate = Gate::default();
    let results: Vec<Result<(Instant, Instant, Vec<u64>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let gate = &gate;
                // Named, so that a profile can pick the readers out.
                std::thread::Builder::new()
                    .name(format!("w3-reader-{t}"))
                    .spawn_scoped(scope, move || {
                        let warmed = engine.reader().and_then(|reader| {
                            let from = t * warm_each;
                            run_gets(engine, &*reader, plan, from..from + warm_each, false)?;
                            Ok(reader)
                        });
                        gate.arrive_and_wait();
                        let reader = warmed?;
                        let from = warmup + t * gets_each;
                        let start = Instant::now();
                        let samples =
                            run_gets(engine, &*reader, plan, from..from + gets_each, true)?;
                        Ok((start, Instant::now(), samples))
                    })
            })
            .collect();
        gate.open_when(handles.iter().filter(|handle| handle.is_ok()).count());
        handles
            .into_iter()
            .map(|handle| joined(handle, "reader"))
            .collect()
    });
    let mut samples = Vec::new();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for result in results {
        let (start, end, thread_samples) = result?;
        first = Some(first.map_or(start, |first| first.min(start)));
        last = Some(last.map_or(end, |last| last.max(end)));
        samples.extend(thread_samples);
    }
    let elapsed = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    samples.sort_unstable();
    Ok(Latency {
        per_s: (gets_each * threads) as f64 / elapsed.as_secs_f64(),
        p50_us: micros(percentile(&samples, 0.50)),
        p99_us: micros(percentile(&samples, 0.99)),
    })
}

/// Holds the reader threads until all have warmed up, so that their timed gets start
/// together. Unlike a `Barrier` it is opened by the spawning thread for the threads that
/// did start, so a thread that failed to spawn leaves no one waiting forever.
#[derive(Default)]
struct Gate {
    /// Threads arrived, and whether the gate is open.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn arrive_and_wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        self.changed.notify_all();
        while !state.1 {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open_when(&self, arrivals: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.0 < arrivals {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.1 = true;
        self.changed.notify_all();
    }
}

fn joined<T>(
    handle: std::io::Result<std::thread::ScopedJoinHandle<'_, Result<T>>>,
    role: &'static str,
) -> Result<T> {
    handle?
        .join()
        .unwrap_or_else(|_| Err(Error::Panicked(role)))
}

/// The subtree W4 scans, in both forms, and how many values it holds.
pub fn w4_subtree(data: &Dataset) -> (Subtree, usize) {
    let (vendor, values) = data.one_percent_vendor();
    let path = format!(
        "Machine\\{}",
        vendor.strip_prefix("machine\\").unwrap_or(&vendor)
    );
    let prefix = flat::subtree_prefix(&path);
    (Subtree { path, prefix }, values)
}

/// W4: every value of `subtree` (`values` of them), every byte touched, 100 times; values/s.
pub fn w4_subtree_scan(engine: &dyn Engine, subtree: &Subtree, values: usize) -> Result<f64> {
    let reader = engine.reader()?;
    let mut seen = 0usize;
    let mut checksum = 0u64;
    let start = Instant::now();
    for _ in 0..W4_PASSES {
        reader.scan(subtree, &mut |name, data| {
            seen += 1;
            checksum = name
                .iter()
                .chain(data)
                .fold(checksum, |sum, &b| sum.wrapping_add(u64::from(b)));
        })?;
    }
    let elapsed = start.elapsed();
    // The checksum is printed nowhere; this keeps the byte loop from being optimised away.
    std::hint::black_box(checksum);
    if seen != values * W4_PASSES {
        return Err(check(
            "W4",
            engine.name(),
            format!("scanned {seen} values, expected {}", values * W4_PASSES),
        ));
    }
    Ok(seen as f64 / elapsed.as_secs_f64())
}

/// W2: `threads` writers for `seconds`, each overwriting one random value per transaction,
/// durable when it returns; commits/s and every commit's latency. `stamps` hands out the
/// commits' stamps (see [`entry`]), unique over all of an engine's W2 runs.
pub fn w2_durable_commits(
    engine: &dyn Engine,
    data: &Dataset,
    threads: usize,
    seconds: u64,
    stamps: &AtomicU32,
) -> Result<Latency> {
    let deadline = Duration::from_secs(seconds);
    let start = Instant::now();
    let results: Vec<Result<Vec<u64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                std::thread::Builder::new()
                    .name(format!("w2-writer-{t}"))
                    .spawn_scoped(scope, move || {
                        let mut rng = SplitMix64::new(0x2222 + t as u64);
                        let mut latencies = Vec::new();
                        while start.elapsed() < deadline {
                            let key = rng.below(data.keys() as u64) as usize;
                            let slot = rng.below(VALUES_PER_KEY as u64) as usize;
                            let stamp = stamps.fetch_add(1, Ordering::Relaxed);
                            let entry = entry(data, key, slot, stamp);
                            let begun = Instant::now();
                            engine.put(&entry)?;
                            latencies.push(begun.elapsed().as_nanos() as u64);
                        }
                        Ok(latencies)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| joined(handle, "writer"))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    latencies.sort_unstable();
    Ok(Latency {
        per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: micros(percentile(&latencies, 0.50)),
        p99_us: micros(percentile(&latencies, 0.99)),
    })
}

/// How big a run is.
pub struct Sizes {
    pub keys: usize,
    pub w2_seconds: u64,
    pub w3_gets: usize,
    pub w3_warmup: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        keys: hivelog_workload::DEFAULT_KEYS,
        w2_seconds: 5,
        w3_gets: 1_000_000,
        w3_warmup: 200_000,
    };
    /// A check of the setup that finishes in well under a minute for all five engines.
    pub const QUICK: Sizes = Sizes {
        keys: 10_000,
        w2_seconds: 1,
        w3_gets: 100_000,
        w3_warmup: 20_000,
    };
}

/// What every engine's run reads: the data set, the W3 plans and the W4 subtree.
pub struct Inputs<'a> {
    pub data: &'a Dataset,
    pub sizes: &'a Sizes,
    /// W3's reader threads and the plan each count walks.
    pub plans: &'a [(usize, Plan)],
    pub subtree: &'a Subtree,
    pub subtree_values: usize,
}

const W2_THREADS: [usize; 2] = [1, 4];
const W3_THREADS: [usize; 2] = [1, 2];

/// Every workload against one engine in `dir`: W1 on a new store, W6 and W5 on what it left,
/// then W3, W4 and W2 on the reopened store.
pub fn measure(kind: Kind, dir: &Path, inputs: &Inputs<'_>, report: &mut Report) -> Result<()> {
    let name = kind.name();
    let progress = |step: &str| eprintln!("{name}: {step}");
    progress("W1 bulk load");
    std::fs::create_dir_all(dir)?;
    let engine = kind.open(dir, Mode::Bulk)?;
    let rate = w1_bulk_load(&*engine, inputs.data)?;
    report.add("W1", name, 1, Metric::ValuesPerS, rate);
    engine.close()?;
    let disk = hivelog_workload::machine::disk_usage(dir)?;
    report.add("W6", name, 1, Metric::DiskBytes, disk as f64);
    progress("W5 reopen");
    let (engine, ms) = w5_reopen(kind, dir, inputs.data)?;
    report.add("W5", name, 1, Metric::OpenMs, ms);
    for (threads, plan) in inputs.plans {
        progress(&format!("W3 point reads, {threads} thread(s)"));
        let reads = w3_point_reads(&*engine, plan, *threads, inputs.sizes.w3_warmup)?;
        report.add_latency("W3", name, *threads, Metric::GetsPerS, &reads);
    }
    progress("W4 subtree scan");
    let rate = w4_subtree_scan(&*engine, inputs.subtree, inputs.subtree_values)?;
    report.add("W4", name, 1, Metric::ValuesPerS, rate);
    let stamps = AtomicU32::new(1);
    for threads in W2_THREADS {
        progress(&format!("W2 durable commits, {threads} thread(s)"));
        let seconds = inputs.sizes.w2_seconds;
        let commits = w2_durable_commits(&*engine, inputs.data, threads, seconds, &stamps)?;
        report.add_latency("W2", name, threads, Metric::CommitsPerS, &commits);
    }
    engine.close()
}
