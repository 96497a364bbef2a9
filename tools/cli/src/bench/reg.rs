//! `.reg` export and import of a subtree holding the data set: MB/s of the file each way,
//! as regedit writes it (UTF-16LE), and a check that the imported store exports the same
//! bytes.

use std::path::Path;
use std::time::{Duration, Instant};

use hivelog::{Options, RegFormat, Store, SyncPolicy};
use hivelog_workload::Dataset;

use super::workloads::{hash, load};
use super::{Report, grouped};
use crate::store_dir::{Failure, fail};

/// The subtree the data set is loaded under, and exported.
const SOURCE: &str = r"HKLM\RegBench";
/// Runs of each direction; the median is the figure (this machine's figures are noisy).
const RUNS: usize = 3;
/// The issue's target, each way.
const TARGET_MB_PER_S: f64 = 100.0;
const MB: f64 = 1e6;

pub(crate) fn export_import(
    dir: &Path,
    data: &Dataset,
    report: &mut Report,
) -> Result<(), Failure> {
    let store = load_store(&dir.join("store"), data)?;
    let file = dir.join("export.reg");
    let mut exports = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        exports.push(export_once(&store, &file)?);
    }
    store.close()?;
    let bytes = std::fs::metadata(&file)?.len();
    let original = hash(&std::fs::read(&file)?);
    let mut imports = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let into = dir.join(format!("import-{run}"));
        let (time, imported) = import_once(&into, &file)?;
        imports.push(time);
        if run + 1 == RUNS {
            round_trip(&imported, &dir.join("again.reg"), original)?;
        }
        imported.close()?;
        std::fs::remove_dir_all(&into)?;
    }
    let export = mb_per_s(bytes, median(exports));
    let import = mb_per_s(bytes, median(imports));
    println!(
        "reg export              {export:.0} MB/s ({} MB UTF-16LE file, median of {RUNS}; target {TARGET_MB_PER_S:.0}: {})",
        grouped(bytes as f64 / MB),
        verdict(export)
    );
    println!(
        "reg import              {import:.0} MB/s (the file read, parsed and committed as one durable transaction into an empty store; {})",
        verdict(import)
    );
    println!("reg round trip          export, import into an empty store, export: identical bytes");
    report.add("reg", "export MB/s", export, "MB/s");
    report.add("reg", "import MB/s", import, "MB/s");
    report.add("reg", "file MB", bytes as f64 / MB, "MB");
    Ok(())
}

fn load_store(dir: &Path, data: &Dataset) -> Result<Store, Failure> {
    let started = Instant::now();
    let options = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let store = Store::open(dir, options)?;
    let source = |key| format!("{SOURCE}\\{}", data.registry_path(key));
    load(&store, data, source, "reg store load")?;
    println!(
        "reg store               {} values under {SOURCE}, loaded in {:.1} s (not a figure)",
        grouped(data.values() as f64),
        started.elapsed().as_secs_f64()
    );
    Ok(store)
}

/// One export of the subtree to `file` (UTF-16LE, as regedit writes), synced.
fn export_once(store: &Store, file: &Path) -> Result<Duration, Failure> {
    let started = Instant::now();
    let out = std::fs::File::create(file)?;
    store.export_reg(SOURCE, RegFormat::UNICODE, &out)?;
    out.sync_all()?;
    Ok(started.elapsed())
}

/// One import of `file` into a new store at `dir`, as `hivelog import` does it: the file
/// read whole, then one transaction, durable when it returns.
fn import_once(dir: &Path, file: &Path) -> Result<(Duration, Store), Failure> {
    let store = Store::open(dir, Options::default())?;
    let started = Instant::now();
    let input = std::fs::read(file)?;
    store.import_reg(&input, &file.display().to_string())?;
    Ok((started.elapsed(), store))
}

fn round_trip(store: &Store, file: &Path, original: u64) -> Result<(), Failure> {
    let out = std::fs::File::create(file)?;
    store.export_reg(SOURCE, RegFormat::UNICODE, &out)?;
    if hash(&std::fs::read(file)?) != original {
        return Err(fail(format!(
            "the export of the imported store ({}) differs from the file imported",
            file.display()
        )));
    }
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / MB / time.as_secs_f64()
}

fn verdict(mb_per_s: f64) -> &'static str {
    if mb_per_s >= TARGET_MB_PER_S {
        "met"
    } else {
        "missed"
    }
}
