//! Merged raw documents → a typed [`Scenario`], collecting every problem with its place.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use crate::auth::{self, Claim, Corrupt, JwtSpec};
use crate::conformance::{Expect, Severity, Statuses};
use crate::scenario::load::{Merged, Origin, Source};
use crate::scenario::model::*;
use crate::scenario::raw::{RawDoc, RawIdentity, RawNetwork, RawRateLimit, RawToken};
use crate::scenario::{Problem, Threshold, threshold, units};

mod checks;
mod identity;
mod network;
mod output;
mod phases;
mod replay;
mod roles;
mod target;

use checks::*;
pub(crate) use identity::glob_files;
use identity::*;
pub(crate) use network::build_impairment;
use network::*;
use output::*;
use phases::*;
use target::*;

/// CLI overrides, applied to raw fields before validation so there is one validation path.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces `target.url`.
    pub target_url: Option<String>,
    /// Replaces `target.ca` (relative to the working directory).
    pub target_ca: Option<PathBuf>,
    /// Replaces every phase's `duration` (and drops its `requests` bound).
    pub duration: Option<String>,
    /// Replaces every replay phase's `speed` (`2x`, `0.5`).
    pub speed: Option<String>,
}

struct Ctx<'a> {
    sources: &'a [Source],
    problems: Vec<Problem>,
    /// What would not stop a run but likely spoils it (printed by `validate` and `run`).
    warnings: Vec<Problem>,
}

impl Ctx<'_> {
    fn problem_at(&self, o: &Origin, sub: &str, msg: impl Into<String>) -> Problem {
        let path = join(&o.path, sub);
        let pos = self.sources[o.file].locator.value(&path);
        Problem { file: self.sources[o.file].path.clone(), pos, msg: format!("{path}: {}", msg.into()) }
    }

    fn at(&mut self, o: &Origin, sub: &str, msg: impl Into<String>) {
        let p = self.problem_at(o, sub, msg);
        // One problem once, however many checks lead to it (e.g. a profile field every
        // mis-issued variant needs).
        if !self.problems.iter().any(|q| q.file == p.file && q.pos == p.pos && q.msg == p.msg) {
            self.problems.push(p);
        }
    }

    /// A problem with a key itself (an unknown name), placed at the key rather than its value.
    fn at_key(&mut self, o: &Origin, sub: &str, msg: impl Into<String>) {
        let path = join(&o.path, sub);
        let pos = self.sources[o.file].locator.key(&path);
        self.problems.push(Problem {
            file: self.sources[o.file].path.clone(),
            pos,
            msg: format!("{path}: {}", msg.into()),
        });
    }

    fn warn(&mut self, o: &Origin, sub: &str, msg: impl Into<String>) {
        let p = self.problem_at(o, sub, msg);
        self.warnings.push(p);
    }

    fn file(&self, o: &Origin, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() { p.to_path_buf() } else { self.sources[o.file].dir().join(p) }
    }

    fn read(&mut self, o: &Origin, sub: &str, rel: &str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.file(o, rel);
        match crate::input::read(&path, crate::input::PEM) {
            Ok(b) => Some((path, b)),
            Err(e) => {
                let hint =
                    if rel.contains("certs/") { " (run `gauntlet certs init` to create the test PKI)" } else { "" };
                self.at(o, sub, format!("cannot read `{}`: {e}{hint}", path.display()));
                None
            }
        }
    }
}

fn join(base: &str, sub: &str) -> String {
    match (base.is_empty(), sub.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => sub.to_string(),
        _ if sub.starts_with('[') => format!("{base}{sub}"),
        _ => format!("{base}.{sub}"),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Validates everything; returns the scenario or every problem found.
pub(crate) fn resolve(sources: &[Source], mut m: Merged, ov: &Overrides) -> Result<Scenario, Vec<Problem>> {
    apply_overrides(&mut m, ov);
    let mut cx = Ctx { sources, problems: Vec::new(), warnings: Vec::new() };
    let root = Origin { file: 0, path: String::new() };

    match &m.gauntlet {
        None => cx.at(&root, "gauntlet", "missing `gauntlet: 1` (the scenario format version) at the top of the file"),
        Some((1, _)) => {}
        Some((v, o)) => cx.at(o, "", format!("format version {v} is not supported; this gauntlet reads version 1")),
    }
    let name = match &m.name {
        Some((n, o)) => {
            if !valid_name(n) {
                cx.at(o, "", format!("`{}` is not a valid name: use letters, digits, `-`, `_` and `.`", n));
            } else if n.len() > units::MAX_NAME {
                cx.at(
                    o,
                    "",
                    format!(
                        "the name is {} characters long: at most {} (it names the results folder)",
                        n.len(),
                        units::MAX_NAME
                    ),
                );
            }
            n.clone()
        }
        None => {
            cx.at(&root, "name", "missing `name:` (it names the results folder)");
            String::new()
        }
    };
    let profile = resolve_profile(&mut cx, &m);
    let target = resolve_target(&mut cx, &m);
    let mut identities = resolve_identities(&mut cx, &m);
    let derived = roles::derive(&mut cx, &m, &profile);
    let mut warn_at: Vec<Origin> = m.identities.iter().map(|(_, _, o)| o.clone()).collect();
    for (id, o) in derived {
        identities.push(id);
        warn_at.push(o);
    }
    let mut checks = resolve_checks(&mut cx, &m, &profile, target.as_ref(), &identities);
    let mut phases = resolve_phases(&mut cx, &m, &checks);
    replay::resolve_replays(&mut cx, &m, &profile, &identities, &mut checks, &mut phases);
    let thresholds = resolve_thresholds(&mut cx, &m, &phases, &checks);
    let error_budget = match &m.error_budget {
        None => 0.01,
        Some((v, o)) => fraction(v, 1.0).unwrap_or_else(|e| {
            cx.at(
                o,
                "",
                format!("`error_budget`: {e} (the share of requests that may go without an answer, e.g. `1%`)"),
            );
            0.01
        }),
    };
    check_limit_drive(&mut cx, &m, &checks, &phases);
    check_credential_rates(&mut cx, &warn_at, &profile, &identities, &checks, &phases);
    let dependencies = resolve_dependencies(&mut cx, &m);
    let events = resolve_events(&mut cx, &m, &dependencies, &phases);
    let backend = resolve_backend(&mut cx, &m, &phases, &events, target.as_ref());
    let oracle = match &m.oracle {
        None => None,
        Some((o, origin)) => match o.listen.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(listen)) => Some(OracleSpec { listen }),
            Some(Err(_)) => {
                cx.at(origin, "listen", "not an address: write e.g. `127.0.0.1:9000` (port 0 picks a free one)");
                None
            }
            None => {
                cx.at(origin, "", "missing `listen:` (e.g. `127.0.0.1:9000`)");
                None
            }
        },
    };

    let certification = m.certification.as_ref().and_then(|(c, o)| certification(&mut cx, o, c));

    if cx.problems.is_empty() {
        let resolved_yaml = resolved_yaml(sources, &m);
        let mut h = Sha256::new();
        for s in sources {
            h.update(&s.bytes);
        }
        let Some(target) = target else { return Err(cx.problems) };
        Ok(Scenario {
            name,
            certification,
            description: m.description.clone().unwrap_or_default(),
            seed: m.seed.unwrap_or(1),
            target,
            profile,
            oracle,
            identities,
            checks,
            phases,
            thresholds,
            error_budget,
            dependencies,
            events,
            backend,
            sources: sources.iter().map(|s| s.path.clone()).collect(),
            notes: m.overrides.iter().map(|(o, msg)| cx.problem_at(o, "", msg.clone())).collect(),
            warnings: cx.warnings,
            sha256: hex(&h.finalize()),
            resolved_yaml,
        })
    } else {
        Err(cx.problems)
    }
}

/// `certification:` with every field given and non-empty (a report that names no lab, product
/// or edition cannot be accepted by a certification programme).
fn certification(
    cx: &mut Ctx<'_>,
    o: &Origin,
    c: &crate::scenario::raw::RawCertification,
) -> Option<crate::scenario::Certification> {
    let mut field = |sub: &str, v: Option<&String>| -> String {
        match v.map(|s| s.trim()) {
            Some(s) if !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control) => s.to_string(),
            Some(s) if !s.is_empty() => {
                cx.at(o, sub, "at most 200 characters, on one line");
                String::new()
            }
            _ => {
                cx.at(o, sub, format!("missing `{sub}`: a certification report must name it"));
                String::new()
            }
        }
    };
    let p = c.product.clone().unwrap_or_default();
    let st = c.standard.clone().unwrap_or_default();
    let cert = crate::scenario::Certification {
        lab: field("lab", c.lab.as_ref()),
        lab_id: field("lab_id", c.lab_id.as_ref()),
        report_id: field("report_id", c.report_id.as_ref()),
        product: crate::scenario::Product {
            class: field("product.class", p.class.as_ref()),
            vendor: field("product.vendor", p.vendor.as_ref()),
            model: field("product.model", p.model.as_ref()),
            version: field("product.version", p.version.as_ref()),
        },
        standard: crate::scenario::Standard {
            name: field("standard.name", st.name.as_ref()),
            edition: field("standard.edition", st.edition.as_ref()),
        },
    };
    Some(cert)
}

/// How long after an outage event ends its statuses are still accepted, unless it says.
const DEFAULT_GRACE: &str = "2s";

fn apply_overrides(m: &mut Merged, ov: &Overrides) {
    if ov.target_url.is_some() || ov.target_ca.is_some() {
        let (t, _) = m.target.get_or_insert_with(|| (Default::default(), Origin { file: 0, path: "target".into() }));
        if let Some(u) = &ov.target_url {
            t.url = Some(u.clone());
        }
        if let Some(ca) = &ov.target_ca {
            let abs = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
            t.ca = Some(abs.display().to_string());
        }
    }
    if let Some(d) = &ov.duration {
        // Events keep their place in the run: scaled by new length / old length when every
        // phase had a duration.
        let old: Option<Duration> =
            m.phases.iter().map(|(p, _)| p.duration.as_deref().and_then(|s| units::duration(s).ok())).sum();
        let new = units::duration(d).ok().map(|x| x * m.phases.len() as u32);
        if let (Some(old), Some(new)) = (old, new) {
            let f = new.as_secs_f64() / old.as_secs_f64().max(1e-9);
            let scale = |v: &mut Option<String>| {
                if let Some(x) = v.as_deref().and_then(|s| units::duration(s).ok()) {
                    *v = Some(format!("{}ms", (x.as_secs_f64() * f * 1000.0).round() as u64));
                }
            };
            for (e, _) in &mut m.events {
                scale(&mut e.at);
                scale(&mut e.for_);
                if let Some(o) = &mut e.outage {
                    o.grace.get_or_insert_with(|| DEFAULT_GRACE.into());
                    scale(&mut o.grace);
                }
            }
        }
        for (p, _) in &mut m.phases {
            p.duration = Some(d.clone());
            p.requests = None;
        }
    }
    if let Some(sp) = &ov.speed {
        for (p, _) in &mut m.phases {
            if let Some(r) = &mut p.replay {
                r.speed = Some(Value::String(sp.clone()));
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn headers(
    cx: &mut Ctx<'_>,
    o: &Origin,
    sub: &str,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let at = join(sub, k);
        match (HeaderName::from_str(k), HeaderValue::from_str(v)) {
            (Ok(n), Ok(val)) => out.push((n, val)),
            (Err(_), _) => cx.at(o, &at, format!("`{k}` is not a valid header name")),
            (_, Err(_)) => cx.at(o, &at, "the value has characters a header cannot carry"),
        }
    }
    out
}

/// Every name in `names` (at `key[i]`) must be one of [`FEATURES`].
fn known_features(cx: &mut Ctx<'_>, o: &Origin, key: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        if !FEATURES.contains(&name.as_str()) {
            let hint = units::suggest(name, FEATURES.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!(" (known: {})", FEATURES.join(", ")));
            cx.at(o, &format!("{key}[{i}]"), format!("`{name}` is not a feature{hint}"));
        }
    }
}

/// A fraction from `10%` or `0.1` (`what` names it in errors); within `0..=max`.
fn fraction(v: &Value, max: f64) -> Result<f64, String> {
    let f = match v {
        Value::Number(n) => n.as_f64().ok_or("not a number")?,
        Value::String(s) => match s.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a percentage"))? / 100.0,
            None => s.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a fraction or a percentage"))?,
        },
        _ => return Err("write a percentage (`10%`) or a fraction (`0.1`)".into()),
    };
    if f.is_finite() && (0.0..=max).contains(&f) {
        Ok(f)
    } else {
        Err(format!("must be between 0% and {}%", max * 100.0))
    }
}

pub use crate::conformance::is_secret_header;
