//! The reference gateway's configuration file (YAML).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Flaw;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read gateway config {}: {source}", .path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{}:{}", .path.display(), .msg)]
    Invalid {
        /// File.
        path: PathBuf,
        /// `line:col: message` or a message.
        msg: String,
    },
}

/// `tls:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// `jwt:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFiles {
    /// JWKS file with the signing keys' public halves.
    pub jwks: PathBuf,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew allowed for `exp`/`nbf` (default 30s).
    #[serde(default)]
    pub leeway: Option<String>,
}

/// `routes[]:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    /// Path prefix.
    pub prefix: String,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed groups / certificate OUs (`*` = any authenticated identity).
    pub groups: Vec<String>,
    /// Per-identity rate limit on this route.
    #[serde(default)]
    pub rate_limit: Option<RateCfg>,
}

/// `rate_limit:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCfg {
    /// Requests per window.
    pub requests: u32,
    /// Window, e.g. `1s`.
    pub per: String,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// TLS material.
    pub tls: TlsFiles,
    /// Upstream base URL (`http://host:port`).
    pub upstream: String,
    /// JWT verification.
    pub jwt: JwtFiles,
    /// Header carrying the verified identity to the upstream.
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// Client-supplied headers removed before forwarding (`name` or `prefix-*`).
    #[serde(default = "default_strip")]
    pub strip_headers: Vec<String>,
    /// Match routes case-insensitively.
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// Routes; anything unmatched is denied.
    pub routes: Vec<RouteCfg>,
    /// Planted defects (see `Flaw`).
    #[serde(default)]
    pub flaws: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_identity_header() -> String {
    "x-forwarded-user".into()
}
fn default_strip() -> Vec<String> {
    [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-client-cert",
        "x-auth-request-*",
        "x-remote-user",
        "remote-user",
        "x-webauth-user",
        "x-user",
        "client-cert",
        "client-cert-chain",
        "x-ssl-client-*",
        "ssl-client-*",
        "x-arr-clientcert",
        "x-pomerium-*",
        "cf-access-*",
        "x-amzn-oidc-*",
        "x-goog-iap-*",
        "x-ms-client-principal*",
        "x-envoy-*",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-forwarded-uri",
        "x-forwarded-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Config {
    /// Reads a config; relative paths are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
        let mut c: Config = serde_yaml::from_str(&text).map_err(|e| Error::Invalid {
            path: path.to_path_buf(),
            msg: match e.location() {
                Some(l) => format!(
                    "{}:{}: {}",
                    l.line(),
                    l.column(),
                    e.to_string().split(" at line ").next().unwrap_or_default()
                ),
                None => format!(" {e}"),
            },
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.tls.cert, &mut c.tls.key, &mut c.tls.client_ca, &mut c.jwt.jwks] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        for f in &c.flaws {
            if Flaw::parse(f).is_none() {
                return Err(Error::Invalid {
                    path: path.to_path_buf(),
                    msg: format!(" unknown flaw `{f}` (known: {})", Flaw::NAMES.join(", ")),
                });
            }
        }
        Ok(c)
    }

    /// The leeway as a duration.
    pub fn leeway(&self) -> Result<Duration, String> {
        match &self.jwt.leeway {
            None => Ok(Duration::from_secs(30)),
            Some(s) => humantime::parse_duration(s).map_err(|e| format!("jwt.leeway `{s}`: {e}")),
        }
    }
}
