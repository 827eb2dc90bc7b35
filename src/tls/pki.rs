//! The test PKI: a CA, a server certificate for loopback, client identities, the negative
//! material conformance needs (expired, not yet valid, rogue CA, no clientAuth EKU), and
//! JWT signing keys with a JWKS.
//!
//! Idempotent: existing files are kept unless `force`. Private keys are written mode 0600
//! through a temporary name, so a file is either whole or absent.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration as TDuration, OffsetDateTime};

/// PKI errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a file failed.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An existing CA file could not be reused.
    #[error("cannot reuse {}: {reason} (use --force to regenerate everything)", .path.display())]
    Reuse {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being made.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// RSA key generation failed.
    #[error("cannot generate the RSA JWT key: {0}")]
    Rsa(String),
    /// The lab signing key could not be generated.
    #[error("cannot generate the lab signing key: {0}")]
    Sign(String),
}

/// What `init` did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Files kept as they were.
    pub kept: Vec<PathBuf>,
    /// Kept private keys others could read, made 0600: the file and its mode before.
    pub fixed: Vec<(PathBuf, u32)>,
}

const CA_CN: &str = "gauntlet test CA";

/// A client identity the PKI issues: file stem, CN, OU, validity and EKU variant.
struct Leaf {
    stem: &'static str,
    cn: &'static str,
    ou: &'static str,
    validity: Validity,
    eku: ExtendedKeyUsagePurpose,
    rogue: bool,
    about: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Validity {
    Current,
    Expired,
    NotYetValid,
}

const LEAVES: &[Leaf] = &[
    Leaf {
        stem: "alice",
        cn: "alice",
        ou: "eng",
        validity: Validity::Current,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: false,
        about: "client identity alice (OU=eng)",
    },
    Leaf {
        stem: "bob",
        cn: "bob",
        ou: "finance",
        validity: Validity::Current,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: false,
        about: "client identity bob (OU=finance)",
    },
    Leaf {
        stem: "carol",
        cn: "carol",
        ou: "admin",
        validity: Validity::Current,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: false,
        about: "client identity carol (OU=admin)",
    },
    Leaf {
        stem: "alice-expired",
        cn: "alice",
        ou: "eng",
        validity: Validity::Expired,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: false,
        about: "alice, expired an hour ago (negative)",
    },
    Leaf {
        stem: "alice-future",
        cn: "alice",
        ou: "eng",
        validity: Validity::NotYetValid,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: false,
        about: "alice, valid only from an hour from now (negative)",
    },
    Leaf {
        stem: "alice-rogue",
        cn: "alice",
        ou: "eng",
        validity: Validity::Current,
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        rogue: true,
        about: "alice, signed by the rogue CA that copies the real CA's name (negative)",
    },
    Leaf {
        stem: "alice-noclientauth",
        cn: "alice",
        ou: "eng",
        validity: Validity::Current,
        eku: ExtendedKeyUsagePurpose::ServerAuth,
        rogue: false,
        about: "alice, without the clientAuth extended key usage (negative)",
    },
];

/// Creates (or completes) the test PKI in `dir`.
pub fn init(dir: &Path, force: bool) -> Result<Outcome, Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
    let mut out = Outcome::default();
    let p = |name: &str| dir.join(name);
    let exists = |name: &str| !force && p(name).exists();

    let now = OffsetDateTime::now_utc();
    let ca_params = ca_params(now);
    let ca = Issuer::new(ca_params.clone(), ca_key(dir, "ca", &ca_params, force, &mut out)?);
    let rogue_params = ca_params_named(now);
    let rogue = Issuer::new(rogue_params.clone(), ca_key(dir, "rogue-ca", &rogue_params, force, &mut out)?);

    if exists("server.pem") && exists("server.key") {
        out.kept.extend([p("server.pem"), p("server.key")]);
    } else {
        let key = keypair("server key")?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
                .map_err(|source| Error::Generate { what: "server params".into(), source })?;
        params.distinguished_name = dn("localhost", "gateway");
        params.not_before = now - TDuration::hours(1);
        params.not_after = now + TDuration::days(825);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert =
            params.signed_by(&key, &ca).map_err(|source| Error::Generate { what: "server cert".into(), source })?;
        write(&p("server.pem"), cert.pem().as_bytes(), false, &mut out)?;
        write(&p("server.key"), key.serialize_pem().as_bytes(), true, &mut out)?;
    }

    for leaf in LEAVES {
        let (cert_name, key_name) = (format!("{}.pem", leaf.stem), format!("{}.key", leaf.stem));
        if exists(&cert_name) && exists(&key_name) && still_fits(&p(&cert_name), leaf.validity, now) {
            out.kept.extend([p(&cert_name), p(&key_name)]);
            continue;
        }
        let key = keypair(leaf.stem)?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|source| Error::Generate { what: leaf.stem.into(), source })?;
        params.distinguished_name = dn(leaf.cn, leaf.ou);
        (params.not_before, params.not_after) = match leaf.validity {
            Validity::Current => (now - TDuration::hours(1), now + TDuration::days(825)),
            Validity::Expired => (now - TDuration::days(30), now - TDuration::hours(1)),
            // Ten years ahead: "not yet valid" must stay true for the life of the PKI.
            Validity::NotYetValid => (now + TDuration::days(3650), now + TDuration::days(3650 + 825)),
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![leaf.eku.clone()];
        let issuer = if leaf.rogue { &rogue } else { &ca };
        let cert =
            params.signed_by(&key, issuer).map_err(|source| Error::Generate { what: leaf.stem.into(), source })?;
        write(&p(&cert_name), cert.pem().as_bytes(), false, &mut out)?;
        write(&p(&key_name), key.serialize_pem().as_bytes(), true, &mut out)?;
    }

    jwt_material(dir, force, &mut out)?;
    if exists("lab-signing.key") && exists("lab-signing.pub.pem") {
        out.kept.extend([p("lab-signing.key"), p("lab-signing.pub.pem")]);
    } else {
        let (private, public) = super::sign::generate().map_err(Error::Sign)?;
        write(&p("lab-signing.key"), private.as_bytes(), true, &mut out)?;
        write(&p("lab-signing.pub.pem"), public.as_bytes(), false, &mut out)?;
    }
    if exists("README.md") {
        out.kept.push(p("README.md"));
    } else {
        write(&p("README.md"), readme().as_bytes(), false, &mut out)?;
    }
    fix_private_modes(&mut out)?;
    Ok(out)
}

/// A kept private key (`*.key`, `*.secret`) that group or others may read — copied in with
/// `cp`, unpacked from an archive — is made 0600, and reported.
fn fix_private_modes(out: &mut Outcome) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in &out.kept {
            if !path.extension().is_some_and(|e| e == "key" || e == "secret") {
                continue;
            }
            let err = |source| Error::Write { path: path.clone(), source };
            let mode = fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
                out.fixed.push((path.clone(), mode));
            }
        }
    }
    Ok(())
}

/// A subject template's parts: `CN=alice-{n},OU=eng,O=corp` (`{n}` is the member number).
pub fn parse_subject(template: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in template.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not `KEY=value`"))?;
        let k = k.trim().to_ascii_uppercase();
        if !matches!(k.as_str(), "CN" | "OU" | "O" | "C" | "L" | "ST") {
            return Err(format!("`{k}` is not a subject attribute gauntlet mints (CN, OU, O, C, L, ST)"));
        }
        out.push((k, v.trim().to_string()));
    }
    if !out.iter().any(|(k, _)| k == "CN") {
        return Err("a subject needs a `CN=`".into());
    }
    Ok(out)
}

/// Mints `count` client certificates (clientAuth, P-256, valid from an hour ago for a day) in
/// memory, signed by the CA in `ca_cert_pem`/`ca_key_pem`, subjects from `subject` with `{n}`
/// replaced by 1, 2, …. Nothing is written: the keys live only in the returned DER.
pub fn mint_clients(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    subject: &[(String, String)],
    count: u32,
) -> Result<Vec<(rustls_pki_types::CertificateDer<'static>, rustls_pki_types::PrivateKeyDer<'static>)>, String> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("the CA key does not parse: {e}"))?;
    let ca =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let key = keypair("pool member").map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        let mut dn = DistinguishedName::new();
        for (k, v) in subject {
            let ty = match k.as_str() {
                "CN" => DnType::CommonName,
                "OU" => DnType::OrganizationalUnitName,
                "O" => DnType::OrganizationName,
                "C" => DnType::CountryName,
                "L" => DnType::LocalityName,
                _ => DnType::StateOrProvinceName,
            };
            dn.push(ty, v.replace("{n}", &n.to_string()));
        }
        params.distinguished_name = dn;
        params.not_before = now - TDuration::hours(1);
        params.not_after = now + TDuration::days(1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca).map_err(|e| format!("cannot sign member {n}: {e}"))?;
        let der_key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("member {n}'s key: {e}"))?;
        out.push((cert.der().clone(), der_key));
    }
    Ok(out)
}

/// The subject of a DER certificate as text (`CN=alice, O=Example`), as a capture shows a
/// client's certificate; `None` when it does not parse.
pub fn subject_text(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

/// Whether a kept certificate still has the validity its role needs (a "not yet valid"
/// certificate that has become valid, or a current one that expired, is re-issued).
fn still_fits(path: &Path, want: Validity, now: OffsetDateTime) -> bool {
    let Ok(pem) = crate::input::read(path, crate::input::PEM) else { return false };
    use rustls_pki_types::pem::PemObject;
    let Some(Ok(der)) = rustls_pki_types::CertificateDer::pem_slice_iter(&pem).next() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else { return false };
    let (nb, na) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let t = now.unix_timestamp();
    match want {
        Validity::Current => nb <= t && t + 86_400 < na,
        Validity::Expired => na < t,
        Validity::NotYetValid => nb > t + 86_400,
    }
}

fn dn(cn: &str, ou: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "gauntlet");
    d.push(DnType::OrganizationalUnitName, ou);
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(CA_CN, "test PKI");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - TDuration::days(1);
    params.not_after = now + TDuration::days(3650);
    params
}

/// The rogue CA copies the real CA's name exactly: only its key differs.
fn ca_params_named(now: OffsetDateTime) -> CertificateParams {
    ca_params(now)
}

/// Loads the CA key when the CA files exist (and not `force`), else makes a new CA.
fn ca_key(
    dir: &Path,
    stem: &str,
    params: &CertificateParams,
    force: bool,
    out: &mut Outcome,
) -> Result<KeyPair, Error> {
    let (cert_path, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
    if !force && cert_path.exists() && key_path.exists() {
        let pem = crate::input::read_text(&key_path, crate::input::PEM)
            .map_err(|e| Error::Reuse { path: key_path.clone(), reason: e.to_string() })?;
        let key =
            KeyPair::from_pem(&pem).map_err(|e| Error::Reuse { path: key_path.clone(), reason: e.to_string() })?;
        out.kept.extend([cert_path, key_path]);
        return Ok(key);
    }
    let key = keypair(stem)?;
    let cert = params.self_signed(&key).map_err(|source| Error::Generate { what: stem.into(), source })?;
    write(&cert_path, cert.pem().as_bytes(), false, out)?;
    write(&key_path, key.serialize_pem().as_bytes(), true, out)?;
    Ok(key)
}

fn keypair(what: &str) -> Result<KeyPair, Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| Error::Generate { what: format!("{what} key"), source })
}

fn jwt_material(dir: &Path, force: bool, out: &mut Outcome) -> Result<(), Error> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;

    let names =
        ["jwt-rs256.key", "jwt-rs256.pub.pem", "jwt-es256.key", "jwt-es256.pub.pem", "jwt-hs256.secret", "jwks.json"];
    if !force && names.iter().all(|n| dir.join(n).exists()) {
        out.kept.extend(names.iter().map(|n| dir.join(n)));
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| Error::Rsa(e.to_string()))?;
    let rsa_pub = rsa_key.to_public_key();
    let rsa_pem = rsa_key.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::Rsa(e.to_string()))?;
    let rsa_pub_pem = rsa_pub.to_public_key_pem(LineEnding::LF).map_err(|e| Error::Rsa(e.to_string()))?;
    let ec = keypair("ES256 JWT")?;
    let raw = ec.public_key_raw();
    let (x, y) = if raw.len() == 65 { (&raw[1..33], &raw[33..65]) } else { (raw, raw) };
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rng, &mut secret);
    let jwks = serde_json::json!({
        "keys": [
            {"kty": "RSA", "kid": "rs256-1", "use": "sig", "alg": "RS256",
             "n": B64.encode(rsa_pub.n().to_bytes_be()), "e": B64.encode(rsa_pub.e().to_bytes_be())},
            {"kty": "EC", "kid": "es256-1", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": B64.encode(x), "y": B64.encode(y)}
        ]
    });
    write(&dir.join("jwt-rs256.key"), rsa_pem.as_bytes(), true, out)?;
    write(&dir.join("jwt-rs256.pub.pem"), rsa_pub_pem.as_bytes(), false, out)?;
    write(&dir.join("jwt-es256.key"), ec.serialize_pem().as_bytes(), true, out)?;
    write(&dir.join("jwt-es256.pub.pem"), ec.public_key_pem().as_bytes(), false, out)?;
    write(&dir.join("jwt-hs256.secret"), B64.encode(secret).as_bytes(), true, out)?;
    let pretty = serde_json::to_string_pretty(&jwks).unwrap_or_default();
    write(&dir.join("jwks.json"), pretty.as_bytes(), false, out)?;
    Ok(())
}

/// Writes through a temporary name; private material gets mode 0600 from creation.
fn write(path: &Path, bytes: &[u8], private: bool, out: &mut Outcome) -> Result<(), Error> {
    let tmp = path.with_extension("tmp~");
    let err = |source| Error::Write { path: path.to_path_buf(), source };
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    out.written.push(path.to_path_buf());
    Ok(())
}

fn readme() -> String {
    let mut s = String::from(
        "# Test PKI (generated by `gauntlet certs init`)\n\n\
         Throw-away material for testing gateways on loopback. Never use it anywhere else.\n\
         Regenerate with `gauntlet certs init --force`. Private keys (`*.key`, `*.secret`) are mode 0600\n\
         and are git-ignored.\n\n| file | what it is |\n|---|---|\n\
         | `ca.pem` / `ca.key` | the test CA (`CN=gauntlet test CA`) that signs everything below unless noted |\n\
         | `server.pem` / `server.key` | gateway certificate for `localhost`, `127.0.0.1`, `::1` |\n",
    );
    for l in LEAVES {
        s.push_str(&format!("| `{0}.pem` / `{0}.key` | {1} |\n", l.stem, l.about));
    }
    s.push_str(
        "| `lab-signing.key` / `lab-signing.pub.pem` | an Ed25519 key pair for `gauntlet sign` / `gauntlet verify` (a lab makes its own for real reports) |\n\
         | `rogue-ca.pem` / `rogue-ca.key` | a second CA with the *same name* as the test CA and another key |\n\
         | `jwt-rs256.key` / `jwt-rs256.pub.pem` | RS256 JWT signing key (PKCS#8) and its public half (kid `rs256-1`); the public PEM doubles as the HS256 key-confusion secret |\n\
         | `jwt-es256.key` / `jwt-es256.pub.pem` | ES256 JWT signing key (PKCS#8, P-256) and its public half (kid `es256-1`) |\n\
         | `jwt-hs256.secret` | HS256 shared secret (base64url text; the bytes of the file are the key) |\n\
         | `jwks.json` | JWKS with the RS256 and ES256 public keys |\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_certificates_are_checked_against_their_role() {
        let d = tempfile::tempdir().expect("tempdir");
        init(d.path(), false).expect("init");
        let now = OffsetDateTime::now_utc();
        let future = d.path().join("alice-future.pem");
        assert!(still_fits(&future, Validity::NotYetValid, now));
        // Eleven years on, the "not yet valid" certificate is valid: it must be re-issued.
        assert!(!still_fits(&future, Validity::NotYetValid, now + TDuration::days(4015)));
        assert!(still_fits(&d.path().join("alice.pem"), Validity::Current, now));
        assert!(still_fits(&d.path().join("alice-expired.pem"), Validity::Expired, now));
        assert!(!still_fits(&d.path().join("alice.pem"), Validity::Expired, now));
    }
}

/// A mis-issued sibling of a real client certificate, minted at run start for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misissue {
    /// Signed by the trusted CA, expired a day ago.
    Expired,
    /// Signed by the trusted CA, valid only from tomorrow.
    NotYetValid,
    /// Signed by the trusted CA, with serverAuth instead of the clientAuth EKU.
    NoClientAuth,
    /// Signed by a rogue CA that copies the trusted CA's name exactly (only its key differs).
    RogueCa,
}

impl Misissue {
    /// Whether minting needs the trusted CA's private key.
    pub fn needs_ca_key(self) -> bool {
        self != Misissue::RogueCa
    }
}

/// The subject (name and alternative names) of `cert`, to copy into a minted sibling.
fn subject_of(cert: &[u8]) -> Result<(DistinguishedName, Vec<rcgen::SanType>), String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    use x509_parser::extensions::GeneralName;
    let (_, x) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| format!("the certificate does not parse: {e}"))?;
    let mut dn = DistinguishedName::new();
    for attr in x.subject().iter_attributes() {
        let oid: Vec<u64> = attr.attr_type().iter().ok_or("a subject attribute has an unreadable type")?.collect();
        let value = attr.as_str().map_err(|_| "a subject attribute is not a string gauntlet can copy")?.to_string();
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => rcgen::DnValue::PrintableString(
                value.as_str().try_into().map_err(|_| "a PrintableString subject attribute does not copy")?,
            ),
            _ => rcgen::DnValue::Utf8String(value),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for name in &ext.value.general_names {
            let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s).map_err(|e| e.to_string());
            match name {
                GeneralName::DNSName(s) => sans.push(rcgen::SanType::DnsName(ia5(s)?)),
                GeneralName::URI(s) => sans.push(rcgen::SanType::URI(ia5(s)?)),
                GeneralName::RFC822Name(s) => sans.push(rcgen::SanType::Rfc822Name(ia5(s)?)),
                GeneralName::IPAddress(b) if b.len() == 4 => sans.push(rcgen::SanType::IpAddress(
                    std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()),
                )),
                _ => {}
            }
        }
    }
    Ok((dn, sans))
}

/// Mints a mis-issued sibling of `like` (same subject and alternative names, a new P-256 key),
/// in memory: expired / not yet valid / without clientAuth signed by the trusted CA, or signed
/// by a rogue CA carrying the trusted CA's exact name. `ca_key_pem` is needed except for
/// [`Misissue::RogueCa`].
pub fn mint_misissued(
    like: &[u8],
    ca_cert_pem: &str,
    ca_key_pem: Option<&str>,
    how: Misissue,
) -> Result<(rustls_pki_types::CertificateDer<'static>, rustls_pki_types::PrivateKeyDer<'static>), String> {
    let now = OffsetDateTime::now_utc();
    let (dn, sans) = subject_of(like)?;
    let issuer = match how {
        Misissue::RogueCa => {
            use rustls_pki_types::pem::PemObject;
            let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
                .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
            let (ca_dn, _) = subject_of(ca_der.as_ref()).map_err(|e| format!("the CA certificate: {e}"))?;
            let mut params = ca_params(now);
            params.distinguished_name = ca_dn;
            Issuer::new(params, keypair("rogue CA").map_err(|e| e.to_string())?)
        }
        _ => {
            let key = ca_key_pem.ok_or("minting it needs the trusted CA's private key")?;
            let key = KeyPair::from_pem(key).map_err(|e| format!("the CA key does not parse: {e}"))?;
            Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| format!("the CA certificate does not parse: {e}"))?
        }
    };
    let key = keypair("mis-issued client").map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    (params.not_before, params.not_after) = match how {
        Misissue::Expired => (now - TDuration::days(30), now - TDuration::days(1)),
        Misissue::NotYetValid => (now + TDuration::days(1), now + TDuration::days(30)),
        _ => (now - TDuration::hours(1), now + TDuration::days(1)),
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if how == Misissue::NoClientAuth {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, &issuer).map_err(|e| format!("cannot sign it: {e}"))?;
    let der_key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
    Ok((cert.der().clone(), der_key))
}

/// The public key (SPKI PEM, LF line endings, as `certs init` writes it) of a PEM private key:
/// the HMAC key of the RS256→HS256 confusion attack when the profile does not name the file.
pub fn public_key_pem(private_pem: &str) -> Option<String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let rsa =
        rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_pem));
    if let Ok(k) = rsa {
        return k.to_public_key().to_public_key_pem(LineEnding::LF).ok();
    }
    KeyPair::from_pem(private_pem).ok().map(|k| k.public_key_pem())
}
