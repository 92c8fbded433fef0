//! `shopctl lint`: the platform's policy checks over an environment's rendered objects
//! (or over any manifest file with `--file`). Exit 1 when an error-severity check fails.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use shopctl::lint::{self, Context, Report};
use shopctl::manifest;
use shopctl::render::{self, SecretMode};

use super::{EnvArgs, Outcome, OutputFormat, print_report};

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Lint the objects in this YAML file instead of rendering the environment
    /// (checks then assume a non-local environment).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// With --file: an address range pods get (repeatable; default: the private ranges,
    /// where pods may be when nothing better is known). SM016 and SM017 use them.
    #[arg(long = "pod-cidr", value_name = "CIDR", requires = "file", value_parser = parse_cidr)]
    pod_cidrs: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

fn parse_cidr(value: &str) -> Result<String, String> {
    lint::network::parse_cidr(value)
        .map(|_| value.to_owned())
        .ok_or_else(|| format!("`{value}` is not an IPv4 CIDR block such as 10.0.128.0/20"))
}

pub fn exec(args: LintArgs) -> anyhow::Result<Outcome> {
    let report = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let objects =
                manifest::parse_stream(&path.display().to_string(), &text).map_err(|message| {
                    anyhow::anyhow!("{} is not valid YAML: {message}", path.display())
                })?;
            let mut context = Context::standalone();
            if !args.pod_cidrs.is_empty() {
                context.pod_cidrs = args.pod_cidrs.clone();
            }
            lint::lint(&objects, &context)
        }
        None => {
            let (templates, environment) = args.env.load()?;
            let objects = render::render(&templates, &environment, &SecretMode::Redacted)?;
            lint::lint(&objects, &Context::for_environment(&environment))
        }
    };
    print_report(&report, args.output, print_table, report.failed())
}

fn print_table(report: &Report) {
    if !report.findings.is_empty() {
        let mut table = super::new_table(&["CHECK", "SEVERITY", "OBJECT", "PROBLEM", "FIX"]);
        for finding in &report.findings {
            let severity = match &finding.suppressed {
                Some(_) => "suppressed".to_owned(),
                None => format!("{:?}", finding.severity).to_lowercase(),
            };
            let problem = match &finding.suppressed {
                Some(reason) => format!("{} (suppressed: {reason})", finding.message),
                None => finding.message.clone(),
            };
            table.add_row([
                finding.check,
                &severity,
                &finding.object,
                &problem,
                finding.hint,
            ]);
        }
        println!("{table}");
    }
    println!(
        "{}: {} objects, {} checks: {} errors, {} warnings, {} suppressed",
        report.environment,
        report.objects,
        report.checks,
        report.errors,
        report.warnings,
        report.suppressed
    );
}
