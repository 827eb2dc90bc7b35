//! `network:`, `dependencies:` and `events:` — impairments and their timeline.

use super::*;

pub(super) fn network(cx: &mut Ctx<'_>, o: &Origin, phase: &str, n: &RawNetwork) -> Option<Network> {
    let impairment = impairment(cx, o, "network", n)?;
    Some(Network { name: n.name.clone().unwrap_or_else(|| phase.to_string()), impairment })
}

/// The impairment a `network:` (phase) or `apply:` (event) block describes; `at` is its key.
pub(super) fn impairment(cx: &mut Ctx<'_>, o: &Origin, at: &str, n: &RawNetwork) -> Option<crate::netem::Impairment> {
    match build_impairment(n) {
        Ok(i) => Some(i),
        Err(problems) => {
            for (key, msg) in problems {
                cx.at(o, &format!("{at}.{key}"), msg);
            }
            None
        }
    }
}

/// The one builder of a TCP link's impairment, for a scenario's `network:` and for the flags
/// of `gauntlet netem` alike: every problem as (YAML key, message).
pub(crate) fn build_impairment(n: &RawNetwork) -> Result<crate::netem::Impairment, Vec<(&'static str, String)>> {
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let mut dur = |key: &'static str, v: &Option<String>| match v.as_deref().map(units::duration) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            problems.push((key, e));
            None
        }
    };
    let latency = dur("latency", &n.latency).unwrap_or_default();
    let jitter = dur("jitter", &n.jitter).unwrap_or_default();
    let slice_delay = dur("slice_delay", &n.slice_delay).unwrap_or_default();
    let reset_after = dur("reset_after", &n.reset_after);
    let slow_close = dur("slow_close", &n.slow_close);
    let distribution = match n.distribution.as_deref() {
        None => crate::netem::Distribution::Uniform,
        Some(d) => crate::netem::Distribution::parse(d).unwrap_or_else(|| {
            problems.push(("distribution", format!("`{d}` is not a distribution: use uniform, normal or pareto")));
            crate::netem::Distribution::Uniform
        }),
    };
    let bandwidth = match n.bandwidth.as_deref().map(crate::netem::parse_bandwidth) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            problems.push(("bandwidth", e));
            None
        }
    };
    if n.slice == Some(0) {
        problems.push(("slice", "a slice is at least 1 byte".into()));
    }
    if n.slice_delay.is_some() && n.slice.is_none() {
        problems.push(("slice_delay", "`slice_delay` needs `slice` (the segment size in bytes)".into()));
    }
    let loss = match n.loss.as_deref().map(crate::netem::udp::Loss::parse) {
        None => None,
        Some(Ok(crate::netem::udp::Loss::Bernoulli(p))) => Some(p),
        Some(Ok(_)) => {
            problems
                .push(("loss", "bursty (`ge:`) loss applies to UDP links only; give a probability, e.g. `2%`".into()));
            None
        }
        Some(Err(e)) => {
            problems.push(("loss", e));
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(crate::netem::Impairment {
        loss,
        latency,
        jitter,
        distribution,
        seed: n.seed.unwrap_or(1),
        bandwidth,
        slice: n.slice.map(|s| (s, slice_delay)),
        reset_after_bytes: n.reset_after_bytes,
        limit_bytes: n.limit_bytes,
        slow_close,
        reset_after,
        blackhole: n.blackhole.unwrap_or(false),
        refuse: n.refuse.unwrap_or(false),
    })
}

pub(super) fn resolve_dependencies(cx: &mut Ctx<'_>, m: &Merged) -> Vec<Dependency> {
    let mut out = Vec::new();
    for (name, d, o) in &m.dependencies {
        if !valid_name(name) || name == CLIENT_LINK {
            cx.at(
                o,
                "",
                format!("`{name}` cannot name a dependency: use letters, digits, `-`, `_`, `.` (not `client`)"),
            );
            continue;
        }
        let listen = match d.listen.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                cx.at(o, "listen", "not an address: write e.g. `127.0.0.1:9101` (where the gateway calls it)");
                None
            }
            None => {
                cx.at(o, "", "missing `listen:` (the address the gateway calls, e.g. `127.0.0.1:9101`)");
                None
            }
        };
        let behind = match (&d.upstream, d.serve.as_deref()) {
            (Some(_), Some(_)) => {
                cx.at(o, "serve", "give `upstream:` (an existing service) or `serve:` (a built-in one), not both");
                None
            }
            (None, None) => {
                cx.at(o, "", "missing `upstream: host:port` or `serve: authz | jwks` (what the link forwards to)");
                None
            }
            (Some(u), None) => {
                if u.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                    Some(Behind::Upstream(u.clone()))
                } else {
                    cx.at(o, "upstream", format!("`{u}` is not `host:port`"));
                    None
                }
            }
            (None, Some("authz")) => match &d.policy {
                None => {
                    cx.at(o, "", "`serve: authz` needs `policy:` (a gateway config whose `routes:` it decides by)");
                    None
                }
                Some(p) => {
                    let path = cx.file(o, p);
                    match crate::gateway::Config::load(&path) {
                        Ok(c) => Some(Behind::Authz(c.policy_routes())),
                        Err(e) => {
                            cx.at(o, "policy", e.to_string());
                            None
                        }
                    }
                }
            },
            (None, Some("jwks")) => match &d.file {
                None => {
                    cx.at(o, "", "`serve: jwks` needs `file:` (the JWKS document to serve, e.g. certs/jwks.json)");
                    None
                }
                Some(f) => cx.read(o, "file", f).map(|(_, b)| Behind::Jwks(bytes::Bytes::from(b))),
            },
            (None, Some(other)) => {
                cx.at(o, "serve", format!("`{other}` is not a built-in service: use `authz` or `jwks`"));
                None
            }
        };
        if let (Some(listen), Some(behind)) = (listen, behind) {
            out.push(Dependency { name: name.clone(), listen, behind });
        }
    }
    out
}

pub(super) fn resolve_backend(
    cx: &mut Ctx<'_>,
    m: &Merged,
    phases: &[Phase],
    events: &[Event],
    target: Option<&Target>,
) -> Backend {
    let backend = match &m.network {
        None => Backend::User,
        Some((n, o)) => match n.backend.as_deref() {
            None | Some("user") => Backend::User,
            Some("kernel") => Backend::Kernel,
            Some(other) => {
                cx.at(o, "backend", format!("`{other}` is not a backend: use `user` (default) or `kernel`"));
                Backend::User
            }
        },
    };
    // Real packet loss needs real packets: the kernel backend, or datagrams (an h3 target's
    // client link is the UDP link); only on the client link.
    let quic = target.is_some_and(|t| t.protocol == ProtocolKind::H3);
    if backend == Backend::Kernel && quic {
        if let Some((_, o)) = &m.network {
            cx.at(
                o,
                "backend",
                "the kernel backend shapes TCP; an h3 target's client link is the UDP link (loss, delay) already",
            );
        }
    }
    for ((_, o), phase) in m.phases.iter().zip(phases) {
        if backend == Backend::User && !quic && phase.network.as_ref().is_some_and(|n| n.impairment.loss.is_some()) {
            cx.at(o, "network.loss", LOSS_NEEDS_KERNEL);
        }
    }
    for (e, o) in &m.events {
        let Some(ev) = events.iter().find(|x| Some(&x.name) == e.name.as_ref()) else { continue };
        if ev.impairment.loss.is_some() {
            if ev.link != CLIENT_LINK {
                cx.at(o, "apply.loss", "packet loss applies to the client link only (the kernel backend)");
            } else if backend == Backend::User && !quic {
                cx.at(o, "apply.loss", LOSS_NEEDS_KERNEL);
            }
        }
    }
    backend
}

pub(super) const LOSS_NEEDS_KERNEL: &str = "a user-space TCP link cannot lose packets (the kernel retransmits them): set \
                                 `network: { backend: kernel }` (root, with ip, tc and nft) for real packet loss";

pub(super) fn resolve_events(cx: &mut Ctx<'_>, m: &Merged, deps: &[Dependency], phases: &[Phase]) -> Vec<Event> {
    let mut out: Vec<(Event, Origin)> = Vec::new();
    for (e, o) in &m.events {
        let name = match &e.name {
            Some(n) if valid_name(n) => Some(n.clone()),
            Some(n) => {
                cx.at(o, "name", format!("`{n}` is not a valid name: use letters, digits, `-`, `_` and `.`"));
                None
            }
            None => {
                cx.at(o, "", "missing `name:` (it labels every request sent while the event is in force)");
                None
            }
        };
        if let Some(n) = &name {
            if out.iter().any(|(x, _)| x.name == *n)
                || phases.iter().any(|p| p.network.as_ref().is_some_and(|c| c.name == *n))
                || n == crate::scenario::UNIMPAIRED
            {
                cx.at(o, "name", format!("`{n}` already names another condition: every condition needs its own name"));
            }
        }
        let req = |cx: &mut Ctx<'_>, key: &str, v: &Option<String>, zero_ok: bool| match v.as_deref() {
            None => {
                cx.at(o, "", format!("missing `{key}:` (e.g. `{key}: 10s`)"));
                None
            }
            Some(s) => match units::duration(s) {
                Ok(d) if d.is_zero() && !zero_ok => {
                    cx.at(o, key, "must be greater than zero");
                    None
                }
                Ok(d) => Some(d),
                Err(err) => {
                    cx.at(o, key, err);
                    None
                }
            },
        };
        let at = req(cx, "at", &e.at, true);
        let duration = req(cx, "for", &e.for_, false);
        let link = e.link.clone().unwrap_or_else(|| CLIENT_LINK.to_string());
        if link != CLIENT_LINK && !deps.iter().any(|d| d.name == link) {
            let known: Vec<&str> =
                std::iter::once(CLIENT_LINK).chain(m.dependencies.iter().map(|(n, _, _)| n.as_str())).collect();
            let hint = units::suggest(&link, known.iter().copied()).map(|s| format!(" (did you mean `{s}`?)"));
            cx.at(
                o,
                "link",
                format!(
                    "no link `{link}`: use `client` or a name under `dependencies:` ({}){}",
                    known.join(", "),
                    hint.unwrap_or_default()
                ),
            );
        }
        let impairment = match &e.apply {
            None => {
                cx.at(o, "", "missing `apply:` (what the link does, e.g. `{latency: 80ms}` or `{blackhole: true}`)");
                None
            }
            Some(a) => {
                if a.name.is_some() {
                    cx.at(o, "apply.name", "the condition's name is the event's `name:`, not inside `apply:`");
                }
                impairment(cx, o, "apply", a)
            }
        };
        let outage = e.outage.as_ref().and_then(|oa| {
            if oa.status.is_empty() {
                cx.at(o, "outage", "give the statuses a conforming gateway answers, e.g. `{status: [503]}`");
                return None;
            }
            if let Some(bad) = oa.status.iter().find(|s| !(100..=599).contains(*s)) {
                cx.at(o, "outage.status", format!("{bad} is not an HTTP status"));
                return None;
            }
            if let Some(ok) = oa.status.iter().find(|s| (200..300).contains(*s)) {
                cx.at(o, "outage.status", format!("{ok} is a success, not a refusal: an outage never excuses a 2xx"));
                return None;
            }
            let grace = match oa.grace.as_deref().or(Some(DEFAULT_GRACE)).map(units::duration) {
                None => Duration::from_secs(2),
                Some(Ok(g)) => g,
                Some(Err(err)) => {
                    cx.at(o, "outage.grace", err);
                    return None;
                }
            };
            Some(Outage { statuses: oa.status.clone(), grace })
        });
        if let (Some(name), Some(at), Some(duration), Some(impairment)) = (name, at, duration, impairment) {
            out.push((Event { name, at, duration, link, impairment, outage }, o.clone()));
        }
    }
    out.sort_by_key(|(e, _)| e.at);
    for w in out.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        let end = a.at + a.duration + a.outage.as_ref().map_or(Duration::ZERO, |x| x.grace);
        if b.at < end {
            cx.at(
                &w[1].1,
                "at",
                format!(
                    "overlaps event `{}` (in force until {:?}, grace included): events may not overlap, since each \
                     request is labelled with one condition",
                    a.name, end
                ),
            );
        }
    }
    out.into_iter().map(|(e, _)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: RawNetwork) -> Vec<&'static str> {
        build_impairment(&n).err().unwrap_or_default().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_impairment_builder_refuses_what_cannot_be_applied() {
        assert_eq!(keys(RawNetwork { slice: Some(0), ..Default::default() }), ["slice"]);
        assert_eq!(keys(RawNetwork { slice_delay: Some("1ms".into()), ..Default::default() }), ["slice_delay"]);
        assert_eq!(keys(RawNetwork { loss: Some("ge:0.1,0.5".into()), ..Default::default() }), ["loss"]);
        assert_eq!(keys(RawNetwork { distribution: Some("zipf".into()), ..Default::default() }), ["distribution"]);
        assert_eq!(
            keys(RawNetwork { latency: Some("x".into()), bandwidth: Some("fast".into()), ..Default::default() }),
            ["latency", "bandwidth"],
            "every problem, not the first"
        );
        let ok = build_impairment(&RawNetwork {
            latency: Some("40ms".into()),
            slice: Some(1),
            slice_delay: Some("2ms".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((ok.latency, ok.slice), (Duration::from_millis(40), Some((1, Duration::from_millis(2)))));
    }
}
