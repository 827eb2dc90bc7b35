//! The results folder: the only code that writes run outputs.
//!
//! `summary.json` (schema `gauntlet.summary/v1`), `scenario.yaml` (resolved, secrets
//! redacted) with `scenario.sha256`, and `latency.hlog` (HdrHistogram interval log, V2
//! compressed). Every file is written under a temporary name and renamed, so an
//! interrupted run leaves whole files or none.

mod conformance;
mod hlog;
mod summary;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod parity;
pub use conformance::render as conformance_report;
pub use hlog::Hlog;
pub use summary::{
    CheckSummary, ConditionSummary, ErrorCause, EventSummary, Inputs, Latency, OracleInfo, OracleInputs, Outcomes,
    PhaseSummary, ReplaySummary, Requests, Summary, ThresholdResult, UpstreamSummary, WebSocketSummary, spans,
};

/// Report errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// Path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A results folder being filled.
#[derive(Debug)]
pub struct ResultsDir {
    /// The folder.
    pub path: PathBuf,
}

impl ResultsDir {
    /// Creates `out`, or `results/<YYYYmmdd-HHMMSS>-<name>/` when `out` is `None`.
    pub fn create(out: Option<&Path>, name: &str) -> Result<Self, Error> {
        let path = Self::path_for(out, name);
        fs::create_dir_all(&path).map_err(|source| Error::Write { path: path.clone(), source })?;
        Ok(ResultsDir { path })
    }

    /// Where [`ResultsDir::create`] would put the folder, without creating it.
    pub fn path_for(out: Option<&Path>, name: &str) -> PathBuf {
        match out {
            Some(p) => p.to_path_buf(),
            None => {
                let ts = time::OffsetDateTime::now_utc();
                let stamp = format!(
                    "{:04}{:02}{:02}-{:02}{:02}{:02}",
                    ts.year(),
                    u8::from(ts.month()),
                    ts.day(),
                    ts.hour(),
                    ts.minute(),
                    ts.second()
                );
                PathBuf::from("results").join(format!("{stamp}-{name}"))
            }
        }
    }

    /// Writes `name` atomically (temporary file, fsync, rename).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
        let dest = self.path.join(name);
        write_atomic(&dest, bytes)?;
        Ok(dest)
    }
}

pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = tmp_name(dest);
    let err = |source| Error::Write { path: dest.to_path_buf(), source };
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(err)?;
    fs::rename(&tmp, dest).map_err(err)
}

pub(crate) fn tmp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dest.with_file_name(name)
}
