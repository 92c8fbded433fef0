//! ml configuration, read once from the environment.

use std::num::NonZeroU32;
use std::time::Duration;

use shopmicro_common::config::{
    ConfigError, DATABASE_URL_EXPECTED, DatabaseUrl, Env, Problem, ServerConfig,
};
use shopmicro_common::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Read-only use: order history and product attributes.
    pub database_url: DatabaseUrl,
    /// Pool size; PostgreSQL's `max_connections` is sized for it (a render test adds up
    /// every client's connections at full scale).
    pub database_max_connections: NonZeroU32,
    /// Pause between start-up training attempts while the database is unreachable.
    pub training_retry: Duration,
    /// The bearer token `POST /model/retrain` requires; unset, nobody may retrain.
    pub retrain_token: Option<Secret<String>>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, 8081)?,
            database_url: env.required("DATABASE_URL", DATABASE_URL_EXPECTED)?,
            database_max_connections: env.or_default(
                "DATABASE_MAX_CONNECTIONS",
                "a positive number of connections",
                NonZeroU32::new(4).expect("not zero"),
            )?,
            training_retry: env.millis_or("TRAINING_RETRY_MS", Duration::from_secs(2))?,
            retrain_token: env
                .optional::<String>("ML_RETRAIN_TOKEN", "a token of at least 32 characters")?
                .map(|token| {
                    if token.len() < 32 {
                        return Err(ConfigError {
                            var: "ML_RETRAIN_TOKEN".into(),
                            problem: Problem::Malformed,
                            expected: "a token of at least 32 characters",
                        });
                    }
                    Ok(Secret::new(token))
                })
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of no connections would never answer: refused at start-up, naming the variable.
    #[test]
    fn the_pool_defaults_to_four_connections_and_zero_is_refused() {
        let url = ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop");
        let config = Config::from_env(&Env::from_pairs([url])).unwrap();
        assert_eq!(config.database_max_connections.get(), 4);
        let zero = Env::from_pairs([url, ("DATABASE_MAX_CONNECTIONS", "0")]);
        let err = Config::from_env(&zero).unwrap_err();
        assert_eq!(err.var, "DATABASE_MAX_CONNECTIONS");
        assert_eq!(err.problem, Problem::Malformed);
    }
}
