//! The results folder: the only code that writes run outputs.
//!
//! `summary.json` (schema `gauntlet.summary/v1`), `scenario.yaml` (resolved, secrets
//! redacted) with `scenario.sha256`, `latency.hlog` (HdrHistogram interval log, V2
//! compressed), and for CI `junit.xml` and `summary.md` (`ci`). Every file is written under a temporary name and renamed, so an
//! interrupted run leaves whole files or none.

mod ci;
mod conformance;
pub mod evidence;
mod hlog;
mod summary;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod parity;
pub use ci::{junit, markdown};
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
    /// `--out` names a folder that already holds files.
    #[error(
        "{} is not empty (results of an earlier run?): refusing to mix two runs' files — choose \
         another --out, empty it, or pass --force to replace gauntlet's files in it",
        .path.display()
    )]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
}

/// Every file a run writes into its folder (a parity run: into one subfolder per protocol, and
/// `summary.json` on top).
pub const FILES: &[&str] = &[
    "summary.json",
    "scenario.yaml",
    "scenario.sha256",
    "latency.hlog",
    "results.jsonl",
    "conformance.yaml",
    "junit.xml",
    "summary.md",
    "manifest.json",
    "manifest.sig",
];

/// Subfolders of a parity run.
const PARITY_DIRS: &[&str] = &["h1", "h2", "h3", "auto"];

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

    /// Makes `out` (a folder the user named) ready for a run: absent or empty is fine; a
    /// folder with files in it is refused unless `force`, which removes the files a run writes
    /// (and their `.partial` leftovers), nothing else.
    pub fn claim(out: &Path, force: bool) -> Result<(), Error> {
        let err = |source| Error::Write { path: out.to_path_buf(), source };
        let entries = match fs::read_dir(out) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        if entries.count() == 0 {
            return Ok(());
        }
        if !force {
            return Err(Error::NotEmpty { path: out.to_path_buf() });
        }
        let dirs = std::iter::once(out.to_path_buf()).chain(PARITY_DIRS.iter().map(|d| out.join(d)));
        for dir in dirs {
            for f in FILES {
                let file = dir.join(f);
                for p in [tmp_name(&file), file] {
                    match fs::remove_file(&p) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Where [`ResultsDir::create`] would put the folder, without creating it: `out`, or a
    /// new `results/<stamp>-<name>` (with `-2`, `-3`… when two runs start in one second).
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
                let base = PathBuf::from("results").join(format!("{stamp}-{name}"));
                (1..)
                    .map(|n| if n == 1 { base.clone() } else { PathBuf::from(format!("{}-{n}", base.display())) })
                    .find(|p| !p.exists())
                    .unwrap_or(base)
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

/// Writes `dest` through a temporary file, fsync and rename; on any failure (a full disk, a
/// folder gone read-only) the temporary file is removed, never left half-written.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = tmp_name(dest);
    let r = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, dest));
    r.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::Write { path: dest.to_path_buf(), source }
    })
}

pub(crate) fn tmp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dest.with_file_name(name)
}
