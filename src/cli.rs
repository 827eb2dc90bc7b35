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
    /// Start the reference gateway and oracle in-process and run the demo suite against them.
    Demo(DemoArgs),
    /// Run the embedded reference gateway (a real mTLS + JWT + RBAC gateway, with flaw switches).
    Gateway(GatewayArgs),
    /// Run an impairment link (TCP, or UDP with --udp) on its own, in front of anything.
    Netem(Box<NetemArgs>),
    /// Run the upstream oracle on its own, to put behind a gateway (counters at /__gauntlet/oracle).
    Oracle(OracleArgs),
    /// Send one request of one check and show it whole: as sent, the answer, what reached the
    /// oracle, and the verdict with its reason.
    Probe(ProbeArgs),
    /// Captured traffic: profile a capture (a replay itself is a scenario phase with `replay:`).
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Capture live traffic on an interface into a pcap file (libpcap; built with
    /// `--features live-capture`), bounded by a packet count and a duration.
    Capture(CaptureArgs),
    /// Sign a results folder's manifest.json with a lab's Ed25519 key (writes manifest.sig).
    Sign(SignArgs),
    /// Check a results folder against its signed manifest: the signature, then every file's digest.
    Verify(VerifyArgs),
    /// Draw a results folder's reports again from its data (report.html, junit.xml,
    /// summary.md), so an old run gets this version's formats; nothing is re-run.
    Report(ReportArgs),
    /// Compare two runs' results folders: new violations, checks that stopped passing, latency
    /// percentiles (from the histograms), error and achieved rates; exit 1 on a regression.
    Compare(CompareArgs),
    /// Merge the shards of a run (`run --shard I/N`) into one results folder: counters summed,
    /// histograms added exactly, the oracle's findings joined, then judged once.
    Merge(MergeArgs),
    /// Kubernetes: print the manifest that runs a scenario as N shards of an Indexed Job.
    #[command(subcommand)]
    K8s(K8sCommand),
}

/// `gauntlet merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard results: shard folders, run folders holding `shard-*` folders, or `-` for result
    /// lines on stdin (`kubectl logs -l job-name=… | gauntlet merge - …`).
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    /// The scenario the shards ran (its digest must be theirs).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// The standalone oracle's findings (`gauntlet oracle --run-id RUN --out DIR` writes
    /// DIR/oracle.json); repeat for several oracles.
    #[arg(long, value_name = "FILE")]
    pub oracle: Vec<PathBuf>,
    /// The merged run's results folder (default: results/<stamp>-<scenario>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace gauntlet's files in a non-empty --out folder.
    #[arg(long)]
    pub force: bool,
    /// The `--duration` the shards ran with, if they did.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// The `--target-url` the shards ran with, if they did.
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
}

/// `gauntlet k8s`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print a ConfigMap (the scenario and what it includes) and an Indexed Job of N shards.
    Job(K8sJobArgs),
}

/// `gauntlet k8s job`.
#[derive(Debug, Args)]
pub struct K8sJobArgs {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Shards (pods), each sending 1/N of the schedule.
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// The container image holding gauntlet (see the Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Every shard starts this long after the manifest is printed.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub start_in: String,
    /// Kubernetes namespace.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub namespace: String,
    /// The Job's name (default: gauntlet-<scenario>-<run id>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `gauntlet compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The run compared against (results folder).
    pub baseline: PathBuf,
    /// The run compared (results folder).
    pub current: PathBuf,
    /// Rules (YAML): `latency: [{quantile: p99, pct: 10, min_ms: 1}]`, `min_samples`,
    /// `error_rate_pp`, `achieved_rate_drop_pct`, `missing_check_is_regression`.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Print JSON (schema gauntlet.compare/v1) instead of text.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print GitHub-flavoured Markdown (for a job summary) instead of text.
    #[arg(long)]
    pub markdown: bool,
}

/// `gauntlet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results folder.
    pub dir: PathBuf,
    /// Render into this folder instead (the data files are copied there); needed for a signed
    /// folder, which stays as it was issued.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `gauntlet sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The results folder.
    pub dir: PathBuf,
    /// The lab's Ed25519 private key, PKCS#8 PEM (`gauntlet certs init` makes `lab-signing.key`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
}

/// `gauntlet verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The results folder.
    pub dir: PathBuf,
    /// The lab's Ed25519 public key, PEM (`lab-signing.pub.pem`).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
}

/// `gauntlet capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface (`lo`, `eth0`, `any`).
    #[arg(long, short = 'i', value_name = "NAME")]
    pub interface: String,
    /// BPF filter, e.g. `tcp port 8080`.
    #[arg(long, short = 'f', value_name = "FILTER")]
    pub filter: Option<String>,
    /// The pcap file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Stop after this many packets.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Stop after this long (e.g. `60s`).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub duration: String,
}

/// `gauntlet replay`.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Read a pcap or pcapng capture and show what a replay would send: requests, recorded
    /// span and rate profile, hosts, routes, recorded answers, and everything that is not an
    /// exchange (holes, retransmits, TLS, h2c) with its count. Sends nothing.
    Inspect(InspectArgs),
    /// Write a scenario skeleton for a capture: the identities seen (bearer `sub` claims,
    /// requests without a credential) to give credentials, their mappings, the routes and
    /// recorded answers as comments, and a replay phase. Edit it, then validate it.
    Convert(ConvertArgs),
}

/// `gauntlet replay convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The capture (pcap or pcapng).
    pub capture: PathBuf,
    /// The scenario file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The gateway under test.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// The CA of an https target's server certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `gauntlet replay inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The capture (pcap or pcapng).
    pub capture: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Decrypt its TLS connections with this key log (SSLKEYLOGFILE), through tshark.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Decrypt its TLS connections with the secrets the pcapng embeds, through tshark.
    #[arg(long)]
    pub decrypt: bool,
}

/// `gauntlet probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// The check to probe (its id).
    #[arg(long, value_name = "ID")]
    pub check: String,
    /// Speak this protocol instead of the target's.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub protocol: Option<ProbeProtocol>,
    /// Replace the scenario's `target.url`.
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// Replace the scenario's `target.ca` (PEM file).
    #[arg(long, value_name = "FILE")]
    pub target_ca: Option<PathBuf>,
}

/// Protocols `gauntlet probe` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeProtocol {
    /// HTTP/1.1.
    H1,
    /// HTTP/2.
    H2,
    /// HTTP/3.
    H3,
    /// h2 or HTTP/1.1, as ALPN picks.
    Auto,
}

/// `gauntlet gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Gateway configuration (YAML), e.g. scenarios/gateway/reference.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Replace the configured listen address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Replace the configured upstream URL.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Plant a defect (repeatable): skip-exp-check, no-path-normalization, forward-spoofed-headers,
    /// accept-any-client-cert, ignore-missing-token, rate-limit-by-xff.
    #[arg(long = "flaw", value_name = "NAME")]
    pub flaws: Vec<String>,
}

/// `gauntlet netem`.
#[derive(Debug, Args)]
pub struct NetemArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Address to forward to.
    #[arg(long, value_name = "ADDR")]
    pub upstream: String,
    /// Delay each chunk in each direction by D (a request/response round trip gains about 2×D).
    #[arg(long, value_name = "D")]
    pub latency: Option<String>,
    /// Spread of the delay (see --distribution).
    #[arg(long, value_name = "D")]
    pub jitter: Option<String>,
    /// Shape of the jitter: uniform (±jitter), normal (σ = jitter), pareto (tail with mean jitter).
    #[arg(long, value_name = "NAME", default_value = "uniform")]
    pub distribution: String,
    /// Seed of the delay sampler.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Bandwidth per connection and direction, e.g. 8mbit or 1MB.
    #[arg(long, value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// Split every write into segments of this many bytes...
    #[arg(long, value_name = "BYTES")]
    pub slice: Option<usize>,
    /// ...this far apart.
    #[arg(long, value_name = "D", requires = "slice")]
    pub slice_delay: Option<String>,
    /// Reset (RST) a connection once this many bytes crossed it.
    #[arg(long, value_name = "BYTES")]
    pub reset_after_bytes: Option<u64>,
    /// Reset (RST) a connection this long after it was accepted.
    #[arg(long, value_name = "D")]
    pub reset_after: Option<String>,
    /// Close a connection gracefully (FIN) once this many bytes crossed it.
    #[arg(long, value_name = "BYTES")]
    pub limit_bytes: Option<u64>,
    /// When one side closes, pass the close on only this much later.
    #[arg(long, value_name = "D")]
    pub slow_close: Option<String>,
    /// Accept connections, then forward nothing.
    #[arg(long)]
    pub blackhole: bool,
    /// Reset every new connection at once.
    #[arg(long)]
    pub refuse: bool,
    /// Carry UDP datagrams (QUIC / HTTP/3) instead of TCP: each datagram is lost, delayed,
    /// duplicated or reordered on its own (--latency and --jitter then delay each datagram).
    #[arg(long)]
    pub udp: bool,
    /// UDP: loss per datagram, `2%` (independent) or `ge:P,R[,BAD[,GOOD]]` (Gilbert-Elliott
    /// bursts: P = P(good→bad), R = P(bad→good), loss in the bad/good state, default 100%/0%).
    #[arg(long, value_name = "SPEC", requires = "udp")]
    pub loss: Option<String>,
    /// UDP: probability of sending a datagram twice, e.g. `1%`.
    #[arg(long, value_name = "P", requires = "udp")]
    pub duplicate: Option<String>,
    /// UDP: probability of holding a datagram back (so later ones overtake it), e.g. `5%`.
    #[arg(long, value_name = "P", requires = "udp")]
    pub reorder: Option<String>,
    /// UDP: how far a reordered datagram is held back.
    #[arg(long, value_name = "D", default_value = "10ms", requires = "udp")]
    pub reorder_gap: String,
}

/// `gauntlet oracle`.
#[derive(Debug, Args)]
pub struct OracleArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Scenario whose checks' upstream expectations the oracle judges (tags from any run).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Serve TLS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate (PEM); needs `--key`.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for `--cert`.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Count only this run's tags (a sharded run's id); others are counted as foreign.
    #[arg(long, value_name = "RUN")]
    pub run_id: Option<String>,
    /// On stop, write the findings to DIR/oracle.json (for `gauntlet merge --oracle`).
    #[arg(long, value_name = "DIR", requires = "run_id")]
    pub out: Option<PathBuf>,
}

/// Output options shared by `run` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Results folder (default: results/<YYYYmmdd-HHMMSS>-<scenario>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run into a non-empty --out folder, replacing the results files of an earlier run there.
    #[arg(long)]
    pub force: bool,
    /// Print a progress line instead of a dashboard (always the case when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Leave the dashboard as soon as the run ends instead of waiting for a key.
    #[arg(long)]
    pub no_wait: bool,
    /// Serve live metrics (OpenMetrics / Prometheus text) at http://ADDR/metrics while the run
    /// runs, e.g. `127.0.0.1:9464`; off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
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
    /// Replace every replay phase's speed (e.g. `2x`: twice the recorded pace).
    #[arg(long, value_name = "FACTOR")]
    pub speed: Option<String>,
    /// Send nothing: show what each phase would send (replay phases: requests per check after
    /// mapping, length at the chosen pace, rate profile, hosts and routes, what is not replayable).
    #[arg(long)]
    pub dry_run: bool,
    /// Send only shard I of N of the schedule (the requests k ≡ I mod N, the closed-loop users
    /// u ≡ I mod N), e.g. `--shard 0/4`; `gauntlet merge` joins the shards' results.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Shards in the run, this one's index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// A shard starts at this wall-clock instant (RFC 3339, e.g. `2026-12-02T10:00:00Z`), so
    /// every shard starts together.
    #[arg(long, value_name = "RFC3339")]
    pub start_at: Option<String>,
    /// A shard refuses to start more than this late past --start-at.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub max_late: String,
    /// The id every shard of the run shares (letters and digits, at most 32; default: derived
    /// from the scenario and --start-at).
    #[arg(long, value_name = "RUN")]
    pub run_id: Option<String>,
    /// A shard prints its result as one base64 line on stdout (for `kubectl logs`).
    #[arg(long)]
    pub result_line: bool,
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
    /// Replace every replay phase's speed (e.g. `2x`).
    #[arg(long, value_name = "FACTOR")]
    pub speed: Option<String>,
    /// Scenario to run against the embedded gateway instead of scenarios/demo.yaml.
    #[arg(long, value_name = "FILE", default_value = "scenarios/demo.yaml")]
    pub scenario: PathBuf,
    /// Plant a defect in the gateway (repeatable; see `gauntlet gateway --help`).
    #[arg(long = "flaw", value_name = "NAME")]
    pub flaws: Vec<String>,
    /// Gateway configuration.
    #[arg(long, value_name = "FILE", default_value = "scenarios/gateway/reference.yaml")]
    pub gateway: PathBuf,
}
