//! What a benchmark reports about the machine, and how it counts bytes on disk: shared by
//! `hivelog bench` and the side-by-side bench (`tools/bench`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// CPU model and cores.
pub fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores")
}

/// The 1-, 5- and 15-minute load averages: a busy machine (this one is shared) shows here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The type and mount point of the file system holding `dir` (the longest mount point in
/// /proc/mounts that contains it).
pub fn file_system(dir: &Path) -> Option<(String, String)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount = fields.next()?;
            let fs = fields.next()?;
            dir.starts_with(mount)
                .then(|| (fs.to_string(), mount.to_string()))
        })
        .max_by_key(|(_, mount)| mount.len())
}

/// Bytes allocated below `dir`, as `du` counts them: blocks, not lengths, so that sparse
/// and preallocated files count for what they occupy.
pub fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_usage(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

/// `1234567.8` as `1,234,568`.
pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    // A figure as the benches print it.
    #[test]
    fn grouped_digits() {
        assert_eq!(super::grouped(1234567.8), "1,234,568");
        assert_eq!(super::grouped(999.0), "999");
        assert_eq!(super::grouped(1000.0), "1,000");
    }
}
