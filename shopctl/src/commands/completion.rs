//! `shopctl completion <shell>`: a completion script, as `kubectl completion bash` and
//! `helm completion zsh` print one. Besides subcommands and flags it offers the names
//! shopctl knows: the built-in environments, runbooks and services.

use clap::builder::PossibleValuesParser;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use shopctl::platform::RESTARTABLE;
use shopctl::templates::Templates;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: Shell,
}

/// What `logs` reads: every local component has a log; a cluster's are the first three.
const LOGGED: [&str; 8] = [
    "frontend",
    "backend",
    "ml",
    "postgres",
    "redis",
    "pushgateway",
    "prometheus",
    "supervisor",
];

pub fn exec(args: CompletionArgs) -> anyhow::Result<Outcome> {
    let known = Known {
        environments: Templates::select(None)?.environment_names(),
        runbooks: shopctl::runbook::library(None)?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
    };
    let mut command = offer(Cli::command(), &known);
    clap_complete::generate(args.shell, &mut command, "shopctl", &mut std::io::stdout());
    Ok(Outcome::Success)
}

/// The names completion offers.
struct Known {
    environments: Vec<String>,
    runbooks: Vec<String>,
}

/// `command` with the known names as each matching argument's candidates. Only the script
/// sees them: parsing still takes other names (environments from --templates, runbooks
/// from --runbooks).
fn offer(mut command: clap::Command, known: &Known) -> clap::Command {
    let name = command.get_name().to_owned();
    let candidates: Vec<(String, Vec<String>)> = command
        .get_arguments()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let values: Vec<String> = match (name.as_str(), id, arg.get_long()) {
                (_, _, Some("env")) => known.environments.clone(),
                ("show", "name", _) | ("run", "runbook", _) => known.runbooks.clone(),
                ("logs", "service", _) => LOGGED.map(str::to_owned).to_vec(),
                ("restart" | "rollback", "service", _) => RESTARTABLE.map(str::to_owned).to_vec(),
                _ => return None,
            };
            Some((id.to_owned(), values))
        })
        .collect();
    for (id, values) in candidates {
        command = command.mut_arg(id, |arg| {
            arg.value_parser(PossibleValuesParser::new(values))
        });
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for sub in subcommands {
        command = command.mut_subcommand(sub, |s| offer(s, known));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(command: &clap::Command, path: &[&str], id: &str) -> Vec<String> {
        let mut command = command;
        for name in path {
            command = command.find_subcommand(name).unwrap();
        }
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id)
            .unwrap();
        arg.get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect()
    }

    #[test]
    fn environments_runbooks_and_services_are_offered_where_they_are_asked_for() {
        let known = Known {
            environments: vec!["local".into(), "dev".into()],
            runbooks: vec!["backend-outage".into()],
        };
        let command = offer(Cli::command(), &known);
        assert_eq!(candidates(&command, &["status"], "name"), ["local", "dev"]);
        assert_eq!(
            candidates(&command, &["runbook", "run"], "runbook"),
            ["backend-outage"]
        );
        assert_eq!(candidates(&command, &["restart"], "service"), RESTARTABLE);
        assert!(candidates(&command, &["logs"], "service").contains(&"supervisor".to_owned()));
        // Parsing is untouched: the real command line still takes any environment name.
        use clap::Parser;
        assert!(Cli::try_parse_from(["shopctl", "status", "--env", "elsewhere"]).is_ok());
    }
}
