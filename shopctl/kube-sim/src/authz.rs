//! Authentication and authorisation: bearer tokens name a user with groups (and, for EKS
//! identities, an access entry); every request is checked by RBAC and then by the EKS
//! access-policy authorizer, as on EKS (<https://kubernetes.io/docs/reference/access-authn-authz/authorization/#authorization-modules>:
//! a request is allowed when any module allows it). Every decision is written to an
//! audit log, so tests can see exactly which permissions a command used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::eks::AccessEntry;
use crate::error::ApiError;
use crate::rbac::{self, Attributes, Rule, UserInfo};
use crate::store::Store;

/// What a bearer token stands for.
#[derive(Debug, Clone)]
pub struct Credential {
    pub user: UserInfo,
    /// Recognised but no longer valid: every request is a 401.
    pub expired: bool,
    pub access_entry: Option<AccessEntry>,
}

/// One authorisation decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub user: String,
    pub attributes: Attributes,
    pub allowed: bool,
    /// A SelfSubjectAccessReview's question rather than a request: the caller asked
    /// whether it may, and did nothing.
    pub review: bool,
}

#[derive(Clone, Default)]
pub struct Authority {
    tokens: Arc<Mutex<HashMap<String, Credential>>>,
    audit: Arc<Mutex<Vec<AuditRecord>>>,
    policy: Arc<rbac::Cache>,
    /// Serve requests without credentials as `system:anonymous` (upstream
    /// `--anonymous-auth`); otherwise they get 401.
    pub anonymous: bool,
}

pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authority {
    pub fn new(anonymous: bool) -> Self {
        Self {
            anonymous,
            ..Self::default()
        }
    }

    pub fn insert(&self, token: String, credential: Credential) {
        lock(&self.tokens).insert(token, credential);
    }

    /// The caller of a request, from its `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Credential, ApiError> {
        let Some(header) = header else {
            return if self.anonymous {
                Ok(Credential {
                    user: UserInfo {
                        name: "system:anonymous".into(),
                        groups: vec![rbac::UNAUTHENTICATED.into()],
                    },
                    expired: false,
                    access_entry: None,
                })
            } else {
                Err(ApiError::unauthorized())
            };
        };
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(ApiError::unauthorized)?;
        match lock(&self.tokens).get(token) {
            Some(credential) if !credential.expired => Ok(credential.clone()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// The authorizer chain, without recording anything (reviews and escalation checks).
    pub fn decide(&self, store: &Store, caller: &Credential, request: &Attributes) -> Decision {
        if let Some(reason) = self.policy.current(store).allowed_by(&caller.user, request) {
            return Decision {
                allowed: true,
                reason,
            };
        }
        if let Some(reason) = caller
            .access_entry
            .as_ref()
            .and_then(|entry| entry.allowed_by(request))
        {
            return Decision {
                allowed: true,
                reason,
            };
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }

    /// Authorises a request, recording the decision; a refusal is upstream's 403.
    pub fn authorize(
        &self,
        store: &Store,
        caller: &Credential,
        request: &Attributes,
    ) -> Result<(), ApiError> {
        let decision = self.decide(store, caller, request);
        self.record(caller, request, decision.allowed, false);
        if decision.allowed {
            Ok(())
        } else {
            Err(ApiError::refused(request, &caller.user.name))
        }
    }

    fn record(&self, caller: &Credential, request: &Attributes, allowed: bool, review: bool) {
        lock(&self.audit).push(AuditRecord {
            user: caller.user.name.clone(),
            attributes: request.clone(),
            allowed,
            review,
        });
    }

    /// Every decision since the last call, oldest first.
    pub fn take_audit(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *lock(&self.audit))
    }

    /// Escalation prevention (<https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping>):
    /// writing a role needs the `escalate` verb or every permission it grants, at its
    /// scope; writing a binding needs `bind` on the role it references or, again, every
    /// permission of that role. `system:masters` is exempt.
    pub fn check_escalation(
        &self,
        store: &Store,
        caller: &Credential,
        object: &Value,
    ) -> Result<(), ApiError> {
        if caller.user.in_group(rbac::MASTERS) {
            return Ok(());
        }
        let kind = object["kind"].as_str().unwrap_or("");
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
        let (resource, verb, granted, target_name) = match kind {
            "Role" | "ClusterRole" => {
                let rules: Vec<Rule> = object["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Rule::from_json)
                    .collect();
                if kind == "ClusterRole" && object["aggregationRule"].is_object() {
                    let escalate = Attributes::resource("escalate", RBAC_GROUP, "clusterroles", "")
                        .named(name);
                    if self.decide(store, caller, &escalate).allowed {
                        return Ok(());
                    }
                    return Err(escalation(
                        kind,
                        name,
                        &caller.user,
                        "must have cluster-admin privileges to use the aggregationRule".to_string(),
                    ));
                }
                (
                    if kind == "Role" {
                        "roles"
                    } else {
                        "clusterroles"
                    },
                    "escalate",
                    rules,
                    name.to_string(),
                )
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role_ref = &object["roleRef"];
                let role_kind = role_ref["kind"].as_str().unwrap_or("");
                let role_name = role_ref["name"].as_str().unwrap_or("");
                let resource = if role_kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                // Upstream asks about `bind` first: it may bind a role that does not exist yet.
                let bind =
                    Attributes::resource("bind", RBAC_GROUP, resource, namespace).named(role_name);
                if self.decide(store, caller, &bind).allowed {
                    return Ok(());
                }
                let Some(rules) = rbac::referenced_rules(store, role_ref, namespace) else {
                    return Err(escalation(
                        kind,
                        name,
                        &caller.user,
                        format!("{role_kind} {role_name:?} not found"),
                    ));
                };
                (resource, "bind", rules, role_name.to_string())
            }
            _ => return Ok(()),
        };
        let special =
            Attributes::resource(verb, RBAC_GROUP, resource, namespace).named(&target_name);
        if self.decide(store, caller, &special).allowed {
            return Ok(());
        }
        let owned: Vec<Rule> = rbac::grants(store, &caller.user, namespace)
            .into_iter()
            .map(|g| g.rule)
            .collect();
        let missing = rbac::uncovered(&owned, &granted);
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = missing.iter().map(|r| r.to_json().to_string()).collect();
        Err(escalation(
            kind,
            name,
            &caller.user,
            format!(
                "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
                caller.user.name,
                caller.user.groups,
                missing.join("\n")
            ),
        ))
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn escalation(kind: &str, name: &str, _user: &UserInfo, why: String) -> ApiError {
    let plural = match kind {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        "RoleBinding" => "rolebindings",
        _ => "clusterrolebindings",
    };
    ApiError::forbidden_message(format!(
        "{plural}.{RBAC_GROUP} {name:?} is forbidden: {why}"
    ))
}

/// SelfSubjectAccessReview: may the caller do this? Answered by the same authorizers as
/// a real request (<https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access>).
pub fn access_review(
    authority: &Authority,
    store: &Store,
    caller: &Credential,
    mut review: Value,
) -> Result<Value, ApiError> {
    let spec = &review["spec"];
    let request = if spec["resourceAttributes"].is_object() {
        let a = &spec["resourceAttributes"];
        let text = |field: &str| a[field].as_str().unwrap_or("").to_string();
        Attributes {
            verb: text("verb"),
            namespace: text("namespace"),
            api_group: text("group"),
            resource: text("resource"),
            subresource: text("subresource"),
            name: text("name"),
            path: None,
        }
    } else if spec["nonResourceAttributes"].is_object() {
        let a = &spec["nonResourceAttributes"];
        Attributes::non_resource(
            a["verb"].as_str().unwrap_or(""),
            a["path"].as_str().unwrap_or(""),
        )
    } else {
        return Err(ApiError::invalid_review(
            "spec: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let decision = authority.decide(store, caller, &request);
    authority.record(caller, &request, decision.allowed, true);
    review["status"] = if decision.allowed {
        json!({"allowed": true, "reason": decision.reason})
    } else {
        json!({"allowed": false})
    };
    Ok(review)
}

/// SelfSubjectRulesReview: the rules RBAC grants the caller in a namespace. Upstream marks
/// the answer `incomplete` when an authorizer cannot enumerate its rules, as EKS's
/// access-policy authorizer cannot: then only the RBAC part is listed.
pub fn rules_review(
    store: &Store,
    caller: &Credential,
    mut review: Value,
) -> Result<Value, ApiError> {
    let namespace = review["spec"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if namespace.is_empty() {
        return Err(ApiError::invalid_review("spec.namespace: Required value"));
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for grant in rbac::grants(store, &caller.user, &namespace) {
        let rule = grant.rule;
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
        if !rule.resources.is_empty() {
            let mut entry = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                entry["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(entry);
        }
    }
    let incomplete = caller
        .access_entry
        .as_ref()
        .is_some_and(|e| !e.policies.is_empty());
    review["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": incomplete,
    });
    Ok(review)
}

/// SelfSubjectReview (`kubectl auth whoami`): who the server thinks the caller is.
pub fn subject_review(caller: &Credential, mut review: Value) -> Value {
    review["status"] =
        json!({"userInfo": {"username": caller.user.name, "groups": caller.user.groups}});
    review
}
