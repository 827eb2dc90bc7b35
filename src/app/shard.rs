//! Many generators, one run: the shard options of `run` (`--shard I/N`, `--shards N` with
//! `JOB_COMPLETION_INDEX`, `--start-at`, `--run-id`), `gauntlet merge` (the shards' records
//! added, the standalone oracle's findings joined, judged and reported once, by the same
//! calls a run on one machine makes) and `gauntlet k8s job` (the manifest).

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::Digest as _;

use super::run::{ShardRun, write_results};
use super::{Exit, command_line, load, out};
use crate::cli::{MergeArgs, RunArgs};
use crate::plan::Shard;
use crate::report::record::{MAX_SHARDS, OracleRecord, Record};
use crate::report::shard::{Bundle, Seconds};
use crate::report::{self, Intervals, ResultsDir, ShardInfo, ShardsSummary};
use crate::scenario::{Overrides, Scenario};

/// How far ahead `--start-at` may be.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The oracle's findings file.
pub(super) const ORACLE_FILE: &str = "oracle.json";
/// Its schema.
pub(super) const ORACLE_SCHEMA: &str = "gauntlet.oracle/v1";

/// The standalone oracle's findings for one run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct OracleFile {
    /// Always [`ORACLE_SCHEMA`].
    pub schema: String,
    /// The run whose tags it counted.
    pub run_id: String,
    /// The digest of the checks, phases and conditions it attributed arrivals to
    /// ([`oracle_digest`]: no durations, which a tag does not carry).
    pub plan_sha256: String,
    /// When it began and stopped listening (UNIX ns): a merge counts its findings only for
    /// a run inside that window.
    pub listening_from_unix_ns: u64,
    pub listening_until_unix_ns: u64,
    /// What arrived.
    pub findings: OracleRecord,
}

/// A run id as tags carry it: letters, digits and `-`, 1 to 32.
pub(super) fn valid_run_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `I/N`.
fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("--shard {text}: expected I/N with 0 ≤ I < N ≤ {MAX_SHARDS}, e.g. `--shard 0/4`");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) = (i.trim().parse::<u32>().map_err(|_| bad())?, n.trim().parse::<u32>().map_err(|_| bad())?);
    if count == 0 || count > MAX_SHARDS || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// The shard options of `run`, or `None` for a run on one machine.
pub(super) fn shard_run(a: &RunArgs, s: &Scenario) -> Result<Option<ShardRun>, String> {
    let shard = match (&a.shard, a.shards) {
        (Some(t), _) => parse_shard(t)?,
        (None, Some(n)) => {
            let idx = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                format!("--shards {n}: JOB_COMPLETION_INDEX is not set (it is in a Kubernetes Indexed Job); use --shard I/{n}")
            })?;
            parse_shard(&format!("{}/{n}", idx.trim())).map_err(|e| format!("{e} (from JOB_COMPLETION_INDEX={idx})"))?
        }
        (None, None) => {
            if a.start_at.is_some() || a.run_id.is_some() || a.result_line {
                return Err(
                    "--start-at, --run-id and --result-line are for a shard: add --shard I/N (or --shards N)".into()
                );
            }
            return Ok(None);
        }
    };
    closed_users_cover(s, shard.count)?;
    let start_at = match &a.start_at {
        Some(t) => {
            let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("--start-at {t}: not an RFC 3339 instant ({e}), e.g. 2026-12-02T10:00:00Z"))?;
            let at = SystemTime::from(at);
            if at.duration_since(SystemTime::now()).is_ok_and(|d| d > MAX_WAIT) {
                return Err(format!("--start-at {t}: more than 24 hours from now"));
            }
            Some((at, t.clone()))
        }
        None => None,
    };
    let max_late =
        humantime::parse_duration(&a.max_late).map_err(|e| format!("--max-late {}: {e} (e.g. `2s`)", a.max_late))?;
    let run_id = match (&a.run_id, &start_at) {
        (Some(id), _) if valid_run_id(id) => id.clone(),
        (Some(id), _) => return Err(format!("--run-id {id}: letters, digits and `-` only, at most 32")),
        // Every shard derives the same id from what they all share.
        (None, Some((at, _))) => {
            let ns = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let d = sha2::Sha256::digest(format!("{}\n{ns}\n{}", s.sha256, shard.count));
            d.iter().take(4).map(|b| format!("{b:02x}")).collect()
        }
        (None, None) => {
            return Err(
                "a shard needs --start-at (every shard starts together and derives the run id from it) or --run-id"
                    .into(),
            );
        }
    };
    Ok(Some(ShardRun { shard, run_id, start_at, max_late, result_line: a.result_line }))
}

/// Every closed-loop phase has a user for each shard: a shard without one would own part
/// of the phase's requests and send none of them.
fn closed_users_cover(s: &Scenario, shards: u32) -> Result<(), String> {
    let plan = crate::plan::build(s);
    match plan.phases.iter().find(|p| p.users().is_some_and(|u| u < shards)) {
        Some(p) => Err(format!(
            "phase `{}` has {} user(s), fewer than the {shards} shards: each shard runs 1/{shards} of the users, \
             so some would run none — use at most {} shards, or more users",
            p.name,
            p.users().unwrap_or(0),
            p.users().unwrap_or(0).max(1)
        )),
        None => Ok(()),
    }
}

/// `gauntlet merge`.
pub(super) fn merge(a: &MergeArgs) -> Exit {
    match merged(a) {
        Ok(exit) => exit,
        Err((exit, msg)) => {
            errln!("gauntlet merge: {msg}");
            exit
        }
    }
}

fn usage(msg: impl Into<String>) -> (Exit, String) {
    (Exit::Usage, msg.into())
}

/// A fingerprint of what a scenario sends and how it is judged — phases, conditions, checks —
/// so a merge under another `--duration` (or an edited file) is refused.
pub(super) fn plan_digest(s: &Scenario, plan: &crate::plan::Plan) -> String {
    let checks: Vec<(&str, String)> = s.checks.iter().map(|c| (c.id.as_str(), format!("{:?}", c.expect))).collect();
    let text = format!("{:?}\n{:?}\n{:?}", plan.phases, plan.conditions, checks);
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the oracle attributes an arrival to — checks and their expectations, phase names,
/// network conditions — so findings from another scenario are refused, whatever
/// `--duration` the shards ran under.
pub(super) fn oracle_digest(s: &Scenario, plan: &crate::plan::Plan) -> String {
    let checks: Vec<(&str, String)> = s.checks.iter().map(|c| (c.id.as_str(), format!("{:?}", c.expect))).collect();
    let phases: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    let text = format!("{phases:?}\n{:?}\n{checks:?}", plan.conditions);
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn merged(a: &MergeArgs) -> Result<Exit, (Exit, String)> {
    let ov = Overrides { target_url: a.target_url.clone(), duration: a.duration.clone(), ..Default::default() };
    let s = load(&a.scenario, &ov).map_err(|e| (e, format!("the scenario {} cannot be used", a.scenario.display())))?;
    let plan = crate::plan::build(&s);
    let dims = report::record::dims(&s, &plan);
    // Every result from every source.
    let mut bundles: Vec<Bundle> = Vec::new();
    for src in &a.sources {
        let got = if src.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().take(8 << 30).read_to_string(&mut text).map_err(|e| usage(format!("stdin: {e}")))?;
            report::shard::parse_lines(&text, "stdin")
        } else {
            report::shard::load(src)
        };
        bundles.extend(got.map_err(usage)?);
    }
    // One run, one scenario, one split.
    let first = &bundles[0].file;
    let (run_id, count) = (first.run_id().to_string(), first.shards);
    let digest = plan_digest(&s, &plan);
    for b in &bundles {
        let f = &b.file;
        if f.schema != report::record::SHARD_SCHEMA {
            return Err(usage(format!(
                "{}: schema {} — this gauntlet reads {}",
                b.source,
                f.schema,
                report::record::SHARD_SCHEMA
            )));
        }
        if f.run_id() != run_id {
            return Err(usage(format!(
                "{} is shard {}/{} of run {}, {} of run {run_id}: merge one run at a time",
                b.source,
                f.shard,
                f.shards,
                f.run_id(),
                bundles[0].source
            )));
        }
        if f.shards != count {
            return Err(usage(format!(
                "{}: run {run_id} split in {} shards there, {count} in {}",
                b.source, f.shards, bundles[0].source
            )));
        }
        if f.scenario_sha256 != s.sha256 {
            return Err(usage(format!(
                "{}: it ran a scenario with digest {}, {} has {}: merge with the scenario the shards ran",
                b.source,
                f.scenario_sha256,
                a.scenario.display(),
                s.sha256
            )));
        }
        if f.plan_sha256 != digest {
            return Err(usage(format!(
                "{}: its schedule differs from the scenario's here — did the shards run with --duration or \
                 --target-url? pass the same to merge",
                b.source
            )));
        }
    }
    // One gateway, one protocol.
    let here = crate::conformance::redact_userinfo(&s.target.url).into_owned();
    for b in &bundles {
        let f = &b.file;
        if f.target != here {
            return Err(usage(format!(
                "{}: it sent to {}, the scenario here to {here}: pass the shards' --target-url to merge",
                b.source, f.target
            )));
        }
        if f.protocol() != first.protocol() {
            return Err(usage(format!(
                "{}: it ran over {}, {} over {}: merge one protocol's run at a time",
                b.source,
                f.protocol(),
                bundles[0].source,
                first.protocol()
            )));
        }
    }
    // A re-run index replaces the earlier attempt: the latest start of each index counts.
    bundles.sort_by_key(|b| (b.file.shard, b.file.started_at()));
    let mut by_index: Vec<Bundle> = Vec::new();
    for b in bundles {
        if let Some(last) = by_index.last_mut().filter(|l| l.file.shard == b.file.shard) {
            errln!(
                "merge: shard {} is in {} and {}; the later one ({}) is used",
                b.file.shard,
                last.source,
                b.source,
                b.source
            );
            *last = b;
        } else {
            by_index.push(b);
        }
    }
    let present: Vec<u32> = by_index.iter().map(|b| b.file.shard).collect();
    let missing: Vec<u32> = (0..count).filter(|i| !present.contains(i)).collect();
    // The records, added.
    let base = by_index.iter().map(|b| b.file.started_at()).min().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut merged = Record::empty(dims, plan.events.len());
    let mut seconds = Seconds::default();
    let mut infos = Vec::new();
    let mut shard_sent = 0u64;
    let mut end = base;
    for b in &by_index {
        let r = b.file.record(dims, plan.events.len()).map_err(|e| usage(format!("{}: {e}", b.source)))?;
        if r.oracle.is_some() {
            errln!("merge: {} carries an in-process oracle's findings; they are joined too", b.source);
        }
        end = end.max(b.file.started_at().checked_add(r.run_span).unwrap_or(end));
        merged.add(&r, b.file.started_at().duration_since(base).unwrap_or_default());
        seconds.add(b).map_err(usage)?;
        if merged.protocol.is_empty() {
            merged.protocol = r.protocol.clone();
        }
        shard_sent = shard_sent.saturating_add(b.file.sent());
        infos.push(ShardInfo {
            index: b.file.shard,
            started_at: rfc3339(b.file.started_at()),
            lateness_ms: b.file.lateness_ms,
            sent: b.file.sent(),
            interrupted: r.interrupted,
        });
    }
    // Rate-limit windows count from each shard's start: shards far apart blur them.
    let last = by_index.iter().map(|b| b.file.started_at()).max().unwrap_or(base);
    let spread = last.duration_since(base).unwrap_or_default();
    if spread > Duration::from_millis(100)
        && s.checks.iter().any(|c| matches!(c.expect, crate::conformance::Expect::Limit(_)))
    {
        errln!(
            "merge: the shards started {:.1}s apart; the rate-limit windows of `limit` checks are counted from each \
             shard's start, so they are that much off (start shards with --start-at)",
            spread.as_secs_f64()
        );
    }
    merged.run_id = run_id.clone();
    merged.started_at = base;
    merged.command = command_line();
    // The oracle's findings of this run.
    let mut incomplete = Vec::new();
    let oracle_digest = oracle_digest(&s, &plan);
    for path in &a.oracle {
        let bytes =
            crate::input::read(path, 1 << 30).map_err(|e| usage(format!("--oracle {}: {e}", path.display())))?;
        let f: OracleFile = serde_json::from_slice(&bytes)
            .map_err(|e| usage(format!("--oracle {}: not an oracle findings file ({e})", path.display())))?;
        if f.schema != ORACLE_SCHEMA {
            return Err(usage(format!("--oracle {}: schema {}, expected {ORACLE_SCHEMA}", path.display(), f.schema)));
        }
        if f.run_id != run_id {
            return Err(usage(format!(
                "--oracle {}: it counted run {}, the shards are run {run_id} (start it with --run-id {run_id})",
                path.display(),
                f.run_id
            )));
        }
        if f.plan_sha256 != oracle_digest {
            return Err(usage(format!(
                "--oracle {}: it attributed arrivals to other checks or phases (another scenario?)",
                path.display()
            )));
        }
        // Arrivals before it listened or after it stopped are not in its findings.
        let (from, until) = (f.listening_from_unix_ns, f.listening_until_unix_ns);
        if from > unix_ns(base) || until < unix_ns(end) {
            incomplete.push(format!(
                "the oracle of {} listened from {} to {}, the run went from {} to {}: arrivals outside its window \
                 are not counted (start the oracle before the shards, stop it after they end)",
                path.display(),
                rfc3339_ns(from),
                rfc3339_ns(until),
                rfc3339(base),
                rfc3339(end)
            ));
        }
        merged.oracle.get_or_insert_with(OracleRecord::default).add(&f.findings);
    }
    if s.oracle.is_some() && a.oracle.is_empty() && merged.oracle.is_none() {
        incomplete.push(
            "the scenario has an oracle upstream and no --oracle findings were given: a leak only the oracle sees \
             (a request refused to the client but forwarded) cannot be ruled out — run `gauntlet oracle --run-id \
             RUN --out DIR` upstream and pass --oracle DIR/oracle.json"
                .to_string(),
        );
    }
    merged.shards = Some(ShardsSummary { count, merged: infos, missing: missing.clone(), incomplete });
    // Self-check: nothing lost or counted twice on the way.
    let total = merged.totals();
    if total.sent != shard_sent {
        return Err((
            Exit::Runtime,
            format!("self-check failed: merged {} requests, the shards sent {shard_sent}", total.sent),
        ));
    }
    if seconds.latency_samples() != 0 && seconds.latency_samples() != total.completed {
        errln!(
            "merge: the per-second log holds {} latency samples and the counters {} answers (a shard's log was cut short?)",
            seconds.latency_samples(),
            total.completed
        );
    }
    let concluded = report::record::conclude(&s, &plan, &merged);
    if let Some(out) = &a.out {
        ResultsDir::claim(out, a.force).map_err(|e| usage(e.to_string()))?;
    }
    let dir = ResultsDir::create(a.out.as_deref(), &s.name).map_err(|e| (Exit::Runtime, e.to_string()))?;
    let mut hlog = Intervals::create(&dir.path, base).map_err(|e| (Exit::Runtime, e.to_string()))?;
    seconds.write(base, &mut hlog);
    let failed = write_results(&dir, &s, &concluded, hlog, base);
    let summary = &concluded.summary;
    out(&summary.text());
    out(&format!(
        "merged {} of {count} shard(s) of run {run_id}: {} requests{}\n",
        count as usize - missing.len(),
        total.sent,
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                " — PARTIAL, missing shard(s) {}",
                missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            )
        }
    ));
    match failed.is_empty() {
        true => out(&format!("results: {}\n", dir.path.display())),
        false => {
            out(&format!("results: {} is INCOMPLETE ({} file(s) not written)\n", dir.path.display(), failed.len()))
        }
    }
    for e in &failed {
        errln!("gauntlet: {e}");
    }
    if !failed.is_empty() {
        return Ok(Exit::Runtime);
    }
    Ok(if summary.verdict == crate::judge::RunVerdict::Pass { Exit::Pass } else { Exit::Fail })
}

fn rfc3339(t: SystemTime) -> String {
    rfc3339_ns(unix_ns(t))
}

/// An instant as RFC 3339 (every u64 of nanoseconds is inside `time`'s range).
fn rfc3339_ns(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ns} ns after 1970"))
}

/// Writes the standalone oracle's findings for `run_id` into `dir/oracle.json`.
/// `listening`: when it began and stopped listening.
pub(super) fn write_oracle(
    dir: &Path,
    run_id: &str,
    s: &Scenario,
    listening: (SystemTime, SystemTime),
    findings: OracleRecord,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plan = crate::plan::build(s);
    let f = OracleFile {
        schema: ORACLE_SCHEMA.into(),
        run_id: run_id.into(),
        plan_sha256: oracle_digest(s, &plan),
        listening_from_unix_ns: unix_ns(listening.0),
        listening_until_unix_ns: unix_ns(listening.1),
        findings,
    };
    let json = serde_json::to_vec_pretty(&f).unwrap_or_default();
    report::write_atomic(&dir.join(ORACLE_FILE), &json).map_err(|e| e.to_string())
}

/// `gauntlet k8s job`: prints the manifest (nothing is applied).
pub(super) fn k8s_job(a: &crate::cli::K8sJobArgs) -> Exit {
    match k8s_manifest(a) {
        Ok(m) => {
            out(&m);
            Exit::Pass
        }
        Err((exit, msg)) => {
            errln!("gauntlet k8s job: {msg}");
            exit
        }
    }
}

fn k8s_manifest(a: &crate::cli::K8sJobArgs) -> Result<String, (Exit, String)> {
    if a.shards == 0 || a.shards > MAX_SHARDS {
        return Err(usage(format!("--shards {}: between 1 and {MAX_SHARDS}", a.shards)));
    }
    let start_in = humantime::parse_duration(&a.start_in)
        .map_err(|e| usage(format!("--start-in {}: {e} (e.g. `60s`)", a.start_in)))?;
    if start_in > MAX_WAIT {
        return Err(usage(format!("--start-in {}: at most 24h", a.start_in)));
    }
    let s = load(&a.scenario, &Overrides::default())
        .map_err(|e| (e, format!("the scenario {} cannot be used", a.scenario.display())))?;
    if let Some(p) = s.phases.iter().find(|p| p.replay.is_some()) {
        return Err(usage(format!("phase `{}` replays a capture, and a replay cannot be split over shards", p.name)));
    }
    if !s.target.parity.is_empty() {
        return Err(usage("target.parity cannot be sharded: shard one protocol's run"));
    }
    closed_users_cover(&s, a.shards).map_err(usage)?;
    // Whole seconds: every shard's log intervals then start on the same second.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now + start_in.as_secs().max(1));
    let start_at = rfc3339(at);
    let run_id: String = {
        let d = sha2::Sha256::digest(format!("{}\n{start_at}\n{}", s.sha256, a.shards));
        d.iter().take(4).map(|b| format!("{b:02x}")).collect()
    };
    // Files: the scenario and its includes (ConfigMap), what they read (Secret), all under
    // the folder they share, so relative paths keep working in the pod.
    // Canonical paths (no `..`, links resolved): one name per file, and one folder shared by all.
    let canon =
        |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf()));
    let sources: Vec<std::path::PathBuf> = s.sources.iter().map(|p| canon(p)).collect();
    let read_files = referenced_files(&s.resolved_yaml, &sources);
    let all: Vec<&std::path::PathBuf> = sources.iter().chain(&read_files).collect();
    let root = common_dir(&all);
    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    let key = |i: usize, p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let clean: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' }).collect();
        format!("f{i}-{clean}")
    };
    let mut files = Vec::new();
    for (i, p) in sources.iter().enumerate() {
        let bytes = crate::input::read(p, 1 << 20).map_err(|e| (Exit::Runtime, format!("{}: {e}", p.display())))?;
        let text = String::from_utf8(bytes).map_err(|_| usage(format!("{}: not UTF-8", p.display())))?;
        files.push(crate::k8s::File { key: key(i, p), path: rel(p), text });
    }
    let secret_files = read_files
        .iter()
        .enumerate()
        .map(|(i, p)| crate::k8s::SecretFile { key: key(i, p), path: rel(p), local: p.display().to_string() })
        .collect();
    let name = match &a.name {
        Some(n) => crate::k8s::label(n, 52),
        None => format!("gauntlet-{}-{run_id}", crate::k8s::label(&s.name, 30)),
    };
    let spec = crate::k8s::Spec {
        name,
        namespace: crate::k8s::label(&a.namespace, 63),
        image: a.image.clone(),
        shards: a.shards,
        run_id,
        start_at,
        scenario: rel(&sources[0]),
        files,
        secret_files,
    };
    Ok(crate::k8s::manifest(&spec))
}

/// The fields of a scenario that name a file to read (the resolved scenario has them
/// absolute): certificates, keys, CAs, a dependency's policy and file; `glob` is a pool's
/// pattern of certificates.
const FILE_FIELDS: &[&str] = &["ca", "cert", "key", "public_key", "ca_cert", "ca_key", "policy", "file"];

/// Files the resolved scenario's file fields name that exist and are not scenario sources.
/// Only those fields: any other string (a request path such as `/../../etc/passwd`) is data.
fn referenced_files(resolved: &str, sources: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    use serde_json::Value;
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    fn keep(p: &Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(p) = std::fs::canonicalize(p) {
            if p.is_file() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    fn walk(v: &Value, out: &mut Vec<std::path::PathBuf>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        (k, Value::String(s)) if FILE_FIELDS.contains(&k) && s.starts_with('/') => {
                            keep(Path::new(s), out)
                        }
                        ("glob", Value::String(s)) if s.starts_with('/') => {
                            for cert in crate::scenario::glob_files(Path::new(s)).unwrap_or_default() {
                                keep(&cert, out);
                                keep(&cert.with_extension("key"), out);
                            }
                        }
                        _ => walk(x, out),
                    }
                }
            }
            _ => {}
        }
    }
    walk(&crate::scenario::yaml_value(resolved), &mut out);
    out.retain(|p| !sources.contains(p));
    out
}

/// The deepest folder holding every path.
fn common_dir(paths: &[&std::path::PathBuf]) -> std::path::PathBuf {
    let mut root: Option<std::path::PathBuf> = None;
    for p in paths {
        let dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
        root = Some(match root {
            None => dir,
            Some(r) => {
                let mut c = std::path::PathBuf::new();
                for (a, b) in r.components().zip(dir.components()) {
                    if a != b {
                        break;
                    }
                    c.push(a);
                }
                c
            }
        });
    }
    root.unwrap_or_else(|| std::path::PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_indices_are_checked() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "0/0", "a/4", "1", "-1/4", "0/10001"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_file_fields_go_into_the_secret() {
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        std::fs::write(d.path().join("m1.pem"), "x").unwrap();
        std::fs::write(d.path().join("m1.key"), "x").unwrap();
        let yaml = format!(
            "target: {{ ca: \"{}\" }}\nidentities: {{ p: {{ pool: {{ glob: \"{}/m*.pem\" }} }} }}\n\
             checks: [ {{ request: {{ path: /etc/passwd, headers: {{ x: /etc/hostname }} }} }} ]\n",
            ca.display(),
            d.path().display()
        );
        let got = referenced_files(&yaml, &[]);
        let mut names: Vec<String> =
            got.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["ca.pem", "m1.key", "m1.pem"], "{got:?}");
    }

    #[test]
    fn run_ids_fit_in_a_tag() {
        assert!(valid_run_id("a1b2c3d4"));
        for bad in ["", "a.b", "a b", &"x".repeat(33)] {
            assert!(!valid_run_id(bad), "{bad}");
        }
    }
}
