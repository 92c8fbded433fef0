//! `shopctl load --env ENV`: put a bounded, open-model load on an environment and judge it
//! against the platform's SLOs (exit 1 when they are violated).

use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shopctl::load::{self, LoadReport, Plan, Scenario, Targets};
use shopctl::local::state::StateDir;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat, parse_duration};

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// What to send: a weighted mix of journeys.
    #[arg(long, value_enum, default_value = "browse")]
    scenario: Scenario,
    /// Requests per second, sent on schedule whatever the answers take.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long to measure, e.g. 30s (at most 10m with the warm-up).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Sent first and not measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// A request slower than this is a timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

pub fn exec(args: LoadArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    let targets = targets(&environment)?;
    let plan = Plan {
        scenario: args.scenario,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        timeout: args.request_timeout,
    };
    let planned = plan.check()?;
    eprintln!(
        "{planned} requests to {} at {}/s ({} scenario, {} s warm-up not measured)",
        environment.name,
        args.rate,
        clap::ValueEnum::to_possible_value(&args.scenario)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default(),
        args.warmup.as_secs_f64()
    );
    let bar = super::progress::drawing().then(|| {
        ProgressBar::new(planned).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} sent, {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    });
    let report = super::block_on(load::run(&environment.name, &plan, &targets, |live| {
        if let Some(bar) = &bar {
            bar.set_position(live.sent);
            bar.set_message(format!(
                "{} answered, {} failed",
                live.completed, live.failed
            ));
        }
    }))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print(&report),
    }
    Ok(Outcome::judged(report.verdict.passed))
}

/// The environment's own addresses: the local platform's storefront and backend, or a
/// cluster environment's ingress host (its storefront; the API is not exposed there).
fn targets(environment: &shopctl::env::Environment) -> anyhow::Result<Targets> {
    match Target::of(environment) {
        Target::Local => {
            let state = StateDir::resolve(&environment.name)
                .read()?
                .filter(|s| s.supervisor.is_alive())
                .ok_or_else(|| {
                    anyhow::anyhow!("the local platform is not running; `shopctl up` starts it")
                })?;
            let url = |name: &str| state.component(name).and_then(|c| c.url.clone());
            Ok(Targets {
                storefront: url("frontend")
                    .ok_or_else(|| anyhow::anyhow!("the local platform has no frontend"))?,
                backend: url("backend"),
            })
        }
        Target::Cluster => Ok(Targets {
            storefront: format!("https://{}", environment.ingress.host),
            backend: None,
        }),
    }
}

fn print(report: &LoadReport) {
    let mut table = super::new_table(&[
        "ROUTE", "REQUESTS", "P50 MS", "P90 MS", "P95 MS", "P99 MS", "MAX MS", "ERRORS",
    ]);
    for route in &report.routes {
        let errors: Vec<String> = route
            .errors
            .iter()
            .map(|(kind, count)| format!("{kind}: {count}"))
            .collect();
        table.add_row([
            route.route.clone(),
            route.requests.to_string(),
            format!("{:.1}", route.p50_ms),
            format!("{:.1}", route.p90_ms),
            format!("{:.1}", route.p95_ms),
            format!("{:.1}", route.p99_ms),
            format!("{:.1}", route.max_ms),
            errors.join(", "),
        ]);
    }
    println!("{table}");
    let verdict = &report.verdict;
    println!(
        "{} requests in {:.0} s at {:.1}/s (asked: {}/s); availability {:.3}% (SLO {:.1}%); product reads p95 {} (SLO {:.0} ms)",
        report.requests,
        report.duration_seconds,
        report.achieved_rate,
        report.rate,
        verdict.availability * 100.0,
        verdict.availability_objective * 100.0,
        verdict
            .product_read_p95_ms
            .map_or_else(|| "-".to_owned(), |p95| format!("{p95:.0} ms")),
        verdict.product_read_p95_objective_ms,
    );
    if verdict.passed {
        println!("verdict: within the SLOs");
    } else {
        for violation in &verdict.violations {
            println!("verdict: {violation}");
        }
    }
}
