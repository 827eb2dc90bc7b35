//! The results folder: the only code that writes run outputs.
//!
//! `summary.json` (schema `gauntlet.summary/v1`), `scenario.yaml` (resolved, secrets
//! redacted) with `scenario.sha256`, `latency.hlog` (HdrHistogram interval log, V2
//! compressed) and `series.jsonl` (one line a second: `intervals`), `results.jsonl` and
//! `conformance.yaml`; drawn from those, the reports: `report.html` (`html`, its charts by
//! `svg`), and for CI `junit.xml` and `summary.md` (`ci`) — [`write_reports`], the same for a
//! new run and for `gauntlet report DIR` ([`rerender`]). Every file is written under a
//! temporary name and renamed, so an interrupted run leaves whole files or none.

mod ci;
pub mod compare;
mod conformance;
pub mod evidence;
pub mod html;
mod intervals;
pub mod openmetrics;
pub mod record;
pub mod shard;
mod summary;
mod svg;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod parity;
pub use ci::{junit, markdown};
pub use conformance::render as conformance_report;
pub use intervals::{HISTOGRAMS, HLOG, Intervals, Point, SERIES, read_histograms, read_series, write_histograms};
pub use summary::{
    CheckSummary, ConditionSummary, ErrorCause, EventFacts, EventSummary, Inputs, Latency, OracleInfo, OracleInputs,
    Outcomes, PhaseSummary, ReplaySummary, Requests, SCHEMA, ShardInfo, ShardsSummary, Summary, ThresholdResult,
    UpstreamSummary, WebSocketSummary, histograms, spans, tag, untag,
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
    "series.jsonl",
    "histograms.hlog",
    "results.jsonl",
    "conformance.yaml",
    "junit.xml",
    "summary.md",
    "report.html",
    "manifest.json",
    "manifest.sig",
    "shard.json",
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

/// The reports drawn from a run's data — `report.html`, `junit.xml`, `summary.md` — written
/// into `dir` from `s` and the folder's own `series.jsonl`, `latency.hlog` and
/// `conformance.yaml` (each may be missing: the page says so). What could not be written.
pub fn write_reports(dir: &ResultsDir, s: &Summary) -> Vec<Error> {
    let read = |name: &str| crate::input::read(&dir.path.join(name), DATA_MAX).ok();
    let series = read(SERIES).map(|b| read_series(&String::from_utf8_lossy(&b))).unwrap_or_default();
    let hlog = read(HLOG);
    let certification = read("conformance.yaml")
        .and_then(|b| serde_yaml::from_slice::<serde_yaml::Value>(&b).ok())
        .and_then(|v| v.get("certification").cloned())
        .and_then(|c| serde_yaml::from_value(c).ok());
    let page = html::render(s, &html::Sources { series: &series, hlog: hlog.as_deref(), certification });
    [
        dir.write("report.html", page.as_bytes()).map(drop),
        dir.write("junit.xml", junit(s).as_bytes()).map(drop),
        dir.write("summary.md", markdown(s).as_bytes()).map(drop),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// The largest results file read back (`summary.json`, `series.jsonl`, `latency.hlog`).
pub const DATA_MAX: u64 = 1 << 30;

/// Why a results folder cannot be rendered again.
#[derive(Debug, thiserror::Error)]
pub enum RerenderError {
    /// Its `summary.json` cannot be read.
    #[error("{}: {why}", .path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        why: String,
    },
    /// It is signed: rendering in place would break the signature.
    #[error(
        "{} is signed (manifest.sig): rendering its reports again would change signed files — \
         render into another folder with --out, the signed one stays as it was issued",
        .path.display()
    )]
    Signed {
        /// The folder.
        path: PathBuf,
    },
}

/// Reads `summary.json` of a results folder (a run's, schema [`SCHEMA`]).
pub fn read_summary(dir: &Path) -> Result<Summary, RerenderError> {
    let path = dir.join("summary.json");
    let err = |why: String| RerenderError::Summary { path: path.clone(), why };
    let bytes = crate::input::read(&path, DATA_MAX).map_err(|e| err(format!("cannot read it: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    match v.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(parity::PARITY_SCHEMA) => {
            return Err(err(format!(
                "a parity run's summary ({}): use each protocol's folder (h1/, h2/, …)",
                parity::PARITY_SCHEMA
            )));
        }
        Some(other) => {
            return Err(err(format!("schema {other:?} is not one this gauntlet reads (it reads {SCHEMA})")));
        }
        None => return Err(err("no `schema` field: not a gauntlet summary".into())),
    }
    let s: Summary = serde_json::from_value(v).map_err(|e| err(format!("does not match {SCHEMA}: {e}")))?;
    // A pass is only what a run can give: no check failed or undecided, no reason, not stopped.
    if s.verdict == crate::judge::RunVerdict::Pass {
        let bad = s
            .checks
            .iter()
            .find(|c| matches!(c.result, crate::judge::CheckResult::Fail | crate::judge::CheckResult::Inconclusive));
        let why = match (bad, s.reasons.first(), s.interrupted) {
            (Some(c), _, _) => Some(format!("check {} is {}", c.id, c.result.name())),
            (None, Some(r), _) => Some(format!("it gives a reason to fail ({r})")),
            (None, None, true) => Some("the run was interrupted".to_string()),
            _ => None,
        };
        if let Some(why) = why {
            return Err(err(format!("says pass, but {why}: it was edited or is corrupt")));
        }
    }
    Ok(s)
}

/// `gauntlet report DIR [--out OUT]`: the reports of a results folder drawn again from its
/// data, into `out` (the data files copied there) or in place; the manifest is written anew.
/// The summary, and the files that could not be written.
pub fn rerender(dir: &Path, out: Option<&Path>) -> Result<Rendered, RerenderError> {
    if let Some(p) = read_parity(dir) {
        return rerender_parity(dir, out, &p);
    }
    let (summary, failed) = rerender_run(dir, out, read_summary(dir)?)?;
    Ok(Rendered { verdict: summary.verdict, failed })
}

/// What [`rerender`] did.
#[derive(Debug)]
pub struct Rendered {
    /// The run's verdict, as recorded.
    pub verdict: crate::judge::RunVerdict,
    /// The files that could not be written.
    pub failed: Vec<Error>,
}

/// A parity run's top `summary.json`, when `dir` holds one.
fn read_parity(dir: &Path) -> Option<parity::ParitySummary> {
    let bytes = crate::input::read(&dir.join("summary.json"), DATA_MAX).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if v.get("schema").and_then(|s| s.as_str()) != Some(parity::PARITY_SCHEMA) {
        return None;
    }
    serde_json::from_value(v).ok()
}

/// A parity folder: each protocol's folder drawn again, then the page on top.
fn rerender_parity(dir: &Path, out: Option<&Path>, p: &parity::ParitySummary) -> Result<Rendered, RerenderError> {
    let target = match out {
        Some(o) => o.to_path_buf(),
        None if dir.join(evidence::SIGNATURE).exists() => {
            return Err(RerenderError::Signed { path: dir.to_path_buf() });
        }
        None => dir.to_path_buf(),
    };
    let mut failed = Vec::new();
    for r in &p.protocols {
        // A protocol's folder is one name inside the parity folder, never a path out of it.
        let mut parts = Path::new(&r.results).components();
        if !matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None)) {
            return Err(RerenderError::Summary {
                path: dir.join("summary.json"),
                why: format!("protocol folder {:?} is not a folder name inside the parity folder", r.results),
            });
        }
        let from = dir.join(&r.results);
        if fs::symlink_metadata(&from).map(|m| m.file_type().is_symlink()).unwrap_or(true) {
            return Err(RerenderError::Summary {
                path: dir.join("summary.json"),
                why: format!("protocol folder {:?} is missing or a symbolic link", r.results),
            });
        }
        let sub = out.map(|o| o.join(&r.results));
        failed.extend(rerender_run(&from, sub.as_deref(), read_summary(&from)?)?.1);
    }
    let rd = ResultsDir { path: target.clone() };
    if target != dir {
        if let Ok(bytes) = crate::input::read(&dir.join("summary.json"), DATA_MAX) {
            failed.extend(rd.write("summary.json", &bytes).err());
        }
    }
    failed.extend(rd.write("report.html", html::parity(p).as_bytes()).err());
    failed.extend(evidence::write_manifest(&target).err());
    Ok(Rendered { verdict: p.verdict, failed })
}

fn rerender_run(dir: &Path, out: Option<&Path>, summary: Summary) -> Result<(Summary, Vec<Error>), RerenderError> {
    let target = match out {
        Some(o) => o.to_path_buf(),
        None if dir.join(evidence::SIGNATURE).exists() => {
            return Err(RerenderError::Signed { path: dir.to_path_buf() });
        }
        None => dir.to_path_buf(),
    };
    let rd = ResultsDir { path: target.clone() };
    let mut failed = Vec::new();
    if target != dir {
        if let Err(source) = fs::create_dir_all(&target) {
            return Ok((summary, vec![Error::Write { path: target, source }]));
        }
        for f in [
            "summary.json",
            "scenario.yaml",
            "scenario.sha256",
            HLOG,
            SERIES,
            HISTOGRAMS,
            "results.jsonl",
            "conformance.yaml",
        ] {
            // Regular files only (a FIFO would hang, a link would bring in a file from
            // outside the folder).
            let link = fs::symlink_metadata(dir.join(f)).is_ok_and(|m| m.file_type().is_symlink());
            if let Some(bytes) = (!link).then(|| crate::input::read(&dir.join(f), DATA_MAX).ok()).flatten() {
                if let Err(e) = rd.write(f, &bytes) {
                    failed.push(e);
                }
            }
        }
    }
    failed.extend(write_reports(&rd, &summary));
    if let Err(e) = evidence::write_manifest(&target) {
        failed.push(e);
    }
    Ok((summary, failed))
}

/// The JSON Schemas of gauntlet's machine-readable outputs, generated from the Rust types
/// (`schemars`), by file name under `docs/schema/`: `summary.json` of a run, of a parity
/// run, one line of `series.jsonl`, and `gauntlet compare --json`.
pub fn schemas() -> Vec<(&'static str, String)> {
    fn one<T: schemars::JsonSchema>(id: &str, title: &str) -> String {
        let mut s = schemars::schema_for!(T);
        s.insert("$id".into(), serde_json::Value::String(id.into()));
        s.insert("title".into(), serde_json::Value::String(title.into()));
        serde_json::to_string_pretty(&s).unwrap_or_default() + "\n"
    }
    vec![
        ("summary.v1.json", one::<Summary>(SCHEMA, "summary.json of a gauntlet run")),
        (
            "parity.v1.json",
            one::<parity::ParitySummary>(parity::PARITY_SCHEMA, "summary.json of a gauntlet parity run"),
        ),
        ("series.v1.json", one::<Point>("gauntlet.series/v1", "one line of series.jsonl")),
        ("compare.v1.json", one::<compare::Comparison>(compare::COMPARE_SCHEMA, "gauntlet compare --json")),
    ]
}
