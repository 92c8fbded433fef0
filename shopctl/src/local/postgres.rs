//! A private PostgreSQL cluster for the local target, made with the server binaries this
//! machine has (initdb into the state directory, a free port, loopback only).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::db_roles::DbRole;

/// Where PostgreSQL server binaries usually live when they are not on PATH.
const WELL_KNOWN: [&str; 3] = [
    "/usr/lib/postgresql",
    "/usr/pgsql",
    "/opt/homebrew/opt/postgresql",
];

#[derive(Debug, thiserror::Error)]
#[error(
    "no PostgreSQL server binaries (initdb and postgres) found {searched}. Install them \
     (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), or point shopctl at an \
     existing server with DATABASE_URL=postgres://user:password@host:5432/db"
)]
pub struct NotInstalled {
    searched: String,
}

#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `SHOPCTL_POSTGRES_BIN` if set; else the first PATH entry with both `initdb` and
/// `postgres`; else the newest version under the well-known roots
/// (`SHOPCTL_POSTGRES_SEARCH`, colon-separated, replaces that list).
pub fn find() -> Result<Binaries, NotInstalled> {
    if let Some(dir) = std::env::var_os("SHOPCTL_POSTGRES_BIN").map(PathBuf::from) {
        return server_dir(&dir)
            .map(|dir| Binaries { dir })
            .ok_or(NotInstalled {
                searched: format!("in {} (SHOPCTL_POSTGRES_BIN)", dir.display()),
            });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find_map(|dir| server_dir(&dir)) {
        return Ok(Binaries { dir });
    }
    let has_server = |dir: &Path| server_dir(dir).is_some();
    let roots: Vec<PathBuf> = match std::env::var("SHOPCTL_POSTGRES_SEARCH") {
        Ok(list) => list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
        Err(_) => WELL_KNOWN.iter().map(PathBuf::from).collect(),
    };
    let mut candidates: Vec<(u32, PathBuf)> = Vec::new();
    for root in &roots {
        // <root>/<version>/bin (Debian) or <root>-<version>/bin (RHEL, Homebrew).
        let parent = root.parent().unwrap_or(Path::new("/"));
        let prefix = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (dir, version_from) in [(root.clone(), ""), (parent.to_path_buf(), prefix.as_str())] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version = name
                    .strip_prefix(version_from)
                    .unwrap_or(&name)
                    .trim_start_matches(['-', '@']);
                let bin = entry.path().join("bin");
                if let Ok(major) = version.split('.').next().unwrap_or_default().parse::<u32>()
                    && has_server(&bin)
                {
                    candidates.push((major, bin));
                }
            }
        }
    }
    candidates.sort();
    match candidates.pop() {
        Some((_, dir)) => Ok(Binaries { dir }),
        None if roots.is_empty() => Err(NotInstalled {
            searched: "on PATH".to_owned(),
        }),
        None => {
            let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
            Err(NotInstalled {
                searched: format!("on PATH or in {}", roots.join(", ")),
            })
        }
    }
}

/// Every tool the supervisor runs.
const TOOLS: [&str; 5] = ["initdb", "postgres", "pg_isready", "psql", "createdb"];

/// The directory holding the complete tool set, following a `postgres` symlink (PATH
/// entries such as /usr/local/bin often link single tools from the real bin directory).
fn server_dir(dir: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(dir.join("postgres"))
        .ok()?
        .parent()?
        .to_path_buf();
    TOOLS
        .iter()
        .all(|tool| real.join(tool).is_file())
        .then_some(real)
}

pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !running_as_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    let entry = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .context("running as root, PostgreSQL needs a `postgres` user to run as; create one or run shopctl as a normal user")?;
    let fields: Vec<&str> = entry.split(':').collect();
    let uid = fields
        .get(2)
        .and_then(|v| v.parse().ok())
        .context("malformed postgres entry in /etc/passwd")?;
    let gid = fields
        .get(3)
        .and_then(|v| v.parse().ok())
        .context("malformed postgres entry in /etc/passwd")?;
    Ok(Some((uid, gid)))
}

/// A command that runs as the server user when shopctl is root.
pub fn command(binaries: &Binaries, tool: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(binaries.tool(tool));
    if let Some((uid, gid)) = server_user()? {
        command.uid(uid).gid(gid);
    }
    Ok(command)
}

/// Creates the cluster once; an existing one (data kept across `down`) is reused.
pub fn init(binaries: &Binaries, data: &Path, log: &Path) -> anyhow::Result<bool> {
    if data.join("PG_VERSION").is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(data)?;
    if let Some((uid, gid)) = server_user()? {
        std::os::unix::fs::chown(data, Some(uid), Some(gid))
            .context("handing the data directory to postgres")?;
    }
    let output = command(binaries, "initdb")?
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ])
        .output()
        .context("running initdb")?;
    std::fs::write(
        log,
        [output.stdout.as_slice(), output.stderr.as_slice()].concat(),
    )?;
    anyhow::ensure!(
        output.status.success(),
        "initdb failed; see {}",
        log.display()
    );
    Ok(true)
}

/// The server command: loopback TCP only, no Unix socket (nothing to clean up, no
/// directory permissions to get right).
pub fn server(binaries: &Binaries, data: &Path, port: u16) -> anyhow::Result<Command> {
    let mut command = command(binaries, "postgres")?;
    command.arg("-D").arg(data).args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
    ]);
    Ok(command)
}

pub fn is_ready(binaries: &Binaries, port: u16) -> bool {
    Command::new(binaries.tool("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Creates the platform's database if it does not exist yet.
pub fn ensure_database(binaries: &Binaries, port: u16, name: &str) -> anyhow::Result<()> {
    let port = port.to_string();
    let exists = Command::new(binaries.tool("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg(format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))
        .output()
        .context("running psql")?;
    if String::from_utf8_lossy(&exists.stdout).trim() == "1" {
        return Ok(());
    }
    let created = Command::new(binaries.tool("createdb"))
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name])
        .output()
        .context("running createdb")?;
    anyhow::ensure!(
        created.status.success(),
        "createdb failed: {}",
        String::from_utf8_lossy(&created.stderr).trim()
    );
    Ok(())
}

/// Runs the platform's role setup (`templates/postgres/roles.sql`) as the superuser. The
/// private cluster authenticates loopback connections by trust, as it does the superuser,
/// so the roles' passwords are fresh random ones nobody needs; what the roles may do is
/// what the cluster's roles may.
pub fn set_up_roles(
    binaries: &Binaries,
    port: u16,
    database: &str,
    script: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut command = Command::new(binaries.tool("psql"));
    command
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
        ])
        .args([
            "-d",
            database,
            "-v",
            &format!("database={database}"),
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for role in DbRole::ALL {
        command.env(
            role.password_variable(),
            uuid::Uuid::new_v4().simple().to_string(),
        );
    }
    let mut child = command.spawn().context("running psql")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .context("sending the role setup to psql")?;
    let output = child.wait_with_output().context("running psql")?;
    anyhow::ensure!(
        output.status.success(),
        "setting up the database roles failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A loopback URL of the private cluster for one of the platform's roles (trust: no
/// password).
pub fn role_url(port: u16, database: &str, role: DbRole) -> String {
    format!(
        "postgres://{}@127.0.0.1:{port}/{database}",
        role.name(database)
    )
}

/// A connection URL with any password replaced by `***`, for messages.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "[unparseable url]".to_owned(),
    }
}
