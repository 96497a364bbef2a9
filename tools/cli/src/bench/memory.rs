//! The in-memory store beside the journaled one: W1 (the bulk load) and W3 (point reads, one
//! thread) on each, alternated, and a flush of the in-memory store's 1,000,000 values to a
//! file image (temporary file, fsync, rename). Targets: in-memory W1 at least 1.5x the
//! journaled store's; a flush at least 500 MB/s.

use std::path::Path;
use std::time::Instant;

use hivelog::{FileImage, Options, Store, SyncPolicy};
use hivelog_workload::Dataset;

use super::workloads::{GetPlan, W3_GETS, W3_WARMUP_GETS, load, w3_figures};
use super::{Report, grouped};
use crate::store_dir::Failure;

const ROUNDS: usize = 3;
const W1_RATIO_TARGET: f64 = 1.5;
const FLUSH_TARGET_MB_PER_S: f64 = 500.0;
const MB: f64 = 1e6;

pub(crate) fn in_memory(dir: &Path, data: &Dataset, report: &mut Report) -> Result<(), Failure> {
    let plan = GetPlan::new(data, W3_WARMUP_GETS + W3_GETS, 0x9999);
    let (mut disk_w1, mut memory_w1, mut disk_w3, mut memory_w3) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut flushes = Vec::new();
    for round in 0..ROUNDS {
        let journaled = dir.join(format!("journaled-{round}"));
        let store = Store::open(
            &journaled,
            Options {
                sync: SyncPolicy::Never,
                ..Options::default()
            },
        )?;
        let timed = load(&store, data, |key| data.registry_path(key), "W1 journaled")?;
        let started = Instant::now();
        store.sync()?;
        disk_w1.push(data.values() as f64 / (timed + started.elapsed()).as_secs_f64());
        disk_w3.push(w3_figures(&store, &plan, 1)?.0);
        store.close()?;
        std::fs::remove_dir_all(&journaled)?;

        let image = dir.join("registry.img");
        let store = Store::in_memory_with(FileImage::new(&image), Options::default())?;
        let timed = load(&store, data, |key| data.registry_path(key), "W1 in memory")?;
        memory_w1.push(data.values() as f64 / timed.as_secs_f64());
        memory_w3.push(w3_figures(&store, &plan, 1)?.0);
        let started = Instant::now();
        let flushed = store.flush()?;
        flushes.push((flushed.bytes, started.elapsed()));
        drop(store);
        std::fs::remove_file(&image)?;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (disk_w1, memory_w1) = (median(disk_w1), median(memory_w1));
    let (disk_w3, memory_w3) = (median(disk_w3), median(memory_w3));
    let ratio = memory_w1 / disk_w1;
    println!(
        "W1 in memory            {:>12} values/s   ({:.2}x the journaled store's {} in the same rounds; target {W1_RATIO_TARGET}x: {})",
        grouped(memory_w1),
        ratio,
        grouped(disk_w1),
        if ratio >= W1_RATIO_TARGET {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "W3 in memory, 1 thr     {:>12} gets/s     (the journaled store's: {})",
        grouped(memory_w3),
        grouped(disk_w3)
    );
    flushes.sort_by_key(|(_, time)| *time);
    let (bytes, time) = flushes[flushes.len() / 2];
    let rate = bytes as f64 / MB / time.as_secs_f64();
    println!(
        "flush of 1 M values     {rate:>9.0} MB/s       ({:.1} MB image in {:.3} s to a file, synced, renamed; median of {ROUNDS}; target {FLUSH_TARGET_MB_PER_S:.0}: {})",
        bytes as f64 / MB,
        time.as_secs_f64(),
        if rate >= FLUSH_TARGET_MB_PER_S {
            "met"
        } else {
            "missed"
        }
    );
    report.add("memory", "W1 values/s", memory_w1, "values/s");
    report.add("memory", "W1 journaled values/s", disk_w1, "values/s");
    report.add("memory", "W3 gets/s", memory_w3, "gets/s");
    report.add("memory", "flush MB/s", rate, "MB/s");
    Ok(())
}
