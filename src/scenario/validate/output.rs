//! The resolved scenario as one YAML document, paths absolute, secrets redacted.

use super::*;

/// The merged scenario as one YAML document, file paths made absolute.
pub(super) fn resolved_yaml(sources: &[Source], m: &Merged) -> String {
    let abs = |o: &Origin, p: &str| -> String {
        let path = Path::new(p);
        let full = if path.is_absolute() { path.to_path_buf() } else { sources[o.file].dir().join(path) };
        std::path::absolute(&full).unwrap_or(full).display().to_string()
    };
    let mut doc = RawDoc {
        gauntlet: m.gauntlet.as_ref().map(|g| g.0),
        name: m.name.as_ref().map(|n| n.0.clone()),
        description: m.description.clone(),
        seed: m.seed,
        ..Default::default()
    };
    if let Some((t, o)) = &m.target {
        let mut t = t.clone();
        t.ca = t.ca.map(|c| abs(o, &c));
        doc.target = Some(t);
    }
    doc.profile = m.profile.as_ref().map(|(p, o)| {
        let mut p = p.clone();
        for b in p.roles.values_mut() {
            b.cert = b.cert.as_ref().map(|c| abs(o, c));
            b.key = b.key.as_ref().map(|c| abs(o, c));
            if let Some(pool) = &mut b.pool {
                abs_pool(pool, &|p| abs(o, p));
            }
            if let Some(s) = &mut b.signing {
                s.key = s.key.as_ref().map(|k| abs(o, k));
                s.public_key = s.public_key.as_ref().map(|k| abs(o, k));
            }
        }
        if let Some(i) = &mut p.idp {
            i.key = i.key.as_ref().map(|k| abs(o, k));
            i.public_key = i.public_key.as_ref().map(|k| abs(o, k));
        }
        if let Some(ca) = &mut p.client_ca {
            ca.cert = ca.cert.as_ref().map(|k| abs(o, k));
            ca.key = ca.key.as_ref().map(|k| abs(o, k));
        }
        p
    });
    doc.roles = m.roles.iter().map(|(n, d, _)| (n.clone(), d.clone())).collect();
    doc.oracle = m.oracle.as_ref().map(|o| o.0.clone());
    for (name, ident, o) in &m.identities {
        let mut i = ident.clone();
        i.cert = i.cert.map(|c| abs(o, &c));
        i.key = i.key.map(|c| abs(o, &c));
        if let Some(p) = &mut i.pool {
            abs_pool(p, &|x| abs(o, x));
        }
        if let Some(t) = &mut i.token {
            if t.static_value.is_some() {
                t.static_value = Some("REDACTED".into());
            }
            if let Some(j) = &mut t.jwt {
                j.key = j.key.as_ref().map(|k| abs(o, k));
            }
        }
        for (k, v) in i.headers.iter_mut() {
            if is_secret_header(k) {
                *v = "REDACTED".into();
            }
        }
        doc.identities.insert(name.clone(), i);
    }
    doc.checks = m
        .checks
        .iter()
        .map(|(c, _)| {
            let mut c = c.clone();
            if let Some(r) = &mut c.request {
                for (k, v) in r.headers.iter_mut() {
                    if is_secret_header(k) {
                        *v = "REDACTED".into();
                    }
                }
                r.path = r.path.as_deref().map(|p| crate::conformance::redact_query(p).into_owned());
                if r.body.is_some() && r.body_public != Some(true) {
                    let n = r.body.as_ref().map_or(0, String::len);
                    r.body = Some(format!("REDACTED ({n} bytes; `body_public: true` shows it)"));
                }
            }
            c
        })
        .collect();
    doc.phases = m
        .phases
        .iter()
        .map(|(p, _)| {
            let mut p = p.clone();
            if let Some(rw) = p.replay.as_mut().and_then(|r| r.rewrite.as_mut()) {
                for (k, v) in rw.set_headers.iter_mut() {
                    if is_secret_header(k) {
                        *v = "REDACTED".into();
                    }
                }
            }
            p
        })
        .collect();
    doc.thresholds = m.thresholds.iter().map(|(t, _)| t.clone()).collect();
    doc.error_budget = m.error_budget.as_ref().map(|(b, _)| b.clone());
    doc.dependencies = m
        .dependencies
        .iter()
        .map(|(n, d, o)| {
            let mut d = d.clone();
            d.policy = d.policy.map(|p| abs(o, &p));
            d.file = d.file.map(|f| abs(o, &f));
            (n.clone(), d)
        })
        .collect();
    doc.events = m.events.iter().map(|(e, _)| e.clone()).collect();
    doc.network = m.network.as_ref().map(|(n, _)| n.clone());
    doc.certification = m.certification.as_ref().map(|(c, _)| c.clone());
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!("# Resolved by gauntlet: includes merged, paths absolute, secrets redacted.\n{body}")
}

/// Every path of a pool made absolute by `abs` (an identity's and a role binding's alike).
fn abs_pool(p: &mut crate::scenario::raw::RawPool, abs: &dyn Fn(&str) -> String) {
    for m in &mut p.members {
        (m.cert, m.key) = (abs(&m.cert), abs(&m.key));
    }
    p.glob = p.glob.as_deref().map(abs);
    if let Some(m) = &mut p.mint {
        (m.ca_cert, m.ca_key) = (abs(&m.ca_cert), abs(&m.ca_key));
    }
}
