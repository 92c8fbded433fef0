//! Role-based access control as upstream evaluates it
//! (<https://kubernetes.io/docs/reference/access-authn-authz/rbac/>): Roles and ClusterRoles
//! hold rules (verbs × API groups × resources[/subresources] × resource names, or
//! non-resource URLs); RoleBindings grant a role's rules inside their namespace,
//! ClusterRoleBindings everywhere; subjects are users, groups and service accounts. Only
//! allow rules exist, so a request is allowed when any rule that applies to the caller
//! matches it. The default ClusterRoles (`cluster-admin`, `admin`, `edit`, `view`, the
//! discovery and self-review roles) and their bindings are created at bootstrap, and
//! aggregated ClusterRoles are filled in by `aggregate` as upstream's controller does.

use serde_json::{Value, json};

use crate::resources;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;

/// Who is asking, as the authenticator hands it on: a user name and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Upstream's privileged group: members bypass escalation checks and are bound to
/// `cluster-admin` at bootstrap.
pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// What a request asks to do: upstream's authorizer attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attributes {
    pub verb: String,
    /// Empty for cluster-scoped resources and non-resource requests.
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Set for non-resource requests (`/api`, `/version`): the URL path.
    pub path: Option<String>,
}

impl Attributes {
    pub fn resource(verb: &str, api_group: &str, resource: &str, namespace: &str) -> Self {
        Self {
            verb: verb.into(),
            namespace: namespace.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            subresource: String::new(),
            name: String::new(),
            path: None,
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.into(),
            namespace: String::new(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
            path: Some(path.into()),
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.into();
        self
    }

    /// `deployments/scale`, as rules name a subresource.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Upstream's wording of a refusal (`forbiddenMessage`), without the object prefix.
    pub fn refusal(&self, user: &str) -> String {
        match &self.path {
            Some(path) => format!("User {user:?} cannot {} path {path:?}", self.verb),
            None if self.namespace.is_empty() => format!(
                "User {user:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                self.verb,
                self.combined_resource(),
                self.api_group
            ),
            None => format!(
                "User {user:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                self.verb,
                self.combined_resource(),
                self.api_group,
                self.namespace
            ),
        }
    }
}

/// One PolicyRule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

impl Rule {
    pub fn from_json(rule: &Value) -> Self {
        Self {
            verbs: strings(&rule["verbs"]),
            api_groups: strings(&rule["apiGroups"]),
            resources: strings(&rule["resources"]),
            resource_names: strings(&rule["resourceNames"]),
            non_resource_urls: strings(&rule["nonResourceURLs"]),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut rule = json!({"verbs": self.verbs});
        for (field, values) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !values.is_empty() {
                rule[field] = json!(values);
            }
        }
        rule
    }

    /// Upstream `RuleAllows`: every dimension of the request is matched by the rule.
    pub fn allows(&self, request: &Attributes) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == request.verb);
        if !verb {
            return false;
        }
        match &request.path {
            Some(path) => self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || url == path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| path.starts_with(prefix))
            }),
            None => {
                self.api_groups
                    .iter()
                    .any(|g| g == "*" || *g == request.api_group)
                    && self.matches_resource(request)
                    && (self.resource_names.is_empty()
                        || self.resource_names.contains(&request.name))
            }
        }
    }

    /// Upstream `ResourceMatches`: `*`, the exact `resource/subresource`, or `*/subresource`.
    fn matches_resource(&self, request: &Attributes) -> bool {
        let combined = request.combined_resource();
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!request.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(request.subresource.as_str()))
        })
    }

    /// The single requests this rule grants, for escalation checks: upstream breaks rules
    /// down the same way before asking whether the caller's own rules cover each.
    fn atoms(&self) -> Vec<Attributes> {
        let mut atoms = Vec::new();
        for verb in &self.verbs {
            for url in &self.non_resource_urls {
                atoms.push(Attributes::non_resource(verb, url));
            }
            for group in &self.api_groups {
                for resource in &self.resources {
                    let (resource, subresource) =
                        resource.split_once('/').unwrap_or((resource.as_str(), ""));
                    let atom = Attributes::resource(verb, group, resource, "")
                        .with_subresource(subresource);
                    if self.resource_names.is_empty() {
                        atoms.push(atom);
                    } else {
                        atoms.extend(self.resource_names.iter().map(|n| atom.clone().named(n)));
                    }
                }
            }
        }
        atoms
    }
}

/// Whether `owner`'s rules grant everything `servant`'s do (upstream `Covers`): a
/// wildcard is only covered by the same wildcard.
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in servant {
        // A servant's "*" is requested literally, so only an owner's "*" matches it.
        let ungranted = rule
            .atoms()
            .into_iter()
            .any(|atom| !owner.iter().any(|o| o.allows(&atom)));
        if ungranted {
            missing.push(rule.clone());
        }
    }
    missing
}

/// A subject of a binding applies to the caller (upstream `appliesToUser`).
fn applies_to(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => user.name == name,
        Some("Group") => user.in_group(name),
        Some("ServiceAccount") => {
            let namespace = subject["namespace"]
                .as_str()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(binding_namespace);
            user.name == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

fn rules_of(role: &Value) -> Vec<Rule> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Rule::from_json)
        .collect()
}

fn all(store: &Store, kind: &str, namespace: Option<&str>) -> Vec<Value> {
    store
        .list(
            resources::lookup("rbac.authorization.k8s.io", kind),
            namespace,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .0
}

/// The rules a binding's roleRef points at; None when the role does not exist.
pub fn referenced_rules(store: &Store, role_ref: &Value, namespace: &str) -> Option<Vec<Rule>> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let role = match role_ref["kind"].as_str() {
        Some("ClusterRole") => store.get(
            resources::lookup("rbac.authorization.k8s.io", "ClusterRole"),
            "",
            name,
        ),
        Some("Role") => store.get(
            resources::lookup("rbac.authorization.k8s.io", "Role"),
            namespace,
            name,
        ),
        _ => return None,
    };
    role.ok().map(|role| rules_of(&role))
}

/// One rule with where it came from, for review answers and reasons.
pub struct Grant {
    pub rule: Rule,
    pub source: String,
}

/// A binding with its role's rules resolved.
struct Compiled {
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    subjects: Vec<Value>,
    rules: Vec<Rule>,
    source: String,
}

/// Every binding of the store with its role's rules: what RBAC decides from, built once
/// per change to an RBAC object (`Cache`) rather than read from the store per request.
pub struct Policy {
    revision: u64,
    bindings: Vec<Compiled>,
}

/// The newest change to any RBAC object.
fn rbac_revision(store: &Store) -> u64 {
    ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]
        .iter()
        .map(|kind| store.changed_at(resources::lookup("rbac.authorization.k8s.io", kind)))
        .max()
        .unwrap_or(0)
}

impl Policy {
    pub fn compile(store: &Store) -> Self {
        let revision = rbac_revision(store);
        let mut bindings = Vec::new();
        for binding in all(store, "ClusterRoleBinding", None)
            .into_iter()
            .chain(all(store, "RoleBinding", None))
        {
            let namespace = binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let Some(rules) = referenced_rules(store, &binding["roleRef"], &namespace) else {
                continue;
            };
            let source = format!(
                "{} {:?} of {} {:?}",
                binding["kind"].as_str().unwrap_or(""),
                binding["metadata"]["name"].as_str().unwrap_or(""),
                binding["roleRef"]["kind"].as_str().unwrap_or(""),
                binding["roleRef"]["name"].as_str().unwrap_or("")
            );
            bindings.push(Compiled {
                namespace,
                subjects: binding["subjects"].as_array().cloned().unwrap_or_default(),
                rules,
                source,
            });
        }
        Self { revision, bindings }
    }

    /// Every rule granted to `user` in `namespace` (cluster-wide ones only when empty):
    /// what ClusterRoleBindings grant, plus what RoleBindings in the namespace grant.
    pub fn grants<'p>(
        &'p self,
        user: &'p UserInfo,
        namespace: &'p str,
    ) -> impl Iterator<Item = (&'p Rule, &'p str)> + 'p {
        self.bindings
            .iter()
            .filter(move |b| {
                b.namespace.is_empty() || (!namespace.is_empty() && b.namespace == namespace)
            })
            .filter(move |b| b.subjects.iter().any(|s| applies_to(s, user, &b.namespace)))
            .flat_map(|b| b.rules.iter().map(move |rule| (rule, b.source.as_str())))
    }

    /// RBAC's answer: the binding that allows the request, if any.
    pub fn allowed_by(&self, user: &UserInfo, request: &Attributes) -> Option<String> {
        self.grants(user, &request.namespace)
            .find(|(rule, _)| rule.allows(request))
            .map(|(_, source)| format!("RBAC: allowed by {source} to {:?}", user.name))
    }
}

/// The compiled policy, rebuilt only when an RBAC object changed.
#[derive(Default)]
pub struct Cache(std::sync::Mutex<Option<std::sync::Arc<Policy>>>);

impl Cache {
    pub fn current(&self, store: &Store) -> std::sync::Arc<Policy> {
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let revision = rbac_revision(store);
        match cached.as_ref() {
            Some(policy) if policy.revision == revision => policy.clone(),
            _ => {
                let policy = std::sync::Arc::new(Policy::compile(store));
                *cached = Some(policy.clone());
                policy
            }
        }
    }
}

/// Every rule granted to `user` in `namespace`, read from the store now.
pub fn grants(store: &Store, user: &UserInfo, namespace: &str) -> Vec<Grant> {
    Policy::compile(store)
        .grants(user, namespace)
        .map(|(rule, source)| Grant {
            rule: rule.clone(),
            source: source.to_string(),
        })
        .collect()
}

/// Upstream's aggregation controller: a ClusterRole with an `aggregationRule` holds the
/// rules of every ClusterRole its selectors match. Repeats until nothing changes, so
/// chains (view → edit → admin) settle in one call. Returns the roles it rewrote.
pub fn aggregate(store: &Store) -> Vec<String> {
    let rt = resources::lookup("rbac.authorization.k8s.io", "ClusterRole");
    let mut rewritten = Vec::new();
    for _ in 0..8 {
        let roles = all(store, "ClusterRole", None);
        let mut changed = false;
        for role in roles.iter().filter(|r| r["aggregationRule"].is_object()) {
            let name = role["metadata"]["name"].as_str().unwrap_or("");
            let mut rules: Vec<Value> = Vec::new();
            for selector in role["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Ok(selector) = LabelSelector::from_object(selector) else {
                    continue;
                };
                for source in roles.iter().filter(|r| {
                    r["metadata"]["name"] != name && selector.matches(r["metadata"].get("labels"))
                }) {
                    for rule in source["rules"].as_array().into_iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            if role["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]) != rules.as_slice() {
                let options = crate::store::WriteOptions {
                    field_manager: "clusterrole-aggregation-controller".into(),
                    ..Default::default()
                };
                let patch = json!({"rules": rules});
                if store
                    .patch(
                        rt,
                        "",
                        name,
                        crate::store::PatchKind::Merge,
                        &patch,
                        crate::store::Part::Main,
                        &options,
                    )
                    .is_ok()
                {
                    changed = true;
                    rewritten.push(name.to_string());
                }
            }
        }
        if !changed {
            break;
        }
    }
    rewritten
}

/// The default roles and bindings a new cluster has (upstream's bootstrap policy, the
/// user-facing roles documented at
/// <https://kubernetes.io/docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings>),
/// reduced to the resources the simulator serves plus those the documentation names.
pub fn bootstrap_objects() -> Vec<Value> {
    let labels = |extra: Value| {
        let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
        if let Some(map) = extra.as_object() {
            for (k, v) in map {
                labels[k] = v.clone();
            }
        }
        labels
    };
    let role = |name: &str, extra: Value, rules: Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels(extra),
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": rules,
        })
    };
    let aggregated = |name: &str, extra: Value, selector: &str| {
        let mut role = role(name, extra, json!([]));
        role["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {selector: "true"}}]});
        role
    };
    let binding = |name: &str, role: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}))
            .collect();
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels(json!({})),
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        })
    };
    let read = ["get", "list", "watch"];
    let write = ["create", "delete", "deletecollection", "patch", "update"];
    let all_verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    vec![
        role(
            "cluster-admin",
            json!({}),
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        aggregated(
            "admin",
            json!({}),
            "rbac.authorization.k8s.io/aggregate-to-admin",
        ),
        aggregated(
            "edit",
            json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
            "rbac.authorization.k8s.io/aggregate-to-edit",
        ),
        aggregated(
            "view",
            json!({"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            "rbac.authorization.k8s.io/aggregate-to-view",
        ),
        role(
            "system:aggregate-to-admin",
            json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"], "verbs": all_verbs},
            ]),
        ),
        role(
            "system:aggregate-to-edit",
            json!({"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            json!([
                {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], "verbs": read},
                {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
                {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], "verbs": write},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], "verbs": write},
                {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
                {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": write},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": write},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": write},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": write},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": write},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": all_verbs},
            ]),
        ),
        role(
            "system:aggregate-to-view",
            json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"], "verbs": read},
                {"apiGroups": [""], "resources": ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], "verbs": read},
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], "verbs": read},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], "verbs": read},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], "verbs": read},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": read},
            ]),
        ),
        role(
            "system:discovery",
            json!({}),
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        role(
            "system:public-info-viewer",
            json!({}),
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        role(
            "system:basic-user",
            json!({}),
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
        ),
        binding("cluster-admin", "cluster-admin", &[MASTERS]),
        binding("system:discovery", "system:discovery", &[AUTHENTICATED]),
        binding("system:basic-user", "system:basic-user", &[AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
    ]
}

/// The rules of a default ClusterRole as bootstrap leaves them (aggregation applied):
/// what EKS access policies are documented to equal, whatever happens to the live objects.
pub fn default_rules(name: &str) -> Vec<Rule> {
    let objects = bootstrap_objects();
    let store = Store::new();
    for object in &objects {
        let rt = resources::by_kind(
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
        )
        .expect("bootstrap objects are served kinds");
        store
            .create(
                rt,
                "",
                object.clone(),
                &crate::store::WriteOptions::default(),
            )
            .expect("bootstrap objects are valid");
    }
    aggregate(&store);
    store
        .get(
            resources::lookup("rbac.authorization.k8s.io", "ClusterRole"),
            "",
            name,
        )
        .map(|role| rules_of(&role))
        .unwrap_or_default()
}
#[cfg(test)]
mod tests {
    #[test]
    fn aggregation_settles() {
        let store = crate::store::Store::new();
        for object in super::bootstrap_objects() {
            let rt = crate::resources::by_kind(
                object["apiVersion"].as_str().unwrap(),
                object["kind"].as_str().unwrap(),
            )
            .unwrap();
            store.create(rt, "", object, &Default::default()).unwrap();
        }
        let first = super::aggregate(&store);
        let second = super::aggregate(&store);
        assert!(second.is_empty(), "{first:?} then {second:?}");
    }
}
