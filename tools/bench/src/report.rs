//! The figures of a run, hivelog's standing against the best peer, and the JSON form.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::workloads::Latency;

pub const SUBJECT: &str = "hivelog";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ValuesPerS,
    CommitsPerS,
    GetsPerS,
    OpenMs,
    DiskBytes,
    P50Us,
    P99Us,
}

impl Metric {
    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            Metric::OpenMs | Metric::DiskBytes | Metric::P50Us | Metric::P99Us
        )
    }

    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Metric::ValuesPerS => "values/s",
            Metric::CommitsPerS => "commits/s",
            Metric::GetsPerS => "gets/s",
            Metric::OpenMs => "open ms",
            Metric::DiskBytes => "MiB on disk",
            Metric::P50Us => "p50 us",
            Metric::P99Us => "p99 us",
        }
    }
}

/// One figure; serialized as one object of the `--json` array.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub workload: &'static str,
    pub engine: &'static str,
    pub threads: usize,
    pub metric: Metric,
    pub value: f64,
}

/// hivelog's figure against the best peer's, oriented so that above 1 means hivelog is
/// ahead: hivelog ÷ best for rates, best ÷ hivelog for times, latencies and bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    pub ratio: f64,
    pub best_peer: &'static str,
}

#[derive(Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    pub fn add(
        &mut self,
        workload: &'static str,
        engine: &'static str,
        threads: usize,
        metric: Metric,
        value: f64,
    ) {
        self.figures.push(Figure {
            workload,
            engine,
            threads,
            metric,
            value,
        });
    }

    /// A rate and the p50 and p99 latency that go with it.
    pub fn add_latency(
        &mut self,
        workload: &'static str,
        engine: &'static str,
        threads: usize,
        rate: Metric,
        latency: &Latency,
    ) {
        self.add(workload, engine, threads, rate, latency.per_s);
        self.add(workload, engine, threads, Metric::P50Us, latency.p50_us);
        self.add(workload, engine, threads, Metric::P99Us, latency.p99_us);
    }

    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    pub fn value(
        &self,
        workload: &str,
        engine: &str,
        threads: usize,
        metric: Metric,
    ) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| {
                f.workload == workload
                    && f.engine == engine
                    && f.threads == threads
                    && f.metric == metric
            })
            .map(|f| f.value)
    }

    /// hivelog against the best peer on one figure; None without both.
    pub fn standing(&self, workload: &str, threads: usize, metric: Metric) -> Option<Standing> {
        let ours = self.value(workload, SUBJECT, threads, metric)?;
        let peers = self.figures.iter().filter(|f| {
            f.workload == workload
                && f.threads == threads
                && f.metric == metric
                && f.engine != SUBJECT
        });
        let best = if metric.lower_is_better() {
            peers.min_by(|a, b| a.value.total_cmp(&b.value))
        } else {
            peers.max_by(|a, b| a.value.total_cmp(&b.value))
        }?;
        let ratio = if metric.lower_is_better() {
            best.value / ours
        } else {
            ours / best.value
        };
        Some(Standing {
            ratio,
            best_peer: best.engine,
        })
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.figures)
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = |source| Error::Json {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(path, self.to_json().map_err(json)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut report = Report::default();
        report.add("W1", "hivelog", 1, Metric::ValuesPerS, 2.0e6);
        report.add("W1", "redb", 1, Metric::ValuesPerS, 0.5e6);
        report.add("W1", "lmdb", 1, Metric::ValuesPerS, 1.0e6);
        report.add("W5", "hivelog", 1, Metric::OpenMs, 400.0);
        report.add("W5", "redb", 1, Metric::OpenMs, 100.0);
        report.add("W5", "lmdb", 1, Metric::OpenMs, 200.0);
        report
    }

    #[test]
    fn above_one_means_hivelog_is_ahead_whichever_way_the_metric_points() {
        let report = report();
        let rate = report.standing("W1", 1, Metric::ValuesPerS);
        assert_eq!(
            rate,
            Some(Standing {
                ratio: 2.0,
                best_peer: "lmdb"
            })
        );
        let open = report.standing("W5", 1, Metric::OpenMs);
        assert_eq!(
            open,
            Some(Standing {
                ratio: 0.25,
                best_peer: "redb"
            })
        );
        assert_eq!(report.standing("W5", 2, Metric::OpenMs), None);
    }

    #[test]
    fn the_json_is_an_array_of_flat_figures() {
        let parsed: serde_json::Value = report()
            .to_json()
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let first = &parsed[0];
        assert_eq!(first["workload"], "W1");
        assert_eq!(first["engine"], "hivelog");
        assert_eq!(first["threads"], 1);
        assert_eq!(first["metric"], "values_per_s");
        assert_eq!(first["value"], 2.0e6);
        assert_eq!(parsed[3]["metric"], "open_ms");
        assert_eq!(parsed.as_array().map(Vec::len), Some(6));
    }
}
