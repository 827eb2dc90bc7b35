//! `phases:`, mixes and thresholds, and the load-shape warnings (limit drive, per-credential rate).

use super::*;

pub(super) fn resolve_phases(cx: &mut Ctx<'_>, m: &Merged, checks: &[Check]) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    if m.phases.is_empty() {
        cx.at(
            &Origin { file: 0, path: String::new() },
            "phases",
            "no `phases:`: add e.g. `- {name: main, duration: 30s, rate: 100/s}`",
        );
    }
    for (p, o) in &m.phases {
        let name = p.name.clone().unwrap_or_else(|| format!("phase{}", out.len() + 1));
        if !valid_name(&name) {
            cx.at(o, "name", format!("`{name}` is not a valid phase name"));
        }
        if out.iter().any(|x| x.name == name) {
            cx.at(o, "name", format!("phase name `{name}` is used twice"));
        }
        let duration = p.duration.as_ref().and_then(|d| match units::duration(d) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                cx.at(o, "duration", "a phase duration must be greater than zero");
                None
            }
            Err(e) => {
                cx.at(o, "duration", e);
                None
            }
        });
        if p.duration.is_none() && p.requests.is_none() && p.replay.is_none() {
            cx.at(o, "", "a phase needs `duration:` and/or `requests:` to end");
        }
        if p.requests == Some(0) {
            cx.at(o, "requests", "must be at least 1");
        }
        let load = match (&p.rate, p.users) {
            _ if p.replay.is_some() => {
                for (key, set) in [("rate", p.rate.is_some()), ("users", p.users.is_some()), ("mix", p.mix.is_some())] {
                    if set {
                        cx.at(
                            o,
                            key,
                            format!("a replay phase sends the capture's requests at their recorded pace: drop `{key}:` (pace it with `replay.speed`, `max_gap`, `rate_cap`)"),
                        );
                    }
                }
                Some(Load::Replay)
            }
            (Some(_), Some(_)) => {
                cx.at(o, "users", "give `rate:` (open loop) or `users:` (closed loop), not both");
                None
            }
            (None, None) => {
                cx.at(o, "", "a phase needs `rate:` (e.g. `500/s`) or `users:` (e.g. `10`)");
                None
            }
            (None, Some(0)) => {
                cx.at(o, "users", "must be at least 1");
                None
            }
            (None, Some(u)) if u > units::MAX_CONCURRENCY => {
                cx.at(
                    o,
                    "users",
                    format!(
                        "{u} users is over the {} one gauntlet process holds (each user is a task and a \
                         connection): use fewer, or `rate:` for an open-loop load",
                        units::MAX_CONCURRENCY
                    ),
                );
                None
            }
            (None, Some(u)) => Some(Load::Closed { users: u }),
            (Some(Value::String(s)), None) => match units::rate(s) {
                Ok(r) => Some(Load::Constant(r)),
                Err(e) => {
                    cx.at(o, "rate", e);
                    None
                }
            },
            (Some(Value::Mapping(map)), None) => {
                let get = |k: &str| map.get(k).and_then(Value::as_str).map(units::rate);
                match (get("from"), get("to"), map.len()) {
                    (Some(Ok(from)), Some(Ok(to)), 2) => {
                        if p.duration.is_none() {
                            cx.at(o, "rate", "a ramp needs the phase `duration:` it ramps over");
                        }
                        Some(Load::Ramp { from, to })
                    }
                    (Some(Err(e)), _, _) | (_, Some(Err(e)), _) => {
                        cx.at(o, "rate", e);
                        None
                    }
                    _ => {
                        cx.at(o, "rate", "a ramp is `{from: 100/s, to: 1000/s}`");
                        None
                    }
                }
            }
            (Some(_), None) => {
                cx.at(o, "rate", "a rate is `500/s` or a ramp `{from: 100/s, to: 1000/s}`");
                None
            }
        };
        let mix = if p.replay.is_some() { Vec::new() } else { mix(cx, o, p.mix.as_ref(), checks) };
        if mix.is_empty() && p.replay.is_none() && !checks.is_empty() && checks.iter().any(|c| c.out_of_scope.is_some())
        {
            cx.at(o, "mix", "every check this phase would send is outside the profile's declared `features`");
        }
        let network = p.network.as_ref().and_then(|n| network(cx, o, &name, n));
        if let Some(load) = load {
            out.push(Phase { name, duration, requests: p.requests, load, mix, network, replay: None });
        }
    }
    out
}

pub(super) fn mix(cx: &mut Ctx<'_>, o: &Origin, v: Option<&Value>, checks: &[Check]) -> Vec<(usize, f64)> {
    let in_scope = |i: &usize| checks[*i].out_of_scope.is_none();
    let all = || (0..checks.len()).filter(in_scope).map(|i| (i, 1.0)).collect::<Vec<_>>();
    let mut entries: Vec<(String, f64, String)> = Vec::new();
    match v {
        None => return all(),
        Some(Value::String(s)) if s == "all" => return all(),
        Some(Value::Sequence(seq)) => {
            for (i, item) in seq.iter().enumerate() {
                match item.as_str() {
                    Some(s) => entries.push((s.to_string(), 1.0, format!("mix[{i}]"))),
                    None => cx.at(o, &format!("mix[{i}]"), "expected a check id or `tag:NAME`"),
                }
            }
        }
        Some(Value::Mapping(map)) => {
            for (k, w) in map {
                let key = k.as_str().unwrap_or("?").to_string();
                let at = format!("mix.{key}");
                match w.as_f64() {
                    Some(w) if w > 0.0 && w.is_finite() => entries.push((key, w, at)),
                    _ => cx.at(o, &at, "a weight must be a number greater than zero"),
                }
            }
        }
        Some(_) => {
            cx.at(o, "mix", "a mix is `all`, a list of check ids, or a map of check id (or `tag:NAME`) to weight");
            return Vec::new();
        }
    }
    let mut out: Vec<(usize, f64)> = Vec::new();
    for (key, w, at) in entries {
        let members: Vec<usize> = if let Some(tag) = key.strip_prefix("tag:") {
            checks.iter().enumerate().filter(|(_, c)| c.tags.iter().any(|t| t == tag)).map(|(i, _)| i).collect()
        } else {
            checks.iter().position(|c| c.id == key).into_iter().collect()
        };
        if members.is_empty() {
            let hint = units::suggest(&key, checks.iter().map(|c| c.id.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            cx.at_key(o, &at, format!("`{key}` matches no check{hint}"));
            continue;
        }
        // Checks outside the profile's declared scope are not sent: the entry's weight goes
        // to the others it names (none left: the entry sends nothing).
        let members: Vec<usize> = members.into_iter().filter(in_scope).collect();
        if members.is_empty() {
            continue;
        }
        let share = w / members.len() as f64;
        for i in members {
            match out.iter_mut().find(|(j, _)| *j == i) {
                Some(e) => e.1 += share,
                None => out.push((i, share)),
            }
        }
    }
    out
}

/// A `limit` check is judged only where it is sent faster than its limit: warn about a
/// scenario whose open-loop phases never send it at `drive` × the limit (it would come out
/// inconclusive; closed-loop rates are not known up front and are judged as measured).
pub(super) fn check_limit_drive(cx: &mut Ctx<'_>, m: &Merged, checks: &[Check], phases: &[Phase]) {
    if checks.len() != m.checks.len() {
        return; // earlier problems already; indices would not line up
    }
    for (ci, c) in checks.iter().enumerate() {
        let Expect::Limit(l) = &c.expect else { continue };
        let limit = f64::from(l.requests) / l.per.as_secs_f64();
        let mut best: Option<(f64, &str)> = None;
        let mut unknown = false;
        for p in phases {
            let total: f64 = p.mix.iter().map(|(_, w)| w).sum();
            let Some((_, w)) = p.mix.iter().find(|(i, _)| *i == ci) else { continue };
            let Some(rate) = peak_rate(p) else {
                unknown = true;
                continue;
            };
            let share = if total > 0.0 { rate * w / total } else { 0.0 };
            if best.is_none_or(|(b, _)| share > b) {
                best = Some((share, p.name.as_str()));
            }
        }
        if let (Some((rate, phase)), false) = (best, unknown) {
            if rate < limit * l.drive * (1.0 - 1e-9) {
                cx.warn(
                    &m.checks[ci].1,
                    "expect",
                    format!(
                        "check {} is sent at most {rate:.1}/s (in phase `{phase}`), but its limit is {limit:.1}/s: \
                         a limiter is tested by sending at `drive` ({}) × the limit = {:.1}/s or more — raise its share \
                         of the mix or the phase rate (as it is, the check will be inconclusive)",
                        c.id,
                        l.drive,
                        limit * l.drive
                    ),
                );
            }
        }
    }
}

/// The highest rate an open-loop phase offers (`None` for closed loop).
pub(super) fn peak_rate(p: &Phase) -> Option<f64> {
    match p.load {
        Load::Constant(r) => Some(r),
        Load::Ramp { from, to } => Some(from.max(to)),
        Load::Closed { .. } | Load::Replay => None,
    }
}

/// Warns when one credential's legitimate traffic (allow and deny checks; `limit` checks
/// exceed on purpose) would exceed the profile's `client_rate_limit` in some open-loop phase:
/// the gateway would answer 429 and a correct gateway would look like it falsely denies.
pub(super) fn check_credential_rates(
    cx: &mut Ctx<'_>,
    warn_at: &[Origin],
    profile: &Profile,
    identities: &[Identity],
    checks: &[Check],
    phases: &[Phase],
) {
    let Some((requests, per)) = profile.client_rate_limit else { return };
    let limit = f64::from(requests) / per.as_secs_f64();
    let mut groups: Vec<&str> = identities.iter().map(|i| i.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        // The group's first identity stands for it (a role's valid credential comes first).
        let Some((first, id)) = identities.iter().enumerate().find(|(_, i)| i.group == group) else { continue };
        let worst = phases
            .iter()
            .filter_map(|p| {
                let total: f64 = p.mix.iter().map(|(_, w)| w).sum();
                let rate = peak_rate(p)?;
                let mine: f64 = p
                    .mix
                    .iter()
                    .filter(|(c, _)| {
                        checks.get(*c).is_some_and(|c| {
                            c.out_of_scope.is_none()
                                && identities.get(c.identity).is_some_and(|i| i.group == group)
                                && !matches!(c.expect, Expect::Limit(_))
                        })
                    })
                    .map(|(_, w)| w)
                    .sum();
                (total > 0.0).then(|| (rate * mine / total / id.members() as f64, p.name.as_str()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((rate, phase)) = worst else { continue };
        if rate > limit {
            let Some(o) = warn_at.get(first) else { continue };
            let need = (rate * id.members() as f64 / limit).ceil() as u64;
            let what = if id.name == group && warn_at.get(first).is_some_and(|o| o.path.contains("roles.")) {
                format!("role `{group}`")
            } else {
                format!("identity `{group}`")
            };
            cx.warn(
                o,
                "",
                format!(
                    "{what} sends about {rate:.1}/s per credential in phase `{phase}`, above the profile's \
                     client_rate_limit ({requests} per {per:?}): a correct gateway will answer 429 to legitimate \
                     requests — bind a pool of at least {need} credentials (`pool: {{mint: {{count: {need}, …}}}}`)"
                ),
            );
        }
    }
}

pub(super) fn resolve_thresholds(cx: &mut Ctx<'_>, m: &Merged, phases: &[Phase], checks: &[Check]) -> Vec<Threshold> {
    let pn: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    let cn: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    let mut out = Vec::new();
    for (t, o) in &m.thresholds {
        match threshold::parse(t, &pn, &cn) {
            Ok(th) => out.push(th),
            Err(e) => cx.at(o, "", e),
        }
    }
    out
}
