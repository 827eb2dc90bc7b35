//! Command-line types (clap derive). No logic; only `main.rs` and `app` use them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Stress-tests zero-trust security gateways: load, latency and policy verdicts at once.
#[derive(Debug, Parser)]
#[command(name = "gauntlet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
pub struct OutputArgs {
    /// Results folder (default: results/<YYYYmmdd-HHMMSS>-<scenario>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print a progress line instead of a dashboard (always the case when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
}

/// `gauntlet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Replace the scenario's `target.url`.
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// Replace the scenario's `target.ca` (PEM file).
    #[arg(long, value_name = "FILE")]
    pub target_ca: Option<PathBuf>,
    /// Replace every phase's length (e.g. `10s`); drops request-count bounds.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
}

/// `gauntlet validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `gauntlet certs`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the test PKI (CA, server, client identities, negative material, JWT keys).
    Init(CertsInitArgs),
}

/// `gauntlet certs init`.
#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// Folder to write to.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Regenerate everything, replacing existing files.
    #[arg(long)]
    pub force: bool,
}

/// `gauntlet demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Length of each phase (default: as in the scenario).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Scenario to run against the in-process target instead of scenarios/demo.yaml.
    #[arg(long, value_name = "FILE", default_value = "scenarios/demo.yaml")]
    pub scenario: PathBuf,
    /// Folder of the test PKI (created if missing).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub certs: PathBuf,
}
