//! W3 again, on a store where every key holds its values in three layers and carries four ACL
//! entries, read by an ordinary user: what the access check and layer resolution cost a point
//! read, beside plain W3 measured in the same run.
//!
//! Every value is in `base`; four of a key's ten (slots 0, 3, 6, 9) are also in a role layer,
//! and one (slot 0) in `policy`, all with the same bytes, so each get is checked against the
//! data set as in W3 while it resolves the highest layer. Each key's descriptor is protected
//! with four entries, the reader's (Users) last, so every check walks all four; the first
//! entry names one SID per vendor, so the store holds a hundred distinct descriptors.

use std::path::Path;
use std::time::Instant;

use hivelog::{Options, Sddl, Store, SyncPolicy, sddl};
use hivelog_workload::{Dataset, VALUES_PER_KEY};

use super::workloads::{GetPlan, W3_GETS, W3_WARMUP_GETS, to_value, w3_figures};
use super::{Report, grouped};
use crate::store_dir::Failure;

const ROLE_LAYER: &str = "role";
const ROLE_PRECEDENCE: u16 = 100;
const KEYS_PER_TXN: usize = 100;

/// The descriptor of every key of vendor `vendor`: four entries, the reader's last.
fn descriptor(vendor: usize) -> Result<Sddl, Failure> {
    Ok(sddl::parse(&format!(
        "O:SYD:P(A;CI;KA;;;S-1-5-21-1-2-3-{})(A;CI;KA;;;BA)(A;CI;KA;;;SY)(A;CI;KR;;;BU)",
        1000 + vendor
    ))?)
}

/// The vendor number in a data-set path (`...\vendorNNN\...`).
fn vendor_of(path: &str) -> usize {
    path.split('\\')
        .find_map(|name| name.strip_prefix("vendor"))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

fn load(dir: &Path, data: &Dataset) -> Result<(), Failure> {
    let options = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let store = Store::open(dir, options)?;
    store.create_layer(ROLE_LAYER, ROLE_PRECEDENCE)?;
    let descriptors: Vec<Sddl> = (0..100).map(descriptor).collect::<Result<_, Failure>>()?;
    for first in (0..data.keys()).step_by(KEYS_PER_TXN) {
        let mut tx = store.transaction();
        for key in first..(first + KEYS_PER_TXN).min(data.keys()) {
            let path = data.registry_path(key);
            tx.create_key(&path)?;
            // Set, not given at creation: a key may exist already, as the parent of a deeper
            // one created earlier.
            tx.set_security(&path, &descriptors[vendor_of(&path) % descriptors.len()])?;
            for slot in 0..VALUES_PER_KEY {
                let spec = data.value(key, slot);
                let (name, value) = (spec.registry_name(), to_value(&spec));
                tx.set_value(&path, name, &value)?;
                if slot % 3 == 0 {
                    tx.set_value_in(ROLE_LAYER, &path, name, &value)?;
                }
                if slot == 0 {
                    tx.set_value_in(hivelog::POLICY_LAYER, &path, name, &value)?;
                }
            }
        }
        tx.commit()?;
    }
    store.sync()?;
    Ok(store.close()?)
}

/// Rounds of plain and secured gets, alternated so that both see the same machine (this
/// machine's speed drifts by tens of percent between runs of a second).
const ROUNDS: usize = 3;

/// Loads the secured, layered store, then runs W3's gets on one thread as a user, in rounds
/// alternated with plain W3 on `plain` (the store W1 loaded); reports the medians.
pub(crate) fn w3_secured(
    dir: &Path,
    data: &Dataset,
    plain: &Store,
    report: &mut Report,
) -> Result<(), Failure> {
    let started = Instant::now();
    load(dir, data)?;
    let loaded = started.elapsed();
    let store = Store::open(dir, Options::default())?;
    let reader = store.session(hivelog::Caller::user("bench-reader"))?;
    let gets = W3_WARMUP_GETS + W3_GETS;
    let (mut plain_rates, mut secured) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS as u64 {
        let plan = GetPlan::new(data, gets, 0x3340 + round);
        plain_rates.push(w3_figures(plain, &plan, 1)?.0);
        secured.push(w3_figures(&reader, &plan, 1)?);
    }
    plain_rates.sort_by(f64::total_cmp);
    secured.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (plain_rate, (rate, p50, p99)) = (plain_rates[ROUNDS / 2], secured[ROUNDS / 2]);
    let slower = 100.0 * (1.0 - rate / plain_rate);
    println!(
        "W3 secured+layered, 1 thr {:>12} gets/s     p50 {p50:.2} us, p99 {p99:.2} us (3 layers, 4 ACEs a key, read as a user; loaded in {:.1} s)",
        grouped(rate),
        loaded.as_secs_f64()
    );
    println!(
        "  W3 secured+layered is {slower:.1}% slower than plain W3 ({} gets/s), medians of {ROUNDS} alternated rounds (target: at most 15%)",
        grouped(plain_rate)
    );
    report.add("W3s", "gets/s, 1 thread", rate, "gets/s");
    report.add("W3s", "p50 us, 1 thread", p50, "us");
    report.add("W3s", "p99 us, 1 thread", p99, "us");
    report.add("W3s", "plain W3 gets/s, 1 thread", plain_rate, "gets/s");
    report.add("W3s", "% slower than plain W3", slower, "%");
    Ok(())
}
