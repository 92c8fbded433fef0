//! Storefront configuration, read once from the environment.

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shopmicro_common::config::{ConfigError, Env, SERVICE_URL_EXPECTED, ServerConfig, ServiceUrl};
use shopmicro_common::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub backend_url: ServiceUrl,
    pub backend_timeout: Duration,
    /// Signs the cart cookie. Unset: a random key per process (carts do not survive a
    /// restart and differ between replicas), which is fine locally and warned about.
    pub cart_signing_key: Option<Secret<Vec<u8>>>,
    /// Mark cookies `Secure` (set wherever the storefront is served over HTTPS).
    pub secure_cookies: bool,
    /// How much memory rendered catalogue pages may take (0: render every time).
    pub page_cache_bytes: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, 8000)?,
            backend_url: env.required("BACKEND_URL", SERVICE_URL_EXPECTED)?,
            backend_timeout: env.millis_or("BACKEND_TIMEOUT_MS", Duration::from_secs(3))?,
            cart_signing_key: env
                .optional::<SigningKey>(
                    "CART_SIGNING_KEY",
                    "at least 64 bytes, base64-encoded (openssl rand -base64 64)",
                )?
                .map(|key| key.0),
            secure_cookies: env.or_default("SECURE_COOKIES", "true or false", false)?,
            page_cache_bytes: env.or_default::<u32>(
                "PAGE_CACHE_MB",
                "a whole number of MiB (0 renders every page)",
                8,
            )? as usize
                * (1 << 20),
        })
    }
}

struct SigningKey(Secret<Vec<u8>>);

impl FromStr for SigningKey {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        let bytes = STANDARD.decode(raw).map_err(|_| ())?;
        if bytes.len() >= 64 {
            Ok(Self(Secret::new(bytes)))
        } else {
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_url_is_required() {
        let err = Config::from_env(&Env::from_pairs([])).unwrap_err();
        assert_eq!(err.var, "BACKEND_URL");
    }

    #[test]
    fn short_signing_keys_are_rejected() {
        let short = STANDARD.encode([7u8; 16]);
        let env = Env::from_pairs([
            ("BACKEND_URL", "http://backend:8080"),
            ("CART_SIGNING_KEY", &short),
        ]);
        assert_eq!(Config::from_env(&env).unwrap_err().var, "CART_SIGNING_KEY");
        let long = STANDARD.encode([7u8; 64]);
        let env = Env::from_pairs([
            ("BACKEND_URL", "http://backend:8080"),
            ("CART_SIGNING_KEY", &long),
        ]);
        assert!(Config::from_env(&env).unwrap().cart_signing_key.is_some());
    }
}
