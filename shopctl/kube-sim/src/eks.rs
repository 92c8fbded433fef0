//! EKS access entries, as EKS documents them
//! (<https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html>): an IAM
//! principal is known to the cluster under a user name, with Kubernetes groups (which RBAC
//! bindings can name) and access policies associated at cluster or namespace scope. The
//! policies are not RBAC objects: EKS evaluates them in an authorizer of its own, after
//! RBAC, with permissions "similar to the Kubernetes user-facing cluster roles"
//! (<https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html>).
//! So here too they never appear in the store, and a SelfSubjectRulesReview cannot list
//! them (it says `incomplete`).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::rbac::{self, Attributes, Rule};

/// Where an associated access policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessScope {
    Cluster,
    Namespaces(Vec<String>),
}

impl AccessScope {
    fn covers(&self, namespace: &str) -> bool {
        match self {
            Self::Cluster => true,
            // Cluster-scoped requests (namespace "") are outside every namespace scope.
            Self::Namespaces(names) => names.iter().any(|n| n == namespace),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAssociation {
    /// `arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy`, or just its name.
    pub policy: String,
    pub scope: AccessScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// The Kubernetes user name EKS gives the principal (for an IAM role,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}` by default).
    pub username: String,
    pub kubernetes_groups: Vec<String>,
    pub policies: Vec<PolicyAssociation>,
}

/// The user-facing ClusterRole each access policy is documented to equal.
pub fn equivalent_cluster_role(policy: &str) -> Option<&'static str> {
    let name = policy.rsplit('/').next().unwrap_or(policy);
    match name {
        "AmazonEKSClusterAdminPolicy" => Some("cluster-admin"),
        "AmazonEKSAdminPolicy" => Some("admin"),
        "AmazonEKSEditPolicy" => Some("edit"),
        "AmazonEKSViewPolicy" => Some("view"),
        _ => None,
    }
}

fn policy_rules(cluster_role: &str) -> &'static [Rule] {
    static RULES: OnceLock<HashMap<&'static str, Vec<Rule>>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        ["cluster-admin", "admin", "edit", "view"]
            .into_iter()
            .map(|role| (role, rbac::default_rules(role)))
            .collect()
    });
    rules.get(cluster_role).map_or(&[], Vec::as_slice)
}

impl AccessEntry {
    /// Rejects policies the simulator does not know, so a typo is not silently "no access".
    pub fn validate(&self) -> Result<(), String> {
        for association in &self.policies {
            if equivalent_cluster_role(&association.policy).is_none() {
                return Err(format!(
                    "unknown EKS access policy {:?}: the simulator knows AmazonEKSClusterAdminPolicy, \
                     AmazonEKSAdminPolicy, AmazonEKSEditPolicy and AmazonEKSViewPolicy",
                    association.policy
                ));
            }
        }
        Ok(())
    }

    /// The access-policy authorizer's answer: which policy allows the request, if any.
    pub fn allowed_by(&self, request: &Attributes) -> Option<String> {
        self.policies.iter().find_map(|association| {
            let role = equivalent_cluster_role(&association.policy)?;
            let in_scope = association.scope.covers(&request.namespace);
            (in_scope && policy_rules(role).iter().any(|r| r.allows(request))).then(|| {
                format!(
                    "EKS access policy {} ({role}) at {} scope",
                    association.policy.rsplit('/').next().unwrap_or(""),
                    match &association.scope {
                        AccessScope::Cluster => "cluster".to_string(),
                        AccessScope::Namespaces(n) => format!("namespace {}", n.join(",")),
                    }
                )
            })
        })
    }
}
