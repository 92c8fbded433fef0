//! Test support shared by the services' integration tests (feature `testing`).
//!
//! [`TestDatabase`] creates a uniquely named PostgreSQL database and drops it when the
//! test ends, so tests run in parallel against a real server without sharing state.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Server that tests create their databases on; `TEST_DATABASE_URL` overrides it.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis for tests; `TEST_REDIS_URL` overrides it.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is not reachable at {} ({err}); the README's test command starts it",
                crate::secret::redact_url(&admin)
            )
        });
        let name = format!("shopmicro_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a private runtime on a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin_url()).await.ok()?;
                let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                let drop = sqlx::query(&statement).execute(&mut conn);
                tokio::time::timeout(Duration::from_secs(10), drop)
                    .await
                    .ok()?
                    .ok()?;
                // The platform's roles for this database (`<name>_owner`, …), when a
                // test made them; roles belong to the server and would outlive it.
                let roles: Vec<String> = sqlx::query_scalar(
                    "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1 || '_')",
                )
                .bind(&name)
                .fetch_all(&mut conn)
                .await
                .ok()?;
                for role in roles {
                    sqlx::query(&format!(r#"DROP ROLE IF EXISTS "{role}""#))
                        .execute(&mut conn)
                        .await
                        .ok()?;
                }
                Some(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A TCP port on loopback that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it yields a value, for things that settle on their own time (a
/// supervisor restarting a process, a controller creating a claim, a lock being taken).
/// `check` returns what it saw instead; after `within`, the test fails naming `what` and
/// that last observation.
pub fn eventually<T, Seen: std::fmt::Display>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, Seen>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if std::time::Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// [`eventually`] for a check that awaits (an HTTP probe, a query).
pub async fn eventually_async<T, Seen: std::fmt::Display, Check>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Check,
) -> T
where
    Check: std::future::Future<Output = Result<T, Seen>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if std::time::Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// GETs `url` until it answers `status` (within five seconds); that answer.
pub async fn eventually_status(what: &str, url: &str, status: u16) -> reqwest::Response {
    eventually_async(what, Duration::from_secs(5), || async {
        let response = reqwest::get(url).await.map_err(|err| err.to_string())?;
        match response.status().as_u16() {
            answered if answered == status => Ok(response),
            other => Err(other.to_string()),
        }
    })
    .await
}

/// The value of one sample in Prometheus/OpenMetrics text, matched by name and labels.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A service's server settings for tests: free ports, no lingering, a short deadline.
pub fn server_config() -> crate::config::ServerConfig {
    crate::config::ServerConfig {
        port: 0,
        admin_port: 0,
        shutdown_deadline: Duration::from_secs(5),
        linger: Duration::ZERO,
        limits: Default::default(),
        access_log_every: std::num::NonZeroU32::MIN,
    }
}
