//! Shard results on disk and on a line: a shard's folder (`shard-I-of-N/` under the run's
//! folder) holds `shard.json` (its [`ShardFile`]), `latency.hlog` and `series.jsonl` (intervals
//! ending on whole UNIX seconds); [`bundle`] packs the three into one line
//! (`gauntlet-shard/v1 BASE64`) for `kubectl logs … | gauntlet merge -`. [`Seconds`] adds the
//! shards' intervals second by second for the merged run's own log and series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::record::{ShardFile, decode_histogram};
use super::{Error, HLOG, SERIES, read_series};
use crate::conformance::Violation;
use crate::metrics::{Counts, Interval, IntervalSink, histogram};

/// A shard's record in its folder.
pub const FILE: &str = "shard.json";
/// What starts a shard's result line (anywhere in the line: `kubectl logs --prefix` puts the
/// pod's name before it).
pub const LINE_TAG: &str = "gauntlet-shard/v1 ";
/// Largest shard file read back.
const MAX: u64 = 1 << 30;

/// One shard's result, wherever it came from.
#[derive(Debug)]
pub struct Bundle {
    /// Where it was read (a folder, or `stdin line N`).
    pub source: String,
    /// Its record.
    pub file: ShardFile,
    /// Its `latency.hlog`.
    pub hlog: Vec<u8>,
    /// Its `series.jsonl`.
    pub series: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    shard: ShardFile,
    hlog: String,
    series: String,
}

/// `shard.json`'s bytes.
pub fn to_json(f: &ShardFile) -> Vec<u8> {
    serde_json::to_vec(f).unwrap_or_default()
}

/// A shard folder's result as one line (without its newline).
pub fn bundle(dir: &Path) -> Result<String, Error> {
    let read = |name: &str| {
        let path = dir.join(name);
        crate::input::read(&path, MAX).map_err(|source| Error::Write { path, source })
    };
    let shard: ShardFile = serde_json::from_slice(&read(FILE)?)
        .map_err(|e| Error::Write { path: dir.join(FILE), source: std::io::Error::other(e) })?;
    let w = Wire {
        shard,
        hlog: String::from_utf8_lossy(&read(HLOG)?).into_owned(),
        series: String::from_utf8_lossy(&read(SERIES)?).into_owned(),
    };
    let json = serde_json::to_vec(&w).unwrap_or_default();
    Ok(format!("{LINE_TAG}{}", base64::engine::general_purpose::STANDARD.encode(json)))
}

/// Every shard result in `path`: a shard's folder, or a run's folder holding `shard-*`
/// folders.
pub fn load(path: &Path) -> Result<Vec<Bundle>, String> {
    if path.join(FILE).exists() {
        return load_one(path).map(|b| vec![b]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("shard-")))
        .filter(|p| p.join(FILE).exists())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!("{}: no shard result here (no {FILE}, no shard-* folder holding one)", path.display()));
    }
    dirs.iter().map(|d| load_one(d)).collect()
}

fn load_one(dir: &Path) -> Result<Bundle, String> {
    let read = |name: &str| {
        let path = dir.join(name);
        crate::input::read(&path, MAX).map_err(|e| format!("{}: {e}", path.display()))
    };
    let file: ShardFile = serde_json::from_slice(&read(FILE)?)
        .map_err(|e| format!("{}: not a shard result: {e}", dir.join(FILE).display()))?;
    file.check().map_err(|e| format!("{}: {e}", dir.join(FILE).display()))?;
    // The interval files are the merged run's log and series; without them only those are lost.
    let hlog = read(HLOG).unwrap_or_default();
    let series = read(SERIES).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Ok(Bundle { source: dir.display().to_string(), file, hlog, series })
}

/// Every shard result line in `text` (other lines — a pod's progress output — are skipped).
pub fn parse_lines(text: &str, what: &str) -> Result<Vec<Bundle>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(at) = line.find(LINE_TAG) else { continue };
        let b64 = line[at + LINE_TAG.len()..].trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("{what} line {}: a shard result line that is not base64 ({e}): cut short?", n + 1))?;
        let w: Wire =
            serde_json::from_slice(&bytes).map_err(|e| format!("{what} line {}: not a shard result: {e}", n + 1))?;
        w.shard.check().map_err(|e| format!("{what} line {}: {e}", n + 1))?;
        out.push(Bundle {
            source: format!("{what} line {}", n + 1),
            file: w.shard,
            hlog: w.hlog.into_bytes(),
            series: w.series,
        });
    }
    if out.is_empty() {
        return Err(format!("{what}: no shard result line (`{}…`) in it", LINE_TAG.trim_end()));
    }
    Ok(out)
}

/// One whole UNIX second of the merged run: every shard's interval ending in it, added.
#[derive(Debug)]
struct Second {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    counts: Counts,
}

/// The shards' intervals by the UNIX second each ends in.
#[derive(Debug, Default)]
pub struct Seconds {
    by_end: BTreeMap<u64, Second>,
}

fn ns(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The whole second an interval ending `end_ns` after the epoch belongs to: its end, rounded
/// up (a shard's intervals end on whole seconds, up to the log's millisecond rounding; its last
/// one ends with the run).
fn second_of(end_ns: u128) -> u64 {
    (end_ns.saturating_sub(10_000_000).div_ceil(1_000_000_000)) as u64
}

impl Seconds {
    /// Adds one shard's intervals.
    pub fn add(&mut self, b: &Bundle) -> Result<(), String> {
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let start = ns(b.file.started_at());
        for entry in IntervalLogIterator::new(&b.hlog) {
            let Ok(LogEntry::Interval(i)) = entry else {
                if entry.is_err() {
                    return Err(format!("{}: latency.hlog cannot be read", b.source));
                }
                continue;
            };
            let end = i
                .start_timestamp()
                .checked_add(i.duration())
                .map(|d| start.saturating_add(d.as_nanos()))
                .ok_or_else(|| format!("{}: latency.hlog: an interval ends past the end of time", b.source))?;
            let h = decode_histogram(i.encoded_histogram()).map_err(|e| format!("{}: latency.hlog: {e}", b.source))?;
            let sec = self.second(second_of(end));
            match i.tag().map(|t| t.as_str()) {
                Some("service_time") => {
                    let _ = sec.service.add(&h);
                }
                _ => {
                    let _ = sec.latency.add(&h);
                }
            }
        }
        for p in read_series(&b.series) {
            let at = Duration::try_from_secs_f64((p.t + p.len).max(0.0))
                .map_err(|_| format!("{}: series.jsonl: a point at t={} s", b.source, p.t))?;
            let c = &mut self.second(second_of(start.saturating_add(at.as_nanos()))).counts;
            c.sent = c.sent.saturating_add(p.finished);
            c.completed = c.completed.saturating_add(p.completed);
            c.errors[0] = c.errors[0].saturating_add(p.errors);
            for v in Violation::ALL {
                let n = p.violations.get(v.name()).copied().unwrap_or(0);
                c.violations[v.index()] = c.violations[v.index()].saturating_add(n);
            }
        }
        Ok(())
    }

    fn second(&mut self, s: u64) -> &mut Second {
        self.by_end.entry(s).or_insert_with(|| Second {
            latency: histogram(),
            service: histogram(),
            counts: Counts::default(),
        })
    }

    /// Writes the merged run's intervals into `sink`, timed from `base` (the earliest shard's
    /// start): one interval per second, the first from `base` to the first whole second.
    pub fn write(&self, base: SystemTime, sink: &mut dyn IntervalSink) {
        let base = ns(base);
        for (&sec, s) in &self.by_end {
            let end = u128::from(sec) * 1_000_000_000;
            let from = end.saturating_sub(1_000_000_000).max(base);
            let start = Duration::from_nanos(u64::try_from(from.saturating_sub(base)).unwrap_or(u64::MAX));
            let length = Duration::from_nanos(u64::try_from(end.saturating_sub(from)).unwrap_or(0));
            sink.interval(&Interval { start, length, latency: &s.latency, service: &s.service, counts: &s.counts });
        }
    }

    /// Latency samples in every second (for merge's self-check against the cells).
    pub fn latency_samples(&self) -> u64 {
        self.by_end.values().map(|s| s.latency.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_belongs_to_the_second_it_ends_in() {
        assert_eq!(second_of(5_000_000_000), 5);
        // The log's millisecond rounding either way.
        assert_eq!(second_of(5_000_900_000), 5);
        assert_eq!(second_of(4_999_000_000), 5);
        // The run's last interval ends mid-second.
        assert_eq!(second_of(5_400_000_000), 6);
    }

    #[test]
    fn lines_are_found_behind_a_prefix_and_a_cut_line_is_an_error() {
        let err = parse_lines("hello\nworld\n", "stdin").expect_err("no line");
        assert!(err.contains("no shard result line"), "{err}");
        let err = parse_lines("[pod/x] gauntlet-shard/v1 %%%\n", "stdin").expect_err("bad");
        assert!(err.contains("line 1") && err.contains("base64"), "{err}");
    }
}
