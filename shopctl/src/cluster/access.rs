//! Asking before acting. An operation that changes the cluster first lists every request
//! it will make and asks the server about each (SelfSubjectAccessReviews, concurrently),
//! so a missing permission stops it before the first change, with one line naming the
//! identity, the verb and the resource. Reviews rather than a SelfSubjectRulesReview:
//! on EKS the access policies are evaluated by an authorizer that rules reviews cannot
//! list, while an access review asks every authorizer.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{AccessError, Cluster};

/// One request an operation will make, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub verb: String,
    /// API group; empty for the core group.
    pub group: String,
    /// The plural resource, with `/subresource` where there is one.
    pub resource: String,
    /// None for cluster-scoped requests.
    pub namespace: Option<String>,
    /// None for any object of the resource.
    pub name: Option<String>,
}

impl Permission {
    pub fn new(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        Self {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A request on a Namespace object is a request *in* that namespace (upstream
    /// RequestInfo), which a namespace-scoped grant can allow.
    pub fn on_namespace(verb: &str, name: &str) -> Self {
        Self::new(verb, "", "namespaces", Some(name)).named(name)
    }

    fn attributes(&self) -> ResourceAttributes {
        let (resource, subresource) = match self.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub.to_string())),
            None => (self.resource.as_str(), None),
        };
        ResourceAttributes {
            verb: Some(self.verb.clone()),
            group: Some(self.group.clone()),
            resource: Some(resource.into()),
            subresource,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            ..ResourceAttributes::default()
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.group.is_empty() {
            write!(f, " (API group {})", self.group)?;
        }
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match &self.namespace {
            Some(ns) if self.resource == "namespaces" => write!(f, " (its own namespace {ns})"),
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Who the cluster says the caller is (`kubectl auth whoami`), for messages.
pub async fn whoami(cluster: &Cluster) -> String {
    let reviews: Api<SelfSubjectReview> = Api::all(cluster.client.clone());
    let asked = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    asked
        .ok()
        .and_then(|r| r.status?.user_info?.username)
        .unwrap_or_else(|| "the current credentials".into())
}

/// Whether the caller may make `permission`'s request; an error when the server could
/// not answer.
pub async fn may(cluster: &Cluster, permission: &Permission) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(permission.attributes()),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|err| cluster.explain(err))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The permissions among `needed` the caller lacks, asked concurrently.
pub async fn missing(
    cluster: &Cluster,
    needed: &BTreeSet<Permission>,
) -> anyhow::Result<Vec<Permission>> {
    let answers: Vec<(Permission, anyhow::Result<bool>)> = futures_util::stream::iter(needed)
        .map(|permission| async move { (permission.clone(), may(cluster, permission).await) })
        .buffered(16)
        .collect()
        .await;
    let mut lacking = Vec::new();
    for (permission, answer) in answers {
        if !answer? {
            lacking.push(permission);
        }
    }
    Ok(lacking)
}

/// Stops with `AccessError::Missing` unless the caller may make every request in `needed`.
pub async fn preflight(cluster: &Cluster, needed: &BTreeSet<Permission>) -> anyhow::Result<()> {
    let lacking = missing(cluster, needed).await?;
    if lacking.is_empty() {
        return Ok(());
    }
    Err(AccessError::Missing {
        identity: whoami(cluster).await,
        missing: lacking,
    }
    .into())
}

/// "X and 2 more (a, b)" for a list of missing permissions.
pub fn summarise(missing: &[Permission]) -> String {
    match missing {
        [] => String::new(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!(
            "{first}, and {} more ({})",
            rest.len(),
            rest.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
