//! Every rustls configuration gauntlet builds, and the test PKI (`gauntlet certs init`).
//!
//! Configs are built with an explicit ring provider, never the process default, so two
//! compiled-in providers can never make a builder panic. Nothing else constructs a rustls
//! config. Does not open sockets.

pub mod pki;
pub mod sign;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// TLS configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A trust anchor was rejected.
    #[error("unusable CA certificate: {0}")]
    Ca(#[source] rustls::Error),
    /// A certificate/key pair was rejected.
    #[error("unusable certificate or key: {0}")]
    Identity(#[source] rustls::Error),
    /// The client verifier could not be built.
    #[error("cannot verify client certificates: {0}")]
    Verifier(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
}

/// The one crypto provider gauntlet uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config trusting `ca`, presenting `identity` if given, offering `alpn`.
pub fn client_config(
    ca: &[CertificateDer<'static>],
    identity: Option<(&[CertificateDer<'static>], &PrivateKeyDer<'static>)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).map_err(Error::Ca)?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::Ca)?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain.to_vec(), key.clone_key()).map_err(Error::Identity)?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Each identity is its own session: resumption must not carry one identity's state
    // into another's handshake, and a refused client must be refused every time.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A server config for `chain`/`key`. With `client_ca`, client certificates chaining to it
/// are verified; `require_client_cert` refuses handshakes without one.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&[CertificateDer<'static>]>,
    require_client_cert: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, Error> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(Error::Ca)?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in ca {
                roots.add(c.clone()).map_err(Error::Ca)?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = if require_client_cert { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| Error::Verifier(e.to_string()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(Error::Identity)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Parses a server name for SNI.
pub fn server_name(s: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(s.to_string()).map_err(|_| Error::ServerName(s.to_string()))
}

/// A server config that asks for a client certificate and accepts any — or none — without
/// verifying it. Only for the reference gateway's `accept-any-client-cert` flaw.
pub fn server_config_accepting_any_client(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, Error> {
    let verifier = Arc::new(AcceptAnyClient(provider()));
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::Ca)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(Error::Identity)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct AcceptAnyClient(Arc<CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AcceptAnyClient {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// QUIC (HTTP/3) configs: TLS 1.3 only, ALPN `h3`, 0-RTT off.
pub mod quic {
    use std::sync::Arc;

    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::Error;

    /// ALPN of HTTP/3.
    pub const ALPN: &[&[u8]] = &[b"h3"];

    /// A QUIC client config trusting `ca` and presenting `identity` (no early data: 0-RTT would
    /// let a replayed request through before the handshake is confirmed).
    pub fn client(
        ca: &[CertificateDer<'static>],
        identity: Option<(&[CertificateDer<'static>], &PrivateKeyDer<'static>)>,
    ) -> Result<quinn::ClientConfig, Error> {
        let tls = super::client_config(ca, identity, ALPN)?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::Verifier(format!("QUIC needs TLS 1.3: {e}")))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))));
        cfg.transport_config(Arc::new(transport));
        Ok(cfg)
    }

    /// A QUIC server config from a rustls server config (whose ALPN is replaced by `h3`).
    pub fn server(tls: &rustls::ServerConfig) -> Result<quinn::ServerConfig, Error> {
        let mut tls = tls.clone();
        tls.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        tls.max_early_data_size = 0;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls))
            .map_err(|e| Error::Verifier(format!("QUIC needs TLS 1.3: {e}")))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }
}
