//! Loading an environment: its values file, then `SHOPCTL_SET_*` variables, then `--set`
//! flags (flags win), validated as a whole so every problem is reported in one run.

pub mod model;
pub mod schema;

use serde_json::Value;

pub use model::Environment;
use schema::{Problem, Schema};

use crate::templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("unknown environment `{name}`; known environments: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("{file} is not valid YAML: {message}")]
    Malformed { file: String, message: String },
    #[error("{file} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    #[error("{origin}: {problem}")]
    BadOverride { origin: String, problem: Problem },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One `path=value` override and where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub path: Vec<String>,
    pub value: String,
    pub origin: String,
}

impl Override {
    /// Parses a `--set path=value` flag.
    pub fn from_flag(raw: &str) -> Result<Self, EnvError> {
        let origin = format!("--set {raw}");
        let (path, value) = raw.split_once('=').ok_or_else(|| EnvError::BadOverride {
            origin: origin.clone(),
            problem: Problem {
                path: raw.to_owned(),
                message: "expected path=value".to_owned(),
            },
        })?;
        let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(EnvError::BadOverride {
                origin,
                problem: Problem {
                    path: raw.to_owned(),
                    message: "empty path segment".to_owned(),
                },
            });
        }
        Ok(Self {
            path,
            value: value.to_owned(),
            origin,
        })
    }

    /// `SHOPCTL_SET_SERVICES__BACKEND__TAG=1.2.3` sets `services.backend.tag`.
    pub fn from_env_vars(vars: impl Iterator<Item = (String, String)>) -> Vec<Self> {
        let mut overrides: Vec<Self> = vars
            .filter_map(|(name, value)| {
                let path = name.strip_prefix("SHOPCTL_SET_")?;
                Some(Self {
                    path: path.to_lowercase().split("__").map(str::to_owned).collect(),
                    value,
                    origin: name.clone(),
                })
            })
            .collect();
        overrides.sort_by(|a, b| a.origin.cmp(&b.origin));
        overrides
    }
}

pub fn schema() -> Schema {
    Schema::new(schemars::schema_for!(Environment).to_value())
}

/// Loads, overrides and validates environment `name`.
pub fn load(
    templates: &Templates,
    name: &str,
    overrides: &[Override],
) -> Result<Environment, EnvError> {
    let file = format!("environments/{name}.yaml");
    let text = templates.get(&file).ok_or_else(|| EnvError::Unknown {
        name: name.to_owned(),
        known: templates.environment_names(),
    })?;
    let mut values: Value = serde_saphyr::from_str(text).map_err(|err| EnvError::Malformed {
        file: file.clone(),
        message: err.to_string(),
    })?;
    if !values.is_object() {
        return Err(EnvError::Malformed {
            file,
            message: "expected a mapping at the top level".to_owned(),
        });
    }

    let schema = schema();
    for change in overrides {
        apply(&schema, &mut values, change)?;
    }
    let mut problems = schema.validate(&values);
    if problems.is_empty() {
        match serde_json::from_value::<Environment>(values) {
            Ok(environment) => {
                problems.extend(semantic_problems(&environment, name));
                if problems.is_empty() {
                    return Ok(environment);
                }
            }
            Err(err) => problems.push(Problem {
                path: String::new(),
                message: err.to_string(),
            }),
        }
    }
    Err(EnvError::Invalid { file, problems })
}

fn apply(schema: &Schema, values: &mut Value, change: &Override) -> Result<(), EnvError> {
    let segments: Vec<&str> = change.path.iter().map(String::as_str).collect();
    let bad = |problem| EnvError::BadOverride {
        origin: change.origin.clone(),
        problem,
    };
    let target = schema.at_path(&segments).map_err(bad)?;
    let value = coerce(target, &change.value).map_err(|message| {
        bad(Problem {
            path: change.path.join("."),
            message,
        })
    })?;
    let mut node = values;
    for (i, segment) in change.path.iter().enumerate() {
        let object = node.as_object_mut().ok_or_else(|| {
            bad(Problem {
                path: change.path[..i].join("."),
                message: "is not a mapping".to_owned(),
            })
        })?;
        if i + 1 == change.path.len() {
            object.insert(segment.clone(), value);
            return Ok(());
        }
        node = object
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Interprets a command-line string as the type the schema expects at that path, so
/// `--set services.backend.tag=1.10` stays the string "1.10".
fn coerce(schema: &Value, raw: &str) -> Result<Value, String> {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"string") {
        Ok(Value::String(raw.to_owned()))
    } else if types.contains(&"integer") {
        raw.trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expected a whole number, got `{raw}`"))
    } else if types.contains(&"boolean") {
        raw.trim()
            .parse::<bool>()
            .map(Value::from)
            .map_err(|_| format!("expected true or false, got `{raw}`"))
    } else {
        serde_saphyr::from_str::<Value>(raw).or_else(|_| Ok(Value::String(raw.to_owned())))
    }
}

/// Rules the schema cannot express.
fn semantic_problems(env: &Environment, file_name: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |path: &str, message: String| {
        problems.push(Problem {
            path: path.to_owned(),
            message,
        })
    };
    if env.name != file_name {
        add(
            "name",
            format!(
                "is `{}` but the file is `{file_name}.yaml`; they must match",
                env.name
            ),
        );
    }
    if !is_dns_label(&env.namespace) {
        add(
            "namespace",
            "must be a DNS label (lowercase letters, digits, '-')".to_owned(),
        );
    }
    let version_ok = env
        .cluster
        .kubernetes_version
        .strip_prefix("1.")
        .is_some_and(|minor| minor.parse::<u32>().is_ok());
    if !version_ok {
        add(
            "cluster.kubernetes_version",
            format!(
                "expected a version like 1.33, got `{}`",
                env.cluster.kubernetes_version
            ),
        );
    }
    if env.aws.account_id.len() != 12 || !env.aws.account_id.chars().all(|c| c.is_ascii_digit()) {
        add("aws.account_id", "must be 12 digits".to_owned());
    }
    for (name, service) in [
        ("frontend", &env.services.frontend),
        ("backend", &env.services.backend),
        ("ml", &env.services.ml),
    ] {
        let path = format!("services.{name}");
        if service.replicas == 0 {
            add(&format!("{path}.replicas"), "must be at least 1".to_owned());
        }
        check_resources(&mut add, &format!("{path}.resources"), &service.resources);
        if let Some(scaling) = &service.autoscaling {
            if scaling.min_replicas == 0 || scaling.min_replicas > scaling.max_replicas {
                add(
                    &format!("{path}.autoscaling"),
                    format!(
                        "need 1 <= min_replicas <= max_replicas, got {}..{}",
                        scaling.min_replicas, scaling.max_replicas
                    ),
                );
            }
            for (field, percent) in [
                ("target_cpu_percent", scaling.target_cpu_percent),
                ("target_memory_percent", scaling.target_memory_percent),
            ] {
                if !(1..=100).contains(&percent) {
                    add(
                        &format!("{path}.autoscaling.{field}"),
                        format!("must be 1 to 100, got {percent}"),
                    );
                }
            }
        }
    }
    check_resources(&mut add, "postgres.resources", &env.postgres.resources);
    check_resources(&mut add, "redis.resources", &env.redis.resources);
    for (path, size) in [
        (
            "observability.prometheus_storage_size",
            &env.observability.prometheus_storage_size,
        ),
        (
            "observability.loki_storage_size",
            &env.observability.loki_storage_size,
        ),
    ] {
        if !is_quantity(size) {
            add(
                path,
                format!("`{size}` is not a Kubernetes quantity like 20Gi"),
            );
        }
    }
    if !is_quantity(&env.postgres.storage_size) {
        add(
            "postgres.storage_size",
            format!(
                "`{}` is not a Kubernetes quantity like 20Gi",
                env.postgres.storage_size
            ),
        );
    }
    if env.backup.schedule.split_whitespace().count() != 5 {
        add(
            "backup.schedule",
            format!(
                "`{}` is not a five-field cron schedule",
                env.backup.schedule
            ),
        );
    }
    problems
}

fn check_resources(add: &mut impl FnMut(&str, String), path: &str, resources: &model::Resources) {
    for (kind, amounts) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (field, quantity) in [("cpu", &amounts.cpu), ("memory", &amounts.memory)] {
            if !is_quantity(quantity) {
                add(
                    &format!("{path}.{kind}.{field}"),
                    format!("`{quantity}` is not a Kubernetes quantity"),
                );
            }
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Kubernetes resource quantities as we use them: a decimal number with an optional
/// binary or decimal suffix (`250m`, `1.5`, `512Mi`, `20Gi`).
pub fn is_quantity(raw: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|s| raw.strip_suffix(s))
        .unwrap_or(raw);
    !number.is_empty()
        && number
            .parse::<f64>()
            .is_ok_and(|n| n >= 0.0 && n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["250m", "1", "0.5", "512Mi", "20Gi", "1G"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "abc", "-1", "1.2.3Gi", "12 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn set_flags_need_a_path_and_a_value() {
        let parsed = Override::from_flag("services.backend.tag=1.2.3").unwrap();
        assert_eq!(parsed.path, vec!["services", "backend", "tag"]);
        assert_eq!(parsed.value, "1.2.3");
        assert!(Override::from_flag("services.backend.tag").is_err());
        assert!(Override::from_flag("services..tag=1").is_err());
    }

    #[test]
    fn env_var_overrides_map_double_underscores_to_dots() {
        let vars = [
            (
                "SHOPCTL_SET_SERVICES__BACKEND__REPLICAS".to_owned(),
                "4".to_owned(),
            ),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let overrides = Override::from_env_vars(vars.into_iter());
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].path, vec!["services", "backend", "replicas"]);
    }
}
