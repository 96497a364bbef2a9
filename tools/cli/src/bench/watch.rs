//! W2 with watchers: the durable-commit workload on 4 threads with 0, 1 and 100 watches of
//! the `Machine` subtree attached (each sees every value W2 sets there), and the latency
//! from a commit's return to each watch's receipt of its event. The target: 100 watchers
//! cost at most 10% of the commit rate.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hivelog::{Options, Store, SyncPolicy, Watch, WatchEventKind, WatchFilter};
use hivelog_workload::{Dataset, percentile};

use super::workloads::{micros, w2_writers};
use super::{Report, grouped};
use crate::store_dir::Failure;

const THREADS: usize = 4;
const WATCHERS: [usize; 3] = [0, 1, 100];
const ROUNDS: usize = 3;
/// The bound on what 100 watchers may cost.
const SLOWDOWN_MAX: f64 = 0.10;

pub(crate) fn w2_watched(
    dir: &Path,
    data: &Dataset,
    seconds: u64,
    sync: SyncPolicy,
    report: &mut Report,
) -> Result<(), Failure> {
    // Rounds alternate the watcher counts, so that a noisy neighbour slows each alike; the
    // figure for each count is the median round's.
    let mut runs: Vec<Vec<Run>> = WATCHERS.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (i, &watchers) in WATCHERS.iter().enumerate() {
            runs[i].push(one_run(dir, data, seconds, sync, watchers)?);
        }
    }
    let mut rates = Vec::new();
    for (i, &watchers) in WATCHERS.iter().enumerate() {
        let mut of_count = std::mem::take(&mut runs[i]);
        of_count.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let run = &of_count[of_count.len() / 2];
        rates.push(run.rate);
        let label = format!("{watchers} watchers");
        let mut line = format!(
            "W2 watched, {label:12} {:>10} commits/s (4 threads, sync {sync:?}, median of {ROUNDS} alternated rounds)",
            grouped(run.rate)
        );
        if watchers > 0 {
            let (p50, p99) = (percentile(&run.delays, 0.50), percentile(&run.delays, 0.99));
            line.push_str(&format!(
                "; events {} delivered, {} overflows, commit to delivery (1 in {SAMPLE_EVERY} timed) p50 {:.0} us, p99 {:.0} us",
                grouped(run.delivered as f64),
                run.overflows,
                micros(p50),
                micros(p99)
            ));
            report.add(
                "W2 watched",
                format!("event p50 us, {label}"),
                micros(p50),
                "us",
            );
            report.add(
                "W2 watched",
                format!("event p99 us, {label}"),
                micros(p99),
                "us",
            );
        }
        println!("{line}");
        report.add(
            "W2 watched",
            format!("commits/s, {label}"),
            run.rate,
            "commits/s",
        );
    }
    let slowdown = 1.0 - rates[2] / rates[0];
    println!(
        "  100 watchers cost {:.1}% of the commit rate (target at most {:.0}%: {})",
        100.0 * slowdown,
        100.0 * SLOWDOWN_MAX,
        if slowdown <= SLOWDOWN_MAX {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}

/// One run of W2 with `watchers` watches attached.
struct Run {
    rate: f64,
    /// Commit to delivery of the timed events, ns, sorted.
    delays: Vec<u64>,
    delivered: u64,
    overflows: u64,
}

fn one_run(
    dir: &Path,
    data: &Dataset,
    seconds: u64,
    sync: SyncPolicy,
    watchers: usize,
) -> Result<Run, Failure> {
    let store = Store::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    )?;
    let machine = store.open_key("HKLM")?;
    let watches = (0..watchers)
        .map(|_| machine.watch(true, WatchFilter::VALUES))
        .collect::<hivelog::Result<Vec<Watch>>>()?;
    let commits: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let (run, receipts) = std::thread::scope(|scope| {
        let consumer = scope.spawn(|| consume(&watches, &done));
        let record = |seq| {
            let now = Instant::now();
            commits
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((seq, now));
        };
        let run = w2_writers(&store, data, THREADS, seconds, "W2 with watchers", &record);
        // Let the pump deliver the last commits, then stop the consumer.
        std::thread::sleep(Duration::from_millis(200));
        done.store(true, Ordering::Release);
        let receipts = consumer.join().unwrap_or_default();
        (run, receipts)
    });
    let (latencies, elapsed) = run?;
    let commits = commits.into_inner().unwrap_or_else(|p| p.into_inner());
    let committed_at: HashMap<u64, Instant> = commits.into_iter().collect();
    let mut delays: Vec<u64> = receipts
        .events
        .iter()
        .filter_map(|(seq, at)| {
            let commit = committed_at.get(seq)?;
            Some(at.saturating_duration_since(*commit).as_nanos() as u64)
        })
        .collect();
    delays.sort_unstable();
    drop(watches);
    drop(machine);
    store.close()?;
    Ok(Run {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        delays,
        delivered: receipts.delivered,
        overflows: receipts.overflows,
    })
}

/// Events whose arrival is timed: one in this many (the timing is the bench's cost, not the
/// watches', and a record per event would dwarf the consumer's real work).
const SAMPLE_EVERY: u64 = 16;

/// What the consumer saw: every event counted, and the sequence number and arrival time of
/// one in SAMPLE_EVERY.
#[derive(Default)]
struct Receipts {
    events: Vec<(u64, Instant)>,
    delivered: u64,
    overflows: u64,
}

/// Drains every watch until `done`, as one consumer thread serving them all: each queue
/// emptied in turn, and a millisecond's pause when every one was empty.
fn consume(watches: &[Watch], done: &AtomicBool) -> Receipts {
    let mut receipts = Receipts::default();
    if watches.is_empty() {
        return receipts;
    }
    while !done.load(Ordering::Acquire) {
        let mut idle = true;
        for watch in watches {
            while let Ok(event) = watch.try_recv() {
                idle = false;
                match event.kind {
                    WatchEventKind::Overflow { .. } => receipts.overflows += 1,
                    _ => {
                        receipts.delivered += 1;
                        if receipts.delivered.is_multiple_of(SAMPLE_EVERY) {
                            receipts.events.push((event.seq, Instant::now()));
                        }
                    }
                }
            }
        }
        if idle {
            // A consumer of a hundred queues takes what has come every millisecond, rather
            // than being woken for each event (which, on two cores, takes the committers'
            // CPU).
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    receipts
}
