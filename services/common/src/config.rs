//! Configuration from environment variables (12-factor).
//!
//! A service reads its variables once at start-up through [`Env`]. A missing or malformed
//! variable stops start-up with one line naming the variable and what is expected. Values
//! are never echoed back: a malformed value may well be a credential pasted into the wrong
//! variable.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var} {problem}; expected {expected}")]
pub struct ConfigError {
    pub var: String,
    pub problem: Problem,
    pub expected: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Missing,
    Malformed,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Missing => "is not set",
            Problem::Malformed => "is malformed",
        })
    }
}

/// Where configuration values come from: the process environment, or a fixed map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The raw value; an empty string counts as unset, as shells and manifests produce it.
    fn raw(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required<T: FromStr>(
        &self,
        var: &str,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        self.optional(var, expected)?.ok_or_else(|| ConfigError {
            var: var.to_owned(),
            problem: Problem::Missing,
            expected,
        })
    }

    pub fn optional<T: FromStr>(
        &self,
        var: &str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(var)
            .map(|raw| {
                raw.parse().map_err(|_| ConfigError {
                    var: var.to_owned(),
                    problem: Problem::Malformed,
                    expected,
                })
            })
            .transpose()
    }

    pub fn or_default<T: FromStr>(
        &self,
        var: &str,
        expected: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.optional(var, expected)?.unwrap_or(default))
    }

    /// A duration given in milliseconds, the unit every ShopMicro timeout variable uses.
    pub fn millis_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: Option<u64> = self.optional(var, "a whole number of milliseconds")?;
        Ok(ms.map(Duration::from_millis).unwrap_or(default))
    }
}

/// Settings every service's HTTP server shares.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub port: u16,
    /// Where operators' endpoints (`/metrics`) are served: never the public port, so no
    /// Ingress that routes the public port can expose them.
    pub admin_port: u16,
    /// How long in-flight requests may take to finish after SIGTERM before we exit anyway.
    /// Keep it below the pod's termination grace period.
    pub shutdown_deadline: Duration,
    /// How long after the signal a draining service still accepts, closing each
    /// connection after its answer, before it stops accepting (part of the deadline).
    /// A local hand-over sets it so keep-alive clients move to the successor cleanly; on
    /// Kubernetes the preStop pause does that job.
    pub linger: Duration,
    /// What the API takes on at once (health and metrics are not limited).
    pub limits: crate::overload::Limits,
    /// One successful request in this many writes its access-log line (`ACCESS_LOG_SAMPLE`);
    /// failures always do. 1 logs every request.
    pub access_log_every: std::num::NonZeroU32,
}

impl ServerConfig {
    /// The service's documented ports are the defaults; its admin port is 1000 above its
    /// public one (frontend 8000/9000, backend 8080/9080, ml 8081/9081).
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.or_default("PORT", "a TCP port number (0-65535)", default_port)?,
            admin_port: env.or_default(
                "ADMIN_PORT",
                "a TCP port number (0-65535)",
                default_port + 1000,
            )?,
            shutdown_deadline: env.millis_or("SHUTDOWN_DEADLINE_MS", Duration::from_secs(20))?,
            linger: env.millis_or("SHUTDOWN_LINGER_MS", Duration::ZERO)?,
            limits: crate::overload::Limits::from_env(env)?,
            access_log_every: env.or_default(
                "ACCESS_LOG_SAMPLE",
                "a whole number from 1 (every request's line) up",
                std::num::NonZeroU32::MIN,
            )?,
        })
    }
}

/// A PostgreSQL connection URL. It carries a password, so it only exists as a [`Secret`].
#[derive(Debug, Clone)]
pub struct DatabaseUrl(Secret<String>);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Where we connect, without the password: for log lines and error messages.
    pub fn redacted(&self) -> String {
        crate::secret::redact_url(self.0.expose())
    }
}

impl FromStr for DatabaseUrl {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        let url = url::Url::parse(raw).map_err(|_| ())?;
        match url.scheme() {
            "postgres" | "postgresql" if url.host_str().is_some() || raw.contains("host=") => {
                Ok(Self(Secret::new(raw.to_owned())))
            }
            _ => Err(()),
        }
    }
}

pub const DATABASE_URL_EXPECTED: &str =
    "a PostgreSQL URL like postgres://user:password@host:5432/dbname";

/// The base URL of another HTTP service (`http://backend:8080`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl(url::Url);

impl ServiceUrl {
    /// `path` joined onto the base, keeping any path prefix the base has.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0.as_str().trim_end_matches('/'), path)
    }
}

impl FromStr for ServiceUrl {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        let url = url::Url::parse(raw).map_err(|_| ())?;
        if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() {
            Ok(Self(url))
        } else {
            Err(())
        }
    }
}

pub const SERVICE_URL_EXPECTED: &str = "an http(s) base URL like http://backend:8080";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_variable_names_it_and_what_is_expected() {
        let env = Env::from_pairs([]);
        let err = env
            .required::<DatabaseUrl>("DATABASE_URL", DATABASE_URL_EXPECTED)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: DATABASE_URL is not set; expected a PostgreSQL URL like \
             postgres://user:password@host:5432/dbname"
        );
    }

    #[test]
    fn malformed_value_is_reported_without_echoing_it() {
        let env = Env::from_pairs([("DATABASE_URL", "mysql://root:topsecret@db/shop")]);
        let err = env
            .required::<DatabaseUrl>("DATABASE_URL", DATABASE_URL_EXPECTED)
            .unwrap_err();
        assert_eq!(err.problem, Problem::Malformed);
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset_and_defaults_apply() {
        let env = Env::from_pairs([("PORT", "  ")]);
        let server = ServerConfig::from_env(&env, 8080).unwrap();
        assert_eq!(server.port, 8080);
        assert_eq!(server.admin_port, 9080);
        assert_eq!(server.shutdown_deadline, Duration::from_secs(20));
    }

    #[test]
    fn port_out_of_range_is_malformed() {
        let env = Env::from_pairs([("PORT", "70000")]);
        let err = ServerConfig::from_env(&env, 8080).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert_eq!(err.problem, Problem::Malformed);
    }

    #[test]
    fn database_url_debug_and_redaction_hide_the_password() {
        let url: DatabaseUrl = "postgres://shop:pw123@localhost:5432/shop".parse().unwrap();
        assert!(!format!("{url:?}").contains("pw123"));
        assert_eq!(url.redacted(), "postgres://shop:***@localhost:5432/shop");
    }

    #[test]
    fn service_url_requires_http_and_joins_paths() {
        let url: ServiceUrl = "http://backend:8080/".parse().unwrap();
        assert_eq!(url.join("/products"), "http://backend:8080/products");
        assert!("ftp://backend".parse::<ServiceUrl>().is_err());
        assert!("backend:8080".parse::<ServiceUrl>().is_err());
    }
}
