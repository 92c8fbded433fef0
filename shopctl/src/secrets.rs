//! Where Secret values come from at apply time: `SHOPMICRO_*` environment variables, or a
//! git-ignored file (`.shopctl/secrets/<env>.yaml`). Never from templates or the repo.
//!
//! Values live in [`SecretValue`], which prints as `[redacted]`; the only way to the text
//! is `expose`, called where a manifest is rendered for applying or `--show-secrets`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::env::Environment;

/// The placeholder `render` shows instead of a secret value.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The secrets the platform needs: (key in the secrets file, environment variable).
pub const REQUIRED: [(&str, &str); 4] = [
    ("postgres_password", "SHOPMICRO_POSTGRES_PASSWORD"),
    ("cart_signing_key", "SHOPMICRO_CART_SIGNING_KEY"),
    ("ml_retrain_token", "SHOPMICRO_ML_RETRAIN_TOKEN"),
    ("grafana_admin_password", "SHOPMICRO_GRAFANA_ADMIN_PASSWORD"),
];

/// Every secret `environment` needs: (key in the secrets file, environment variable).
pub fn required(environment: &Environment) -> Vec<(String, String)> {
    REQUIRED
        .iter()
        .map(|(key, variable)| (key.to_string(), variable.to_string()))
        .chain(
            environment
                .observability
                .alerting
                .receivers
                .iter()
                .map(|receiver| receiver.secret()),
        )
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no value for secret `{key}`: set {variable} or add `{key}` to {file}")]
    Missing {
        key: String,
        variable: String,
        file: String,
    },
    #[error("reading secrets file {file}: {message}")]
    Unreadable { file: String, message: String },
    #[error(
        "secret `{key}` is too short: its service refuses fewer than {minimum} characters; set {variable} to a longer value (e.g. `openssl rand -hex 16`)"
    )]
    TooShort {
        key: String,
        variable: String,
        minimum: usize,
    },
}

/// Secrets whose service refuses a short value at start: caught here, before a deploy
/// that would crash-loop.
const MINIMUM_LENGTHS: [(&str, usize); 1] = [("ml_retrain_token", 32)];

#[derive(Debug, Clone)]
pub struct SecretSource {
    file: PathBuf,
    variables: BTreeMap<String, String>,
}

impl SecretSource {
    /// Process environment plus `file` (default `.shopctl/secrets/<env>.yaml`).
    pub fn new(env_name: &str, file: Option<&Path>) -> Self {
        Self {
            file: file
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default_file(env_name)),
            variables: std::env::vars()
                .filter(|(name, _)| name.starts_with("SHOPMICRO_"))
                .collect(),
        }
    }

    pub fn with_variables(mut self, variables: BTreeMap<String, String>) -> Self {
        self.variables = variables;
        self
    }

    /// Every secret `environment` needs (the platform's, and each alert receiver's
    /// destination); variables win over the file.
    pub fn resolve(
        &self,
        environment: &Environment,
    ) -> Result<BTreeMap<String, SecretValue>, SecretError> {
        let file_values = self.read_file()?;
        let mut values = BTreeMap::new();
        for (key, variable) in required(environment) {
            let value = self
                .variables
                .get(&variable)
                .or_else(|| file_values.get(&key))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecretError::Missing {
                    key: key.clone(),
                    variable: variable.clone(),
                    file: self.file.display().to_string(),
                })?;
            if let Some((_, minimum)) = MINIMUM_LENGTHS.iter().find(|(k, _)| *k == key)
                && value.chars().count() < *minimum
            {
                return Err(SecretError::TooShort {
                    key,
                    variable,
                    minimum: *minimum,
                });
            }
            values.insert(key, SecretValue::new(value.clone()));
        }
        Ok(values)
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, SecretError> {
        let unreadable = |message: String| SecretError::Unreadable {
            file: self.file.display().to_string(),
            message,
        };
        match std::fs::read_to_string(&self.file) {
            Ok(text) => serde_saphyr::from_str(&text).map_err(|_| {
                // The parser's message may quote the file's content: say where, not what.
                unreadable("not a YAML mapping of names to strings".to_owned())
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(err) => Err(unreadable(err.kind().to_string())),
        }
    }
}

pub fn default_file(env_name: &str) -> PathBuf {
    PathBuf::from(".shopctl/secrets").join(format!("{env_name}.yaml"))
}

/// Percent-encodes a URL userinfo component (a password inside a connection URL).
pub fn encode_userinfo(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_print() {
        let value = SecretValue::new("hunter2".to_owned());
        assert_eq!(format!("{value:?}"), "[redacted]");
    }

    fn environment(name: &str) -> Environment {
        crate::env::load(&crate::templates::Templates::embedded(), name, &[]).unwrap()
    }

    #[test]
    fn variables_win_over_the_file_and_missing_values_name_both_sources() {
        let dir = std::env::temp_dir().join(format!("shopctl-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dev.yaml");
        std::fs::write(&file, "postgres_password: from-file\n").unwrap();
        let local = environment("local");
        let source = SecretSource::new("local", Some(&file)).with_variables(BTreeMap::new());
        let err = source.resolve(&local).unwrap_err().to_string();
        assert!(
            err.contains("SHOPMICRO_CART_SIGNING_KEY") && err.contains("dev.yaml"),
            "{err}"
        );

        let mut vars = BTreeMap::from([
            (
                "SHOPMICRO_POSTGRES_PASSWORD".to_owned(),
                "from-env".to_owned(),
            ),
            ("SHOPMICRO_CART_SIGNING_KEY".to_owned(), "k".to_owned()),
            ("SHOPMICRO_ML_RETRAIN_TOKEN".to_owned(), "t".repeat(32)),
            (
                "SHOPMICRO_GRAFANA_ADMIN_PASSWORD".to_owned(),
                "g".to_owned(),
            ),
        ]);
        let values = SecretSource::new("local", Some(&file))
            .with_variables(vars.clone())
            .resolve(&local)
            .unwrap();
        assert_eq!(values["postgres_password"].expose(), "from-env");

        // A token ml would refuse at start is refused here, without echoing it.
        let mut short = vars.clone();
        short.insert(
            "SHOPMICRO_ML_RETRAIN_TOKEN".to_owned(),
            "short-secret".to_owned(),
        );
        let err = SecretSource::new("local", Some(&file))
            .with_variables(short)
            .resolve(&local)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHOPMICRO_ML_RETRAIN_TOKEN") && err.contains("32"),
            "{err}"
        );
        assert!(!err.contains("short-secret"), "{err}");

        // prod's alert receivers need their destinations too, named by receiver.
        let prod = environment("prod");
        let source = SecretSource::new("prod", Some(&file)).with_variables(vars.clone());
        let err = source.resolve(&prod).unwrap_err().to_string();
        assert!(err.contains("SHOPMICRO_ALERT_RECEIVER_"), "{err}");
        for receiver in &prod.observability.alerting.receivers {
            vars.insert(
                receiver.secret().1,
                format!("https://hooks.example/{}", receiver.name),
            );
        }
        let values = SecretSource::new("prod", Some(&file))
            .with_variables(vars)
            .resolve(&prod)
            .unwrap();
        let pager = prod.observability.alerting.receivers[0].secret().0;
        assert!(
            values[&pager]
                .expose()
                .starts_with("https://hooks.example/")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(encode_userinfo("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
