//! Runbooks that read as documents and run as programs: Markdown files in `runbooks/`
//! whose steps are fenced ```step blocks (YAML). Each step is a check, something to show,
//! an action, or a manual instruction; each says what happens on success and on failure
//! (continue, stop, done, or go to another step).

pub mod operator;
mod run;

use std::collections::BTreeSet;

use serde::Deserialize;

pub use run::{Executor, RunOptions, RunOutcome};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_runbooks.rs"));
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    /// The whole document, as `runbook show` prints it.
    pub text: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub check: Option<CheckSpec>,
    #[serde(default)]
    pub show: Option<ShowSpec>,
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// An instruction a person carries out and confirms.
    #[serde(default)]
    pub manual: Option<String>,
    #[serde(default)]
    pub on_success: Option<Next>,
    #[serde(default)]
    pub on_failure: Option<Next>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// GET a service path and compare the status.
    Http {
        service: String,
        path: String,
        status: u16,
    },
    /// Any `shopctl validate` check, by id.
    Validate { check: String },
    /// A SQL query whose single number must meet `expect` (`> 0`, `== 0`, `< 5`).
    Sql { query: String, expect: String },
    /// A PromQL query whose first value must meet `expect`; `empty` / `non-empty` too.
    Promql { query: String, expect: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowSpec {
    /// A component's log (`shopctl logs`).
    pub logs: String,
    #[serde(default = "default_lines")]
    pub lines: usize,
}

fn default_lines() -> usize {
    20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    Restart { service: String },
    Rollback {},
    Backup {},
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    Continue,
    Stop,
    Done,
    Goto(String),
}

const SERVICES: [&str; 6] = [
    "frontend",
    "backend",
    "ml",
    "postgres",
    "redis",
    "prometheus",
];

impl Runbook {
    /// Parses a runbook and checks it as a whole: every problem at once.
    pub fn parse(name: &str, text: &str) -> Result<Self, Vec<String>> {
        let title = text
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or(name)
            .trim()
            .to_owned();
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for (index, block) in step_blocks(text).into_iter().enumerate() {
            match serde_saphyr::from_str::<Step>(&block) {
                Ok(step) => steps.push(step),
                Err(err) => problems.push(format!("step block {}: {err}", index + 1)),
            }
        }
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        if unique.len() != ids.len() {
            problems.push("step ids must be unique".to_owned());
        }
        for step in &steps {
            let kinds = [
                step.check.is_some(),
                step.show.is_some(),
                step.action.is_some(),
                step.manual.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                problems.push(format!(
                    "step `{}` needs exactly one of check, show, action, manual",
                    step.id
                ));
            }
            for next in [&step.on_success, &step.on_failure].into_iter().flatten() {
                if let Next::Goto(target) = next
                    && !unique.contains(target.as_str())
                {
                    problems.push(format!(
                        "step `{}` goes to `{target}`, which does not exist",
                        step.id
                    ));
                }
            }
            let service = match (&step.check, &step.show, &step.action) {
                (Some(CheckSpec::Http { service, .. }), _, _) => Some(service),
                (_, Some(ShowSpec { logs, .. }), _) => Some(logs),
                (_, _, Some(ActionSpec::Restart { service })) => Some(service),
                _ => None,
            };
            if let Some(service) = service
                && !SERVICES.contains(&service.as_str())
            {
                problems.push(format!(
                    "step `{}` names unknown service `{service}`",
                    step.id
                ));
            }
            if let Some(CheckSpec::Validate { check }) = &step.check
                && !crate::validate::unknown_names(std::slice::from_ref(check)).is_empty()
            {
                problems.push(format!(
                    "step `{}` uses unknown validate check `{check}`",
                    step.id
                ));
            }
            if let Some(CheckSpec::Sql { expect, .. } | CheckSpec::Promql { expect, .. }) =
                &step.check
                && run::Expectation::parse(expect).is_none()
            {
                problems.push(format!(
                    "step `{}`: `{expect}` is not an expectation like `> 0` or `empty`",
                    step.id
                ));
            }
        }
        if steps.is_empty() {
            problems.push("no ```step blocks".to_owned());
        }
        if problems.is_empty() {
            Ok(Self {
                name: name.to_owned(),
                title,
                text: text.to_owned(),
                steps,
            })
        } else {
            Err(problems)
        }
    }
}

/// The contents of the ```step fenced blocks, in order.
fn step_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```step") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The runbooks built into shopctl, or those in `dir` (`--runbooks DIR`).
pub fn library(dir: Option<&std::path::Path>) -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = match dir {
        None => embedded::FILES
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect(),
        Some(dir) => std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Some((name, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect(),
    };
    files.retain(|(path, text)| path.ends_with(".md") && text.contains("```step"));
    files.sort();
    Ok(files
        .into_iter()
        .map(|(path, text)| (path.trim_end_matches(".md").to_owned(), text))
        .collect())
}

pub fn find(dir: Option<&std::path::Path>, name: &str) -> anyhow::Result<Runbook> {
    let library = library(dir)?;
    let names: Vec<String> = library.iter().map(|(n, _)| n.clone()).collect();
    let (_, text) = library
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| anyhow::anyhow!("no runbook `{name}`; runbooks: {}", names.join(", ")))?;
    Runbook::parse(name, &text).map_err(|problems| {
        anyhow::anyhow!(
            "runbook `{name}` is invalid:\n  - {}",
            problems.join("\n  - ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runbook_in_the_repository_parses_and_validates() {
        let library = library(None).unwrap();
        assert!(
            library.len() >= 4,
            "{:?}",
            library.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for (name, text) in library {
            let runbook = Runbook::parse(&name, &text).unwrap_or_else(|p| panic!("{name}: {p:#?}"));
            assert!(!runbook.steps.is_empty());
        }
    }

    #[test]
    fn problems_are_reported_together() {
        let text = "# Broken\n```step\nid: a\ntitle: A\non_failure: {goto: nowhere}\n```\n```step\nid: a\ntitle: B\ncheck: {http: {service: nosuch, path: /, status: 200}}\n```\n";
        let problems = Runbook::parse("broken", text).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("unique")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("nowhere")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("exactly one")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("nosuch")),
            "{problems:?}"
        );
    }
}
