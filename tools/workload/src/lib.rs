//! The benchmark data set of WORKLOADS.md, generated deterministically from a seed.
//!
//! 100,000 key paths × 10 values by default: paths `HIVE\software\vendorNNN\appNNNN` plus 0–3
//! deeper components, values of 4, 8, 32, 100 or 400 bytes (mean 38 B). Only the paths and the
//! value-name choices are held in memory; value data is regenerated on demand from
//! (seed, key, slot), so a reader can check every byte it reads without keeping a copy.

#![warn(missing_docs)]

pub mod machine;

/// The seed WORKLOADS.md names.
pub const DEFAULT_SEED: u64 = 0x5eed;
/// Values per key.
pub const VALUES_PER_KEY: usize = 10;
/// Keys in the standard data set (1,000,000 values).
pub const DEFAULT_KEYS: usize = 100_000;

const VENDORS: u64 = 100;
const APPS_PER_VENDOR: u64 = 400;
const WORDS: [&str; 16] = [
    "settings",
    "policies",
    "options",
    "cache",
    "plugins",
    "components",
    "profiles",
    "network",
    "security",
    "ui",
    "recent",
    "history",
    "devices",
    "services",
    "parameters",
    "defaults",
];

/// The 32 registry-like value names; `(Default)` is the key's default (empty) name.
pub const VALUE_NAMES: [&str; 32] = [
    "(Default)",
    "DisplayName",
    "Version",
    "InstallPath",
    "Enabled",
    "Timeout",
    "Publisher",
    "InstallDate",
    "UninstallString",
    "EstimatedSize",
    "Language",
    "LastUpdate",
    "Flags",
    "Mode",
    "Port",
    "Host",
    "Path",
    "Options",
    "Retries",
    "Interval",
    "CachePath",
    "LogLevel",
    "MaxSize",
    "Owner",
    "Description",
    "Icon",
    "Priority",
    "State",
    "Revision",
    "Channel",
    "Policy",
    "Checksum",
];

/// SplitMix64: small, fast, and enough for a benchmark's data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for data generation, and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What kind of value a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A 4-byte number (REG_DWORD).
    Dword,
    /// An 8-byte number, FILETIME-like (REG_QWORD).
    Qword,
    /// Text of this many bytes in total, UTF-16LE with its terminator (REG_SZ).
    Text(usize),
}

/// One generated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSpec {
    /// The value name as WORKLOADS.md lists it (`(Default)` for the default value).
    pub name: &'static str,
    /// Its kind.
    pub kind: ValueKind,
    /// Its data, exactly as stored.
    pub data: Vec<u8>,
}

impl ValueSpec {
    /// The name in registry terms: `(Default)` is the empty name.
    pub fn registry_name(&self) -> &'static str {
        if self.name == VALUE_NAMES[0] {
            ""
        } else {
            self.name
        }
    }
}

/// The data set: key paths in load order and the value names each key holds.
#[derive(Debug, Clone)]
pub struct Dataset {
    seed: u64,
    paths: Vec<String>,
    names: Vec<[u8; VALUES_PER_KEY]>,
}

fn mix(seed: u64, key: usize, slot: usize) -> u64 {
    let mut rng = SplitMix64::new(seed ^ ((key as u64) << 8) ^ slot as u64);
    rng.next_u64()
}

impl Dataset {
    /// Generates `keys` distinct paths (in random order) and their value names.
    pub fn generate(keys: usize, seed: u64) -> Dataset {
        let mut rng = SplitMix64::new(seed);
        let mut seen = std::collections::HashSet::with_capacity(keys);
        let mut paths = Vec::with_capacity(keys);
        let mut names = Vec::with_capacity(keys);
        while paths.len() < keys {
            let path = random_path(&mut rng);
            if !seen.insert(path.clone()) {
                continue; // duplicate: redraw
            }
            paths.push(path);
            names.push(random_names(&mut rng));
        }
        Dataset { seed, paths, names }
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.paths.len()
    }

    /// Number of values.
    pub fn values(&self) -> usize {
        self.paths.len() * VALUES_PER_KEY
    }

    /// Path of key `key` as WORKLOADS.md writes it (`machine\software\...`, `user\...`).
    pub fn path(&self, key: usize) -> &str {
        &self.paths[key]
    }

    /// Path of key `key` in a registry store: hive `Machine` or `Users`.
    pub fn registry_path(&self, key: usize) -> String {
        let path = &self.paths[key];
        match path.strip_prefix("user\\") {
            Some(rest) => format!("Users\\{rest}"),
            None => format!(
                "Machine\\{}",
                path.strip_prefix("machine\\").unwrap_or(path)
            ),
        }
    }

    /// The name of value `slot` of key `key` in registry terms (`(Default)` is the empty name),
    /// without generating its data.
    pub fn registry_value_name(&self, key: usize, slot: usize) -> &'static str {
        let name = VALUE_NAMES[usize::from(self.names[key][slot])];
        if name == VALUE_NAMES[0] { "" } else { name }
    }

    /// Value `slot` (0..10) of key `key`, regenerated from the seed.
    pub fn value(&self, key: usize, slot: usize) -> ValueSpec {
        let name = VALUE_NAMES[usize::from(self.names[key][slot])];
        let mut rng = SplitMix64::new(mix(self.seed, key, slot));
        let kind = match rng.below(100) {
            0..50 => ValueKind::Dword,
            50..70 => ValueKind::Qword,
            70..85 => ValueKind::Text(32),
            85..95 => ValueKind::Text(100),
            _ => ValueKind::Text(400),
        };
        let data = match kind {
            ValueKind::Dword => (rng.next_u64() as u32).to_le_bytes().to_vec(),
            ValueKind::Qword => rng.next_u64().to_le_bytes().to_vec(),
            ValueKind::Text(bytes) => text(&mut rng, &self.paths[key], name, bytes),
        };
        ValueSpec { name, kind, data }
    }

    /// The vendor subtree (`machine\software\vendorNNN`) holding closest to 1% of the values,
    /// and how many values it holds.
    pub fn one_percent_vendor(&self) -> (String, usize) {
        let mut counts = std::collections::BTreeMap::new();
        for path in &self.paths {
            if let Some(rest) = path.strip_prefix("machine\\software\\") {
                let vendor = rest.split('\\').next().unwrap_or_default().to_string();
                *counts.entry(vendor).or_insert(0usize) += VALUES_PER_KEY;
            }
        }
        let target = self.values() / 100;
        let (vendor, count) = counts
            .into_iter()
            .min_by_key(|(_, count)| count.abs_diff(target))
            .unwrap_or_default();
        (format!("machine\\software\\{vendor}"), count)
    }

    /// Total bytes of paths, value names and data: the payload a store must keep.
    pub fn payload_bytes(&self) -> u64 {
        (0..self.keys())
            .map(|key| {
                (0..VALUES_PER_KEY)
                    .map(|slot| {
                        let value = self.value(key, slot);
                        (self.paths[key].len() + value.name.len() + value.data.len()) as u64
                    })
                    .sum::<u64>()
            })
            .sum()
    }
}

fn random_path(rng: &mut SplitMix64) -> String {
    let hive = if rng.below(100) < 85 {
        "machine"
    } else {
        "user"
    };
    let vendor = rng.below(VENDORS);
    let app = rng.below(APPS_PER_VENDOR);
    let mut path = format!("{hive}\\software\\vendor{vendor:03}\\app{app:04}");
    let deeper = rng.below(4);
    for level in 0..deeper {
        path.push('\\');
        if level + 1 == deeper && rng.below(2) == 0 {
            path.push_str(&format!("k{:04}", rng.below(2000)));
            continue;
        }
        path.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        if rng.below(4) == 0 {
            path.push_str(&format!("{:02}", rng.below(100)));
        }
    }
    path
}

fn random_names(rng: &mut SplitMix64) -> [u8; VALUES_PER_KEY] {
    let mut chosen = [0u8; VALUES_PER_KEY];
    let mut taken = 0u32;
    for slot in &mut chosen {
        let mut pick = rng.below(VALUE_NAMES.len() as u64) as u8;
        while taken & (1 << pick) != 0 {
            pick = (pick + 1) % VALUE_NAMES.len() as u8;
        }
        taken |= 1 << pick;
        *slot = pick;
    }
    chosen
}

/// `bytes` bytes of UTF-16LE text made of path- and name-like words, NUL-terminated.
fn text(rng: &mut SplitMix64, path: &str, name: &str, bytes: usize) -> Vec<u8> {
    let chars = bytes / 2 - 1;
    let parts: Vec<&str> = path.split('\\').chain([name]).chain(WORDS).collect();
    let mut out = String::with_capacity(chars);
    while out.len() < chars {
        if !out.is_empty() {
            out.push(if rng.below(3) == 0 { '\\' } else { ' ' });
        }
        out.push_str(parts[rng.below(parts.len() as u64) as usize]);
    }
    out.truncate(chars);
    let mut data: Vec<u8> = out.encode_utf16().flat_map(u16::to_le_bytes).collect();
    data.extend_from_slice(&[0, 0]);
    data
}

/// The value at quantile `q` (0.0–1.0) of sorted samples.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_set_has_the_documented_shape() {
        let data = Dataset::generate(20_000, DEFAULT_SEED);
        assert_eq!(data.values(), 200_000);
        let depths: Vec<usize> = (0..data.keys())
            .map(|k| data.path(k).split('\\').count())
            .collect();
        assert!(depths.iter().all(|d| (4..=7).contains(d)));
        let machine = (0..data.keys())
            .filter(|&k| data.path(k).starts_with("machine\\"))
            .count();
        let share = machine as f64 / data.keys() as f64;
        assert!((0.83..0.87).contains(&share), "machine share {share}");
        let mut total = 0usize;
        let mut path_and_name = 0usize;
        for key in 0..data.keys() {
            let mut names = std::collections::HashSet::new();
            for slot in 0..VALUES_PER_KEY {
                let value = data.value(key, slot);
                assert!(names.insert(value.name), "names in a key are distinct");
                match value.kind {
                    ValueKind::Dword => assert_eq!(value.data.len(), 4),
                    ValueKind::Qword => assert_eq!(value.data.len(), 8),
                    ValueKind::Text(n) => assert_eq!(value.data.len(), n),
                }
                total += value.data.len();
                path_and_name += data.path(key).len() + value.name.len();
            }
        }
        let mean = total as f64 / data.values() as f64;
        assert!((35.0..42.0).contains(&mean), "mean value size {mean}");
        let mean_key = path_and_name as f64 / data.values() as f64;
        assert!(
            (45.0..65.0).contains(&mean_key),
            "mean path + name {mean_key}"
        );
    }

    #[test]
    fn generation_is_deterministic() {
        let a = Dataset::generate(1000, 7);
        let b = Dataset::generate(1000, 7);
        assert_eq!(a.path(999), b.path(999));
        assert_eq!(a.value(500, 3), b.value(500, 3));
        assert_ne!(Dataset::generate(1000, 8).path(0), a.path(0));
        assert_eq!(
            a.registry_path(0)
                .split('\\')
                .next()
                .map(|h| h == "Machine" || h == "Users"),
            Some(true)
        );
        let (vendor, count) = Dataset::generate(20_000, DEFAULT_SEED).one_percent_vendor();
        assert!(vendor.starts_with("machine\\software\\vendor"));
        assert!((1000..3000).contains(&count), "{count}");
    }
}
