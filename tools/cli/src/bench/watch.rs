//! W2 with watchers: the durable-commit workload on 4 threads with 0, 1 and 100 watches of
//! the `Machine` subtree attached (each sees every value W2 sets there), and the latency
//! from a commit's return to each watch's receipt of its event. The target: 100 watchers
//! cost at most 10% of the commit rate.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Select;
use hivelog::{Options, Store, SyncPolicy, Watch, WatchEventKind, WatchFilter};
use hivelog_workload::{Dataset, percentile};

use super::workloads::{micros, w2_writers};
use super::{Report, grouped};
use crate::store_dir::Failure;

const THREADS: usize = 4;
const WATCHERS: [usize; 3] = [0, 1, 100];
/// The bound on what 100 watchers may cost.
const SLOWDOWN_MAX: f64 = 0.10;

pub(crate) fn w2_watched(
    dir: &Path,
    data: &Dataset,
    seconds: u64,
    sync: SyncPolicy,
    report: &mut Report,
) -> Result<(), Failure> {
    let mut rates = Vec::new();
    for watchers in WATCHERS {
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
        let rate = latencies.len() as f64 / elapsed.as_secs_f64();
        rates.push(rate);
        let label = format!("{watchers} watchers");
        let mut line = format!(
            "W2 watched, {label:12} {:>10} commits/s (4 threads, sync {sync:?})",
            grouped(rate)
        );
        if watchers > 0 {
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
            let (p50, p99) = (percentile(&delays, 0.50), percentile(&delays, 0.99));
            line.push_str(&format!(
                "; events {} delivered, {} overflows, commit to delivery p50 {:.0} us, p99 {:.0} us",
                grouped(delays.len() as f64),
                receipts.overflows,
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
            rate,
            "commits/s",
        );
        drop(watches);
        drop(machine);
        store.close()?;
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

/// What the consumer saw: each event's sequence number and when it arrived.
#[derive(Default)]
struct Receipts {
    events: Vec<(u64, Instant)>,
    overflows: u64,
}

/// Drains every watch until `done`, as one consumer thread serving them all: each queue
/// emptied in turn, and a wait on all of them only when every one was empty.
fn consume(watches: &[Watch], done: &AtomicBool) -> Receipts {
    let mut receipts = Receipts::default();
    if watches.is_empty() {
        return receipts;
    }
    let mut select = Select::new();
    for watch in watches {
        select.recv(watch.receiver());
    }
    while !done.load(Ordering::Acquire) {
        let mut idle = true;
        for watch in watches {
            while let Ok(event) = watch.try_recv() {
                idle = false;
                let now = Instant::now();
                match event.kind {
                    WatchEventKind::Overflow { .. } => receipts.overflows += 1,
                    _ => receipts.events.push((event.seq, now)),
                }
            }
        }
        if idle {
            // Woken by the first event to arrive anywhere; it is taken by the next round.
            let _ = select.ready_timeout(Duration::from_millis(50));
        }
    }
    receipts
}
