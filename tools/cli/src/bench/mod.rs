//! `hivelog bench`: the workloads of WORKLOADS.md on a scratch store, with this machine's
//! ceiling for durable appends measured in the same run.

mod backup;
mod compact;
mod machine;
mod memory;
mod reg;
mod secured;
mod watch;
mod workloads;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use hivelog::SyncPolicy;
pub(crate) use hivelog_workload::machine::grouped;
use hivelog_workload::{DEFAULT_KEYS, DEFAULT_SEED, Dataset};
use serde_json::json;

use crate::store_dir::{Failure, fail};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// w1, w2, w3, w3s (W3 with 3 layers and 4 ACEs a key, beside plain W3), w4, w5, backup
    /// (backup and restore of a subtree holding the whole data set, beside a copy of the
    /// journal), reg (.reg export and import of a subtree holding the data set) or all
    /// (W2–W5 load the data set first, as W1 does; backup and reg load their own stores)
    #[arg(long, default_value = "all")]
    workload: String,
    /// Seconds each W2 run lasts
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Threads for W2 and W3 [default: W2 runs with 1 and 4 writers, W3 with 1 and 2 readers]
    #[arg(long)]
    threads: Option<usize>,
    /// Sync policy of W2's commits: always, interval or never
    #[arg(long, default_value = "always")]
    sync: String,
    /// Keys in the data set (10 values each)
    #[arg(long, default_value_t = DEFAULT_KEYS)]
    keys: usize,
    /// Seed of the data set
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Directory for the scratch store [default: beside the store directory]
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Keep the scratch store afterwards
    #[arg(long)]
    keep: bool,
    /// Also write the figures as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// One reported figure.
pub(crate) struct Figure {
    pub workload: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
}

pub(crate) struct Report {
    figures: Vec<Figure>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        workload: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.figures.push(Figure {
            workload,
            metric: metric.into(),
            value,
            unit,
        });
    }

    pub(crate) fn get(&self, workload: &str, metric: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.workload == workload && f.metric == metric)
            .map(|f| f.value)
    }
}

fn parse_sync(text: &str) -> Result<SyncPolicy, Failure> {
    match text {
        "always" => Ok(SyncPolicy::Always),
        "interval" => Ok(SyncPolicy::Interval { ms: 10 }),
        "never" => Ok(SyncPolicy::Never),
        other => Err(fail(format!(
            "unknown sync policy {other:?} (always, interval or never)"
        ))),
    }
}

/// A scratch directory that is removed when dropped (unless kept).
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn scratch_dir(store: &Path, args: &BenchArgs) -> Result<Scratch, Failure> {
    let parent = match &args.scratch {
        Some(dir) => dir.clone(),
        None => store
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let dir = parent.join(format!("hivelog-bench-{}", std::process::id()));
    if dir.exists() {
        return Err(fail(format!("scratch directory {} exists", dir.display())));
    }
    std::fs::create_dir_all(&dir)?;
    Ok(Scratch {
        dir,
        keep: args.keep,
    })
}

pub(crate) fn run(store: &Path, args: &BenchArgs) -> Result<(), Failure> {
    let selected = args.workload.to_ascii_lowercase();
    let known = [
        "all", "w1", "w2", "w3", "w3s", "w4", "w5", "watch", "backup", "reg", "memory", "compact",
    ];
    if !known.contains(&selected.as_str()) {
        return Err(fail(format!(
            "unknown workload {:?} (w1, w2, w3, w3s, w4, w5, watch, backup, reg, memory, compact or all)",
            args.workload
        )));
    }
    if args.keys == 0 || args.threads == Some(0) || args.seconds == 0 {
        return Err(fail("--keys, --threads and --seconds must be at least 1"));
    }
    let sync = parse_sync(&args.sync)?;
    let scratch = scratch_dir(store, args)?;
    let wants = |w: &str| selected == "all" || selected == w;

    println!("hivelog bench {}", env!("CARGO_PKG_VERSION"));
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", machine::describe(&scratch.dir));
    let started = Instant::now();
    let data = Dataset::generate(args.keys, args.seed);
    println!(
        "data set: {} keys x 10 = {} values, {:.1} MB of paths, names and data, seed {:#x} ({:.1} s to generate)",
        data.keys(),
        data.values(),
        data.payload_bytes() as f64 / 1e6,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    println!();

    let mut report = Report {
        figures: Vec::new(),
    };
    if !["backup", "reg", "memory", "compact"].contains(&selected.as_str()) {
        w1_to_w5(&scratch.dir, &data, args, sync, &wants, &mut report)?;
    }
    if wants("backup") {
        backup::backup_restore(&scratch.dir.join("backup"), &data, &mut report)?;
    }
    if wants("reg") {
        let dir = scratch.dir.join("reg");
        std::fs::create_dir_all(&dir)?;
        reg::export_import(&dir, &data, &mut report)?;
    }
    if wants("memory") {
        let dir = scratch.dir.join("memory");
        std::fs::create_dir_all(&dir)?;
        memory::in_memory(&dir, &data, &mut report)?;
    }
    if wants("compact") {
        compact::compaction(
            &scratch.dir.join("compact"),
            &data,
            args.seconds,
            &mut report,
        )?;
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    drop(scratch);
    Ok(())
}

/// W1 and W5 always (the others read the store W1 loads), then whichever of W2–W4 and W3s
/// `wants`.
fn w1_to_w5(
    scratch: &Path,
    data: &Dataset,
    args: &BenchArgs,
    sync: SyncPolicy,
    wants: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> Result<(), Failure> {
    let store_dir = scratch.join("store");
    workloads::w1_bulk_load(&store_dir, data, report)?;
    let store = workloads::w5_reopen(&store_dir, data, report)?;
    if wants("w3") || wants("w3s") {
        let threads: Vec<usize> = args.threads.map_or(vec![1, 2], |t| vec![t]);
        for t in threads {
            workloads::w3_point_reads(&store, data, t, report)?;
        }
    }
    if wants("w4") {
        workloads::w4_subtree_scan(&store, data, report)?;
    }
    if wants("w3s") {
        secured::w3_secured(&scratch.join("secured"), data, &store, report)?;
    }
    drop(store);
    if wants("w2") {
        workloads::ceiling(scratch, report)?;
        let threads: Vec<usize> = args.threads.map_or(vec![1, 4], |t| vec![t]);
        for t in threads {
            workloads::w2_durable_commits(&store_dir, data, t, args.seconds, sync, report)?;
        }
        summarize_w2(report);
    }
    if wants("watch") {
        watch::w2_watched(&store_dir, data, args.seconds, sync, report)?;
    }
    Ok(())
}

fn summarize_w2(report: &Report) {
    let ceiling = report.get("ceiling", "syncs/s");
    let one = report.get("W2", "commits/s, 1 thread");
    let four = report.get("W2", "commits/s, 4 threads");
    if let (Some(ceiling), Some(one)) = (ceiling, one) {
        println!(
            "  W2 on 1 thread is {:.0}% of this machine's fdatasync ceiling",
            100.0 * one / ceiling
        );
    }
    if let (Some(one), Some(four)) = (one, four) {
        println!(
            "  W2 on 4 threads is {:.2}x the 1-thread rate (group commit)",
            four / one
        );
    }
}

fn write_json(path: &Path, report: &Report) -> Result<(), Failure> {
    let figures: Vec<serde_json::Value> = report
        .figures
        .iter()
        .map(|f| {
            json!({
                "workload": f.workload,
                "engine": "hivelog",
                "metric": f.metric,
                "value": f.value,
                "unit": f.unit,
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&figures).map_err(|e| fail(e.to_string()))?;
    std::fs::write(path, text)?;
    Ok(())
}
