//! Running a runbook: show each step before it runs, ask before every action (unless
//! `--yes`), stop safely on an unexpected result, and write a transcript of what ran, what
//! it saw and who confirmed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::operator::Operator;
use super::{ActionSpec, CheckSpec, Next, Runbook, Step};
use crate::validate::Target;

pub struct RunOptions {
    pub environment: String,
    pub dry_run: bool,
    pub yes: bool,
    /// 1-based step number to start from.
    pub from_step: usize,
    /// Where transcripts go.
    pub transcripts: PathBuf,
    /// The shopctl binary, which carries out actions (one code path with the commands).
    pub shopctl: PathBuf,
    /// How long a restart or rollback action may wait for its rollout.
    pub action_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Finished (end of the runbook or a `done`), as opposed to stopped.
    pub completed: bool,
    pub stopped_at: Option<String>,
    pub transcript: PathBuf,
}

pub struct Executor<'a> {
    pub target: &'a dyn Target,
    pub operator: &'a dyn Operator,
    pub options: RunOptions,
}

/// What a SQL or PromQL value must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expectation {
    Compare(String, f64),
    Empty,
    NonEmpty,
}

impl Expectation {
    pub(super) fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "empty" => Some(Self::Empty),
            "non-empty" => Some(Self::NonEmpty),
            other => {
                let (op, number) = ["<=", ">=", "==", "!=", "<", ">"]
                    .iter()
                    .find_map(|op| other.strip_prefix(op).map(|rest| (*op, rest)))?;
                Some(Self::Compare(op.to_owned(), number.trim().parse().ok()?))
            }
        }
    }

    fn holds(&self, value: Option<f64>) -> bool {
        match (self, value) {
            (Self::Empty, value) => value.is_none(),
            (Self::NonEmpty, value) => value.is_some(),
            (Self::Compare(_, _), None) => false,
            (Self::Compare(op, limit), Some(v)) => match op.as_str() {
                "<" => v < *limit,
                "<=" => v <= *limit,
                ">" => v > *limit,
                ">=" => v >= *limit,
                "==" => v == *limit,
                _ => v != *limit,
            },
        }
    }
}

struct Transcript {
    file: std::fs::File,
    path: PathBuf,
}

impl Transcript {
    fn open(dir: &Path, runbook: &str, environment: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(
            "{}-{runbook}.log",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        let mut file = std::fs::File::create(&path)?;
        writeln!(
            file,
            "runbook {runbook} on {environment}, started by {}",
            who()
        )?;
        Ok(Self { file, path })
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(
            self.file,
            "{} {text}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
}

fn who() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl Executor<'_> {
    pub async fn run(&self, runbook: &Runbook) -> anyhow::Result<RunOutcome> {
        let steps = &runbook.steps;
        anyhow::ensure!(
            (1..=steps.len()).contains(&self.options.from_step),
            "--from-step must be between 1 and {}",
            steps.len()
        );
        let mut transcript = Transcript::open(
            &self.options.transcripts,
            &runbook.name,
            &self.options.environment,
        )?;
        eprintln!(
            "runbook: {} ({} steps) on {}{}",
            runbook.title,
            steps.len(),
            self.options.environment,
            if self.options.dry_run {
                ", dry run"
            } else {
                ""
            }
        );
        let mut index = self.options.from_step - 1;
        // A goto loop must end: every step may run a few times at most.
        let mut budget = steps.len() * 3;
        loop {
            let step = &steps[index];
            budget = budget.saturating_sub(1);
            eprintln!(
                "\n[{}/{}] {} ({})",
                index + 1,
                steps.len(),
                step.title,
                describe(step)
            );
            let (passed, detail) = self.step(step).await;
            eprintln!("  {} {detail}", if passed { "✓" } else { "✗" });
            transcript.line(&format!(
                "step {} `{}`: {} — {detail}",
                index + 1,
                step.id,
                if passed { "ok" } else { "FAILED" }
            ));
            let next = if passed {
                step.on_success.clone().unwrap_or(Next::Continue)
            } else {
                step.on_failure.clone().unwrap_or(Next::Stop)
            };
            match next {
                Next::Done => return self.finish(runbook, true, None, transcript).await,
                Next::Stop if passed => return self.finish(runbook, true, None, transcript).await,
                Next::Stop => {
                    eprintln!(
                        "\nstopped at step {} ({}): the result was not what the runbook expects",
                        index + 1,
                        step.id
                    );
                    let at = Some(step.id.clone());
                    return self.finish(runbook, false, at, transcript).await;
                }
                Next::Continue if index + 1 == steps.len() => {
                    return self.finish(runbook, true, None, transcript).await;
                }
                Next::Continue => index += 1,
                Next::Goto(target) => {
                    index = steps
                        .iter()
                        .position(|s| s.id == target)
                        .expect("validated when parsed");
                }
            }
            if budget == 0 {
                transcript.line("stopped: too many jumps");
                anyhow::bail!(
                    "the runbook keeps jumping between steps; stopped to avoid looping forever"
                );
            }
        }
    }

    /// Ends the run: the transcript's last line, then the record where the platform
    /// keeps one (on a cluster, for whoever is on call next).
    async fn finish(
        &self,
        runbook: &Runbook,
        completed: bool,
        stopped_at: Option<String>,
        mut transcript: Transcript,
    ) -> anyhow::Result<RunOutcome> {
        transcript.line(if completed { "finished" } else { "stopped" });
        let summary = format!(
            "runbook {} run by {} at {}: {}",
            runbook.name,
            who(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            match &stopped_at {
                None => "completed".to_owned(),
                Some(step) => format!("stopped at step {step}"),
            }
        );
        if !self.options.dry_run {
            let text = std::fs::read_to_string(&transcript.path).unwrap_or_default();
            match self.operator.record(&runbook.name, &summary, &text).await {
                Ok(Some(place)) => eprintln!("recorded in {place}"),
                Ok(None) => {}
                // The run happened either way; the local transcript has it.
                Err(err) => eprintln!("warning: could not record the run in the cluster: {err:#}"),
            }
        }
        Ok(RunOutcome {
            completed,
            stopped_at,
            transcript: transcript.path,
        })
    }

    async fn step(&self, step: &Step) -> (bool, String) {
        if let Some(check) = &step.check {
            return self.check(check).await;
        }
        if let Some(show) = &step.show {
            return match self.operator.recent_logs(&show.logs, show.lines).await {
                Ok(lines) => {
                    for line in &lines {
                        eprintln!("    | {line}");
                    }
                    (
                        true,
                        format!("showed the last {} lines of {}", lines.len(), show.logs),
                    )
                }
                Err(err) => (
                    false,
                    format!("reading {}'s logs failed: {err:#}", show.logs),
                ),
            };
        }
        if let Some(action) = &step.action {
            return self.action(action);
        }
        let instruction = step.manual.as_deref().unwrap_or_default();
        eprintln!("  → {instruction}");
        if self.options.dry_run {
            return (true, "manual step (dry run: not waiting)".into());
        }
        if !std::io::stdin().is_terminal() {
            return (
                false,
                "a manual step needs a person: run this runbook interactively".into(),
            );
        }
        match ask("  done? [y/N] ") {
            true => (true, format!("confirmed by {}", who())),
            false => (false, format!("not confirmed by {}", who())),
        }
    }

    async fn check(&self, check: &CheckSpec) -> (bool, String) {
        match check {
            CheckSpec::Http {
                service,
                path,
                status,
            } => match self.target.get(service, path, &[]).await {
                Ok(reply) => (
                    reply.status == *status,
                    format!(
                        "GET {service}{path} answered {} (expected {status})",
                        reply.status
                    ),
                ),
                Err(err) => (false, format!("GET {service}{path} failed: {err}")),
            },
            CheckSpec::Validate { check } => {
                let Some(found) = crate::validate::all_checks().find(|c| c.id == check) else {
                    return (false, format!("no validate check {check}"));
                };
                let verdict = (found.run)(self.target).await;
                let passed = matches!(
                    verdict.status,
                    crate::validate::Status::Pass | crate::validate::Status::Warn
                );
                (passed, format!("{check}: {}", verdict.detail))
            }
            CheckSpec::Sql { query, expect } => {
                let expectation = Expectation::parse(expect).expect("validated when parsed");
                match self.operator.query(query).await {
                    Ok(value) => (
                        expectation.holds(value),
                        format!("`{query}` = {value:?} (expected {expect})"),
                    ),
                    Err(err) => (false, format!("`{query}` failed: {err:#}")),
                }
            }
            CheckSpec::Promql { query, expect } => {
                let expectation = Expectation::parse(expect).expect("validated when parsed");
                if !self.target.runs("prometheus") {
                    return (false, "no Prometheus in this environment".into());
                }
                let body = match self
                    .target
                    .get("prometheus", "/api/v1/query", &[("query", query)])
                    .await
                {
                    Ok(reply) => reply.json(),
                    Err(err) => return (false, format!("querying Prometheus failed: {err}")),
                };
                let value = body["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok());
                (
                    expectation.holds(value),
                    format!("`{query}` = {value:?} (expected {expect})"),
                )
            }
        }
    }

    fn action(&self, action: &ActionSpec) -> (bool, String) {
        let mut args: Vec<String> = match action {
            ActionSpec::Restart { service } => vec!["restart".into(), service.clone()],
            ActionSpec::Rollback {} => vec!["rollback".into()],
            ActionSpec::Backup {} => vec!["backup".into()],
        };
        let shown = format!("shopctl {}", args.join(" "));
        if self.options.dry_run {
            return (true, format!("would run `{shown}` (dry run)"));
        }
        if !self.options.yes {
            if !std::io::stdin().is_terminal() {
                return (
                    false,
                    format!("`{shown}` needs confirmation: run interactively or with --yes"),
                );
            }
            if !ask(&format!("  run `{shown}`? [y/N] ")) {
                return (false, format!("`{shown}` not confirmed by {}", who()));
            }
        }
        args.extend(["--env".to_owned(), self.options.environment.clone()]);
        if !matches!(action, ActionSpec::Backup {}) {
            let timeout = format!("{}s", self.options.action_timeout.as_secs().max(1));
            args.extend(["--timeout".to_owned(), timeout]);
        }
        let mut command = std::process::Command::new(&self.options.shopctl);
        command.args(&args);
        self.operator.configure(&mut command);
        let output = command.output();
        match output {
            Ok(output) if output.status.success() => (
                true,
                format!(
                    "`{shown}` succeeded (confirmed by {})",
                    if self.options.yes {
                        "--yes".to_owned()
                    } else {
                        who()
                    }
                ),
            ),
            Ok(output) => {
                // What it said last: its error, else its report (a rollout that did not
                // become ready exits 1 after printing it).
                let said = [&output.stderr, &output.stdout]
                    .iter()
                    .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
                    .find(|text| !text.is_empty())
                    .unwrap_or_default();
                let code = output.status.code().unwrap_or(-1);
                (false, format!("`{shown}` failed (exit {code}): {said}"))
            }
            Err(err) => (false, format!("`{shown}` could not run: {err}")),
        }
    }
}

fn describe(step: &Step) -> &'static str {
    match (&step.check, &step.show, &step.action) {
        (Some(_), _, _) => "check",
        (_, Some(_), _) => "show",
        (_, _, Some(_)) => "action",
        _ => "manual",
    }
}

fn ask(question: &str) -> bool {
    eprint!("{question}");
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        assert!(Expectation::parse("> 0").unwrap().holds(Some(3.0)));
        assert!(!Expectation::parse("> 0").unwrap().holds(Some(0.0)));
        assert!(Expectation::parse("<= 0.3").unwrap().holds(Some(0.3)));
        assert!(
            !Expectation::parse("< 1").unwrap().holds(None),
            "no value meets a comparison"
        );
        assert!(Expectation::parse("empty").unwrap().holds(None));
        assert!(Expectation::parse("non-empty").unwrap().holds(Some(0.0)));
        assert!(Expectation::parse("about 3").is_none());
    }
}
