//! `hivelog-bench`: the workloads of WORKLOADS.md against hivelog and embedded peers (redb,
//! LMDB, SQLite, fjall), one after another in one process, each in its own scratch
//! directory; one table per workload with hivelog's standing against the best peer.
//!
//! Figures on this machine vary by 30–80% between runs: compare engines inside one run.

mod engines;
mod error;
mod report;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use hivelog_workload::machine::grouped;
use hivelog_workload::{DEFAULT_SEED, Dataset};

use crate::engines::Kind;
use crate::error::{Error, Result};
use crate::report::{Metric, Report, SUBJECT};
use crate::workloads::{Inputs, Sizes};

#[derive(Parser)]
#[command(
    name = "hivelog-bench",
    version,
    about = "W1-W6 of WORKLOADS.md against hivelog, redb, LMDB, SQLite and fjall"
)]
struct Args {
    /// A short run to check the setup (100,000 values, W2 for 1 s, 100,000 gets); under a
    /// minute for all engines
    #[arg(long)]
    quick: bool,
    /// Engines to measure, in this order
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hivelog,redb,lmdb,sqlite,fjall"
    )]
    engines: Vec<Kind>,
    /// Keys in the data set, 10 values each [default: 100,000, or 10,000 with --quick]
    #[arg(long)]
    keys: Option<usize>,
    /// Seed of the data set
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Directory to make the scratch directory in [default: the current directory; not a
    /// tmpfs, where a sync costs nothing]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Also write the figures as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hivelog-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let base = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let sizes = Sizes {
        keys: args.keys.unwrap_or(base.keys),
        ..base
    };
    if sizes.keys == 0 || args.engines.is_empty() {
        return Err(Error::Usage(
            "--keys and --engines need at least one".into(),
        ));
    }
    let parent = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent)?;
    let scratch = tempfile::Builder::new()
        .prefix("hivelog-bench-")
        .tempdir_in(&parent)?;
    print_machine(scratch.path());

    let started = Instant::now();
    let data = Dataset::generate(sizes.keys, args.seed);
    let plans = workloads::w3_plans(&data, &sizes);
    let (subtree, subtree_values) = workloads::w4_subtree(&data);
    println!(
        "data set: {} keys x 10 = {} values, {:.1} MB of paths, names and data, seed {:#x} ({:.1} s to generate with the W3 plans)",
        grouped(data.keys() as f64),
        grouped(data.values() as f64),
        data.payload_bytes() as f64 / 1e6,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    println!("engines:");
    for kind in &args.engines {
        println!(
            "  {:8} {}: {}",
            kind.name(),
            kind.version(),
            kind.settings()
        );
    }
    println!();

    let inputs = Inputs {
        data: &data,
        sizes: &sizes,
        plans: &plans,
        subtree: &subtree,
        subtree_values,
    };
    let mut report = Report::default();
    for &kind in &args.engines {
        let dir = scratch.path().join(kind.name());
        workloads::measure(kind, &dir, &inputs, &mut report)?;
        // Only the figures are kept; the next engine gets the disk to itself.
        std::fs::remove_dir_all(&dir)?;
    }
    for (workload, title) in titles(&inputs) {
        print_table(&report, workload, &title);
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(())
}

/// The version, the command line, and the machine the run measures.
fn print_machine(scratch: &Path) {
    println!("hivelog-bench {}", env!("CARGO_PKG_VERSION"));
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let shown = scratch
        .canonicalize()
        .unwrap_or_else(|_| scratch.to_path_buf());
    let (fs, mount) = hivelog_workload::machine::file_system(&shown)
        .unwrap_or_else(|| ("unknown".into(), "?".into()));
    println!(
        "machine: {}; scratch directory {} on {fs} (mounted at {mount}); load average {} at the start",
        hivelog_workload::machine::cpu(),
        shown.display(),
        hivelog_workload::machine::load_average()
    );
    if fs == "tmpfs" {
        println!("warning: the scratch directory is on tmpfs, where a sync costs nothing");
    }
}

fn titles(inputs: &Inputs<'_>) -> [(&'static str, String); 6] {
    let sizes = inputs.sizes;
    [
        (
            "W1",
            format!(
                "W1 bulk load: {} values, 1,000 per transaction, one sync at the end",
                grouped(inputs.data.values() as f64)
            ),
        ),
        (
            "W2",
            format!(
                "W2 durable commits: one value overwritten per transaction, durable when it returns, {} s per thread count",
                sizes.w2_seconds
            ),
        ),
        (
            "W3",
            format!(
                "W3 point reads: {} random gets after {} warm-up gets, bytes checked; latencies from every 100th get",
                grouped(sizes.w3_gets as f64),
                grouped(sizes.w3_warmup as f64)
            ),
        ),
        (
            "W4",
            format!(
                "W4 subtree scan: {} ({} values) x 100 passes, every byte touched",
                inputs.subtree.path,
                grouped(inputs.subtree_values as f64)
            ),
        ),
        ("W5", "W5 reopen after W1: open and serve one get".into()),
        (
            "W6",
            "W6 disk after W1: blocks allocated in the store's directory, as du counts them".into(),
        ),
    ]
}

/// One workload's figures: a row per engine, a column per (threads, metric), and a last
/// row with hivelog's standing against the best peer in each column.
fn print_table(report: &Report, workload: &str, title: &str) {
    let mut columns: Vec<(usize, Metric)> = Vec::new();
    let mut engines: Vec<&str> = Vec::new();
    for f in report.figures().iter().filter(|f| f.workload == workload) {
        if !columns.contains(&(f.threads, f.metric)) {
            columns.push((f.threads, f.metric));
        }
        if !engines.contains(&f.engine) {
            engines.push(f.engine);
        }
    }
    if columns.is_empty() {
        return;
    }
    let threaded = workload == "W2" || workload == "W3";
    let heading = columns.iter().map(|&(threads, metric)| {
        if threaded {
            format!("{} {threads} thr", metric.heading())
        } else {
            metric.heading().to_string()
        }
    });
    let mut rows = vec![row("engine", heading)];
    for engine in &engines {
        rows.push(row(
            engine,
            columns.iter().map(|&(threads, metric)| {
                report
                    .value(workload, engine, threads, metric)
                    .map_or_else(|| "-".into(), |value| cell(metric, value))
            }),
        ));
    }
    rows.push(row(
        &format!("{SUBJECT} vs best"),
        columns.iter().map(|&(threads, metric)| {
            report.standing(workload, threads, metric).map_or_else(
                || "-".into(),
                |s| format!("{:.2}x {}", s.ratio, s.best_peer),
            )
        }),
    ));
    let lower = columns.iter().filter(|(_, m)| m.lower_is_better()).count();
    let direction = if lower == 0 {
        "ratio = hivelog / best peer"
    } else if lower == columns.len() {
        "lower is better; ratio = best peer / hivelog"
    } else {
        "ratio = hivelog / best peer for rates, best peer / hivelog for latencies"
    };
    println!("{title}");
    println!("  ({direction}: above 1 means hivelog is ahead)");
    print_aligned(&rows);
    println!();
}

fn row(label: &str, cells: impl Iterator<Item = String>) -> Vec<String> {
    std::iter::once(label.to_string()).chain(cells).collect()
}

/// The first column left-aligned, the others right-aligned, each as wide as its widest cell.
fn print_aligned(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if c == 0 {
                line.push_str(&format!("  {cell:<width$}"));
            } else {
                line.push_str(&format!("  {cell:>width$}"));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn cell(metric: Metric, value: f64) -> String {
    match metric {
        Metric::ValuesPerS | Metric::CommitsPerS | Metric::GetsPerS => grouped(value),
        Metric::OpenMs => format!("{value:.1}"),
        Metric::DiskBytes => format!("{:.1}", value / f64::from(1u32 << 20)),
        Metric::P50Us | Metric::P99Us if value < 10.0 => format!("{value:.2}"),
        Metric::P50Us | Metric::P99Us if value < 1000.0 => format!("{value:.1}"),
        Metric::P50Us | Metric::P99Us => grouped(value),
    }
}
