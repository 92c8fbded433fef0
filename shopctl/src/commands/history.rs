//! `shopctl history`: an environment's releases, on either target.

use shopctl::release::ReleaseRecord;
use shopctl::reports::{History, Target};

use super::cluster::ViewArgs;
use super::{Outcome, OutputFormat};

pub fn exec(args: ViewArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    let history = super::block_on(platform.history())?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&history)?),
        OutputFormat::Table => print(&history),
    }
    Ok(Outcome::Success)
}

fn print(history: &History) {
    if history.releases.is_empty() {
        let creates = match history.target {
            Target::Local => "up",
            Target::Cluster => "apply",
        };
        println!(
            "no releases recorded for {env}; `shopctl {creates} --env {env}` creates the first",
            env = history.environment
        );
        return;
    }
    let mut table = super::new_table(&[
        "REVISION", "APPLIED", "BY", "STATUS", "DELIVERY", "CAUSE", "DIGEST", "",
    ]);
    for record in &history.releases {
        let release = record.common();
        let current = Some(release.revision) == history.current;
        table.add_row([
            release.revision.to_string(),
            release.applied_at.clone(),
            release.applied_by.clone(),
            release.status.label().to_owned(),
            record.delivery(),
            release.cause.clone(),
            release.short_digest().to_owned(),
            match (current, history.target) {
                (true, Target::Local) => "running".to_owned(),
                (true, Target::Cluster) => "current".to_owned(),
                (false, _) => String::new(),
            },
        ]);
    }
    println!("{table}");
    for record in &history.releases {
        if let ReleaseRecord::Cluster(release) = record
            && let Some(reason) = release.contents.progressive_reason()
        {
            println!("release {}: {reason}", release.revision);
        }
    }
}
