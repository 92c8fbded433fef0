//! The local target: the processes a detached supervisor runs for an environment, its
//! state directory (`StateDir`), its release history and its private database.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{
    BackupTaken, Down, LocalDown, LocalRollback, Observer, Options, Platform, PlatformFuture,
    Rollback, Verified,
};
use crate::backup::store::BackupDir;
use crate::backup::{self, Location, WRITERS};
use crate::cluster::logs::{LogEvent, LogOptions};
use crate::cluster::rollout::WaitResult;
use crate::db_roles::DbRole;
use crate::env::Environment;
use crate::local::binaries::SERVICES;
use crate::local::launch;
use crate::local::process::ProcessId;
use crate::local::release::ReleaseStore;
use crate::local::state::{ComponentState, RELEASE_SWITCH, State, StateDir};
use crate::local::supervisor;
use crate::release::{ReleaseRecord, ReleaseStatus};
use crate::reports::{History, LocalStatus, Status, Target};
use crate::runbook::operator::LocalOperator;
use crate::runbook::{Executor, RunOptions, RunOutcome, Runbook};
use crate::validate::LocalTarget;

/// How long stopping or starting supervised components may take.
const COMPONENTS_WITHIN: Duration = Duration::from_secs(120);

/// How long a release switch may take: migrations, then three hand-overs, each bounded by
/// the supervisor's own start-up and drain deadlines.
const SWITCH_WITHIN: Duration = Duration::from_secs(600);

/// How often a followed log file is read again.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

pub struct LocalPlatform {
    environment: Environment,
    dir: StateDir,
    templates: Option<PathBuf>,
    observer: Observer,
}

impl LocalPlatform {
    pub fn new(environment: Environment, options: Options) -> Self {
        Self {
            dir: StateDir::resolve(&environment.name),
            environment,
            templates: options.templates,
            observer: options.observer,
        }
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.dir
    }

    pub fn releases(&self) -> ReleaseStore {
        ReleaseStore::new(self.dir.path())
    }

    /// The supervisor's state while it runs. A supervisor that died is cleaned up after
    /// (its orphans stopped) and counts as not running.
    pub fn running(&self) -> anyhow::Result<Option<State>> {
        match self.dir.read()? {
            Some(state) if state.supervisor.is_alive() => Ok(Some(state)),
            Some(_) => {
                supervisor::clean_up_after_crash(&self.dir)?;
                self.observer.note(
                    "the supervisor had stopped unexpectedly; cleaned up what it left running",
                );
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn require_running(&self) -> anyhow::Result<State> {
        self.running()?
            .context("the local platform is not running; `shopctl up` starts it")
    }

    /// Stops the running platform gracefully, through its supervisor; whether anything
    /// was running.
    pub fn stop(&self) -> anyhow::Result<bool> {
        let Some(state) = self.running()? else {
            return Ok(false);
        };
        self.observer.note(&format!(
            "stopping (supervisor pid {})…",
            state.supervisor.pid
        ));
        state.supervisor.terminate(Duration::from_secs(90));
        // The supervisor removes its state file when it has stopped everything.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.dir.read()?.is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        supervisor::clean_up_after_crash(&self.dir)?;
        self.observer.note("stopped");
        Ok(true)
    }

    /// Starts a detached supervisor for release `revision` and waits until the platform
    /// is ready (the storefront's URL) or has failed; the release records which.
    pub fn start(&self, revision: u32) -> anyhow::Result<String> {
        let supervisor = launch::Supervisor {
            program: std::env::current_exe()?,
            environment: self.environment.name.clone(),
            templates: self.templates.clone(),
            revision,
        };
        let started = launch::start(&self.dir, &supervisor, |event| {
            self.observer.note(&event.describe());
        });
        let status = if started.is_ok() {
            ReleaseStatus::Ready
        } else {
            ReleaseStatus::Failed
        };
        self.releases().set_status(revision, status)?;
        started
    }

    /// Hands every service of the running platform over to release `revision` (its
    /// migrations first) while PostgreSQL, Redis and Prometheus keep running; the
    /// storefront's URL, which does not change. The release records whether it took over.
    pub fn switch_to(&self, revision: u32) -> anyhow::Result<String> {
        // The processes before the request, so no hand-over goes unannounced.
        let mut serving = self
            .dir
            .read()?
            .map(|state| pids_of(&state))
            .unwrap_or_default();
        let number = self.dir.request_release(revision)?;
        let switched = self.wait_for_outcome(RELEASE_SWITCH, number, SWITCH_WITHIN, |state| {
            for (name, pid) in pids_of(state) {
                if serving.get(name).is_some_and(|old| *old != pid) {
                    self.observer.note(&format!("✓ {name} handed over"));
                }
                serving.insert(name, pid);
            }
        });
        let status = match switched {
            Ok(()) => ReleaseStatus::Ready,
            Err(_) => ReleaseStatus::Failed,
        };
        self.releases().set_status(revision, status)?;
        switched?;
        self.require_running()?
            .component("frontend")
            .and_then(|c| c.url.clone())
            .context("the platform records no storefront")
    }

    /// The running platform's database URL for `role`.
    fn database_url(&self, role: DbRole) -> anyhow::Result<String> {
        let state = self.require_running()?;
        match state.component("postgres").and_then(|c| c.url.clone()) {
            // The private cluster: the recorded (superuser) URL, as the role.
            Some(url) => {
                let mut url = url::Url::parse(&url)?;
                let database = url.path().trim_start_matches('/').to_owned();
                url.set_username(&role.name(&database))
                    .map_err(|()| anyhow::anyhow!("the recorded database URL has no host"))?;
                Ok(url.to_string())
            }
            // An external database: the URL is a secret and was never recorded.
            None => std::env::var("DATABASE_URL").map_err(|_| {
                anyhow::anyhow!(
                    "the platform uses an external database; set DATABASE_URL to back it up"
                )
            }),
        }
    }

    fn backup_location(&self) -> Location {
        Location::Dir(BackupDir::new(self.dir.path().join("backups")))
    }

    fn history_now(&self) -> anyhow::Result<History> {
        let releases = self.releases().list()?;
        let current = self.running()?.and_then(|s| s.revision);
        Ok(History {
            environment: self.environment.name.clone(),
            target: Target::Local,
            current,
            releases: releases
                .into_iter()
                .map(ReleaseRecord::Local)
                .collect::<Vec<ReleaseRecord>>(),
        })
    }

    fn rollback_now(&self, to: Option<u32>) -> anyhow::Result<Rollback> {
        let store = self.releases();
        let releases = store.list()?;
        anyhow::ensure!(
            !releases.is_empty(),
            "there is no release history yet; `shopctl up` creates the first release"
        );
        let running = self.running()?;
        let current = running
            .as_ref()
            .and_then(|s| s.revision)
            .or(releases.last().map(|r| r.revision));
        let target = match to {
            Some(revision) => store.get(revision)?.revision,
            None => releases
                .iter()
                .rev()
                .map(|r| r.revision)
                .find(|r| Some(*r) < current)
                .context(
                    "there is no earlier release to roll back to; `shopctl history` lists them",
                )?,
        };
        anyhow::ensure!(
            Some(target) != current,
            "revision {target} is the current release already"
        );
        let release = store.reapply(target)?;
        self.observer.note(&format!(
            "rolling back to revision {target} as revision {}",
            release.revision
        ));
        let started = if running.is_some() {
            self.switch_to(release.revision)
        } else {
            self.start(release.revision)
        };
        Ok(Rollback::Local(LocalRollback {
            environment: self.environment.name.clone(),
            to: target,
            revision: release.revision,
            ready: started.is_ok(),
            reason: started.as_ref().err().map(|err| format!("{err:#}")),
            storefront: started.ok(),
        }))
    }

    /// A running service is handed over to a new process by the supervisor (no request
    /// fails); a paused one (held down) is started again.
    fn restart_now(&self, service: &str, within: Duration) -> anyhow::Result<WaitResult> {
        let state = self.require_running()?;
        let began = Instant::now();
        let paused = state
            .component(service)
            .is_some_and(|c| c.state == ComponentState::Paused);
        let ready = if paused {
            self.dir.set_paused(&[])?;
            self.dir.wait_for(&[service], ComponentState::Ready, within)
        } else {
            let number = self.dir.request_handover(service)?;
            self.wait_for_outcome(service, number, within, |_| {})
        };
        Ok(WaitResult {
            workload: service.to_owned(),
            ready: ready.is_ok(),
            seconds: began.elapsed().as_secs_f64(),
            reason: ready.err().map(|err| format!("{err:#}")),
            warnings: Vec::new(),
        })
    }

    /// Waits for the supervisor's outcome of request `number` about `subject` (a service's
    /// hand-over or a release switch), showing `progress` each state it sees meanwhile.
    fn wait_for_outcome(
        &self,
        subject: &str,
        number: u64,
        within: Duration,
        mut progress: impl FnMut(&State),
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(outcome) = self.dir.handover_outcome(subject)
                && outcome.number >= number
            {
                return match outcome.error {
                    None => Ok(()),
                    Some(error) => Err(anyhow::anyhow!(error)),
                };
            }
            let state = self
                .dir
                .read()?
                .context("the local platform stopped before the supervisor answered")?;
            progress(&state);
            anyhow::ensure!(
                Instant::now() < deadline,
                "the supervisor did not finish the {subject} hand-over within {within:?}; see `shopctl status` and `shopctl logs <service>`"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn logs_now(
        &self,
        service: &str,
        options: &LogOptions,
        sink: &mut dyn FnMut(LogEvent),
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            options.since.is_none() && !options.previous,
            "--since and --previous read a cluster's pod logs; the local platform keeps one log file per component"
        );
        let path = self.dir.log(service);
        let mut file = std::fs::File::open(&path).with_context(|| {
            format!(
                "no log for `{service}` in {} (is the environment up? is the name right?)",
                self.dir.logs().display()
            )
        })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // Following, only whole lines are handed on: a partial last line waits for its end.
        let shown = if options.follow {
            whole_lines(&bytes)
        } else {
            &bytes[..]
        };
        let text = String::from_utf8_lossy(shown);
        let lines: Vec<&str> = text.lines().collect();
        let skip = options
            .tail
            .map_or(0, |tail| lines.len().saturating_sub(tail.max(0) as usize));
        for line in &lines[skip..] {
            sink(LogEvent::Line {
                pod: String::new(),
                text: (*line).to_owned(),
            });
        }
        if !options.follow {
            return Ok(());
        }
        let mut position = shown.len() as u64;
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            file.seek(std::io::SeekFrom::Start(position))?;
            let mut more = Vec::new();
            file.read_to_end(&mut more)?;
            let complete = whole_lines(&more);
            for line in String::from_utf8_lossy(complete).lines() {
                sink(LogEvent::Line {
                    pod: String::new(),
                    text: line.to_owned(),
                });
            }
            position += complete.len() as u64;
        }
    }

    fn down_now(&self, purge: bool) -> anyhow::Result<Down> {
        let stopped = self.stop()?;
        if !stopped {
            self.observer.note("nothing running");
        }
        let purged = if purge && self.dir.exists() {
            std::fs::remove_dir_all(self.dir.path())
                .with_context(|| format!("deleting {}", self.dir.path().display()))?;
            self.observer
                .note(&format!("deleted {}", self.dir.path().display()));
            Some(self.dir.path().display().to_string())
        } else {
            None
        };
        Ok(Down::Local(LocalDown {
            environment: self.environment.name.clone(),
            stopped,
            purged,
        }))
    }

    async fn restore_now(&self, id: &str, within: Duration) -> anyhow::Result<super::Restored> {
        let began = Instant::now();
        // A restore replaces the schema, which only its owner may.
        let url = self.database_url(DbRole::Owner)?;
        let backups = self.backup_location();
        self.observer
            .note(&format!("stopping the writers ({})…", WRITERS.join(", ")));
        self.dir.set_paused(&WRITERS)?;
        let restored = match self.dir.wait_for(&WRITERS, ComponentState::Paused, within) {
            Ok(()) => backup::restore(&url, &backups, id).await,
            Err(err) => Err(err),
        };
        self.observer.note("bringing the writers back…");
        self.dir.set_paused(&[])?;
        let back = self.dir.wait_for(&WRITERS, ComponentState::Ready, within);
        let report = restored?;
        back?;
        Ok(super::Restored {
            id: report.id.clone(),
            succeeded: true,
            seconds: began.elapsed().as_secs_f64(),
            detail: format!(
                "restored in {} ms: {} tables, {} rows match the manifest",
                report.millis, report.tables_checked, report.rows
            ),
            warnings: Vec::new(),
        })
    }
}

/// Each service's process, by name.
fn pids_of(state: &State) -> BTreeMap<&'static str, ProcessId> {
    SERVICES
        .into_iter()
        .filter_map(|name| Some((name, state.component(name)?.process?)))
        .collect()
}

/// `bytes` up to and including its last newline.
fn whole_lines(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    &bytes[..end]
}

impl Platform for LocalPlatform {
    fn environment(&self) -> &Environment {
        &self.environment
    }

    fn target(&self) -> Target {
        Target::Local
    }

    fn status(&self) -> PlatformFuture<'_, Status> {
        Box::pin(async move {
            Ok(Status::Local(match self.running()? {
                Some(state) => LocalStatus::of(&state),
                None => LocalStatus::stopped(),
            }))
        })
    }

    fn history(&self) -> PlatformFuture<'_, History> {
        Box::pin(async move { self.history_now() })
    }

    fn rollback(
        &self,
        to: Option<u32>,
        _within: Duration,
        _keep: usize,
    ) -> PlatformFuture<'_, Rollback> {
        // The supervisor's own start-up deadlines bound a local start; the local history
        // keeps its own number of releases (binaries are copied for each).
        Box::pin(async move { self.rollback_now(to) })
    }

    fn restart<'a>(&'a self, service: &'a str, within: Duration) -> PlatformFuture<'a, WaitResult> {
        Box::pin(async move { self.restart_now(service, within.min(COMPONENTS_WITHIN)) })
    }

    fn logs<'a>(
        &'a self,
        service: &'a str,
        options: &'a LogOptions,
        sink: &'a mut dyn FnMut(LogEvent),
    ) -> PlatformFuture<'a, ()> {
        Box::pin(self.logs_now(service, options, sink))
    }

    fn down(&self, purge: bool) -> PlatformFuture<'_, Down> {
        Box::pin(async move { self.down_now(purge) })
    }

    fn backups(&self) -> PlatformFuture<'_, Location> {
        Box::pin(async move { Ok(self.backup_location()) })
    }

    fn backup(&self, _wait: Option<Duration>) -> PlatformFuture<'_, BackupTaken> {
        Box::pin(async move {
            let url = self.database_url(DbRole::Backup)?;
            let location = self.backup_location();
            let manifest = backup::backup(&url, &location).await?;
            Ok(BackupTaken::Done {
                manifest: Box::new(manifest),
                location: location.describe(),
            })
        })
    }

    fn verify(&self, id: String, _within: Duration) -> PlatformFuture<'_, Verified> {
        Box::pin(async move {
            let url = self.database_url(DbRole::Backup)?;
            let pushgateway = self
                .running()?
                .and_then(|state| state.component("pushgateway")?.url.clone());
            let note = |line: &str| self.observer.note(line);
            let verification = backup::verify_and_push(
                &url,
                &self.backup_location(),
                &id,
                pushgateway.as_deref(),
                &note,
            )
            .await?;
            Ok(Verified::Recorded { id, verification })
        })
    }

    fn restore<'a>(&'a self, id: &'a str, within: Duration) -> PlatformFuture<'a, super::Restored> {
        Box::pin(self.restore_now(id, within.min(COMPONENTS_WITHIN)))
    }

    fn checks(
        &self,
        _drift: Option<crate::validate::cluster::DriftCheck>,
    ) -> PlatformFuture<'_, Box<dyn crate::validate::Target>> {
        Box::pin(async move {
            Ok(Box::new(LocalTarget::load(&self.dir)?) as Box<dyn crate::validate::Target>)
        })
    }

    fn run_runbook<'a>(
        &'a self,
        book: &'a Runbook,
        options: RunOptions,
    ) -> PlatformFuture<'a, RunOutcome> {
        Box::pin(async move {
            let target = LocalTarget::load(&self.dir)?;
            let operator = LocalOperator {
                state_dir: self.dir.path().to_path_buf(),
                database_url: self
                    .dir
                    .read()?
                    .and_then(|s| s.component("postgres").and_then(|c| c.url.clone())),
            };
            Executor {
                target: &target,
                operator: &operator,
                options,
            }
            .run(book)
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    fn platform_in(root: &std::path::Path) -> LocalPlatform {
        let environment = crate::env::load(
            &crate::templates::Templates::select(None).unwrap(),
            "local",
            &[],
        )
        .unwrap();
        LocalPlatform {
            environment,
            dir: StateDir {
                root: root.to_path_buf(),
            },
            templates: None,
            observer: Observer::silent(),
        }
    }

    fn text(event: &LogEvent) -> String {
        match event {
            LogEvent::Line { pod, text } => {
                assert!(pod.is_empty(), "a local log names no pod");
                text.clone()
            }
            LogEvent::Unavailable { reason, .. } => panic!("unavailable: {reason}"),
        }
    }

    #[tokio::test]
    async fn a_followed_log_hands_on_whole_lines_as_they_are_written() {
        let root = tempfile::tempdir().unwrap();
        let platform = platform_in(root.path());
        platform.dir.create().unwrap();
        let path = platform.dir.log("backend");
        std::fs::write(&path, "one\ntwo\nthree\npar").unwrap();

        // Without --follow: everything, the unfinished line included; --tail counts lines.
        let mut seen = Vec::new();
        let tail = LogOptions {
            tail: Some(2),
            ..LogOptions::default()
        };
        platform
            .logs_now("backend", &tail, &mut |e| seen.push(text(&e)))
            .await
            .unwrap();
        assert_eq!(seen, ["three", "par"]);

        // Following: an unfinished line waits for its end, then arrives whole, once.
        let lines = Rc::new(RefCell::new(Vec::new()));
        let collected = lines.clone();
        let follow = LogOptions {
            follow: true,
            tail: Some(1),
            ..LogOptions::default()
        };
        let mut sink = move |e: LogEvent| collected.borrow_mut().push(text(&e));
        let following = platform.logs_now("backend", &follow, &mut sink);
        let writer = async {
            shopmicro_common::testing::eventually_async("the tail", Duration::from_secs(5), || {
                let now = lines.borrow().clone();
                async move {
                    if now == ["three"] {
                        Ok(())
                    } else {
                        Err(format!("{now:?}"))
                    }
                }
            })
            .await;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(b"tial\nfour\n").unwrap();
            shopmicro_common::testing::eventually_async("new lines", Duration::from_secs(5), || {
                let now = lines.borrow().clone();
                async move {
                    if now.len() == 3 {
                        Ok(now)
                    } else {
                        Err(format!("{now:?}"))
                    }
                }
            })
            .await
        };
        tokio::select! {
            ended = following => panic!("a follow ended by itself: {ended:?}"),
            seen = writer => assert_eq!(seen, ["three", "partial", "four"]),
        }
    }

    #[tokio::test]
    async fn a_stopped_platform_is_told_apart_from_a_missing_log() {
        let root = tempfile::tempdir().unwrap();
        let platform = platform_in(root.path());
        let err = platform
            .restart_now("backend", Duration::from_secs(1))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("`shopctl up` starts it"),
            "{err:#}"
        );
        let err = platform
            .logs_now("backend", &LogOptions::default(), &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("no log for `backend`"),
            "{err:#}"
        );
        let cluster_only = LogOptions {
            previous: true,
            ..LogOptions::default()
        };
        let err = platform
            .logs_now("backend", &cluster_only, &mut |_| {})
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("--previous"), "{err:#}");
    }
}
