//! `gauntlet sign DIR --key KEY` and `gauntlet verify DIR --pubkey PUB`: the evidence pack of
//! a results folder (its `manifest.json`, written by every run, signed whole).

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Exit, out};
use crate::cli::{SignArgs, VerifyArgs};
use crate::report::evidence::{self, MANIFEST, Manifest, SIGNATURE, Signature};
use crate::{input, tls};

/// A key's short fingerprint: the first 16 hex digits of the sha256 of its raw bytes.
fn fingerprint(raw: &[u8]) -> String {
    evidence::sha256(raw)[..16].to_string()
}

fn read_manifest(dir: &std::path::Path) -> Result<(Vec<u8>, Manifest), String> {
    let path = dir.join(MANIFEST);
    let bytes = input::read(&path, input::PEM).map_err(|e| {
        format!("cannot read {}: {e} (a results folder of gauntlet 0.1 or later has one)", path.display())
    })?;
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a gauntlet manifest: {e}", path.display()))?;
    Ok((bytes, m))
}

/// What differs between `dir` and its manifest, one line each (empty when nothing does).
fn drift(dir: &std::path::Path, recorded: &Manifest) -> Result<Vec<String>, String> {
    let now = evidence::manifest_of(dir).map_err(|e| e.to_string())?;
    let (changed, missing, extra) = evidence::differences(recorded, &now);
    let mut lines: Vec<String> =
        changed.iter().map(|f| format!("{f}: changed since the manifest was written")).collect();
    lines.extend(missing.iter().map(|f| format!("{f}: listed in the manifest, missing")));
    lines.extend(extra.iter().map(|f| format!("{f}: not in the manifest (added afterwards)")));
    Ok(lines)
}

/// The exit of `sign` or `verify`: `Ok(problems)` fails (exit 1) when there are any, each
/// named, then `failed`; `Err` is a usage error (exit 2).
fn conclude(dir: &std::path::Path, r: Result<Vec<String>, String>, failed: &str) -> Exit {
    match r {
        Ok(p) if p.is_empty() => Exit::Pass,
        Ok(p) => {
            for l in p {
                errln!("gauntlet: {}: {}", dir.display(), input::printable(&l));
            }
            errln!("gauntlet: {failed}");
            Exit::Fail
        }
        Err(e) => {
            errln!("gauntlet: {}", input::printable(&e));
            Exit::Usage
        }
    }
}

pub(super) fn sign(a: &SignArgs) -> Exit {
    let run = || -> Result<Vec<String>, String> {
        let (bytes, recorded) = read_manifest(&a.dir)?;
        let drifted = drift(&a.dir, &recorded)?;
        if !drifted.is_empty() {
            return Ok(drifted);
        }
        let key = input::read(&a.key, input::PEM).map_err(|e| format!("--key {}: {e}", a.key.display()))?;
        let s = tls::sign::sign(&key, &bytes).map_err(|e| format!("--key {}: {e}", a.key.display()))?;
        let sig = Signature {
            schema: "gauntlet.signature/v1".into(),
            algorithm: "Ed25519".into(),
            signed: MANIFEST.into(),
            signed_sha256: evidence::sha256(&bytes),
            public_key: B64.encode(&s.public_key),
            signature: B64.encode(&s.signature),
        };
        let dir = crate::report::ResultsDir { path: a.dir.clone() };
        let text = serde_json::to_string_pretty(&sig).unwrap_or_default() + "\n";
        dir.write(SIGNATURE, text.as_bytes()).map_err(|e| e.to_string())?;
        out(&format!(
            "signed {} ({} files, manifest sha256 {}) with key {}\n",
            a.dir.join(MANIFEST).display(),
            recorded.files.len(),
            sig.signed_sha256,
            fingerprint(&s.public_key)
        ));
        Ok(Vec::new())
    };
    conclude(&a.dir, run(), "not signed: the folder no longer matches its manifest")
}

pub(super) fn verify(a: &VerifyArgs) -> Exit {
    let run = || -> Result<Vec<String>, String> {
        let (bytes, recorded) = read_manifest(&a.dir)?;
        let sig_path = a.dir.join(SIGNATURE);
        let sig_bytes = input::read(&sig_path, input::PEM)
            .map_err(|e| format!("cannot read {}: {e} (sign the folder with `gauntlet sign`)", sig_path.display()))?;
        let sig: Signature = serde_json::from_slice(&sig_bytes)
            .map_err(|e| format!("{} is not a gauntlet signature: {e}", sig_path.display()))?;
        let pem = input::read(&a.pubkey, input::PEM).map_err(|e| format!("--pubkey {}: {e}", a.pubkey.display()))?;
        let key = tls::sign::public_key(&pem).map_err(|e| format!("--pubkey {}: {e}", a.pubkey.display()))?;
        let mut problems = Vec::new();
        let signer = B64.decode(sig.public_key.as_bytes()).unwrap_or_default();
        let signature = B64.decode(sig.signature.as_bytes()).unwrap_or_default();
        if sig.algorithm != "Ed25519" || sig.signed != MANIFEST {
            problems.push(format!(
                "{SIGNATURE}: signs `{}` with `{}`, not {MANIFEST} with Ed25519",
                sig.signed, sig.algorithm
            ));
        } else if signer != key {
            problems.push(format!(
                "{SIGNATURE}: signed by key {}, not by the given key {}",
                fingerprint(&signer),
                fingerprint(&key)
            ));
        } else if !tls::sign::verify(&key, &bytes, &signature) {
            problems.push(format!("{MANIFEST}: the signature does not match it (edited after signing?)"));
        }
        problems.extend(drift(&a.dir, &recorded)?);
        if problems.is_empty() {
            out(&format!(
                "verified: {} — {} files match the manifest signed by key {}\n",
                a.dir.display(),
                recorded.files.len(),
                fingerprint(&key)
            ));
        }
        Ok(problems)
    };
    conclude(&a.dir, run(), "NOT verified")
}
