//! Running the real `shopctl` binary in tests.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

pub mod alerting;
pub mod aws;
pub mod iam;
pub mod live;
pub mod reports;
pub mod terraform;

#[allow(unused_imports)] // Each test binary uses a different subset of these too.
pub use aws::{Keys, Moto, moto, moto_with_bucket};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use shopmicro_common::testing::eventually_async;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn shopctl(args: &[&str]) -> Run {
    Shopctl::new(args).run()
}

/// `shopctl` with extra environment variables.
pub fn shopctl_with(args: &[&str], vars: &[(&str, &str)]) -> Run {
    Shopctl::new(args).envs(vars).run()
}

/// The one way tests start shopctl: the real binary, from the workspace root, with none
/// of the developer's settings (SHOPCTL_*, SHOPMICRO_*, DATABASE_URL, REDIS_URL) leaking
/// in. A JSON report it prints is checked against the schema shopctl publishes.
pub struct Shopctl {
    command: Command,
    args: Vec<String>,
}

impl Shopctl {
    pub fn new(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shopctl"));
        command.args(args).current_dir(workspace_root());
        for (name, _) in std::env::vars() {
            if name.starts_with("SHOPCTL_") || name.starts_with("SHOPMICRO_") {
                command.env_remove(name);
            }
        }
        command.env_remove("DATABASE_URL").env_remove("REDIS_URL");
        Self {
            command,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        self.command.envs(vars.iter().copied());
        self
    }

    /// Local state (and Terraform's working data) in `dir`.
    pub fn state(self, dir: &Path) -> Self {
        self.env("SHOPCTL_STATE_DIR", dir)
    }

    /// The AWS credential chain pinned to the emulator: never a profile or instance
    /// metadata.
    pub fn aws(mut self, moto: &Moto) -> Self {
        self.command
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
        self
    }

    /// The command itself, to spawn with pipes or signal.
    pub fn command(self) -> Command {
        self.command
    }

    /// Runs to the end; its report (if it printed one) is checked.
    pub fn output(mut self) -> Output {
        let output = self.command.output().expect("shopctl runs");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        reports::check(&args, &String::from_utf8_lossy(&output.stdout));
        output
    }

    pub fn run(self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.output();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("shopctl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("creating a scratch directory");
        Self(path)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    /// A copy of the repository's templates/ to break on purpose.
    pub fn templates_copy(&self) -> PathBuf {
        let target = self.path("templates");
        copy_dir(&workspace_root().join("templates"), &target);
        target
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The real services — `shopctl up --env local`: PostgreSQL, Redis, frontend, backend, ml
/// and Prometheus as processes on loopback — stopped when dropped. Cluster tests make the
/// simulated pods' network reach these.
pub struct LocalPlatform {
    state: Scratch,
    urls: std::collections::BTreeMap<String, String>,
}

impl LocalPlatform {
    /// Starts the platform and waits until Prometheus has scraped the services once.
    pub async fn start() -> Self {
        let state = Scratch::new();
        let up = Self::shopctl(&state, &["up", "--env", "local"]);
        assert_eq!(up.code, 0, "shopctl up:\n{}\n{}", up.stdout, up.stderr);
        let status = Self::shopctl(&state, &["status", "--output", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let urls = status["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| Some((c["name"].as_str()?.into(), c["url"].as_str()?.into())))
            .collect();
        let platform = Self { state, urls };
        platform.wait_for_first_scrapes().await;
        platform
    }

    /// shopctl on this platform's state, never on a database or Redis the caller's
    /// environment names.
    fn shopctl(state: &Scratch, args: &[&str]) -> Run {
        Shopctl::new(args).state(&state.path("state")).run()
    }

    /// The base URL of a component (`frontend`, `backend`, `ml`, `prometheus`).
    pub fn url(&self, component: &str) -> &str {
        self.urls
            .get(component)
            .unwrap_or_else(|| panic!("the local platform runs no {component}: {:?}", self.urls))
    }

    async fn wait_for_first_scrapes(&self) {
        let query = format!("{}/api/v1/query?query=up", self.url("prometheus"));
        let query = &query;
        eventually_async(
            "Prometheus to scrape the services",
            Duration::from_secs(60),
            || async move {
                let series: serde_json::Value = match reqwest::get(query).await {
                    Ok(response) => response.json().await.unwrap_or_default(),
                    Err(_) => serde_json::Value::Null,
                };
                let scraped = series["data"]["result"].as_array().map_or(0, Vec::len);
                if scraped >= 3 { Ok(()) } else { Err(series) }
            },
        )
        .await;
    }
}

impl Drop for LocalPlatform {
    fn drop(&mut self) {
        let _ = Self::shopctl(&self.state, &["down"]);
    }
}
