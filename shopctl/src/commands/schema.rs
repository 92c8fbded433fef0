//! `shopctl schema <report>`: the JSON Schema of a report that `--output json` prints.

use clap::Args;
use shopctl::reports::ReportKind;

use super::Outcome;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which command's JSON report.
    #[arg(value_enum)]
    report: ReportKind,
}

pub fn exec(args: SchemaArgs) -> anyhow::Result<Outcome> {
    println!("{}", serde_json::to_string_pretty(&args.report.schema())?);
    Ok(Outcome::Success)
}
