//! Ed25519 signatures for evidence packs (`gauntlet sign` / `verify`): a lab's key pair is
//! PKCS#8 PEM (private, written 0600 by `certs init`) and SPKI PEM (public). `ring` signs and
//! verifies; nothing here touches files.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A signature and the raw public key that makes it.
pub struct Signed {
    /// The 32-byte public key.
    pub public_key: Vec<u8>,
    /// The 64-byte signature.
    pub signature: Vec<u8>,
}

/// Signs `msg` with the Ed25519 private key in `key_pem` (PKCS#8).
pub fn sign(key_pem: &[u8], msg: &[u8]) -> Result<Signed, String> {
    let der = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(PrivateKeyDer::Pkcs8(k)) => k,
        Ok(_) => {
            return Err(
                "not a PKCS#8 private key (an Ed25519 key as `gauntlet certs init` writes `lab-signing.key`)".into()
            );
        }
        Err(e) => return Err(format!("not a PEM private key: {e}")),
    };
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
        .map_err(|e| format!("not an Ed25519 key: {e}"))?;
    Ok(Signed { public_key: pair.public_key().as_ref().to_vec(), signature: pair.sign(msg).as_ref().to_vec() })
}

/// The raw 32-byte key of an Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
    match der.as_ref().strip_prefix(&SPKI_PREFIX[..]) {
        Some(k) if k.len() == 32 => Ok(k.to_vec()),
        _ => Err("not an Ed25519 public key".into()),
    }
}

/// Whether `signature` is `raw_key`'s signature of `msg`.
pub fn verify(raw_key: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, raw_key).verify(msg, signature).is_ok()
}

/// A new key pair: (PKCS#8 private PEM, SPKI public PEM).
pub fn generate() -> Result<(String, String), String> {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| e.to_string())?;
    Ok((k.serialize_pem(), k.public_key_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only_and_only_for_its_message() {
        let (private, public) = generate().unwrap();
        let s = sign(private.as_bytes(), b"manifest").unwrap();
        let raw = public_key(public.as_bytes()).unwrap();
        assert_eq!(raw, s.public_key);
        assert!(verify(&raw, b"manifest", &s.signature));
        assert!(!verify(&raw, b"manifest!", &s.signature));
        let (_, other) = generate().unwrap();
        assert!(!verify(&public_key(other.as_bytes()).unwrap(), b"manifest", &s.signature));
        assert!(sign(b"garbage", b"x").is_err());
    }
}
