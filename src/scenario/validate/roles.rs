//! `roles:` of a pack and `profile.roles` / `profile.idp` / `profile.client_ca` of a target
//! profile: every credential a role-based check is sent with is *derived* here from the one
//! binding the profile gives its role — the valid credential, and each variant (expired token,
//! `alg: none`, rogue-CA certificate, …) minted at load time from that binding's subject,
//! principal, groups and the identity provider's description.

use super::*;
use crate::scenario::raw::{RawBinding, RawCheck, RawIdp, RawProfile};
use crate::tls::pki::{self, Misissue};

/// The role that needs no binding: no certificate, no token.
pub(super) const ANONYMOUS: &str = "anonymous";

/// Every credential variant a check may ask for, with what it is.
pub(super) const VARIANTS: &[(&str, &str)] = &[
    ("no-token", "the role's client certificate without any token"),
    ("no-cert", "the role's valid token without a client certificate"),
    ("basic", "Basic credentials instead of a bearer token"),
    ("alg-none", "an unsigned token with `alg: nOnE` (the claims of `claims_of` if given)"),
    ("bad-signature", "the role's token with a corrupted signature"),
    ("stripped-signature", "the role's token with its signature removed"),
    ("tampered", "the role's token with its payload edited under the original signature (to `claims_of`'s groups)"),
    ("hs256-confusion", "the role's claims signed HS256 with the IdP's public key as the HMAC secret"),
    ("unknown-kid", "a token signed by the IdP key but naming a key id the IdP never published"),
    ("wrong-aud", "a token for another audience"),
    ("wrong-iss", "a token from another issuer"),
    ("expired-token", "a token that expired beyond the IdP's leeway"),
    ("future-token", "a token not valid before a time beyond the IdP's leeway"),
    ("token-of", "the role's certificate with the valid token of the role `claims_of`"),
    ("expired-cert", "a certificate with the role's subject, by the trusted CA, expired"),
    ("future-cert", "a certificate with the role's subject, by the trusted CA, not yet valid"),
    ("rogue-ca", "a certificate with the role's subject by a rogue CA carrying the trusted CA's name"),
    ("no-clientauth", "a certificate with the role's subject, by the trusted CA, without the clientAuth EKU"),
];

/// Variants that change the token, so they need the identity provider.
const TOKEN_VARIANTS: &[&str] = &[
    "alg-none",
    "bad-signature",
    "stripped-signature",
    "tampered",
    "hs256-confusion",
    "unknown-kid",
    "wrong-aud",
    "wrong-iss",
    "expired-token",
    "future-token",
    "token-of",
];

/// Values a derived wrong claim carries: names no real deployment uses.
const WRONG_AUD: &str = "gauntlet-wrong-audience.invalid";
const WRONG_ISS: &str = "https://wrong-issuer.gauntlet.invalid";
const UNKNOWN_KID: &str = "gauntlet-unpublished-kid";
/// How far beyond the leeway an expired / future token lies.
const BEYOND_LEEWAY: i64 = 600;

/// The name the derived identity of `role`/`variant`/`claims_of` has in reports.
pub(super) fn derived_name(role: &str, variant: Option<&str>, claims_of: Option<&str>) -> String {
    match (variant, claims_of) {
        (None, _) => role.to_string(),
        (Some(v), None) => format!("{role}~{v}"),
        (Some(v), Some(c)) => format!("{role}~{v}({c})"),
    }
}

/// The identity provider, resolved.
struct Idp {
    alg: String,
    key: Option<Vec<u8>>,
    kid: Option<String>,
    public_key: Option<Vec<u8>>,
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    subject_claim: String,
    groups_claim: String,
    leeway: i64,
    lifetime: i64,
    header: HeaderName,
    scheme: String,
}

/// One role's binding, resolved.
struct Base {
    origin: Origin,
    principal: String,
    groups: Vec<String>,
    cert: Option<ClientCert>,
    pool: Vec<ClientCert>,
    /// The CA of a minted pool (a default for the mis-issued variants).
    mint_ca: Option<(String, String)>,
    alg: String,
    key: Option<Vec<u8>>,
    kid: Option<String>,
    public_key: Option<Vec<u8>>,
    claims: Vec<(String, Claim)>,
}

fn clone_cert(c: &ClientCert) -> ClientCert {
    ClientCert { chain: c.chain.clone(), key: c.key.clone_key() }
}

/// Which checks are in scope, by raw index: a check outside the profile's declared features
/// needs no binding (it is never sent).
fn in_scope(c: &RawCheck, profile: &Profile) -> bool {
    unclaimed(&c.requires, profile).is_empty()
}

/// Derives the identities of every role-based check. Returns them (to append to the explicit
/// identities) with, per derived identity, the origin a per-credential warning points at.
pub(super) fn derive(cx: &mut Ctx<'_>, m: &Merged, profile: &Profile) -> Vec<(Identity, Origin)> {
    let declared: Vec<&str> = m.roles.iter().map(|(n, _, _)| n.as_str()).collect();
    for (name, _, o) in &m.roles {
        if !valid_name(name) || name.contains('.') {
            cx.at(o, "", format!("`{name}` is not a valid role name: use letters, digits, `-` and `_`"));
        }
    }
    let (raw_profile, po) = match &m.profile {
        Some((p, o)) => (Some(p), o.clone()),
        None => (None, Origin { file: 0, path: "profile".into() }),
    };
    if let Some(p) = raw_profile {
        for name in p.roles.keys() {
            if name != ANONYMOUS && !declared.contains(&name.as_str()) && !m.roles.is_empty() {
                let hint = units::suggest(name, declared.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                cx.warn(&po, &format!("roles.{name}"), format!("no included pack declares role `{name}`{hint}"));
            }
        }
    }
    let idp = raw_profile.and_then(|p| p.idp.as_ref()).and_then(|i| resolve_idp(cx, &po, i));
    let mut bases: Vec<(String, Option<Base>)> = Vec::new();
    let mut out: Vec<(Identity, Origin)> = Vec::new();
    let mut placeholders: Vec<usize> = Vec::new();
    for (c, o) in &m.checks {
        let Some(role) = &c.role else {
            for (k, set) in [("variant", c.variant.is_some()), ("claims_of", c.claims_of.is_some())] {
                if set {
                    cx.at(o, k, format!("`{k}` qualifies a `role:`; this check names none"));
                }
            }
            continue;
        };
        if c.identity.is_some() {
            cx.at(o, "role", "give either `identity:` (a named identity) or `role:` (bound by the profile), not both");
            continue;
        }
        let name = derived_name(role, c.variant.as_deref(), c.claims_of.as_deref());
        let scope = in_scope(c, profile);
        // Derived once per name. A placeholder (for a check outside the scope, never sent) is
        // replaced when an in-scope check needs the same credential: which check comes first
        // must not decide what is sent.
        let mut replace_at = None;
        if let Some(i) = out.iter().position(|(i, _)| i.name == name) {
            if !scope || !placeholders.contains(&i) {
                continue;
            }
            replace_at = Some(i);
        }
        let known = |cx: &mut Ctx<'_>, sub: &str, r: &str| -> bool {
            if r == ANONYMOUS || declared.contains(&r) {
                return true;
            }
            let hint = units::suggest(r, declared.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!(" (declared: {})", declared.join(", ")));
            cx.at(o, sub, format!("role `{r}` is not declared under `roles:`{hint}"));
            false
        };
        if !known(cx, "role", role) || c.claims_of.as_deref().is_some_and(|r| !known(cx, "claims_of", r)) {
            continue;
        }
        if let Some(v) = &c.variant {
            if !VARIANTS.iter().any(|(n, _)| n == v) {
                let hint = units::suggest(v, VARIANTS.iter().map(|(n, _)| *n))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| {
                        format!(" (one of {})", VARIANTS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
                    });
                cx.at(o, "variant", format!("`{v}` is not a credential variant{hint}"));
                continue;
            }
        }
        let empty = Identity {
            name: name.clone(),
            principal: role.clone(),
            client_cert: None,
            pool: Vec::new(),
            token: None,
            headers: Vec::new(),
            group: name.clone(),
        };
        if role == ANONYMOUS {
            if c.variant.is_some() {
                cx.at(o, "variant", "the `anonymous` role has no credential to vary");
            }
            out.push((empty, o.clone()));
            continue;
        }
        let base_of = |cx: &mut Ctx<'_>, bases: &mut Vec<(String, Option<Base>)>, r: &str| -> usize {
            if let Some(i) = bases.iter().position(|(n, _)| n == r) {
                return i;
            }
            let b = raw_profile.and_then(|p| p.roles.get(r)).and_then(|raw| {
                let bo = Origin { file: po.file, path: join(&po.path, &format!("roles.{r}")) };
                resolve_base(cx, bo, r, raw, idp.as_ref())
            });
            bases.push((r.to_string(), b));
            bases.len() - 1
        };
        let bi = base_of(cx, &mut bases, role);
        let ci = c.claims_of.as_deref().map(|r| base_of(cx, &mut bases, r));
        let unbound = |cx: &mut Ctx<'_>, sub: &str, r: &str| {
            let pname = &profile.name;
            let bound = raw_profile.is_some_and(|p| p.roles.contains_key(r));
            if !bound {
                let or = if c.requires.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", or leave what the check requires ({}) out of the profile's `features`",
                        c.requires.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                    )
                };
                let id = c.id.as_deref().unwrap_or("?");
                cx.at(
                    o,
                    sub,
                    format!(
                        "check {id}: role `{r}` is not bound by profile `{pname}`: add `profile.roles.{r}: {{cert, key, principal, groups}}` \
                         (or a `pool:`){or}"
                    ),
                );
            }
        };
        if !scope {
            placeholders.push(out.len());
            out.push((empty, o.clone()));
            continue;
        }
        let Some(base) = bases[bi].1.as_ref() else {
            unbound(cx, "role", role);
            continue;
        };
        let other = match ci {
            Some(ci) => match bases[ci].1.as_ref() {
                Some(b) => Some(b),
                None => {
                    unbound(cx, "claims_of", c.claims_of.as_deref().unwrap_or_default());
                    continue;
                }
            },
            None => None,
        };
        let variant = c.variant.as_deref();
        if variant.is_some_and(|v| TOKEN_VARIANTS.contains(&v)) && idp.is_none() {
            cx.at(
                o,
                "variant",
                format!(
                    "variant `{}` derives a token from the identity provider, and profile `{}` describes none: add \
                     `profile.idp: {{alg, key, kid, iss, aud}}`, or leave `jwt` out of its `features`",
                    variant.unwrap_or_default(),
                    profile.name
                ),
            );
            continue;
        }
        if matches!(variant, Some("token-of")) && other.is_none() {
            cx.at(o, "claims_of", "variant `token-of` sends another role's token: name that role in `claims_of:`");
            continue;
        }
        if let Some(id) = variant_identity(cx, o, &name, role, base, other, variant, idp.as_ref(), raw_profile, &po) {
            let warn_at = if id.group == role.as_str() { base.origin.clone() } else { o.clone() };
            match replace_at {
                Some(i) => {
                    out[i] = (id, warn_at);
                    placeholders.retain(|p| *p != i);
                }
                None => out.push((id, warn_at)),
            }
        }
    }
    out
}

fn resolve_idp(cx: &mut Ctx<'_>, po: &Origin, i: &RawIdp) -> Option<Idp> {
    let at = |k: &str| format!("idp.{k}");
    let Some(alg) = i.alg.clone() else {
        cx.at(po, "idp", format!("missing `alg:` (one of {})", auth::ALGORITHMS.join(", ")));
        return None;
    };
    if alg.eq_ignore_ascii_case("none") || !auth::ALGORITHMS.contains(&alg.as_str()) {
        let hint = units::suggest(&alg, auth::ALGORITHMS.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        cx.at(po, &at("alg"), format!("`{alg}` is not an algorithm an identity provider signs with{hint}"));
        return None;
    }
    let Some(kpath) = &i.key else {
        cx.at(
            po,
            "idp",
            "missing `key:` (the IdP's signing key, PEM, or the HMAC secret file): valid tokens are minted with it",
        );
        return None;
    };
    let key = cx.read(po, &at("key"), kpath)?.1;
    let public_key = match &i.public_key {
        Some(p) => Some(cx.read(po, &at("public_key"), p)?.1),
        None => pki::public_key_pem(&String::from_utf8_lossy(&key)).map(String::into_bytes),
    };
    let aud = match &i.aud {
        None => None,
        Some(Value::String(s)) => Some(serde_json::Value::String(s.clone())),
        Some(Value::Sequence(list)) if list.iter().all(|v| v.is_string()) && !list.is_empty() => {
            Some(serde_json::Value::Array(
                list.iter().filter_map(|v| v.as_str()).map(|s| serde_json::Value::String(s.into())).collect(),
            ))
        }
        Some(_) => {
            cx.at(po, &at("aud"), "an audience is a string or a list of strings");
            return None;
        }
    };
    let secs = |cx: &mut Ctx<'_>, k: &str, v: &Option<String>, default: i64| -> Option<i64> {
        match v {
            None => Some(default),
            Some(s) => match units::duration(s) {
                Ok(d) => Some(d.as_secs() as i64),
                Err(e) => {
                    cx.at(po, &at(k), e);
                    None
                }
            },
        }
    };
    let leeway = secs(cx, "leeway", &i.leeway, 60)?;
    let lifetime = secs(cx, "lifetime", &i.lifetime, 3600)?;
    if lifetime == 0 {
        cx.at(po, &at("lifetime"), "a token lifetime of 0 s expires as it is minted: write e.g. `1h`");
        return None;
    }
    let header = match &i.header {
        None => HeaderName::from_static("authorization"),
        Some(h) => match HeaderName::from_str(h) {
            Ok(n) => n,
            Err(_) => {
                cx.at(po, &at("header"), format!("`{h}` is not a valid header name"));
                return None;
            }
        },
    };
    Some(Idp {
        alg,
        key: Some(key),
        kid: i.kid.clone(),
        public_key,
        iss: i.iss.clone(),
        aud,
        subject_claim: i.subject_claim.clone().unwrap_or_else(|| "sub".into()),
        groups_claim: i.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        leeway,
        lifetime,
        header,
        scheme: i.scheme.clone().unwrap_or_else(|| "Bearer".into()),
    })
}

fn resolve_base(cx: &mut Ctx<'_>, o: Origin, role: &str, raw: &RawBinding, idp: Option<&Idp>) -> Option<Base> {
    let as_ident = crate::scenario::raw::RawIdentity {
        cert: raw.cert.clone(),
        key: raw.key.clone(),
        pool: raw.pool.clone(),
        ..Default::default()
    };
    let before = cx.problems.len();
    let cert = client_cert(cx, &o, &as_ident);
    let pool = raw.pool.as_ref().map(|p| pool(cx, &o, &as_ident, p)).unwrap_or_default();
    let mint_ca = raw.pool.as_ref().and_then(|p| p.mint.as_ref()).and_then(|m| {
        let ca = cx.read(&o, "pool.mint.ca_cert", &m.ca_cert)?.1;
        let key = cx.read(&o, "pool.mint.ca_key", &m.ca_key)?.1;
        Some((String::from_utf8_lossy(&ca).into_owned(), String::from_utf8_lossy(&key).into_owned()))
    });
    let (mut alg, mut key, mut kid, mut public_key) = match idp {
        Some(i) => (i.alg.clone(), i.key.clone(), i.kid.clone(), i.public_key.clone()),
        None => (String::new(), None, None, None),
    };
    if let Some(s) = &raw.signing {
        if idp.is_none() {
            cx.at(
                &o,
                "signing",
                "`signing` picks another key of the identity provider: describe it under `profile.idp`",
            );
        }
        if let Some(a) = &s.alg {
            if a.eq_ignore_ascii_case("none") || !auth::ALGORITHMS.contains(&a.as_str()) {
                cx.at(&o, "signing.alg", format!("`{a}` is not an algorithm an identity provider signs with"));
            }
            alg = a.clone();
        }
        if let Some(k) = &s.key {
            key = cx.read(&o, "signing.key", k).map(|(_, b)| b);
            public_key = match &s.public_key {
                Some(p) => cx.read(&o, "signing.public_key", p).map(|(_, b)| b),
                None => key
                    .as_deref()
                    .and_then(|k| pki::public_key_pem(&String::from_utf8_lossy(k)))
                    .map(String::into_bytes),
            };
        }
        kid = s.kid.clone().or(kid);
    }
    let mut claims = Vec::new();
    for (k, v) in &raw.claims {
        claims.push((k.clone(), claim(cx, &o, &format!("claims.{k}"), v)?));
    }
    (cx.problems.len() == before).then(|| Base {
        origin: o,
        principal: raw.principal.clone().unwrap_or_else(|| role.to_string()),
        groups: raw.groups.clone(),
        cert,
        pool,
        mint_ca,
        alg,
        key,
        kid,
        public_key,
        claims,
    })
}

/// The claims of `base`'s valid token (`groups` from `groups_of` when given).
fn claims(idp: &Idp, base: &Base, groups_of: &Base) -> Vec<(String, Claim)> {
    let mut c = vec![
        (idp.subject_claim.clone(), Claim::Json(serde_json::Value::String(base.principal.clone()))),
        (
            idp.groups_claim.clone(),
            Claim::Json(serde_json::Value::Array(
                groups_of.groups.iter().map(|g| serde_json::Value::String(g.clone())).collect(),
            )),
        ),
        ("iat".into(), Claim::Relative(0)),
        ("exp".into(), Claim::Relative(idp.lifetime)),
    ];
    if let Some(iss) = &idp.iss {
        c.push(("iss".into(), Claim::Json(serde_json::Value::String(iss.clone()))));
    }
    if let Some(aud) = &idp.aud {
        c.push(("aud".into(), Claim::Json(aud.clone())));
    }
    c.extend(base.claims.iter().cloned());
    c
}

fn set(claims: &mut Vec<(String, Claim)>, k: &str, v: Claim) {
    match claims.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v,
        None => claims.push((k.to_string(), v)),
    }
}

#[allow(clippy::too_many_arguments)]
fn variant_identity(
    cx: &mut Ctx<'_>,
    o: &Origin,
    name: &str,
    role: &str,
    base: &Base,
    other: Option<&Base>,
    variant: Option<&str>,
    idp: Option<&Idp>,
    raw_profile: Option<&RawProfile>,
    po: &Origin,
) -> Option<Identity> {
    let jwt = |cx: &mut Ctx<'_>,
               alg: &str,
               key: Option<&[u8]>,
               kid: Option<String>,
               claims: Vec<(String, Claim)>,
               tamper: Vec<(String, Claim)>,
               corrupt: Option<Corrupt>|
     -> Option<TokenSource> {
        match JwtSpec::new(alg, key, kid, None, claims, tamper, corrupt) {
            Ok(s) => Some(TokenSource::Jwt(s)),
            Err(e) => {
                cx.at(&base.origin, "", format!("cannot derive the `{}` token: {e}", variant.unwrap_or("valid")));
                None
            }
        }
    };
    let token =
        |source: TokenSource, idp: &Idp| Token { header: idp.header.clone(), scheme: idp.scheme.clone(), source };
    // The valid token of `b`, if the profile has an IdP.
    // `single`: sent without the pool (one credential), so a `{n}` in the claims means member 1.
    let valid = |cx: &mut Ctx<'_>, b: &Base, single: bool| -> Option<Option<Token>> {
        let Some(i) = idp else { return Some(None) };
        let mut c = claims(i, b, b);
        if single {
            for (_, v) in c.iter_mut() {
                if let Claim::Json(serde_json::Value::String(s)) = v {
                    *s = s.replace("{n}", "1");
                }
            }
        }
        Some(Some(token(jwt(cx, &b.alg, b.key.as_deref(), b.kid.clone(), c, vec![], None)?, i)))
    };
    let (mut cert, mut pool) = (base.cert.as_ref().map(clone_cert), base.pool.iter().map(clone_cert).collect());
    let mut group = role.to_string();
    let tok: Option<Token> = match variant {
        None => valid(cx, base, false)?,
        Some("no-token") => None,
        Some("no-cert") => {
            (cert, pool, group) = (None, Vec::new(), name.to_string());
            valid(cx, base, true)?
        }
        Some("basic") => {
            use base64::Engine as _;
            let user = base.principal.replace("{n}", "1");
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:gauntlet-not-a-password"));
            let header = idp.map(|i| i.header.clone()).unwrap_or(HeaderName::from_static("authorization"));
            Some(Token { header, scheme: "Basic".into(), source: TokenSource::Static(v) })
        }
        Some("token-of") => valid(cx, other?, false)?,
        Some(v @ ("expired-cert" | "future-cert" | "rogue-ca" | "no-clientauth")) => {
            let how = match v {
                "expired-cert" => Misissue::Expired,
                "future-cert" => Misissue::NotYetValid,
                "rogue-ca" => Misissue::RogueCa,
                _ => Misissue::NoClientAuth,
            };
            let Some(like) = base.cert.as_ref().or(base.pool.first()).and_then(|c| c.chain.first()) else {
                cx.at(
                    o,
                    "variant",
                    format!(
                        "variant `{v}` copies the subject of role `{role}`'s certificate, and its binding has none"
                    ),
                );
                return None;
            };
            let ca = client_ca(cx, raw_profile, po, base, how)?;
            match pki::mint_misissued(like.as_ref(), &ca.0, ca.1.as_deref(), how) {
                Ok((c, k)) => {
                    (cert, pool, group) = (Some(ClientCert { chain: vec![c], key: k }), Vec::new(), name.to_string());
                }
                Err(e) => {
                    cx.at(o, "variant", format!("cannot mint the `{v}` certificate: {e}"));
                    return None;
                }
            }
            valid(cx, base, true)?
        }
        Some(v) => {
            let i = idp?;
            let groups_of = other.unwrap_or(base);
            let mut c = claims(i, base, base);
            let (mut alg, mut key, mut kid) = (base.alg.clone(), base.key.clone(), base.kid.clone());
            let (mut tamper, mut corrupt) = (Vec::new(), None);
            match v {
                "alg-none" => {
                    c = claims(i, base, groups_of);
                    (alg, key) = ("nOnE".into(), None);
                }
                "bad-signature" => corrupt = Some(Corrupt::Signature),
                "stripped-signature" => corrupt = Some(Corrupt::StripSignature),
                "tampered" => {
                    tamper = match other {
                        Some(g) => vec![(
                            i.groups_claim.clone(),
                            Claim::Json(serde_json::Value::Array(
                                g.groups.iter().map(|x| serde_json::Value::String(x.clone())).collect(),
                            )),
                        )],
                        None => vec![(
                            i.subject_claim.clone(),
                            Claim::Json(serde_json::Value::String(format!("{}-tampered", base.principal))),
                        )],
                    };
                }
                "hs256-confusion" => {
                    let Some(pk) = base.public_key.clone() else {
                        cx.at(
                            o,
                            "variant",
                            "variant `hs256-confusion` keys HMAC with the IdP's public key, and it cannot be derived \
                             from the signing key: add `profile.idp.public_key` (the PEM the gateway verifies with)",
                        );
                        return None;
                    };
                    (alg, key) = ("HS256".into(), Some(pk));
                }
                "unknown-kid" => kid = Some(UNKNOWN_KID.into()),
                "wrong-aud" => set(&mut c, "aud", Claim::Json(serde_json::Value::String(WRONG_AUD.into()))),
                "wrong-iss" => set(&mut c, "iss", Claim::Json(serde_json::Value::String(WRONG_ISS.into()))),
                "expired-token" => {
                    let exp = -(i.leeway + BEYOND_LEEWAY);
                    set(&mut c, "exp", Claim::Relative(exp));
                    set(&mut c, "iat", Claim::Relative(exp - i.lifetime));
                }
                "future-token" => {
                    let nbf = i.leeway + BEYOND_LEEWAY;
                    set(&mut c, "nbf", Claim::Relative(nbf));
                    set(&mut c, "exp", Claim::Relative(nbf + i.lifetime));
                }
                other => {
                    // VARIANTS lists a name this match does not derive: refuse, never send blank.
                    cx.at(o, "variant", format!("variant `{other}` cannot be derived by this gauntlet"));
                    return None;
                }
            }
            Some(token(jwt(cx, &alg, key.as_deref(), kid, c, tamper, corrupt)?, i))
        }
    };
    Some(Identity {
        name: name.to_string(),
        principal: base.principal.clone(),
        client_cert: cert,
        pool,
        token: tok,
        headers: Vec::new(),
        group,
    })
}

/// The trusted client CA (certificate PEM, key PEM when needed) for a mis-issued variant:
/// `profile.client_ca`, else the CA a minted pool is signed by.
fn client_ca(
    cx: &mut Ctx<'_>,
    raw_profile: Option<&RawProfile>,
    po: &Origin,
    base: &Base,
    how: Misissue,
) -> Option<(String, Option<String>)> {
    if let Some(ca) = raw_profile.and_then(|p| p.client_ca.as_ref()) {
        let Some(cert) = &ca.cert else {
            cx.at(po, "client_ca", "missing `cert:` (the CA certificate the gateway trusts for clients, PEM)");
            return None;
        };
        let cert = String::from_utf8_lossy(&cx.read(po, "client_ca.cert", cert)?.1).into_owned();
        let key = match (&ca.key, how.needs_ca_key()) {
            (Some(k), true) => Some(String::from_utf8_lossy(&cx.read(po, "client_ca.key", k)?.1).into_owned()),
            (None, true) => {
                cx.at(
                    po,
                    "client_ca",
                    "minting an expired / not-yet-valid / no-clientAuth certificate needs the client CA's `key:` \
                     (give it, or leave `mtls` out of the profile's `features`)",
                );
                return None;
            }
            (_, false) => None,
        };
        return Some((cert, key));
    }
    if let Some((c, k)) = &base.mint_ca {
        return Some((c.clone(), Some(k.clone())));
    }
    cx.at(
        po,
        "",
        "mis-issued client certificates are minted from the CA the gateway trusts: add `client_ca: {cert, key}` \
         to the profile (or leave `mtls` out of its `features`)",
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_say_role_variant_and_whose_claims() {
        assert_eq!(derived_name("user", None, None), "user");
        assert_eq!(derived_name("user", Some("expired-token"), None), "user~expired-token");
        assert_eq!(derived_name("user", Some("alg-none"), Some("admin")), "user~alg-none(admin)");
        assert!(!valid_name("user~expired-token"), "a derived name never clashes with a named identity");
    }

    #[test]
    fn every_token_variant_is_a_variant_and_every_variant_is_described() {
        for v in TOKEN_VARIANTS {
            assert!(VARIANTS.iter().any(|(n, _)| n == v), "{v}");
        }
        assert!(VARIANTS.iter().all(|(_, about)| !about.is_empty()));
    }
}
