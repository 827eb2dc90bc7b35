//! HdrHistogram interval log (V2 compressed), streamed during the run to a `.partial` file
//! and renamed into place when the run ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::{Error, tmp_name};
use crate::metrics::IntervalSink;

/// The histogram log writer.
pub struct Hlog {
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    ser: V2DeflateSerializer,
    failed: Option<std::io::Error>,
}

impl Hlog {
    /// Starts `dir/latency.hlog` (as `.partial`) with its header.
    pub fn create(dir: &Path, started: SystemTime) -> Result<Self, Error> {
        let dest = dir.join("latency.hlog");
        let tmp = tmp_name(&dest);
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
        Ok(Hlog { dest, out: Some(out), ser, failed: None })
    }

    /// Flushes and renames the log into place; on failure the partial log is removed.
    pub fn finish(mut self) -> Result<PathBuf, Error> {
        let tmp = tmp_name(&self.dest);
        let r = match self.failed.take() {
            Some(e) => Err(e),
            None => self
                .out
                .take()
                .map_or(Ok(()), |out| out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()))
                .and_then(|_| std::fs::rename(&tmp, &self.dest)),
        };
        match r {
            Ok(()) => Ok(self.dest.clone()),
            Err(source) => {
                self.out = None;
                let _ = std::fs::remove_file(&tmp);
                Err(Error::Write { path: self.dest.clone(), source })
            }
        }
    }
}

impl IntervalSink for Hlog {
    fn interval(&mut self, start: Duration, length: Duration, latency: &Histogram<u64>, service: &Histogram<u64>) {
        let Some(out) = self.out.as_mut() else { return };
        if self.failed.is_some() {
            return;
        }
        let r = IntervalLogWriterBuilder::new().begin_log_with(out, &mut self.ser).and_then(|mut w| {
            for (tag, h) in [("latency", latency), ("service_time", service)] {
                w.write_histogram(h, start, length, Tag::new(tag)).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Ok(())
        });
        // Flushed every interval: a run killed outright (SIGKILL, power loss) leaves its
        // latency data up to the last interval in `latency.hlog.partial`.
        if let Err(e) = r.and_then(|_| out.flush()) {
            self.failed = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interval_is_on_disk_as_soon_as_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Hlog::create(d.path(), SystemTime::now()).unwrap();
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        h.record(1500).unwrap();
        let on_disk = || {
            let t = std::fs::read_to_string(d.path().join("latency.hlog.partial")).unwrap();
            t.lines().filter(|l| l.starts_with("Tag=latency,")).count()
        };
        assert_eq!(on_disk(), 0);
        log.interval(Duration::ZERO, Duration::from_secs(1), &h, &h);
        assert_eq!(on_disk(), 1, "a killed run would lose this interval");
        log.interval(Duration::from_secs(1), Duration::from_secs(1), &h, &h);
        assert_eq!(on_disk(), 2);
        log.finish().unwrap();
        assert!(d.path().join("latency.hlog").exists() && !d.path().join("latency.hlog.partial").exists());
    }
}
