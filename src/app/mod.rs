//! Wiring: commands → domains. The one place that prints for humans and chooses exit codes
//! ([`Exit`]). A run reads top-down in [`run`]: `Rig::setup` (what a run stands up),
//! `drive::<P>` (the one generic engine run, chosen by the one `match` on the protocol),
//! `finish` (judge, report, teardown). The commands other than `run` and `demo` are in
//! `commands`.

use std::io::Write;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::{CertsCommand, Cli, Command, ReplayCommand};
use crate::scenario::{self, Overrides, Scenario};

/// stderr output that never panics (a closed pipe must not stop a run or its results).
macro_rules! errln {
    () => {{ let _ = writeln!(std::io::stderr()); }};
    ($($t:tt)*) => {{ let _ = writeln!(std::io::stderr(), $($t)*); }};
}

mod commands;
mod evidence;
mod live;
pub mod probe;
mod results;
mod rig;
mod run;
mod shard;

pub use rig::{Dependencies, DependencyLink};
pub use run::{ExecOptions, RunOutcome, execute};

/// How gauntlet exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The verdict passed (or the command did its job).
    Pass,
    /// The verdict failed.
    Fail,
    /// Bad usage or an invalid scenario: nothing was sent.
    Usage,
    /// The run could not start, or its results could not be written.
    Runtime,
}

impl Exit {
    /// The process exit code: 0, 1, 2, 3.
    pub fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::Fail => 1,
            Exit::Usage => 2,
            Exit::Runtime => 3,
        }
    }
}

/// Runs one command; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let exit = match cli.command {
        Command::Run(a) => commands::run(a).await,
        Command::Validate(a) => commands::validate(a),
        Command::Certs(CertsCommand::Init(a)) => commands::certs_init(a),
        Command::Demo(a) => commands::demo(a).await,
        Command::Gateway(a) => commands::gateway(a).await,
        Command::Oracle(a) => commands::oracle(a).await,
        Command::Netem(a) => commands::netem(*a).await,
        Command::Probe(a) => commands::probe(a).await,
        Command::Replay(ReplayCommand::Inspect(a)) => commands::replay_inspect(&a),
        Command::Replay(ReplayCommand::Convert(a)) => commands::replay_convert(&a),
        Command::Capture(a) => commands::capture(a).await,
        Command::Sign(a) => evidence::sign(&a),
        Command::Verify(a) => evidence::verify(&a),
        Command::Report(a) => results::report(&a),
        Command::Compare(a) => results::compare(&a),
        Command::Merge(a) => shard::merge(&a),
        Command::K8s(crate::cli::K8sCommand::Job(a)) => shard::k8s_job(&a),
    };
    exit.code()
}

pub(crate) fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn command_line() -> String {
    std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ")
}

/// Loads a scenario, printing problems; `Err(code)` when it cannot be used.
fn load(path: &Path, ov: &Overrides) -> Result<Scenario, Exit> {
    match scenario::load(path, ov) {
        Ok(s) => {
            for w in &s.warnings {
                errln!("warning: {w}");
            }
            for n in &s.notes {
                errln!("note: {n}");
            }
            Ok(s)
        }
        Err(e @ scenario::Error::Read { .. }) => {
            errln!("gauntlet: {e}");
            Err(Exit::Runtime)
        }
        Err(scenario::Error::Invalid { problems }) => {
            for p in &problems {
                errln!("{p}");
            }
            errln!("gauntlet: {} problem(s) in {}; nothing was sent", problems.len(), path.display());
            Err(Exit::Usage)
        }
    }
}

/// What a run says when it is interrupted.
const RUN_STOP_NOTE: &str = "stopping — in-flight requests get 2s, then results are written";

/// Cancels `stop` on Ctrl-C, SIGTERM or SIGHUP (the terminal closed; printing `note`) or when
/// `external` is: each ends the run with its verdict and results folder.
/// Registers SIGTERM, SIGHUP and SIGINT now — a signal that comes before the first await is
/// not lost (a standalone oracle stopped right after it said it listens still writes its
/// findings) — and returns the future that ends at the first of them.
fn signalled() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let kinds = [SignalKind::terminate(), SignalKind::hangup(), SignalKind::interrupt()];
        let [t, h, i] = kinds.map(|k| signal(k).ok());
        async move {
            async fn on(s: Option<Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! { _ = on(t) => {}, _ = on(h) => {}, _ = on(i) => {} }
            errln!("\ngauntlet: stopping");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn stop_on_signal(stop: CancellationToken, external: Option<CancellationToken>, note: &'static str) {
    let external = async {
        match external {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(mut t), Ok(mut h)) => {
                tokio::select! { _ = t.recv() => {}, _ = h.recv() => {} }
            }
            _ => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let by_signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        _ = term => true,
        _ = external => false,
    };
    if by_signal {
        errln!("\ngauntlet: {note}");
    }
    stop.cancel();
}
