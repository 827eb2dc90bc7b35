//! Scenario files: YAML → a validated [`Scenario`].
//!
//! Owns the YAML crates (nothing else names them). Every problem carries `file:line:col`
//! and, for misspelt names, a suggestion; all problems are collected, not just the first.
//! Does not plan, schedule or touch the network.

mod load;
mod locate;
pub use locate::Pos;
mod model;
mod raw;
mod threshold;
pub(crate) mod units;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub(crate) use raw::RawNetwork;
pub use threshold::{Metric, Op, Stat, Threshold};
pub use validate::{Overrides, is_secret_header};
pub(crate) use validate::{build_impairment, glob_files, hex};

/// One located problem.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file it is in.
    pub file: PathBuf,
    /// Line and column, when known.
    pub pos: Option<Pos>,
    /// What is wrong and what to do.
    pub msg: String,
}

/// Control characters a scenario carries (an ESC sequence that retitles or clears the
/// terminal, CR/LF that forge a line, NUL) are escaped in every message: a scenario is
/// untrusted input.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = crate::input::printable(&self.file.display().to_string()).into_owned();
        let msg = crate::input::printable(&self.msg);
        match self.pos {
            Some(p) => write!(f, "{file}:{}:{}: {msg}", p.line, p.col),
            None => write!(f, "{file}: {msg}"),
        }
    }
}

/// Scenario errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario file itself could not be read.
    #[error("cannot read scenario {}: {source}", crate::input::printable(&.path.display().to_string()))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The scenario is invalid; every problem found.
    #[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Problems, in file order.
        problems: Vec<Problem>,
    },
}

/// A YAML document (such as [`Scenario::resolved_yaml`]) as a JSON value; `Null` when it does
/// not parse.
pub fn yaml_value(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// Reads, merges and validates a scenario and everything it includes.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, Error> {
    let (sources, merged) = load::load(path)?;
    validate::resolve(&sources, merged, overrides).map_err(|problems| Error::Invalid { problems })
}
