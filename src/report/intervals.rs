//! The per-interval files, streamed during the run to `.partial` files (flushed every
//! interval) and renamed into place when the run ends: `latency.hlog`, the HdrHistogram
//! interval log (V2 compressed), and `series.jsonl`, one [`Point`] a second (requests sent,
//! finished, answered, without an answer, violations by kind, p50/p99) for the report's plots.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hdrhistogram::Histogram;

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::{Error, tmp_name};
use crate::conformance::Violation;
use crate::metrics::{Interval, IntervalSink};

/// The latency log's name in a results folder.
pub const HLOG: &str = "latency.hlog";
/// The per-second series' name in a results folder.
pub const SERIES: &str = "series.jsonl";

/// One second of the run in `series.jsonl` (client-side counts of what was recorded in it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Point {
    /// Start, seconds from the run start.
    pub t: f64,
    /// Length, seconds.
    pub len: f64,
    /// Requests that finished in it — answered, refused, without an answer or cancelled —
    /// counted when they finish, not when they were sent (a stalled gateway shows as a dip,
    /// then the timeouts land).
    pub finished: u64,
    /// Of those, answered (or refused at TLS).
    pub completed: u64,
    /// Without an answer.
    pub errors: u64,
    /// Client-side violations by kind (kinds with none left out).
    pub violations: std::collections::BTreeMap<String, u64>,
    /// Latency from the intended send time, ms (0 when nothing completed).
    pub p50_ms: f64,
    /// The 99th percentile, ms.
    pub p99_ms: f64,
}

/// The interval files' writer.
pub struct Intervals {
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    series_dest: PathBuf,
    series: Option<BufWriter<File>>,
    ser: V2DeflateSerializer,
    failed: Option<std::io::Error>,
}

impl Intervals {
    /// Starts `dir/latency.hlog` with its header and `dir/series.jsonl` (as `.partial`).
    pub fn create(dir: &Path, started: SystemTime) -> Result<Self, Error> {
        let dest = dir.join(HLOG);
        let tmp = tmp_name(&dest);
        let series_dest = dir.join(SERIES);
        let series = File::create(tmp_name(&series_dest))
            .map_err(|source| Error::Write { path: series_dest.clone(), source })?;
        let file = File::create(&tmp).map_err(|source| Error::Write { path: dest.clone(), source })?;
        let mut out = BufWriter::new(file);
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("gauntlet latency log: values in microseconds; Tag=latency is from the intended send time,")
            .add_comment("Tag=service_time from the actual send. Interval_Max is in microseconds.")
            .with_start_time(started)
            .with_base_time(started)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|source| Error::Write { path: dest.clone(), source })?;
        out.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")
            .map_err(|source| Error::Write { path: dest.clone(), source })?;
        Ok(Intervals { dest, out: Some(out), series_dest, series: Some(BufWriter::new(series)), ser, failed: None })
    }

    /// Flushes and renames both files into place; on failure the partial files are removed.
    pub fn finish(mut self) -> Result<PathBuf, Error> {
        let close = |out: Option<BufWriter<File>>| {
            out.map_or(Ok(()), |out| out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()))
        };
        let (out, series) = (self.out.take(), self.series.take());
        let r = match self.failed.take() {
            Some(e) => Err(e),
            None => close(out)
                .and_then(|_| close(series))
                .and_then(|_| std::fs::rename(tmp_name(&self.dest), &self.dest))
                .and_then(|_| std::fs::rename(tmp_name(&self.series_dest), &self.series_dest)),
        };
        match r {
            Ok(()) => Ok(self.dest.clone()),
            Err(source) => {
                for d in [&self.dest, &self.series_dest] {
                    let _ = std::fs::remove_file(tmp_name(d));
                }
                Err(Error::Write { path: self.dest.clone(), source })
            }
        }
    }
}

impl IntervalSink for Intervals {
    fn interval(&mut self, i: &Interval<'_>) {
        let (Some(out), Some(series)) = (self.out.as_mut(), self.series.as_mut()) else { return };
        if self.failed.is_some() {
            return;
        }
        let r = IntervalLogWriterBuilder::new().begin_log_with(&mut *out, &mut self.ser).and_then(|mut w| {
            for (tag, h) in [("latency", i.latency), ("service_time", i.service)] {
                w.write_histogram(h, i.start, i.length, Tag::new(tag))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Ok(())
        });
        let q = |x: f64| if i.latency.is_empty() { 0.0 } else { i.latency.value_at_quantile(x) as f64 / 1000.0 };
        let c = i.counts;
        let point = Point {
            t: (i.start.as_secs_f64() * 1000.0).round() / 1000.0,
            len: (i.length.as_secs_f64() * 1000.0).round() / 1000.0,
            finished: c.sent,
            completed: c.completed,
            errors: c.error_total(),
            violations: Violation::ALL
                .iter()
                .filter(|v| c.violations[v.index()] > 0)
                .map(|v| (v.name().to_string(), c.violations[v.index()]))
                .collect(),
            p50_ms: q(0.5),
            p99_ms: q(0.99),
        };
        let line = serde_json::to_string(&point).map_err(std::io::Error::other);
        // Flushed every interval: a run killed outright (SIGKILL, power loss) leaves its
        // data up to the last interval in the `.partial` files.
        let r = r.and_then(|_| out.flush()).and(line).and_then(|l| {
            series.write_all(l.as_bytes())?;
            series.write_all(b"\n")?;
            series.flush()
        });
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }
}

/// The whole-run histograms' name in a results folder.
pub const HISTOGRAMS: &str = "histograms.hlog";

/// Writes `histograms.hlog`: one interval-log entry per histogram, each spanning the whole run
/// (`duration_s`), tagged with what it covers ([`super::histograms`]).
pub fn write_histograms(
    dir: &super::ResultsDir,
    started: SystemTime,
    duration_s: f64,
    hs: &[(String, Histogram<u64>)],
) -> Result<(), Error> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let err = |e: String| Error::Write { path: dir.path.join(HISTOGRAMS), source: std::io::Error::other(e) };
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("gauntlet whole-run latency histograms (µs, from the intended send time): Tag=run,")
        .add_comment(
            "Tag=phase=NAME, Tag=condition=NAME, Tag=check=ID (names with %, comma, space, CR, LF percent-encoded)",
        )
        .with_start_time(started)
        .with_base_time(started)
        .begin_log_with(&mut out, &mut ser)
        .map_err(|e| err(e.to_string()))?;
    let span = std::time::Duration::from_secs_f64(duration_s.max(0.0));
    for (t, h) in hs {
        let tag = Tag::new(t).ok_or_else(|| err(format!("tag {t:?}")))?;
        w.write_histogram(h, std::time::Duration::ZERO, span, Some(tag)).map_err(|e| err(e.to_string()))?;
    }
    dir.write(HISTOGRAMS, &out).map(drop)
}

/// The histograms of a `histograms.hlog` (or of any interval log: the entries of one tag
/// added up), by tag (`None`: a histogram in it does not decode).
pub fn read_histograms(bytes: &[u8]) -> Option<std::collections::BTreeMap<String, Histogram<u64>>> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut out: std::collections::BTreeMap<String, Histogram<u64>> = std::collections::BTreeMap::new();
    for entry in IntervalLogIterator::new(bytes) {
        // A line that does not parse ends the iterator: the log is cut or corrupt.
        let Ok(entry) = entry else { return None };
        let LogEntry::Interval(i) = entry else { continue };
        let tag = i.tag().map_or(String::new(), |t| t.as_str().to_string());
        let h = super::record::decode_histogram(i.encoded_histogram()).ok()?;
        match out.get_mut(&tag) {
            Some(t) => t.add(&h).ok()?,
            None => {
                let mut t = crate::metrics::histogram();
                t.add(&h).ok()?;
                out.insert(tag, t);
            }
        }
    }
    Some(out)
}

/// The points of a `series.jsonl` (lines that do not read are skipped: a killed run's last
/// line may be cut).
pub fn read_series(text: &str) -> Vec<Point> {
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_interval_is_on_disk_as_soon_as_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Intervals::create(d.path(), SystemTime::now()).unwrap();
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        h.record(1500).unwrap();
        let mut counts = crate::metrics::Counts { sent: 3, completed: 2, ..Default::default() };
        counts.violations[Violation::Leak.index()] = 1;
        let on_disk = || {
            let t = std::fs::read_to_string(d.path().join("latency.hlog.partial")).unwrap();
            let s = std::fs::read_to_string(d.path().join("series.jsonl.partial")).unwrap();
            (t.lines().filter(|l| l.starts_with("Tag=latency,")).count(), read_series(&s).len())
        };
        assert_eq!(on_disk(), (0, 0));
        let at = |s: u64| Interval {
            start: Duration::from_secs(s),
            length: Duration::from_secs(1),
            latency: &h,
            service: &h,
            counts: &counts,
        };
        log.interval(&at(0));
        assert_eq!(on_disk(), (1, 1), "a killed run would lose this interval");
        log.interval(&at(1));
        assert_eq!(on_disk(), (2, 2));
        log.finish().unwrap();
        assert!(d.path().join("latency.hlog").exists() && !d.path().join("latency.hlog.partial").exists());
        let points = read_series(&std::fs::read_to_string(d.path().join("series.jsonl")).unwrap());
        assert_eq!(points[1].t, 1.0);
        assert_eq!((points[1].finished, points[1].completed, points[1].violations.get("leak")), (3, 2, Some(&1)));
        assert!((points[1].p99_ms - 1.5).abs() < 0.01, "{}", points[1].p99_ms);
    }
}
