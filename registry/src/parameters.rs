//! The store's operational parameters. Each has a compiled-in default (the open's
//! [`Options`](crate::Options), whose own defaults work), so a store runs from its first
//! instant and never waits for configuration. Live values are the values of
//! `Machine\System\Registry\Parameters`: every commit that may have changed them (a value
//! set or deleted there, a deletion or restore of the key or a key above it, a layer
//! dropped) reads them again, and each valid one is swapped in at once: a commit or read in
//! flight finishes on the old value, the next one uses the new. An invalid value (wrong type,
//! out of range) is rejected, never clamped: the value in force stays, and an audit record
//! names the key, the rejected value and the value still in force. A value deleted brings
//! back the default. An open that finds an invalid value stored puts in force the last valid
//! one it had, as the store that rejected it kept (the rejection was audited then).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use hivelog_index::LayerSel;
use hivelog_log::{SEGMENT_SIZE_MIN_BYTES, SEGMENT_SIZE_OPTION_MAX_BYTES, SYNC_INTERVAL_MAX_MS};
use hivelog_log::{Seq, SyncPolicy, check_segment_size};

use crate::error::Result;
use crate::op::AuditEvent;
use crate::reader::{read_value, reading};
use crate::security::Caller;
use crate::store::{Inner, Options, Session, VALUE_SIZE_LIMIT_BYTES, read_state};
use crate::stored::Stored;
use crate::txn::Intent;
use crate::value::{Value, ValueType};
use crate::watch::WATCH_QUEUE_DEPTH_MAX;

/// The key whose values are the live parameters.
pub const PARAMETERS_KEY: &str = r"Machine\System\Registry\Parameters";
/// PARAMETERS_KEY folded, as the index keys it.
pub(crate) const PARAMETERS_FOLDED: &str = r"MACHINE\SYSTEM\REGISTRY\PARAMETERS";

/// One parameter: its value name under PARAMETERS_KEY, the type it takes, and its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    /// REG_SZ `always`, `interval` or `never`.
    SyncPolicy,
    /// REG_DWORD, the interval when SyncPolicy is `interval`.
    SyncIntervalMs,
    /// REG_DWORD, the capacity of new journal segments.
    SegmentSizeBytes,
    /// REG_DWORD, the largest value data accepted (at most half a segment).
    ValueSizeMaxBytes,
    /// REG_DWORD, the depth of new watches' queues.
    WatchQueueDepth,
    /// REG_DWORD, an in-memory store's flush after this many commits (0: never).
    FlushEveryCommits,
    /// REG_DWORD, an in-memory store's flush this many ms after a change (0: never).
    FlushIntervalMs,
    /// REG_DWORD, a checkpoint after this many commits (0: not by count).
    CheckpointEveryCommits,
    /// REG_DWORD, a checkpoint after the journal grew this many bytes (0: not by size).
    CheckpointEveryBytes,
    /// REG_DWORD, the retention window: keep at least this many of the newest commits...
    HistoryKeepCommits,
    /// REG_DWORD, ... and every commit of this many seconds back.
    HistoryKeepSeconds,
}

/// In the order they are checked: the segment size before the value size it bounds.
const PARAMS: [Param; 11] = [
    Param::SyncPolicy,
    Param::SyncIntervalMs,
    Param::SegmentSizeBytes,
    Param::ValueSizeMaxBytes,
    Param::WatchQueueDepth,
    Param::FlushEveryCommits,
    Param::FlushIntervalMs,
    Param::CheckpointEveryCommits,
    Param::CheckpointEveryBytes,
    Param::HistoryKeepCommits,
    Param::HistoryKeepSeconds,
];

// Values are kept in arrays in PARAMS' order, which is the declaration order.
const _: () = {
    let mut i = 0;
    while i < PARAMS.len() {
        assert!(PARAMS[i] as usize == i);
        i += 1;
    }
};

/// The value of `param` in `values` (kept in PARAMS' order).
fn of(values: &[u64; PARAMS.len()], param: Param) -> u64 {
    values[param as usize]
}

/// Longest flush interval: a day.
pub const FLUSH_INTERVAL_MAX_MS: u64 = 86_400_000;

const POLICY_NEVER: u64 = 0;
const POLICY_INTERVAL: u64 = 1;
const POLICY_ALWAYS: u64 = 2;

/// The interval a `SyncPolicy` of `interval` gets when the open's policy had none.
const SYNC_INTERVAL_DEFAULT_MS: u64 = 100;

impl Param {
    fn name(self) -> &'static str {
        match self {
            Param::SyncPolicy => "SyncPolicy",
            Param::SyncIntervalMs => "SyncIntervalMs",
            Param::SegmentSizeBytes => "SegmentSizeBytes",
            Param::ValueSizeMaxBytes => "ValueSizeMaxBytes",
            Param::WatchQueueDepth => "WatchQueueDepth",
            Param::FlushEveryCommits => "FlushEveryCommits",
            Param::FlushIntervalMs => "FlushIntervalMs",
            Param::CheckpointEveryCommits => "CheckpointEveryCommits",
            Param::CheckpointEveryBytes => "CheckpointEveryBytes",
            Param::HistoryKeepCommits => "HistoryKeepCommits",
            Param::HistoryKeepSeconds => "HistoryKeepSeconds",
        }
    }

    fn ty(self) -> ValueType {
        match self {
            Param::SyncPolicy => ValueType::SZ,
            _ => ValueType::DWORD,
        }
    }

    fn show(self, value: u64) -> String {
        match (self, value) {
            (Param::SyncPolicy, POLICY_NEVER) => "never".into(),
            (Param::SyncPolicy, POLICY_INTERVAL) => "interval".into(),
            (Param::SyncPolicy, _) => "always".into(),
            (_, value) => value.to_string(),
        }
    }

    /// The value `value` stands for, or why it is refused. `segment` is the segment size in
    /// force (ValueSizeMaxBytes is at most half of it).
    fn parse(self, value: &Value, segment: u64) -> std::result::Result<u64, String> {
        if value.ty != self.ty() {
            return Err(format!("is {}, not {}", value.ty, self.ty()));
        }
        let range = |n: u64, low: u64, high: u64, what: &str| {
            if (low..=high).contains(&n) {
                Ok(n)
            } else {
                Err(format!("is {n}; it must be {low} to {high}{what}"))
            }
        };
        match self {
            Param::SyncPolicy => {
                let text = value.text_lossy().ok_or("is not valid REG_SZ data")?;
                match text.to_ascii_lowercase().as_str() {
                    "never" => Ok(POLICY_NEVER),
                    "interval" => Ok(POLICY_INTERVAL),
                    "always" => Ok(POLICY_ALWAYS),
                    _ => Err(format!("is {text:?}; it must be always, interval or never")),
                }
            }
            _ => {
                let n = value.number().ok_or("is not valid REG_DWORD data")?;
                match self {
                    Param::SyncIntervalMs => range(n, 1, SYNC_INTERVAL_MAX_MS, " ms"),
                    Param::SegmentSizeBytes => {
                        check_segment_size(n).map_err(|_| {
                            format!(
                                "is {n}; it must be a multiple of 8 from {SEGMENT_SIZE_MIN_BYTES} to {SEGMENT_SIZE_OPTION_MAX_BYTES}"
                            )
                        })?;
                        Ok(n)
                    }
                    Param::ValueSizeMaxBytes => range(
                        n,
                        1,
                        u64::from(VALUE_SIZE_LIMIT_BYTES).min(segment / 2),
                        " (at most VALUE_SIZE_LIMIT_BYTES and half the segment size)",
                    ),
                    Param::WatchQueueDepth => range(n, 1, WATCH_QUEUE_DEPTH_MAX as u64, ""),
                    Param::FlushEveryCommits => range(n, 0, u64::from(u32::MAX), " (0: never)"),
                    Param::FlushIntervalMs => range(n, 0, FLUSH_INTERVAL_MAX_MS, " ms (0: never)"),
                    Param::CheckpointEveryCommits | Param::CheckpointEveryBytes => {
                        range(n, 0, u64::from(u32::MAX), " (0: never)")
                    }
                    Param::HistoryKeepCommits | Param::HistoryKeepSeconds => {
                        range(n, 0, u64::from(u32::MAX), "")
                    }
                    Param::SyncPolicy => unreachable!("handled above"),
                }
            }
        }
    }
}

/// What `hivelog config` shows of one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterReport {
    /// The value name under PARAMETERS_KEY.
    pub name: &'static str,
    /// The value type it takes.
    pub ty: ValueType,
    /// The compiled-in default (the open's option).
    pub default: String,
    /// What PARAMETERS_KEY holds, if anything (as `reg query` shows data).
    pub stored: Option<Value>,
    /// The value in force.
    pub in_force: String,
    /// Why the value in force is not the stored one: the stored one was rejected.
    pub rejected: Option<String>,
}

/// The parameters' state: defaults, values in force, what is stored and what was refused.
pub(crate) struct Parameters {
    state: Mutex<State>,
}

struct State {
    defaults: [u64; PARAMS.len()],
    in_force: [u64; PARAMS.len()],
    stored: [Option<Value>; PARAMS.len()],
    rejected: [Option<String>; PARAMS.len()],
}

impl Parameters {
    /// The defaults: the open's options.
    pub(crate) fn new(options: &Options) -> Parameters {
        let (policy, interval) = match options.sync {
            SyncPolicy::Never => (POLICY_NEVER, SYNC_INTERVAL_DEFAULT_MS),
            SyncPolicy::Interval { ms } => (POLICY_INTERVAL, ms),
            SyncPolicy::Always => (POLICY_ALWAYS, SYNC_INTERVAL_DEFAULT_MS),
        };
        let defaults = [
            policy,
            interval,
            options.segment_size_bytes,
            u64::from(options.value_size_max_bytes),
            options.watch_queue_depth as u64,
            options.flush_every_commits,
            options.flush_interval_ms,
            options.checkpoint_every_commits,
            options.checkpoint_every_bytes,
            options.history_keep_commits,
            options.history_keep_seconds,
        ];
        Parameters {
            state: Mutex::new(State {
                defaults,
                in_force: defaults,
                stored: Default::default(),
                rejected: Default::default(),
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `intents` may change what PARAMETERS_KEY holds.
pub(crate) fn touches(intents: &[Intent]) -> bool {
    let above = |folded: &str| crate::watch::is_within(PARAMETERS_FOLDED, folded);
    intents.iter().any(|intent| match intent {
        Intent::SetValue { target, .. } | Intent::DeleteValue { target, .. } => {
            target.path().folded() == PARAMETERS_FOLDED
        }
        Intent::DeleteKey(target) | Intent::DeleteTree(target) => above(target.path().folded()),
        Intent::Restore { target, .. } => match target {
            crate::restore::RestoreTarget::Key(path) => above(path.folded()),
            crate::restore::RestoreTarget::Registry => true,
        },
        Intent::DropLayer { .. } => true,
        _ => false,
    })
}

/// Where the effective value of `param` is as of `seq`.
fn point(inner: &Inner, param: Param, seq: Seq) -> Option<Stored> {
    let folded = hivelog_index::fold::fold(param.name());
    let state = read_state(&inner.state);
    state
        .index
        .value_by_path(PARAMETERS_FOLDED, &folded, LayerSel::Effective, seq)
        .and_then(|point| point.value)
}

/// Most earlier versions of a parameter an open looks through for the last valid one.
const VERSIONS_SEARCHED_MAX: usize = 64;

/// The last valid value `param` had at or before `seq` (None: none, so its default), for
/// an open that finds an invalid one stored: the value a running store kept in force.
fn last_valid(inner: &Inner, param: Param, seq: Seq, segment: u64) -> Result<Option<u64>> {
    let mut at = seq;
    // History before the oldest readable sequence number was compacted away.
    let oldest = inner.retention.oldest();
    for _ in 0..VERSIONS_SEARCHED_MAX {
        let Some(current) = point(inner, param, at) else {
            return Ok(None);
        };
        let value = reading(
            inner,
            || Ok(point(inner, param, at).unwrap_or(current)),
            |stored| read_value(inner, stored),
        )?;
        if let Ok(value) = param.parse(&value, segment) {
            return Ok(Some(value));
        }
        // The version's own sequence number: the first at which it is the effective one.
        let (mut before, mut since) = (0, at);
        while since - before > 1 {
            let mid = before + (since - before) / 2;
            if point(inner, param, mid) == Some(current) {
                since = mid;
            } else {
                before = mid;
            }
        }
        if before == 0 || before < oldest {
            return Ok(None);
        }
        at = before;
    }
    Ok(None)
}

/// The effective values of PARAMETERS_KEY as of `seq`, by parameter.
fn stored_at(inner: &Inner, seq: Seq) -> Result<[Option<Value>; PARAMS.len()]> {
    let find = || -> Result<Vec<_>> {
        Ok(PARAMS
            .iter()
            .map(|&param| point(inner, param, seq))
            .collect())
    };
    let read = |found: Vec<Option<Stored>>| {
        let mut values: [Option<Value>; PARAMS.len()] = Default::default();
        for (slot, stored) in values.iter_mut().zip(found) {
            *slot = stored.map(|stored| read_value(inner, stored)).transpose()?;
        }
        Ok(values)
    };
    reading(inner, find, read)
}

/// A rejection to audit.
struct Rejection {
    param: Param,
    stored: Value,
    reason: String,
    in_force: u64,
}

/// Reads the parameters as of `seq` and puts every valid one in force. `audit`: write an
/// audit record for each newly rejected value (after a commit that changed them; not at
/// open, when it was audited as it was written).
pub(crate) fn reload(inner: &Inner, seq: Seq, audit: bool) -> Result<()> {
    let stored = stored_at(inner, seq)?;
    let mut rejections = Vec::new();
    {
        let mut state = lock(&inner.parameters.state);
        for (i, param) in PARAMS.iter().enumerate() {
            let segment = of(&state.in_force, Param::SegmentSizeBytes);
            let candidate = match &stored[i] {
                None => Ok(state.defaults[i]),
                Some(value) => param.parse(value, segment),
            };
            match candidate {
                Ok(value) => {
                    state.in_force[i] = value;
                    state.rejected[i] = None;
                }
                Err(reason) => {
                    // An open: what a running store kept in force, the last valid value.
                    if !audit {
                        let kept = last_valid(inner, *param, seq, segment)?;
                        state.in_force[i] = kept.unwrap_or(state.defaults[i]);
                    }
                    // Audited once per value written, not at every reload after it.
                    let new = state.stored[i] != stored[i] || state.rejected[i].is_none();
                    if new {
                        rejections.push(Rejection {
                            param: *param,
                            stored: stored[i].clone().expect("only a stored value is refused"),
                            reason: reason.clone(),
                            in_force: state.in_force[i],
                        });
                    }
                    state.rejected[i] = Some(reason);
                }
            }
        }
        state.stored = stored;
        apply(inner, &state.in_force)?;
    }
    if audit && !rejections.is_empty() && !inner.read_only {
        let session = Session::new(inner, Caller::system())?;
        let intents: Vec<Intent> = rejections
            .into_iter()
            .map(|rejection| Intent::Audit {
                event: AuditEvent::Parameter,
                path: PARAMETERS_KEY.to_string(),
                source: format!(
                    "{}: rejected {} {} ({}); in force: {}",
                    rejection.param.name(),
                    rejection.stored.ty,
                    shown(&rejection.stored),
                    rejection.reason,
                    rejection.param.show(rejection.in_force)
                ),
                seq,
            })
            .collect();
        crate::resolver::commit(inner, &session, &intents)?;
    }
    Ok(())
}

/// A stored value's data as the audit record shows it.
fn shown(value: &Value) -> String {
    match value.ty {
        ValueType::SZ | ValueType::EXPAND_SZ => value.text_lossy().map(|text| format!("{text:?}")),
        ValueType::DWORD | ValueType::DWORD_BIG_ENDIAN | ValueType::QWORD => {
            value.number().map(|n| n.to_string())
        }
        _ => None,
    }
    .unwrap_or_else(|| value.data.iter().map(|b| format!("{b:02x}")).collect())
}

/// Swaps the values in force into the parts that use them.
fn apply(inner: &Inner, in_force: &[u64; PARAMS.len()]) -> Result<()> {
    let sync = match of(in_force, Param::SyncPolicy) {
        POLICY_NEVER => SyncPolicy::Never,
        POLICY_INTERVAL => SyncPolicy::Interval {
            ms: of(in_force, Param::SyncIntervalMs),
        },
        _ => SyncPolicy::Always,
    };
    if inner.journal.sync_policy() != sync {
        inner.journal.set_sync_policy(sync)?;
    }
    if inner.journal.segment_size_bytes() != of(in_force, Param::SegmentSizeBytes) {
        inner
            .journal
            .set_segment_size_bytes(of(in_force, Param::SegmentSizeBytes))?;
    }
    let value_max = u32::try_from(of(in_force, Param::ValueSizeMaxBytes))
        .expect("checked against VALUE_SIZE_LIMIT_BYTES");
    inner
        .value_size_max_bytes
        .store(value_max, Ordering::Relaxed);
    inner
        .watches
        .set_queue_depth(of(in_force, Param::WatchQueueDepth) as usize);
    // The policies that read a parameter at each turn.
    for (param, policy) in [
        (Param::FlushEveryCommits, &inner.flush_policy.every_commits),
        (Param::FlushIntervalMs, &inner.flush_policy.interval_ms),
        (
            Param::CheckpointEveryCommits,
            &inner.checkpoints.every_commits,
        ),
        (Param::CheckpointEveryBytes, &inner.checkpoints.every_bytes),
        (Param::HistoryKeepCommits, &inner.compaction.keep_commits),
        (Param::HistoryKeepSeconds, &inner.compaction.keep_seconds),
    ] {
        policy.store(of(in_force, param), Ordering::Relaxed);
    }
    Ok(())
}

/// What `hivelog config` lists.
pub(crate) fn report(inner: &Inner) -> Vec<ParameterReport> {
    let state = lock(&inner.parameters.state);
    PARAMS
        .iter()
        .enumerate()
        .map(|(i, param)| ParameterReport {
            name: param.name(),
            ty: param.ty(),
            default: param.show(state.defaults[i]),
            stored: state.stored[i].clone(),
            in_force: param.show(state.in_force[i]),
            rejected: state.rejected[i].clone(),
        })
        .collect()
}
