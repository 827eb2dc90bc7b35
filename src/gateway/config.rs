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
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// Or a key endpoint to fetch the JWKS from (`http://host:port/path`), refreshed
    /// every `refresh`; the last good key set is kept when a refresh fails.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Key refresh period (default 10s).
    #[serde(default)]
    pub refresh: Option<String>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew allowed for `exp`/`nbf` (default 30s).
    #[serde(default)]
    pub leeway: Option<String>,
}

/// `authz:` — an external authorization service decides RBAC (see `gateway::deps`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzCfg {
    /// Service URL (`http://host:port/path`).
    pub url: String,
    /// How long to wait for a decision (default 250ms).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Answer when no decision came (timeout, error); default 503.
    #[serde(default)]
    pub failure_status: Option<u16>,
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
    /// External authorization (default: the routes are decided locally).
    #[serde(default)]
    pub authz: Option<AuthzCfg>,
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
    /// A rate limit per client certificate over every allowed request (429 beyond it).
    #[serde(default)]
    pub client_rate_limit: Option<RateCfg>,
    /// Planted defects (see `Flaw`).
    #[serde(default)]
    pub flaws: Vec<String>,
    /// Serve HTTP/3 on the same port over UDP (default true; advertised by `Alt-Svc`).
    #[serde(default = "yes")]
    pub http3: bool,
}

fn yes() -> bool {
    true
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
        let text = crate::input::read_text(path, crate::input::SCENARIO)
            .map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
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
        for p in [&mut c.tls.cert, &mut c.tls.key, &mut c.tls.client_ca].into_iter().chain(c.jwt.jwks.as_mut()) {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if c.jwt.jwks.is_none() && c.jwt.jwks_url.is_none() {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                msg: " jwt: give `jwks:` (a file) or `jwks_url:` (a key endpoint)".into(),
            });
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

    /// The routes as the policy code sees them.
    pub fn policy_routes(&self) -> Vec<super::policy::Route> {
        self.routes
            .iter()
            .map(|r| super::policy::Route {
                prefix: if self.case_insensitive_paths { r.prefix.to_ascii_lowercase() } else { r.prefix.clone() },
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                groups: r.groups.clone(),
            })
            .collect()
    }

    /// The leeway as a duration.
    pub fn leeway(&self) -> Result<Duration, String> {
        match &self.jwt.leeway {
            None => Ok(Duration::from_secs(30)),
            Some(s) => humantime::parse_duration(s).map_err(|e| format!("jwt.leeway `{s}`: {e}")),
        }
    }
}
