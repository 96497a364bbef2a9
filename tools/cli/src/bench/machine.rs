//! What the benchmark reports about the machine, and how it reads memory and disk use.

use std::path::Path;

pub(crate) use hivelog_workload::machine::disk_usage;
use hivelog_workload::machine::{cpu, file_system};

/// CPU model, cores, and the file system holding `dir`.
pub(crate) fn describe(dir: &Path) -> String {
    let (fs, mount) = file_system(dir).unwrap_or_else(|| ("unknown".into(), "?".into()));
    format!("{}, {fs} file system (mounted at {mount})", cpu())
}

/// Resident set size of this process.
pub(crate) fn rss_bytes() -> u64 {
    // statm: size resident shared text lib data dt, in pages.
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Resident memory of this process, in bytes, from /proc/self/status (0 where unknown).
#[derive(Clone, Copy)]
pub(crate) struct Resident {
    /// VmRSS: every resident page, the store's mapped journal pages included.
    pub rss: u64,
    /// VmHWM: the highest `rss` since the process started or `reset_peak` last succeeded.
    pub peak: u64,
    /// RssAnon: the heap and other anonymous memory, without mapped files.
    pub anon: u64,
}

pub(crate) fn resident() -> Resident {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    Resident {
        rss: field("VmRSS"),
        peak: field("VmHWM"),
        anon: field("RssAnon"),
    }
}

/// Starts VmHWM again from the current RSS (Linux 4.0 and later), so that a peak can be
/// measured over one phase rather than since the process started.
pub(crate) fn reset_peak() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// Anonymous memory of this process backed by transparent huge pages.
pub(crate) fn huge_page_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|text| {
            let line = text
                .lines()
                .find(|line| line.starts_with("AnonHugePages:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Writes every dirty page of the machine back and waits a moment, so that the writeback of
/// one phase of a benchmark does not land in the next one's figures.
pub(crate) fn settle() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(std::time::Duration::from_secs(1));
}
