//! Backend configuration, read once from the environment.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use shopmicro_common::config::{
    ConfigError, DATABASE_URL_EXPECTED, DatabaseUrl, Env, Problem, SERVICE_URL_EXPECTED,
    ServerConfig, ServiceUrl,
};
use shopmicro_common::secret::Secret;

use crate::db::reads;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database_url: DatabaseUrl,
    pub database_max_connections: NonZeroU32,
    /// Pipelined connections for catalogue reads, beside the pool.
    pub database_read_connections: NonZeroUsize,
    /// How long a catalogue read may take; PostgreSQL cancels it past that.
    pub database_read_timeout: Duration,
    /// No cache when unset.
    pub redis_url: Option<Secret<String>>,
    /// Prefix for every cache key, so several deployments (or tests) can share a Redis.
    pub cache_prefix: String,
    pub cache_ttl: Duration,
    /// How much of this process's memory catalogue answers may take.
    pub catalogue_memory_bytes: usize,
    /// Budget for one cache round trip; past it we read PostgreSQL instead.
    pub cache_timeout: Duration,
    /// Fallback recommendations only when unset.
    pub ml_url: Option<ServiceUrl>,
    pub ml_timeout: Duration,
    /// Load the demo catalogue and order history into an empty database.
    pub seed_demo_data: bool,
    pub migrations: Migrations,
}

/// What the backend does with the schema at start (`DATABASE_MIGRATIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations (a standalone backend whose user owns the schema).
    Apply,
    /// Only check that they are applied: the platform migrates as the schema owner and the
    /// backend's role may not change the schema.
    Verify,
}

impl std::str::FromStr for Migrations {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        match raw {
            "apply" => Ok(Self::Apply),
            "verify" => Ok(Self::Verify),
            _ => Err(()),
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Self::read(env)?;
        // A read that outlives its request is dropped with it, before its own deadline
        // fires: its 503 would never be sent, and a connection that stopped answering would
        // never be noticed and replaced.
        if config.database_read_timeout + reads::SILENT_AFTER
            >= config.server.limits.request_timeout
        {
            return Err(ConfigError {
                var: "DATABASE_READ_TIMEOUT_MS".into(),
                problem: Problem::Malformed,
                expected: "at least a second less than REQUEST_TIMEOUT_MS (30000 by default), \
                           so a read's deadline fires before its request's",
            });
        }
        Ok(config)
    }

    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, 8080)?,
            database_url: env.required("DATABASE_URL", DATABASE_URL_EXPECTED)?,
            database_max_connections: env.or_default(
                "DATABASE_MAX_CONNECTIONS",
                "a positive number of connections",
                NonZeroU32::new(10).expect("not zero"),
            )?,
            database_read_connections: env.or_default(
                "DATABASE_READ_CONNECTIONS",
                "a positive number of connections",
                NonZeroUsize::new(2).expect("not zero"),
            )?,
            // Not zero: PostgreSQL reads a statement_timeout of 0 as no limit at all.
            database_read_timeout: Duration::from_millis(
                env.or_default::<NonZeroU64>(
                    "DATABASE_READ_TIMEOUT_MS",
                    "a positive whole number of milliseconds",
                    NonZeroU64::new(5000).expect("not zero"),
                )?
                .get(),
            ),
            redis_url: env
                .optional::<RedisUrl>("REDIS_URL", "a Redis URL like redis://host:6379")?
                .map(|url| url.0),
            cache_prefix: env.or_default(
                "CACHE_PREFIX",
                "a key prefix",
                "shopmicro:".to_owned(),
            )?,
            cache_ttl: Duration::from_secs(env.or_default(
                "CACHE_TTL_SECS",
                "a whole number of seconds",
                60,
            )?),
            catalogue_memory_bytes: env.or_default::<u32>(
                "CATALOGUE_MEMORY_MB",
                "a whole number of MiB (0 turns the in-process layer off)",
                16,
            )? as usize
                * (1 << 20),
            cache_timeout: env.millis_or("CACHE_TIMEOUT_MS", Duration::from_millis(100))?,
            ml_url: env.optional("ML_URL", SERVICE_URL_EXPECTED)?,
            ml_timeout: env.millis_or("ML_TIMEOUT_MS", Duration::from_millis(300))?,
            seed_demo_data: env.or_default("SEED_DEMO_DATA", "true or false", true)?,
            migrations: env.or_default(
                "DATABASE_MIGRATIONS",
                "apply or verify",
                Migrations::Apply,
            )?,
        })
    }
}

struct RedisUrl(Secret<String>);

impl std::str::FromStr for RedisUrl {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        if raw.starts_with("redis://") || raw.starts_with("rediss://") {
            Ok(Self(Secret::new(raw.to_owned())))
        } else {
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_database_url_is_required() {
        let env = Env::from_pairs([("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.server.port, 8080);
        assert!(config.redis_url.is_none());
        assert!(config.ml_url.is_none());
        assert!(config.seed_demo_data);
        assert_eq!(config.migrations, Migrations::Apply);
    }

    #[test]
    fn migrations_are_applied_or_verified() {
        let url = ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop");
        let verify = Env::from_pairs([url, ("DATABASE_MIGRATIONS", "verify")]);
        assert_eq!(
            Config::from_env(&verify).unwrap().migrations,
            Migrations::Verify
        );
        let wrong = Env::from_pairs([url, ("DATABASE_MIGRATIONS", "skip")]);
        assert_eq!(
            Config::from_env(&wrong).unwrap_err().var,
            "DATABASE_MIGRATIONS"
        );
    }

    #[test]
    fn connections_and_read_timeout_have_defaults_and_zero_is_refused() {
        let url = ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop");
        let config = Config::from_env(&Env::from_pairs([url])).unwrap();
        assert_eq!(config.database_read_connections.get(), 2);
        assert_eq!(config.database_read_timeout, Duration::from_secs(5));
        assert_eq!(config.database_max_connections.get(), 10);
        for var in [
            "DATABASE_MAX_CONNECTIONS",
            "DATABASE_READ_CONNECTIONS",
            "DATABASE_READ_TIMEOUT_MS",
        ] {
            let zero = Env::from_pairs([url, (var, "0")]);
            assert_eq!(Config::from_env(&zero).unwrap_err().var, var);
        }
    }

    #[test]
    fn a_read_timeout_must_end_a_second_before_its_request_does() {
        let url = ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop");
        let request = ("REQUEST_TIMEOUT_MS", "6000");
        let fits = Env::from_pairs([url, request, ("DATABASE_READ_TIMEOUT_MS", "4999")]);
        assert!(Config::from_env(&fits).is_ok());
        let outlives = Env::from_pairs([url, request, ("DATABASE_READ_TIMEOUT_MS", "5000")]);
        let err = Config::from_env(&outlives).unwrap_err();
        assert_eq!(err.var, "DATABASE_READ_TIMEOUT_MS");
        assert!(err.expected.contains("REQUEST_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn malformed_redis_url_names_the_variable() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop"),
            ("REDIS_URL", "localhost:6379"),
        ]);
        let err = Config::from_env(&env).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }
}
