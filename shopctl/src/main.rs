//! `shopctl`: parse, run, map the outcome to an exit code.
//!
//! Exit codes: 0 success, 1 a check failed (lint errors, drift, failed rollout),
//! 2 usage or operational error. Errors print once, as `shopctl: <message>: <cause>`.

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    install_tracing(cli.verbose);
    // One runtime for the whole process; commands reach it through `commands::block_on`.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("shopctl: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let _entered = runtime.enter();
    match commands::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("shopctl: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Diagnostics go to stderr so stdout stays clean for YAML and JSON.
fn install_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // sqlx reports slow statements as warnings; a backup's checksums are slow by design.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOPCTL_LOG").unwrap_or_else(|_| {
        // kube's client logs a failed connection as an ERROR, and the AWS SDK warns about
        // each credential provider it tries, before returning the error; shopctl reports
        // it once, with advice, so their lines are noise unless asked for.
        let quiet = if verbose > 0 { default } else { "off" };
        tracing_subscriber::EnvFilter::new(format!(
            "{default},sqlx::query=error,kube_client={quiet},aws_config={quiet}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
