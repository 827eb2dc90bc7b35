//! Command-line types (clap derive). No logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Stress-tests zero-trust security gateways: load, latency and policy verdicts at once.
#[derive(Debug, Parser)]
#[command(name = "gauntlet", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a scenario against its target and write a results folder.
    Run(RunArgs),
    /// Check scenario files exactly as `run` would, without sending anything.
    Validate(ValidateArgs),
    /// Manage the test PKI.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Start an in-process mutual-TLS test target and run the demo scenario against it.
    Demo(DemoArgs),
}

/// Output options shared by `run` and `demo`.
#[derive(Debug, Args, Clone)]
pub(crate) struct OutputArgs {
    /// Results folder (default: results/<YYYYmmdd-HHMMSS>-<scenario>/).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print a progress line instead of a dashboard (always the case when stdout is not a terminal).
    #[arg(long)]
    pub(crate) headless: bool,
}

/// `gauntlet run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Scenario file (YAML).
    pub(crate) scenario: PathBuf,
    /// Output options.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Replace the scenario's `target.url`.
    #[arg(long, value_name = "URL")]
    pub(crate) target_url: Option<String>,
    /// Replace the scenario's `target.ca` (PEM file).
    #[arg(long, value_name = "FILE")]
    pub(crate) target_ca: Option<PathBuf>,
    /// Replace every phase's length (e.g. `10s`); drops request-count bounds.
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
}

/// `gauntlet validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

/// `gauntlet certs`.
#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Create the test PKI (CA, server, client identities, negative material, JWT keys).
    Init(CertsInitArgs),
}

/// `gauntlet certs init`.
#[derive(Debug, Args)]
pub(crate) struct CertsInitArgs {
    /// Folder to write to.
    #[arg(long, default_value = "certs")]
    pub(crate) dir: PathBuf,
    /// Regenerate everything, replacing existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `gauntlet demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Output options.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Length of each phase (default: as in the scenario).
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Scenario to run against the in-process target instead of scenarios/demo.yaml.
    #[arg(long, value_name = "FILE", default_value = "scenarios/demo.yaml")]
    pub(crate) scenario: PathBuf,
    /// Folder of the test PKI (created if missing).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub(crate) certs: PathBuf,
}
