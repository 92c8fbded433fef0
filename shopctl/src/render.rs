//! Rendering: an environment and the Tera templates in `templates/k8s` become an ordered
//! list of Kubernetes objects, deterministic for the same input.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::db_roles::{self, DbRole};
use crate::env::Environment;
use crate::manifest::Manifest;
use crate::secrets::{REDACTED, SecretValue};
use crate::templates::Templates;

/// The pod-template annotation that changes whenever a workload's configuration does,
/// so applying a config change rolls the pods.
pub const CONFIG_CHECKSUM: &str = "checksum.shopmicro.io/config";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template error: {0}")]
    Template(String),
    #[error("{template} did not render valid YAML: {message}")]
    InvalidYaml { template: String, message: String },
    #[error("{template}: {message}")]
    InvalidObject { template: String, message: String },
    #[error("{id} is rendered twice (by {first} and {second})")]
    Duplicate {
        id: String,
        first: String,
        second: String,
    },
}

/// Secrets for rendering: real values (to apply, or `--show-secrets`), or placeholders.
pub enum SecretMode {
    Redacted,
    Values(BTreeMap<String, SecretValue>),
}

pub fn render(
    templates: &Templates,
    env: &Environment,
    secrets: &SecretMode,
) -> Result<Vec<Manifest>, RenderError> {
    let mut tera = tera::Tera::default();
    let sources: Vec<(&str, &str)> = templates
        .under("k8s/")
        .chain(
            templates
                .under("observability/")
                .filter(|(name, _)| name.ends_with(".tera")),
        )
        .collect();
    tera.add_raw_templates(sources.clone())
        .map_err(|err| RenderError::Template(error_chain(&err)))?;

    let context = tera::Context::from_value(context(templates, env, secrets))
        .map_err(|err| RenderError::Template(error_chain(&err)))?;
    let mut objects: Vec<Manifest> = Vec::new();
    for (name, _) in sources.iter().filter(|(name, _)| is_renderable(name)) {
        let text = tera
            .render(name, &context)
            .map_err(|err| RenderError::Template(error_chain(&err)))?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|err| RenderError::InvalidYaml {
                template: (*name).to_owned(),
                message: err.to_string(),
            })?;
        for value in documents.into_iter().filter(|doc| !doc.is_null()) {
            let object = Manifest {
                source: (*name).to_owned(),
                value,
            };
            if object.kind().is_empty() || object.name().is_empty() {
                return Err(RenderError::InvalidObject {
                    template: (*name).to_owned(),
                    message: "an object without kind or metadata.name".to_owned(),
                });
            }
            objects.push(object);
        }
    }
    objects.sort_by_key(Manifest::order_key);
    if let Some(pair) = objects.windows(2).find(|pair| pair[0].id() == pair[1].id()) {
        return Err(RenderError::Duplicate {
            id: pair[0].id(),
            first: pair[0].source.clone(),
            second: pair[1].source.clone(),
        });
    }
    add_config_checksums(&mut objects);
    Ok(objects)
}

/// Library templates (`_macros.tera`) are imported, not rendered on their own.
fn is_renderable(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    !file.starts_with('_') && file.ends_with(".tera")
}

fn context(templates: &Templates, env: &Environment, secrets: &SecretMode) -> Value {
    let secret = |key: &str| match secrets {
        SecretMode::Redacted => REDACTED.to_owned(),
        SecretMode::Values(values) => values
            .get(key)
            .map(|v| v.expose().to_owned())
            .unwrap_or_default(),
    };
    // Each workload's role, its password derived from the database secret.
    let database = &env.postgres.database;
    let database_roles: serde_json::Map<String, Value> = DbRole::ALL
        .into_iter()
        .map(|role| {
            let (password, url) = match secrets {
                SecretMode::Redacted => (REDACTED.to_owned(), REDACTED.to_owned()),
                SecretMode::Values(values) => {
                    let secret = values
                        .get("postgres_password")
                        .cloned()
                        .unwrap_or_else(|| SecretValue::new(String::new()));
                    (
                        role.password(database, &secret).expose().to_owned(),
                        role.url("postgres:5432", database, &secret)
                            .expose()
                            .to_owned(),
                    )
                }
            };
            let credentials = json!({
                "user": role.name(database),
                "password": password,
                "url": url,
                "password_variable": role.password_variable(),
            });
            (role.key().to_owned(), credentials)
        })
        .collect();
    let backup_role_arn = env.backup.role_arn.clone().unwrap_or_else(|| {
        format!(
            "arn:aws:iam::{}:role/{}-db-backup",
            env.aws.account_id, env.cluster.name
        )
    });
    // Rule files, dashboards and provisioning files go into ConfigMaps verbatim; they are
    // not Tera templates (their own `{{ }}` belongs to Prometheus and Grafana).
    let files: BTreeMap<&str, &str> = templates
        .under("observability/")
        .filter(|(name, _)| !name.ends_with(".tera"))
        .collect();
    json!({
        "env": env,
        "version": env!("CARGO_PKG_VERSION"),
        "backup_role_arn": backup_role_arn,
        "agents_namespace": format!("{}-agents", env.observability.namespace),
        "files": files,
        "secrets": {
            "postgres_password": secret("postgres_password"),
            "cart_signing_key": secret("cart_signing_key"),
            "ml_retrain_token": secret("ml_retrain_token"),
            "grafana_admin_password": secret("grafana_admin_password"),
            "database_roles": database_roles,
            "alert_receivers": env
                .observability
                .alerting
                .receivers
                .iter()
                .map(|receiver| (receiver.name.clone(), json!(secret(&receiver.secret().0))))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "postgres_setup": templates.get(db_roles::SETUP_SCRIPT).unwrap_or_default(),
    })
}

/// Tera errors nest the useful part (file, line, what was expected) in their sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Stamps every workload's pod template with a digest of the ConfigMaps it reads.
fn add_config_checksums(objects: &mut [Manifest]) {
    let config_maps: BTreeMap<(String, String), Value> = objects
        .iter()
        .filter(|o| o.kind() == "ConfigMap")
        .map(|o| {
            let key = (
                o.namespace().unwrap_or_default().to_owned(),
                o.name().to_owned(),
            );
            (key, o.value.get("data").cloned().unwrap_or(Value::Null))
        })
        .collect();
    for object in objects
        .iter_mut()
        .filter(|o| matches!(o.kind(), "Deployment" | "StatefulSet" | "DaemonSet"))
    {
        let namespace = object.namespace().unwrap_or_default().to_owned();
        let referenced = referenced_config_maps(&object.value);
        if referenced.is_empty() {
            continue;
        }
        let mut hasher = Sha256::new();
        for name in &referenced {
            let data = config_maps
                .get(&(namespace.clone(), name.clone()))
                .cloned()
                .unwrap_or(Value::Null);
            hasher.update(name.as_bytes());
            hasher.update(data.to_string().as_bytes());
        }
        let digest = format!("{:x}", hasher.finalize());
        if let Some(metadata) = object
            .value
            .pointer_mut("/spec/template/metadata")
            .and_then(Value::as_object_mut)
        {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(CONFIG_CHECKSUM.to_owned(), Value::String(digest));
            }
        }
    }
}

fn referenced_config_maps(workload: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(spec) = workload.pointer("/spec/template/spec") else {
        return names;
    };
    for container in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for source in container
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = source.pointer("/configMapRef/name").and_then(Value::as_str) {
                names.insert(name.to_owned());
            }
        }
        for var in container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = var
                .pointer("/valueFrom/configMapKeyRef/name")
                .and_then(Value::as_str)
            {
                names.insert(name.to_owned());
            }
        }
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = volume.pointer("/configMap/name").and_then(Value::as_str) {
            names.insert(name.to_owned());
        }
    }
    names
}
