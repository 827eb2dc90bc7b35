//! Roles bound by the profile: the shipped pack names roles and credential variants; a lab's
//! profile binds each role once and describes its identity provider and client CA, and every
//! variant (expired token, rogue-CA certificate, …) is derived from that binding. Proven here
//! with a PKI and an IdP that are not the repository's test PKI.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gauntlet::gateway::Flaw;
use gauntlet::judge::CheckResult;
use gauntlet::scenario::{Scenario, TokenSource};

use super::common;

const LAB_ISS: &str = "https://idp.lab.example";

/// A lab PKI and IdP in a fresh directory: its own CA, client certificates and signing keys.
fn lab() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    gauntlet::tls::pki::init(d.path(), false).unwrap();
    d
}

/// The lab's profile: `user` bound to 20 certificates minted from the lab CA, the others to
/// single certificates; the IdP with an audience list.
fn lab_profile(lab: &Path, extra: &str) -> PathBuf {
    let l = lab.display();
    let yaml = format!(
        "profile:\n  name: lab-gateway\n\
         \x20 routes: {{ public: /public, api: /api, limited: /api/limited, reports: /reports, admin: /admin, unmapped: /internal }}\n\
         \x20 identity_header: x-forwarded-user\n  deny_status: [401, 403]\n  rate_limit: {{ requests: 5, per: 1s }}\n\
         \x20 features: [mtls, jwt, rbac, method-rbac, path-normalisation, header-hygiene, rate-limit, default-deny]\n\
         \x20 roles:\n\
         \x20   user: {{ principal: \"lab-user-{{n}}\", groups: [eng], pool: {{ mint: {{ count: 20, ca_cert: \"{l}/ca.pem\", ca_key: \"{l}/ca.key\", subject: \"CN=lab-user-{{n}},OU=lab,O=Example Lab\" }} }} }}\n\
         \x20   other-group: {{ cert: \"{l}/bob.pem\", key: \"{l}/bob.key\", principal: bob, groups: [finance], signing: {{ alg: ES256, key: \"{l}/jwt-es256.key\", kid: es256-1 }} }}\n\
         \x20   admin: {{ cert: \"{l}/carol.pem\", key: \"{l}/carol.key\", principal: carol, groups: [admin] }}\n\
         \x20 idp: {{ alg: RS256, key: \"{l}/jwt-rs256.key\", kid: rs256-1, iss: \"{LAB_ISS}\", aud: [lab-gateway, lab-reports] }}\n\
         \x20 client_ca: {{ cert: \"{l}/ca.pem\", key: \"{l}/ca.key\" }}\n{extra}"
    );
    let p = lab.join("lab-profile.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The scenario a lab writes: the unchanged pack plus its profile.
fn lab_scenario(profile: &Path, addr: impl std::fmt::Display, body: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    format!(
        "gauntlet: 1\nname: lab\ninclude: [\"{}\", \"{root}/scenarios/checks/zt-core.yaml\"]\n\
         target: {{ url: \"https://{addr}\", ca: \"{root}/certs/ca.pem\", server_name: localhost, protocol: h2, max_in_flight: 16 }}\n{body}",
        profile.display()
    )
}

/// Runs the unchanged pack against the reference gateway set up with the lab's CA and IdP.
async fn run_lab(flaws: &[Flaw]) -> (u8, gauntlet::report::Summary) {
    common::repo_certs();
    let lab = lab();
    let profile = lab_profile(lab.path(), "");
    let (gw, oracle) = common::reference_with(flaws, |cfg| {
        cfg.tls.client_ca = lab.path().join("ca.pem");
        cfg.jwt.jwks = Some(lab.path().join("jwks.json"));
        cfg.jwt.issuer = LAB_ISS.into();
        cfg.jwt.audience = "lab-gateway".into();
    })
    .await;
    let yaml = lab_scenario(
        &profile,
        gw.addr,
        "phases:\n- { name: p, requests: 380, users: 4 }\n- { name: burst, requests: 40, users: 4, mix: [ZT-DOS-RATE-001] }\n",
    );
    let (_d, out) = common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    (out.exit.code(), out.summary.unwrap())
}

fn result(s: &gauntlet::report::Summary, id: &str) -> CheckResult {
    s.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id}")).result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unchanged_pack_passes_a_conforming_gateway_with_its_own_pki_and_idp() {
    let (code, s) = run_lab(&[]).await;
    let failed: Vec<_> =
        s.checks.iter().filter(|c| c.result != CheckResult::Pass).map(|c| (&c.id, &c.reason)).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(code, 0, "{:?}", s.reasons);
    assert_eq!((s.violations["total"], s.requests.errors), (0, 0), "{:?} {:?}", s.reasons, s.errors);
    assert!(s.checks.iter().all(|c| c.sent > 0));
    // The pooled role arrived as each member's own principal.
    let ctrl = s.checks.iter().find(|c| c.id == "ZT-BASE-CTRL-001").unwrap();
    assert_eq!(ctrl.credentials, 20);
    let up = ctrl.upstream.as_ref().unwrap();
    assert_eq!((up.counts.arrivals, up.counts.missing + up.counts.spoofed), (ctrl.sent, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_variants_catch_the_defects_of_a_gateway_with_its_own_pki() {
    // Expired tokens accepted, any client certificate accepted: the derived variants must
    // find both, and nothing else.
    let (code, s) = run_lab(&[Flaw::SkipExpCheck, Flaw::AcceptAnyClientCert]).await;
    assert_eq!(code, 1);
    assert_eq!(result(&s, "ZT-AUTHN-JWT-006"), CheckResult::Fail, "expired token");
    for id in ["ZT-AUTHN-MTLS-002", "ZT-AUTHN-MTLS-003", "ZT-AUTHN-MTLS-004", "ZT-AUTHN-MTLS-005"] {
        assert_eq!(result(&s, id), CheckResult::Fail, "{id}");
    }
    for id in ["ZT-BASE-CTRL-001", "ZT-BASE-CTRL-003", "ZT-AUTHN-JWT-007", "ZT-AUTHN-JWT-008", "ZT-AUTHZ-POL-002"] {
        assert_eq!(result(&s, id), CheckResult::Pass, "{id}");
    }
}

fn identity<'a>(s: &'a Scenario, name: &str) -> &'a gauntlet::scenario::Identity {
    s.identities
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no identity {name}: {:?}", s.identities.iter().map(|i| &i.name).collect::<Vec<_>>()))
}

/// The header and payload of `name`'s token, and the token.
fn token(s: &Scenario, name: &str) -> (serde_json::Value, serde_json::Value, String) {
    let t = identity(s, name).token.as_ref().unwrap_or_else(|| panic!("{name} has no token"));
    let TokenSource::Jwt(spec) = &t.source else { panic!("{name}: not a JWT") };
    let jwt = spec.mint_as(now(), identity(s, name).number(0)).unwrap();
    let mut parts = jwt.split('.');
    let mut part = || serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part(), jwt)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn every_variant_is_derived_from_the_binding_and_the_idp_description() {
    let lab = lab();
    let l = lab.path();
    // A different IdP shape: other claim names, a leeway of 5 min, tokens of 10 min.
    let p = lab_profile(l, "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "aud: [lab-gateway, lab-reports] }",
        "aud: [lab-gateway, lab-reports], subject_claim: preferred_username, groups_claim: roles, leeway: 5m, lifetime: 10m }",
    );
    std::fs::write(&p, text).unwrap();
    let (_d, path) =
        common::scenario_file(&lab_scenario(&p, "127.0.0.1:9", "phases: [ { name: p, requests: 1, users: 1 } ]\n"));
    let s = common::load(&path);
    let t = now();

    let (h, c, _) = token(&s, "user");
    assert_eq!((h["alg"].as_str(), h["kid"].as_str()), (Some("RS256"), Some("rs256-1")));
    assert_eq!(c["preferred_username"], "lab-user-1");
    assert_eq!(c["roles"], serde_json::json!(["eng"]));
    assert_eq!(c["aud"], serde_json::json!(["lab-gateway", "lab-reports"]));
    assert_eq!(c["iss"], LAB_ISS);
    assert!((c["exp"].as_i64().unwrap() - (t + 600)).abs() <= 5, "{c}");
    assert_eq!(identity(&s, "user").members(), 20);
    // header-hygiene claimed without a forwarding declaration: said, not silently accepted.
    assert!(s.warnings.iter().any(|w| w.to_string().contains("declares no `forwarding")), "{:?}", s.warnings);

    let (_, c, _) = token(&s, "user~expired-token");
    assert!(c["exp"].as_i64().unwrap() < t - 300, "expired beyond the 5 min leeway: {c}");
    let (_, c, _) = token(&s, "user~future-token");
    assert!(c["nbf"].as_i64().unwrap() > t + 300 && c["exp"].as_i64() > c["nbf"].as_i64(), "{c}");
    let (_, c, _) = token(&s, "user~wrong-aud");
    assert!(!c["aud"].to_string().contains("lab-gateway"), "{c}");
    let (_, c, _) = token(&s, "user~wrong-iss");
    assert_ne!(c["iss"], LAB_ISS);
    let (h, _, _) = token(&s, "user~unknown-kid");
    assert_ne!(h["kid"], "rs256-1");
    // alg none carries the admin role's groups and no signature.
    let (h, c, jwt) = token(&s, "user~alg-none(admin)");
    assert_eq!((h["alg"].as_str(), c["roles"].clone()), (Some("nOnE"), serde_json::json!(["admin"])));
    assert!(jwt.ends_with('.'));
    // tampered: the payload says admin, the signature is the one over the original payload.
    let (_, c, _) = token(&s, "user~tampered(admin)");
    assert_eq!(c["roles"], serde_json::json!(["admin"]));
    // HS256 keyed with the IdP's public key, as the gateway holds it.
    let (h, _, jwt) = token(&s, "user~hs256-confusion");
    assert_eq!(h["alg"], "HS256");
    let public = std::fs::read(l.join("jwt-rs256.pub.pem")).unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
    assert!(ring::hmac::verify(&key, input.as_bytes(), &B64.decode(sig).unwrap()).is_ok(), "HMAC over the public PEM");
    // token-of: the user's certificates, the other group's valid token (its own key).
    let (h, c, _) = token(&s, "user~token-of(other-group)");
    assert_eq!((h["alg"].as_str(), c["preferred_username"].as_str()), (Some("ES256"), Some("bob")));
    assert_eq!(identity(&s, "user~token-of(other-group)").members(), 20);
    assert!(identity(&s, "user~no-token").token.is_none());
    assert!(identity(&s, "user~no-cert").cert(0).is_none() && identity(&s, "user~no-cert").token.is_some());
    // Sent as one credential, outside the pool: `{n}` is member 1, never left as written.
    for single in ["user~no-cert", "user~rogue-ca", "user~expired-cert"] {
        assert_eq!(identity(&s, single).members(), 1, "{single}");
        let (_, c, _) = token(&s, single);
        assert_eq!(c["preferred_username"], "lab-user-1", "{single}");
    }

    // Certificates: the binding's subject, mis-issued as asked.
    let ca_pem = std::fs::read(l.join("ca.pem")).unwrap();
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(&ca_pem)
        .map(|c: rustls_pki_types::CertificateDer| c.to_vec())
        .unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let leaf = |name: &str| identity(&s, name).cert(0).unwrap().chain[0].to_vec();
    for name in ["user~expired-cert", "user~future-cert", "user~no-clientauth", "user~rogue-ca"] {
        let der = leaf(name);
        let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(x.subject().to_string(), "CN=lab-user-1, OU=lab, O=Example Lab", "{name}");
        assert_eq!(x.issuer().to_string(), ca.subject().to_string(), "{name}: the issuer name is the lab CA's");
        let signed_by_ca = x.verify_signature(Some(ca.public_key())).is_ok();
        assert_eq!(signed_by_ca, name != "user~rogue-ca", "{name}");
        let client_auth = x.extended_key_usage().unwrap().is_some_and(|e| e.value.client_auth);
        assert_eq!(client_auth, name != "user~no-clientauth", "{name}");
        let (nb, na) = (x.validity().not_before.timestamp(), x.validity().not_after.timestamp());
        match name {
            "user~expired-cert" => assert!(na < t, "{name}"),
            "user~future-cert" => assert!(nb > t, "{name}"),
            _ => assert!(nb <= t && t < na, "{name}"),
        }
    }
}

fn problems(yaml_profile_extra: &str, edit: impl FnOnce(String) -> String, checks: &str) -> String {
    let lab = lab();
    let p = lab_profile(lab.path(), yaml_profile_extra);
    let text = edit(std::fs::read_to_string(&p).unwrap());
    std::fs::write(&p, text).unwrap();
    let (_d, path) = common::scenario_file(&lab_scenario(
        &p,
        "127.0.0.1:9",
        &format!("{checks}phases: [ {{ name: p, requests: 1, users: 1 }} ]\n"),
    ));
    match gauntlet::scenario::load(&path, &Default::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_binding_names_the_check_the_role_and_the_fix() {
    let err = problems("", |t| t.replace("    admin: {", "    root: {"), "");
    assert!(
        err.contains("zt-core.yaml:")
            && err.contains(".role: check ZT-BASE-CTRL-003: role `admin` is not bound by profile `lab-gateway`"),
        "{err}"
    );
    assert!(err.contains("add `profile.roles.admin"), "{err}");
    // That control requires nothing: no "leave it out of the features" advice for it.
    let ctrl = err.lines().find(|l| l.contains("ZT-BASE-CTRL-003")).unwrap();
    assert!(!ctrl.contains("features"), "{ctrl}");
}

#[test]
fn out_of_scope_checks_need_no_binding_and_no_idp() {
    // No IdP and no jwt claim: every token check is skipped, nothing asks for an IdP.
    let err = problems(
        "",
        |t| {
            let t = t.replace("jwt, ", "");
            let t = t
                .replace(", signing: { alg: ES256, key: \"", ", x: { \"")
                .replace(", x: { \"", ", signing_removed: { \"");
            let t = match t.find(", signing_removed:") {
                Some(s) => format!("{}{}", &t[..s], &t[s + t[s..].find(" } }").unwrap() + 2..]),
                None => t,
            };
            let s = t.find("  idp:").unwrap();
            let e = t[s..].find('\n').unwrap() + s + 1;
            format!("{}{}", &t[..s], &t[e..])
        },
        "",
    );
    assert_eq!(err, "");
    // Claiming jwt without describing the IdP is refused, saying what to add.
    let err = problems(
        "",
        |t| {
            let s = t.find("  idp:").unwrap();
            let e = t[s..].find('\n').unwrap() + s + 1;
            format!("{}{}", &t[..s], &t[e..])
        },
        "",
    );
    assert!(err.contains("variant `expired-token` derives a token from the identity provider"), "{err}");
    assert!(err.contains("add `profile.idp"), "{err}");
}

#[test]
fn mis_issued_certificates_need_the_client_ca_key_and_a_typo_gets_a_suggestion() {
    assert_eq!(problems("", |t| t, ""), "", "the lab profile as written loads");
    let err = problems(
        "",
        |t| {
            let s = t.find("  client_ca:").unwrap();
            let cert = t[s..].split('"').nth(1).unwrap().to_string();
            format!("{}  client_ca: {{ cert: \"{cert}\" }}\n", &t[..s])
        },
        "",
    );
    assert!(err.contains("profile.client_ca") && err.contains("needs the client CA's `key:`"), "{err}");
    assert_eq!(err.matches("needs the client CA's").count(), 1, "one problem once, not per variant: {err}");
    let err = problems(
        "",
        |t| t,
        "checks:\n- { id: MINE, role: user, variant: expierd-token, request: { route: api, path: / }, expect: { deny: [401] } }\n",
    );
    assert!(err.contains("`expierd-token` is not a credential variant (did you mean `expired-token`?)"), "{err}");
    let err =
        problems("", |t| t, "checks:\n- { id: MINE, role: usr, request: { route: api, path: / }, expect: allow }\n");
    assert!(err.contains("role `usr` is not declared under `roles:` (did you mean `user`?)"), "{err}");
}

#[test]
fn a_scenario_profile_over_an_included_one_is_reported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    let yaml = format!(
        "gauntlet: 1\nname: o\ninclude: [\"{root}/scenarios/targets/reference.yaml\", \"{root}/scenarios/checks/zt-core.yaml\"]\n\
         target: {{ url: \"https://127.0.0.1:9\", ca: \"{root}/certs/ca.pem\" }}\n\
         profile:\n  name: mine\n  routes: {{ public: /public, api: /api, limited: /api/limited, reports: /reports, admin: /admin, unmapped: /internal }}\n  rate_limit: {{ requests: 5, per: 1s }}\n{}\
         phases: [ {{ name: p, requests: 1, users: 1 }} ]\n",
        common::bindings(None)
    );
    common::repo_certs();
    let (_d, p) = common::scenario_file(&yaml);
    let s = common::load(&p);
    let notes: Vec<String> = s.notes.iter().map(|n| n.to_string()).collect();
    assert!(notes.iter().any(|n| n.contains("replaces profile `reference`")), "{notes:?}");
}

#[test]
fn a_credential_first_needed_by_a_skipped_check_is_still_derived_for_a_later_one() {
    // FIRST is outside the declared scope (no `websocket` claimed); SECOND, in scope, uses the
    // same role, variant and claims (a combination the pack itself never uses): it must get the real credential, not the skipped check's blank.
    let lab = lab();
    let p = lab_profile(lab.path(), "");
    let checks = "checks:\n\
        - { id: FIRST, role: user, variant: token-of, claims_of: admin, requires: [websocket], request: { route: api, path: / }, expect: { deny: [401] } }\n\
        - { id: SECOND, role: user, variant: token-of, claims_of: admin, request: { route: api, path: / }, expect: { deny: [401] } }\n";
    let (_d, path) = common::scenario_file(&lab_scenario(
        &p,
        "127.0.0.1:9",
        &format!("{checks}phases: [ {{ name: p, requests: 1, users: 1 }} ]\n"),
    ));
    let s = common::load(&path);
    let second = s.checks.iter().find(|c| c.id == "SECOND").unwrap();
    let id = &s.identities[second.identity];
    assert_eq!(id.name, "user~token-of(admin)");
    assert_eq!(id.members(), 20, "the user role's pool");
    let (_, claims, _) = token(&s, "user~token-of(admin)");
    assert_eq!(claims["sub"], "carol");
    assert!(s.checks.iter().find(|c| c.id == "FIRST").unwrap().out_of_scope.is_some());
}

#[test]
fn every_section_a_scenario_redefines_over_an_included_file_is_reported() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("base.yaml"),
        "target: { url: \"http://127.0.0.1:9\", protocol: h1 }\noracle: { listen: \"127.0.0.1:0\" }\n\
         dependencies: { authz: { listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:9\" } }\n\
         identities: { anon: {} }\nchecks: [ { id: A, identity: anon, request: { path: / }, expect: allow } ]\n",
    )
    .unwrap();
    let main = d.path().join("main.yaml");
    std::fs::write(
        &main,
        "gauntlet: 1\nname: o\ninclude: [base.yaml]\ntarget: { url: \"http://127.0.0.1:10\", protocol: h1 }\n\
         oracle: { listen: \"127.0.0.1:0\" }\n\
         dependencies: { authz: { listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:11\" } }\n\
         identities: { anon: { principal: nobody } }\nchecks: [ { id: A, identity: anon, request: { path: /x }, expect: allow } ]\n\
         phases: [ { name: p, requests: 1, users: 1 } ]\n",
    )
    .unwrap();
    let s = common::load(&main);
    let notes: Vec<String> = s.notes.iter().map(|n| n.to_string()).collect();
    for what in [
        "`target` replaces",
        "`oracle` replaces",
        "dependency `authz` overrides",
        "identity `anon` overrides",
        "check `A` overrides",
    ] {
        assert!(notes.iter().any(|n| n.contains(what)), "{what}: {notes:?}");
    }
}
