//! The `gauntlet` binary: parse, run, map the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gauntlet::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("GAUNTLET_LOG"))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gauntlet: cannot start the runtime: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let code = rt.block_on(gauntlet::app::run(cli));
    // Generator threads are joined by then; don't wait for stray connection tasks.
    rt.shutdown_background();
    std::process::ExitCode::from(code)
}
