//! Raw scenario documents: plain mirrors of the YAML, no logic.
//!
//! Every struct denies unknown fields so a misspelt key is an error, never silently ignored.
//! Fields whose YAML shape varies (a rate is `500/s` or `{from, to}`, an expectation is
//! `allow` or `{deny: [403]}`) are kept as [`Value`] and typed in `validate`, where the
//! error can name the exact place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// One scenario file, before includes are merged.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gauntlet: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) include: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<RawTarget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<RawProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) oracle: Option<RawOracle>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) identities: BTreeMap<String, RawIdentity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) roles: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) checks: Vec<RawCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) phases: Vec<RawPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) thresholds: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_budget: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) dependencies: BTreeMap<String, RawDependency>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) events: Vec<RawEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<RawNetworkCfg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certification: Option<RawCertification>,
}

/// `certification:` — who issues the report, for which product, against which standard.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lab: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lab_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) report_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) product: Option<RawProduct>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) standard: Option<RawStandard>,
}

/// `certification.product:`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProduct {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
}

/// `certification.standard:`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStandard {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) edition: Option<String>,
}

/// `network:` — how impairments are applied.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetworkCfg {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) backend: Option<String>,
}

/// `dependencies.NAME:` — an impairment link in front of something the gateway depends on.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDependency {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) serve: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
}

/// `events[]:` — a named condition put in force on one link for a while.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<String>,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub(crate) for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) apply: Option<RawNetwork>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) outage: Option<RawOutage>,
}

/// `events[].outage:` — what a conforming gateway answers while the dependency is down.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) status: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) grace: Option<String>,
}

/// `target:` — where the traffic goes and how.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_in_flight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) threads: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) parity: Vec<String>,
}

/// `oracle:` — run the upstream oracle in-process for the gateway to forward to.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOracle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<String>,
}

/// `profile:` — a reusable description of one gateway: how a check pack maps onto it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) implementation: Option<RawImplementation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) routes: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) identity_header: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) deny_status: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<RawRateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_rate_limit: Option<RawRateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) roles: BTreeMap<String, RawBinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) idp: Option<RawIdp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_ca: Option<RawCa>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) forwarding: Option<RawForwarding>,
}

/// `profile.forwarding:` — what the gateway does to headers on the way to the upstream.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarding {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) injects: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) strips: Vec<String>,
}

/// `profile.roles.NAME:` — the real credential a pack's role is sent as; every credential
/// variant a check asks for is derived from it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBinding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pool: Option<RawPool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) principal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signing: Option<RawSigning>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) claims: BTreeMap<String, Value>,
}

/// `profile.idp:` — the identity provider whose tokens the gateway accepts, described once.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) aud: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subject_claim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) groups_claim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) leeway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lifetime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scheme: Option<String>,
}

/// `profile.roles.NAME.signing:` — a role whose tokens another key of the IdP signs.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigning {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) public_key: Option<String>,
}

/// `profile.client_ca:` — the CA the gateway trusts for client certificates (its key mints the
/// mis-issued variants: expired, not yet valid, without clientAuth).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCa {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
}

/// `profile.implementation:` — the implementation under test, as a conformance report names it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawImplementation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) contact: Vec<String>,
}

/// A declared rate limit: `{requests: 50, per: 1s}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) requests: u32,
    pub(crate) per: String,
}

/// `identities.NAME:` — who a request is sent as.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pool: Option<RawPool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<RawToken>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
}

/// `identities.NAME.pool:` — many client certificates for one identity: a list, a glob, or
/// minted from a CA.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) members: Vec<RawMember>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) glob: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mint: Option<RawMint>,
}

/// `pool.members[]:`
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// `pool.mint:`
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMint {
    pub(crate) count: u32,
    pub(crate) ca_cert: String,
    pub(crate) ca_key: String,
    pub(crate) subject: String,
}

/// `identities.NAME.token:` — a bearer credential, static or minted at run time.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    #[serde(rename = "static", skip_serializing_if = "Option::is_none")]
    pub(crate) static_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jwt: Option<RawJwt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scheme: Option<String>,
}

/// `token.jwt:` — a JWT template.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) typ: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) claims: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tamper: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) corrupt: Option<String>,
}

/// `checks[]:` — one probe and its expected verdict.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reference: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) requires: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) claims_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request: Option<RawRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expect: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<RawUpstream>,
}

/// `checks[].request:`
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<String>,
    /// The body holds no secret: the results' `scenario.yaml` may show it (redacted otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body_public: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) websocket: Option<RawWebsocket>,
}

/// `checks[].request.websocket:` — upgrade, then a session.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebsocket {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) messages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) must_close: Option<bool>,
}

/// `checks[].upstream:` — what the oracle upstream must or must not see.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) absent: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) stripped: Vec<String>,
}

/// `phases[]:`
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPhase {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) users: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mix: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<RawNetwork>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) replay: Option<RawReplay>,
}

/// `phases[].replay:` — the phase sends a capture's requests instead of the checks' mix.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplay {
    pub(crate) capture: Option<String>,
    /// A TLS key log (`SSLKEYLOGFILE`) to decrypt the capture's TLS connections with (tshark).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keylog: Option<String>,
    /// Decrypt with the secrets the pcapng embeds (tshark).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decrypt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) speed: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_gap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_cap: Option<String>,
    #[serde(rename = "loop", skip_serializing_if = "Option::is_none")]
    pub(crate) loops: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) window: Option<RawWindow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) only: Option<RawMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rewrite: Option<RawRewrite>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) identities: Vec<RawMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unmapped: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) policy: Vec<RawRule>,
    /// `keep` (default: a captured connection's requests in order on one connection) or
    /// `spread` (over the identity's pooled connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connections: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compare: Option<RawCompare>,
}

/// `replay.compare:` — how replayed answers are compared with the recorded ones.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    /// `auto` (default), `true` or `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) noisy: Vec<RawNoisy>,
}

/// One noisy field: a JSON field path or a regex over the body.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNoisy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) regex: Option<String>,
}

/// `replay.window:` — offsets from the capture's first request.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<String>,
}

/// Which captured requests: every given field must match (regexes, a method list).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) header: std::collections::BTreeMap<String, String>,
}

/// `replay.rewrite:`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) path: Vec<RawSubst>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) set_headers: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) remove_headers: Vec<String>,
}

/// A regex substitution (`$1` for capture groups).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubst {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

/// `replay.identities[]`: which scenario identity a captured request is sent as.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMapping {
    pub(crate) identity: Option<String>,
    /// Claims of the captured bearer JWT (its payload, read without verifying it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) claim: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) header: std::collections::BTreeMap<String, String>,
    /// Client address (`10.0.0.0/8`, `192.0.2.7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    /// Requests that carried no credential at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) anonymous: Option<bool>,
    /// The subject of the client certificate the captured connection presented (a regex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert_subject: Option<String>,
    /// Claims copied from the captured token into the identity's re-minted one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) keep_claims: Vec<String>,
}

/// `replay.policy[]`: the expected verdict of matching replayed requests.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<Vec<String>>,
    pub(crate) expect: Option<String>,
    /// Features of the gateway the rule tests: outside the profile's declared `features`, the
    /// rule's requests are not sent (counted `out_of_scope`), like a check's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) requires: Vec<String>,
}

/// `phases[].network:` — the client link's condition during the phase.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) distribution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bandwidth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slice: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slice_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reset_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reset_after_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) blackhole: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refuse: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) loss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limit_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slow_close: Option<String>,
}
