//! EKS access without the aws CLI: DescribeCluster for the endpoint and CA, and a bearer
//! token made the way `aws eks get-token` makes it — a presigned STS GetCallerIdentity
//! URL, signed with the `x-k8s-aws-id: <cluster>` header, base64url-encoded behind the
//! `k8s-aws-v1.` prefix. The API server's authenticator replays it to learn who we are.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;

use crate::env::Environment;

/// The presigned URL's lifetime; `aws eks get-token` uses the same.
const TOKEN_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub arn: String,
    pub endpoint: String,
    pub ca_data: String,
}

pub async fn describe(
    config: &aws_config::SdkConfig,
    env: &Environment,
) -> anyhow::Result<ClusterAccess> {
    let described = aws_sdk_eks::Client::new(config)
        .describe_cluster()
        .name(&env.cluster.name)
        .send()
        .await
        .map_err(|e| {
            let on = format!("EKS cluster {} in {}", env.cluster.name, env.aws.region);
            super::aws_failure("DescribeCluster", "eks:DescribeCluster", &on, e)
        })?;
    let cluster = described
        .cluster()
        .context("DescribeCluster answered without a cluster")?;
    Ok(ClusterAccess {
        arn: cluster.arn().unwrap_or_default().to_string(),
        endpoint: cluster
            .endpoint()
            .context("the cluster has no endpoint yet (still creating?)")?
            .to_string(),
        ca_data: cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .unwrap_or_default()
            .to_string(),
    })
}

/// STS's endpoint for the region, or the emulator's.
fn sts_url(region: &str) -> String {
    let base =
        super::emulated_endpoint().unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        base.trim_end_matches('/')
    )
}

/// A bearer token for the cluster and when it expires.
pub async fn token(
    config: &aws_config::SdkConfig,
    env: &Environment,
) -> anyhow::Result<(String, chrono::DateTime<chrono::Utc>)> {
    let credentials = config
        .credentials_provider()
        .context("no AWS credentials provider is configured")?
        .provide_credentials()
        .await
        .context("no usable AWS credentials; configure a profile, environment credentials or web identity")?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let now = SystemTime::now();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&env.aws.region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .context("building the signing parameters")?
        .into();
    let url = sts_url(&env.aws.region);
    let headers = [("x-k8s-aws-id", env.cluster.name.as_str())];
    let request = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .context("an unsignable STS request")?;
    let (instructions, _) = sign(request, &params)
        .context("signing the STS request")?
        .into_parts();
    let mut presigned = url::Url::parse(&url)?;
    for (name, value) in instructions.params() {
        presigned.query_pairs_mut().append_pair(name, value);
    }
    let token = format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned.as_str())
    );
    // Kubernetes clients refresh a little early; the URL itself is valid for the lifetime.
    let expires =
        chrono::DateTime::<chrono::Utc>::from(now + TOKEN_LIFETIME - Duration::from_secs(5));
    Ok((token, expires))
}

/// The ExecCredential a kubeconfig's exec plugin prints.
pub fn exec_credential(token: &str, expires: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {
            "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "token": token,
        },
    })
}

/// Writes or merges the environment's EKS entry into the kubeconfig at `path` (private:
/// 0600) and makes it the current context; the context's name.
pub async fn write_kubeconfig(
    config: &aws_config::SdkConfig,
    environment: &Environment,
    path: &std::path::Path,
) -> anyhow::Result<String> {
    let access = describe(config, environment).await?;
    let existing = path
        .exists()
        .then(|| kube::config::Kubeconfig::read_from(path))
        .transpose()
        .with_context(|| format!("reading {}", path.display()))?;
    let shopctl = std::env::current_exe()?.display().to_string();
    let merged = merge_kubeconfig(existing, &access, environment, &shopctl)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_saphyr::to_string(&merged)?;
    // It names credentials' sources, not credentials, but kubeconfigs are private by
    // habit.
    crate::private::write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(access.arn)
}

/// Adds or replaces the cluster's entry in a kubeconfig and makes it current; the user
/// runs `shopctl eks-token` (no aws CLI needed).
pub fn merge_kubeconfig(
    existing: Option<kube::config::Kubeconfig>,
    access: &ClusterAccess,
    env: &Environment,
    shopctl: &str,
) -> anyhow::Result<kube::config::Kubeconfig> {
    let name = access.arn.clone();
    let entry: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": access.endpoint, "certificate-authority-data": access.ca_data}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": shopctl,
            "args": ["eks-token", "--env", env.name],
            "interactiveMode": "Never",
        }}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": env.namespace}}],
        "current-context": name,
    }))
    .context("building the kubeconfig entry")?;
    let Some(mut config) = existing else {
        return Ok(entry);
    };
    config.clusters.retain(|c| c.name != name);
    config.auth_infos.retain(|a| a.name != name);
    config.contexts.retain(|c| c.name != name);
    config.clusters.extend(entry.clusters);
    config.auth_infos.extend(entry.auth_infos);
    config.contexts.extend(entry.contexts);
    config.current_context = Some(name);
    Ok(config)
}
