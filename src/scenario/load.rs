//! Reading scenario files: size limit, YAML parse with located errors, `include:` (relative
//! to the including file, cycles refused) and the merge of all documents into one.
//!
//! Merge rules: maps (`identities`, `roles`, `dependencies`) are unions; lists (`checks`, `phases`,
//! `thresholds`) are concatenated, included files first; sections (`target`, `profile`) are
//! replaced whole by a later file. A file may override what a file it includes (directly or
//! not) defines — an identity by name, a check by id, a dependency by name, a whole section
//! (`target`, `profile`, `oracle`, `network`) — and every override is reported
//! (`Scenario::notes`); the same name from two files neither of which includes the other is
//! an error.

use std::path::{Path, PathBuf};

use crate::scenario::locate::Locator;
use crate::scenario::raw::{
    RawCertification, RawCheck, RawDependency, RawDoc, RawEvent, RawIdentity, RawNetworkCfg, RawOracle, RawPhase,
    RawProfile, RawTarget,
};
use crate::scenario::{Error, Problem, units};

const MAX_INCLUDE_DEPTH: usize = 16;

/// One file of a scenario.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
    pub(crate) locator: Locator,
}

impl Source {
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Where an item came from: source index and its path inside that file.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) file: usize,
    pub(crate) path: String,
}

/// All documents merged, each item with its origin.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub(crate) gauntlet: Option<(u32, Origin)>,
    pub(crate) name: Option<(String, Origin)>,
    pub(crate) description: Option<String>,
    pub(crate) seed: Option<u64>,
    pub(crate) target: Option<(RawTarget, Origin)>,
    pub(crate) profile: Option<(RawProfile, Origin)>,
    pub(crate) oracle: Option<(RawOracle, Origin)>,
    pub(crate) identities: Vec<(String, RawIdentity, Origin)>,
    /// Roles the packs name (`roles: {NAME: description}`), in file order.
    pub(crate) roles: Vec<(String, String, Origin)>,
    pub(crate) checks: Vec<(RawCheck, Origin)>,
    pub(crate) phases: Vec<(RawPhase, Origin)>,
    pub(crate) thresholds: Vec<(String, Origin)>,
    pub(crate) error_budget: Option<(serde_yaml::Value, Origin)>,
    pub(crate) dependencies: Vec<(String, RawDependency, Origin)>,
    pub(crate) events: Vec<(RawEvent, Origin)>,
    pub(crate) network: Option<(RawNetworkCfg, Origin)>,
    pub(crate) certification: Option<(RawCertification, Origin)>,
    /// Overrides of an included file's identity or check: where, and what was replaced.
    pub(crate) overrides: Vec<(Origin, String)>,
}

/// Reads `main` and everything it includes.
pub(crate) fn load(main: &Path) -> Result<(Vec<Source>, Merged), Error> {
    let bytes = read(main).map_err(|source| Error::Read { path: main.to_path_buf(), source })?;
    let mut st = State::default();
    st.visit(main.to_path_buf(), bytes, None);
    if st.problems.is_empty() { Ok((st.sources, st.merged)) } else { Err(Error::Invalid { problems: st.problems }) }
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::input::read(path, crate::input::SCENARIO)
}

/// Whether `file` includes `other`, directly or through other files (`parents`: the file that
/// included each source).
fn includes(parents: &[Option<usize>], file: usize, other: usize) -> bool {
    let mut cur = parents.get(other).copied().flatten();
    while let Some(p) = cur {
        if p == file {
            return true;
        }
        cur = parents.get(p).copied().flatten();
    }
    false
}

#[derive(Default)]
struct State {
    sources: Vec<Source>,
    /// The file that included each source (`None` for the main file).
    parents: Vec<Option<usize>>,
    merged: Merged,
    problems: Vec<Problem>,
    stack: Vec<PathBuf>,
}

impl State {
    fn problem(&mut self, file: usize, path: &str, msg: String) {
        let pos = self.sources[file].locator.key(path);
        self.problems.push(Problem { file: self.sources[file].path.clone(), pos, msg });
    }

    /// Loads one file: its includes first, then its own items.
    fn visit(&mut self, path: PathBuf, bytes: Vec<u8>, parent: Option<usize>) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // A UTF-8 byte-order mark (editors on Windows write one) is not content: without
        // this, the YAML parser sees a second document. Positions are as an editor shows them.
        let text = text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text);
        let file = self.sources.len();
        self.sources.push(Source { path: path.clone(), bytes, locator: Locator::new(&text) });
        self.parents.push(parent);
        let dups = self.sources[file].locator.duplicates();
        if !dups.is_empty() {
            for (at, pos, first) in dups {
                let key = at.rsplit('.').next().unwrap_or(at);
                let msg = format!(
                    "{at}: the key `{key}` is given twice in one mapping (first at {}:{}); YAML does not \
                     allow it and one would silently replace the other: keep one",
                    first.line, first.col
                );
                self.problems.push(Problem { file: path.clone(), pos: Some(*pos), msg });
            }
            return;
        }
        if matches!(serde_yaml::from_str::<serde_yaml::Value>(&text), Ok(serde_yaml::Value::Null)) {
            self.problems.push(Problem { file: path, pos: None, msg: "the file is empty (no YAML content)".into() });
            return;
        }
        let doc: RawDoc = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                self.problems.push(parse_problem(&path, &e, &text));
                return;
            }
        };
        self.stack.push(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()));
        for (i, inc) in doc.include.iter().enumerate() {
            let at = format!("include[{i}]");
            let inc_path = self.sources[file].dir().join(inc);
            let canon = std::fs::canonicalize(&inc_path).unwrap_or_else(|_| inc_path.clone());
            if self.stack.contains(&canon) {
                self.problem(file, &at, format!("include `{inc}` forms a cycle: a file cannot include itself"));
                continue;
            }
            if self.stack.len() >= MAX_INCLUDE_DEPTH {
                self.problem(file, &at, format!("include `{inc}`: includes nest deeper than {MAX_INCLUDE_DEPTH}"));
                continue;
            }
            match read(&inc_path) {
                Ok(b) => self.visit(inc_path, b, Some(file)),
                Err(e) => self.problem(
                    file,
                    &at,
                    format!(
                        "{at}: cannot read included file `{}`: {e} (paths are relative to this file)",
                        inc_path.display()
                    ),
                ),
            }
        }
        self.stack.pop();
        self.merge(file, doc);
    }

    fn merge(&mut self, file: usize, doc: RawDoc) {
        let origin = |path: &str| Origin { file, path: path.to_string() };
        let m = &mut self.merged;
        if let Some(v) = doc.gauntlet {
            m.gauntlet = Some((v, origin("gauntlet")));
        }
        if let Some(v) = doc.name {
            m.name = Some((v, origin("name")));
        }
        if doc.description.is_some() {
            m.description = doc.description;
        }
        if doc.seed.is_some() {
            m.seed = doc.seed;
        }
        let replaced = |sources: &[Source], what: &str, o: &Origin| -> (Origin, String) {
            let where_ = sources[o.file].path.display().to_string();
            (origin(what), format!("this `{what}` replaces the one of {where_}"))
        };
        if let Some(t) = doc.target {
            if let Some((_, o)) = &m.target {
                m.overrides.push(replaced(&self.sources, "target", o));
            }
            m.target = Some((t, origin("target")));
        }
        if let Some(p) = doc.profile {
            if let Some((old, o)) = &m.profile {
                let where_ = self.sources[o.file].path.display().to_string();
                let name = old.name.as_deref().unwrap_or("unnamed");
                m.overrides.push((origin("profile"), format!("this profile replaces profile `{name}` of {where_}")));
            }
            m.profile = Some((p, origin("profile")));
        }
        for (name, about) in doc.roles {
            let at = format!("roles.{name}");
            match m.roles.iter().position(|(n, _, _)| *n == name) {
                Some(slot) => {
                    if m.roles[slot].1 != about {
                        let where_ = self.sources[m.roles[slot].2.file].path.display().to_string();
                        m.overrides
                            .push((origin(&at), format!("role `{name}` redescribes the one declared in {where_}")));
                    }
                    m.roles[slot] = (name, about, origin(&at));
                }
                None => m.roles.push((name, about, origin(&at))),
            }
        }
        if let Some(o) = doc.oracle {
            if let Some((_, prev)) = &m.oracle {
                m.overrides.push(replaced(&self.sources, "oracle", prev));
            }
            m.oracle = Some((o, origin("oracle")));
        }
        let mut dups = Vec::new();
        for (name, ident) in doc.identities {
            let at = format!("identities.{name}");
            let Some(slot) = m.identities.iter().position(|(n, _, _)| *n == name) else {
                m.identities.push((name, ident, origin(&at)));
                continue;
            };
            let first = m.identities[slot].2.file;
            let where_ = self.sources[first].path.display().to_string();
            if includes(&self.parents, file, first) {
                m.overrides.push((origin(&at), format!("identity `{name}` overrides the one defined in {where_}")));
                m.identities[slot] = (name, ident, origin(&at));
            } else {
                dups.push((at, format!("identity `{name}` is already defined in {where_}")));
            }
        }
        for (i, c) in doc.checks.into_iter().enumerate() {
            let at = format!("checks[{i}]");
            let same = c.id.as_ref().and_then(|id| {
                m.checks.iter().position(|(x, o)| x.id.as_ref() == Some(id) && includes(&self.parents, file, o.file))
            });
            match same {
                Some(slot) => {
                    let id = c.id.clone().unwrap_or_default();
                    let where_ = self.sources[m.checks[slot].1.file].path.display().to_string();
                    m.overrides.push((origin(&at), format!("check `{id}` overrides the one defined in {where_}")));
                    m.checks[slot] = (c, origin(&at));
                }
                None => m.checks.push((c, origin(&at))),
            }
        }
        for (i, p) in doc.phases.into_iter().enumerate() {
            m.phases.push((p, origin(&format!("phases[{i}]"))));
        }
        for (i, t) in doc.thresholds.into_iter().enumerate() {
            m.thresholds.push((t, origin(&format!("thresholds[{i}]"))));
        }
        if let Some(b) = doc.error_budget {
            m.error_budget = Some((b, origin("error_budget")));
        }
        for (name, d) in doc.dependencies {
            let at = format!("dependencies.{name}");
            match m.dependencies.iter_mut().find(|(n, _, _)| *n == name) {
                // A later file (the including one) overrides a dependency by name.
                Some(slot) => {
                    let where_ = self.sources[slot.2.file].path.display().to_string();
                    m.overrides
                        .push((origin(&at), format!("dependency `{name}` overrides the one defined in {where_}")));
                    *slot = (name, d, origin(&at));
                }
                None => m.dependencies.push((name, d, origin(&at))),
            }
        }
        if let Some(n) = doc.network {
            if let Some((_, o)) = &m.network {
                m.overrides.push(replaced(&self.sources, "network", o));
            }
            m.network = Some((n, origin("network")));
        }
        if let Some(c) = doc.certification {
            if let Some((_, o)) = &m.certification {
                m.overrides.push(replaced(&self.sources, "certification", o));
            }
            m.certification = Some((c, origin("certification")));
        }
        for (i, e) in doc.events.into_iter().enumerate() {
            m.events.push((e, origin(&format!("events[{i}]"))));
        }
        for (at, msg) in dups {
            self.problem(file, &at, msg);
        }
    }
}

/// Turns a serde error into a located problem, with a suggestion for a misspelt key.
fn parse_problem(path: &Path, e: &serde_yaml::Error, text: &str) -> Problem {
    let mut pos = e.location().map(|l| crate::scenario::locate::Pos { line: l.line(), col: l.column() });
    let mut msg = e.to_string();
    if msg.contains("more than one document") {
        // serde gives no place: the second document starts where the parser says.
        pos = pos.or_else(|| crate::scenario::locate::second_document(text));
        msg = "a second YAML document starts here (a `---` line, or a key back at column 1 after \
               a stray indented line?): a scenario file is one document"
            .into();
    }
    let pos = pos.or_else(|| crate::scenario::locate::first_error(text));
    // serde_yaml appends " at line L column C"; the position is already in front.
    if let Some(cut) = msg.find(" at line ") {
        msg.truncate(cut);
    }
    if let Some(hint) = unknown_field_hint(&msg) {
        msg.push_str(&hint);
    }
    Problem { file: path.to_path_buf(), pos, msg }
}

/// For "unknown field `x`, expected one of `a`, `b`": " (did you mean `a`?)".
fn unknown_field_hint(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    let (word, tail) = rest.split_once('`')?;
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    units::suggest(word, expected).map(|s| format!(" (did you mean `{s}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_hint_picks_the_closest_key() {
        let m = "phases[0]: unknown field `durration`, expected one of `name`, `duration`, `requests`";
        assert_eq!(unknown_field_hint(m).as_deref(), Some(" (did you mean `duration`?)"));
        assert_eq!(unknown_field_hint("something else"), None);
    }
}
