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

    /// Flushes and renames the log into place.
    pub fn finish(mut self) -> Result<PathBuf, Error> {
        let err = |source| Error::Write { path: self.dest.clone(), source };
        if let Some(e) = self.failed.take() {
            return Err(err(e));
        }
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(|e| err(e.into_error()))?;
            file.sync_all().map_err(err)?;
        }
        std::fs::rename(tmp_name(&self.dest), &self.dest).map_err(err)?;
        Ok(self.dest.clone())
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
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }
}
