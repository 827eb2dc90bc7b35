//! Bearer tokens: JWTs minted at run time from a claims template, and the deliberately
//! broken forms conformance needs (`alg: none`, stripped or corrupted signatures, a tampered
//! payload under the original signature, HS256 signed with a public key).
//!
//! Owns `jsonwebtoken`. Does not decide where a token goes (`scenario` and `proto` do).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

/// Token errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signing key could not be parsed for the algorithm.
    #[error("cannot use the key for {alg}: {reason}")]
    Key {
        /// Algorithm named in the template.
        alg: String,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("cannot sign a {alg} token: {reason}")]
    Sign {
        /// Algorithm.
        alg: String,
        /// Why.
        reason: String,
    },
}

/// A claim value in a template.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Literal JSON.
    Json(Value),
    /// Seconds relative to the minting instant (`exp: +5m`), rendered as a NumericDate.
    Relative(i64),
}

/// How to break a correctly signed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    /// Flip bits in the signature.
    Signature,
    /// Remove the signature, keep the trailing dot (`h.p.`).
    StripSignature,
}

impl Corrupt {
    /// Parses `signature | strip_signature`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signature" => Some(Corrupt::Signature),
            "strip_signature" => Some(Corrupt::StripSignature),
            _ => None,
        }
    }
}

/// A JWT template, validated: minting it cannot fail for a key reason.
#[derive(Clone)]
pub struct JwtSpec {
    alg_header: String,
    alg: Option<Algorithm>,
    key: Option<EncodingKey>,
    kid: Option<String>,
    typ: Option<String>,
    claims: Vec<(String, Claim)>,
    tamper: Vec<(String, Claim)>,
    corrupt: Option<Corrupt>,
}

impl std::fmt::Debug for JwtSpec {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSpec").field("alg", &self.alg_header).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Algorithms a template may name (besides any casing of `none`).
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384", "HS512", "EdDSA", "none",
];

impl JwtSpec {
    /// Builds a template. `key` is the PEM file's bytes (RSA/EC/Ed) or the raw secret (HS*):
    /// an HS256 template keyed with an RSA public key file is the classic confusion attack.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        alg: &str,
        key: Option<&[u8]>,
        kid: Option<String>,
        typ: Option<String>,
        claims: Vec<(String, Claim)>,
        tamper: Vec<(String, Claim)>,
        corrupt: Option<Corrupt>,
    ) -> Result<Self, Error> {
        let key_err = |reason: &str| Error::Key { alg: alg.to_string(), reason: reason.to_string() };
        let (parsed, enc) = if alg.eq_ignore_ascii_case("none") {
            (None, None)
        } else {
            let a: Algorithm = alg.parse().map_err(|_| key_err("unknown algorithm"))?;
            let bytes = key.ok_or_else(|| key_err("a `key` file is required"))?;
            let enc = match a {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(EncodingKey::from_secret(bytes)),
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(bytes),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
                _ => EncodingKey::from_rsa_pem(bytes),
            }
            .map_err(|e| key_err(&format!("not a usable private key ({e})")))?;
            (Some(a), Some(enc))
        };
        let spec = JwtSpec { alg_header: alg.to_string(), alg: parsed, key: enc, kid, typ, claims, tamper, corrupt };
        // Prove the key signs now, so a run never fails on it later.
        spec.mint(0)?;
        Ok(spec)
    }

    /// Mints the token with relative times resolved against `now` (Unix seconds).
    pub fn mint(&self, now: i64) -> Result<String, Error> {
        self.mint_as(now, None)
    }

    /// [`JwtSpec::mint`] for member `n` of an identity pool: `{n}` in string claims becomes
    /// the member's number.
    pub fn mint_as(&self, now: i64, n: Option<u32>) -> Result<String, Error> {
        self.mint_with(now, n, &Map::new())
    }

    /// [`JwtSpec::mint_as`] with `extra` claims set over the template's (a replayed
    /// request's captured claims), then signed like any other.
    pub fn mint_with(&self, now: i64, n: Option<u32>, extra: &Map<String, Value>) -> Result<String, Error> {
        let mut header = Map::new();
        header.insert("alg".into(), Value::String(self.alg_header.clone()));
        header.insert("typ".into(), Value::String(self.typ.clone().unwrap_or_else(|| "JWT".into())));
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), Value::String(kid.clone()));
        }
        let mut claims = render(&self.claims, now, n);
        for (k, v) in extra {
            claims.insert(k.clone(), v.clone());
        }
        let h = B64.encode(Value::Object(header).to_string());
        let p = B64.encode(Value::Object(claims.clone()).to_string());
        let signing_input = format!("{h}.{p}");
        let mut sig = match (&self.alg, &self.key) {
            (Some(alg), Some(key)) => jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, *alg)
                .map_err(|e| Error::Sign { alg: self.alg_header.clone(), reason: e.to_string() })?,
            _ => String::new(),
        };
        let mut payload = p;
        if !self.tamper.is_empty() {
            let mut edited = claims;
            edited.extend(render(&self.tamper, now, n));
            payload = B64.encode(Value::Object(edited).to_string());
        }
        match self.corrupt {
            Some(Corrupt::StripSignature) => sig.clear(),
            Some(Corrupt::Signature) => {
                let mut raw = B64.decode(&sig).unwrap_or_default();
                if raw.is_empty() {
                    raw = vec![0u8; 32];
                }
                for b in raw.iter_mut().take(8) {
                    *b ^= 0x5a;
                }
                sig = B64.encode(raw);
            }
            None => {}
        }
        Ok(format!("{h}.{payload}.{sig}"))
    }
}

fn render(claims: &[(String, Claim)], now: i64, n: Option<u32>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, c)| {
            let mut v = match c {
                Claim::Json(v) => v.clone(),
                Claim::Relative(d) => Value::from(now + d),
            };
            if let Some(n) = n {
                number(&mut v, n);
            }
            (k.clone(), v)
        })
        .collect()
}

/// Replaces `{n}` in every string of `v` (lists and objects included) with `n`.
fn number(v: &mut Value, n: u32) {
    match v {
        Value::String(s) if s.contains("{n}") => *s = s.replace("{n}", &n.to_string()),
        Value::Array(a) => a.iter_mut().for_each(|x| number(x, n)),
        Value::Object(o) => o.values_mut().for_each(|x| number(x, n)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(t: &str) -> Vec<Value> {
        t.split('.').take(2).map(|p| serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json")).collect()
    }

    #[test]
    fn alg_none_has_empty_signature_and_keeps_header_casing() {
        let spec =
            JwtSpec::new("nOnE", None, None, None, vec![("sub".into(), Claim::Json("admin".into()))], vec![], None)
                .expect("spec");
        let t = spec.mint(1000).expect("mint");
        assert!(t.ends_with('.'));
        assert_eq!(parts(&t)[0]["alg"], "nOnE");
    }

    #[test]
    fn relative_claims_resolve_against_now_and_tamper_keeps_signature() {
        let claims = vec![("sub".into(), Claim::Json("alice".into())), ("exp".into(), Claim::Relative(300))];
        let good = JwtSpec::new("HS256", Some(b"secret"), Some("k1".into()), None, claims.clone(), vec![], None)
            .expect("spec")
            .mint(1000)
            .expect("mint");
        let p = parts(&good);
        assert_eq!(p[1]["exp"], 1300);
        assert_eq!(p[0]["kid"], "k1");
        let tampered = JwtSpec::new(
            "HS256",
            Some(b"secret"),
            Some("k1".into()),
            None,
            claims,
            vec![("sub".into(), Claim::Json("admin".into()))],
            None,
        )
        .expect("spec")
        .mint(1000)
        .expect("mint");
        assert_eq!(parts(&tampered)[1]["sub"], "admin");
        assert_eq!(good.rsplit('.').next(), tampered.rsplit('.').next());
    }

    #[test]
    fn a_bad_key_is_refused_up_front() {
        let err = JwtSpec::new("RS256", Some(b"not a pem"), None, None, vec![], vec![], None).unwrap_err();
        assert!(err.to_string().contains("RS256"));
    }
}
