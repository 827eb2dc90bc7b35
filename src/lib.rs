//! gauntlet: stress-tests zero-trust security gateways and proves, under load, that they
//! still enforce their policy.
//!
//! Data flow: [`scenario`] (YAML → validated model) → [`plan`] (send schedule, pure) →
//! [`engine`] × [`proto`] (traffic) → [`conformance`] (verdicts) → [`metrics`] (histograms,
//! snapshots) → [`report`] (results folder). [`testkit`] is an in-process HTTPS target used
//! by tests and the demo. See ARCHITECTURE.md.

pub mod app;
pub mod auth;
pub mod capture;
pub mod cli;
pub mod conformance;
pub mod dashboard;
pub mod engine;
pub mod gateway;
pub mod input;
pub mod judge;
pub mod k8s;
pub mod metrics;
pub mod netem;
pub mod oracle;
pub mod plan;
pub mod proto;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod serve;
pub mod testkit;
pub mod timeline;
pub mod tls;
