//! Authorisation in the simulator against upstream RBAC and EKS access entries, each test
//! citing the documentation it follows. Requests go over real HTTP with bearer tokens;
//! "may" is asked of the server itself (SelfSubjectAccessReview) or by doing.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shopmicro_kube_sim::{AccessEntry, AccessScope, PolicyAssociation};
use support::Client;

const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// `kubectl auth can-i VERB RESOURCE[/SUB] [NAME] -n NS` as the client's token.
async fn can_i(client: &Client, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let (resource, name) = resource.split_once(':').unwrap_or((resource, ""));
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group,
                 "resource": resource, "subresource": subresource, "name": name}},
    });
    let (code, answer) = client.post(REVIEWS, review).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    answer["status"]["allowed"] == true
}

/// A simulator with namespaces `shop` and `other`, asking as a fresh user `alice` in
/// `groups`; the admin client is returned beside it to arrange things.
fn alice(groups: &[&str]) -> Client {
    let admin = Client::start();
    for name in ["shop", "other"] {
        admin.sim.create_as_admin(namespace(name));
    }
    let token = admin.sim.add_user("alice", groups);
    admin.with_token(token)
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name}, "rules": rules})
}

fn binding(kind: &str, name: &str, ns: Option<&str>, role: (&str, &str), subject: Value) -> Value {
    let mut binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": [subject],
    });
    if let Some(ns) = ns {
        binding["metadata"]["namespace"] = json!(ns);
    }
    binding
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// User-facing roles: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles
/// — `view` reads most objects but not Secrets, `edit` also writes them (and reads
/// Secrets) but not Roles or RoleBindings, `admin` also manages Roles and RoleBindings in
/// the namespace; none of them writes the namespace itself or ResourceQuotas.
#[tokio::test]
async fn the_user_facing_roles_grant_what_the_documentation_lists() {
    let client = alice(&[]);
    assert!(
        !can_i(&client, "get", "", "pods", "shop").await,
        "no binding, no access"
    );

    client.sim.bind_in_namespaces("alice", "view", &["shop"]);
    assert!(can_i(&client, "list", "apps", "deployments", "shop").await);
    assert!(can_i(&client, "get", "", "pods/log", "shop").await);
    assert!(
        !can_i(&client, "get", "", "secrets", "shop").await,
        "view cannot read Secrets"
    );
    assert!(!can_i(&client, "create", "apps", "deployments", "shop").await);

    client.sim.bind_in_namespaces("alice", "edit", &["shop"]);
    assert!(can_i(&client, "get", "", "secrets", "shop").await);
    assert!(can_i(&client, "patch", "apps", "deployments", "shop").await);
    assert!(can_i(&client, "patch", "apps", "deployments/scale", "shop").await);
    assert!(can_i(&client, "get", "", "services/proxy", "shop").await);
    assert!(can_i(&client, "create", "batch", "jobs", "shop").await);
    let rbac = "rbac.authorization.k8s.io";
    assert!(
        !can_i(&client, "create", rbac, "rolebindings", "shop").await,
        "edit cannot grant"
    );

    client.sim.bind_in_namespaces("alice", "admin", &["shop"]);
    assert!(can_i(&client, "create", rbac, "rolebindings", "shop").await);
    assert!(!can_i(&client, "update", "", "namespaces:shop", "shop").await);
    assert!(!can_i(&client, "create", "", "resourcequotas", "shop").await);

    // cluster-admin is everything, everywhere, bound to system:masters at bootstrap.
    let admin = Client::start();
    assert!(can_i(&admin, "delete", "storage.k8s.io", "storageclasses", "").await);
    assert!(can_i(&admin, "escalate", rbac, "clusterroles", "").await);
}

/// RoleBinding and ClusterRoleBinding: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#rolebinding-and-clusterrolebinding
/// — "A RoleBinding may reference any Role in the same namespace. Alternatively, a
/// RoleBinding can reference a ClusterRole and bind that ClusterRole to the namespace of
/// the RoleBinding"; a ClusterRoleBinding grants across the whole cluster.
#[tokio::test]
async fn a_role_binding_grants_in_its_namespace_and_a_cluster_role_binding_everywhere() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "edit", &["shop"]);
    assert!(can_i(&client, "create", "", "configmaps", "shop").await);
    assert!(!can_i(&client, "create", "", "configmaps", "other").await);
    let (code, refused) = client
        .post(
            "/api/v1/namespaces/other/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        refused["message"],
        "configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"other\""
    );
    // A ClusterRole bound by a RoleBinding grants nothing cluster-scoped, even when its
    // rules name cluster-scoped resources.
    client.sim.create_as_admin(cluster_role(
        "node-reader",
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]),
    ));
    client.sim.create_as_admin(binding(
        "RoleBinding",
        "nodes-in-shop",
        Some("shop"),
        ("ClusterRole", "node-reader"),
        user("alice"),
    ));
    let (code, refused) = client.get("/api/v1/nodes").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .ends_with("at the cluster scope"),
        "{refused}"
    );
    client.sim.create_as_admin(binding(
        "ClusterRoleBinding",
        "nodes",
        None,
        ("ClusterRole", "node-reader"),
        user("alice"),
    ));
    assert_eq!(client.get("/api/v1/nodes").await.0, StatusCode::OK);
    // A Role in one namespace cannot be bound from another.
    client.sim.create_as_admin(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "secrets", "namespace": "other"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }));
    client.sim.create_as_admin(binding(
        "RoleBinding",
        "elsewhere",
        Some("shop"),
        ("Role", "secrets"),
        user("alice"),
    ));
    assert!(!can_i(&client, "get", "", "secrets", "other").await);
}

/// Referring to subjects: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects
/// — users, groups (every authenticated user is in `system:authenticated`) and service
/// accounts, whose user name is `system:serviceaccount:NAMESPACE:NAME`.
#[tokio::test]
async fn subjects_are_users_groups_and_service_accounts() {
    let client = alice(&["deployers"]);
    client.sim.create_as_admin(binding(
        "RoleBinding",
        "deployers",
        Some("shop"),
        ("ClusterRole", "edit"),
        json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "deployers"}),
    ));
    assert!(
        can_i(&client, "create", "apps", "deployments", "shop").await,
        "through its group"
    );

    client.sim.create_as_admin(binding(
        "RoleBinding",
        "robot",
        Some("shop"),
        ("ClusterRole", "view"),
        json!({"kind": "ServiceAccount", "name": "robot", "namespace": "shop"}),
    ));
    let robot = client.sim.add_user(
        "system:serviceaccount:shop:robot",
        &["system:serviceaccounts"],
    );
    let robot = Client::on(&client.sim, robot);
    assert!(can_i(&robot, "list", "", "pods", "shop").await);
    assert!(!can_i(&robot, "list", "", "pods", "other").await);

    // Every authenticated user may discover the API and review itself.
    assert_eq!(client.get("/apis").await.0, StatusCode::OK);
    let (code, whoami) = client
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(whoami["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        whoami["status"]["userInfo"]["groups"],
        json!(["deployers", "system:authenticated"])
    );
}

/// Referring to resources: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
/// — a subresource is named `resource/subresource`, and `resourceNames` restricts a rule to
/// individual objects (so it cannot allow list, which names none).
#[tokio::test]
async fn rules_match_subresources_and_resource_names_exactly() {
    let client = alice(&[]);
    client.sim.create_as_admin(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "one-config", "namespace": "shop"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app-config"], "verbs": ["get", "update"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": ["batch"], "resources": ["*/status"], "verbs": ["get"]},
        ],
    }));
    client.sim.create_as_admin(binding(
        "RoleBinding",
        "one-config",
        Some("shop"),
        ("Role", "one-config"),
        user("alice"),
    ));
    assert!(can_i(&client, "get", "", "configmaps:app-config", "shop").await);
    assert!(!can_i(&client, "get", "", "configmaps:other", "shop").await);
    assert!(!can_i(&client, "list", "", "configmaps", "shop").await);
    assert!(can_i(&client, "patch", "apps", "deployments", "shop").await);
    assert!(
        !can_i(&client, "patch", "apps", "deployments/scale", "shop").await,
        "a resource's rule does not cover its subresources"
    );
    assert!(can_i(&client, "get", "batch", "jobs/status", "shop").await);
    assert!(!can_i(&client, "get", "batch", "jobs", "shop").await);
}

/// A namespace is a request *in* that namespace (upstream RequestInfo: `/api/v1/namespaces/NAME`
/// carries namespace NAME), so a RoleBinding there can allow reading it, never listing all.
#[tokio::test]
async fn a_role_binding_may_read_its_own_namespace_object() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "view", &["shop"]);
    assert_eq!(
        client.get("/api/v1/namespaces/shop").await.0,
        StatusCode::OK
    );
    assert_eq!(
        client.get("/api/v1/namespaces/other").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client.get("/api/v1/namespaces").await.0,
        StatusCode::FORBIDDEN
    );
}

/// Aggregated ClusterRoles: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#aggregated-clusterroles
/// — "the control plane automatically fills in the rules" of a ClusterRole with an
/// aggregationRule from every ClusterRole its selectors match; the default roles aggregate
/// through the `rbac.authorization.k8s.io/aggregate-to-{admin,edit,view}` labels.
#[tokio::test]
async fn aggregated_cluster_roles_gain_the_rules_of_the_roles_they_select() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "edit", &["shop"]);
    assert!(!can_i(&client, "get", "example.com", "widgets", "shop").await);
    let mut widgets = cluster_role(
        "widget-viewer",
        json!([{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]),
    );
    widgets["metadata"]["labels"] = json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"});
    client.sim.create_as_admin(widgets);
    assert!(
        can_i(&client, "get", "example.com", "widgets", "shop").await,
        "view gained it, and edit through view"
    );
    let admin = Client::on(&client.sim, client.sim.admin_token().to_string());
    let (_, edit) = admin
        .get("/apis/rbac.authorization.k8s.io/v1/clusterroles/edit")
        .await;
    assert!(edit["rules"].to_string().contains("widgets"), "{edit}");
}

/// Privilege escalation prevention: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping
/// — creating a role needs every permission it contains (or the `escalate` verb); creating
/// a binding needs the referenced role's permissions (or the `bind` verb on that role).
#[tokio::test]
async fn roles_and_bindings_cannot_grant_more_than_their_author_holds() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "admin", &["shop"]);
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles";
    let role = |name: &str, resource: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": "shop"},
               "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]})
    };
    assert_eq!(
        client.post(roles, role("pods", "pods")).await.0,
        StatusCode::CREATED
    );
    let (code, refused) = client
        .post(roles, role("quotas", "resourcequotas/status"))
        .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "admin holds view's quota status read: {refused}"
    );
    let (code, refused) = client.post(roles, role("nodes", "nodes")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{refused}"
    );

    let bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings";
    let to = |role: &str| {
        binding(
            "RoleBinding",
            role,
            Some("shop"),
            ("ClusterRole", role),
            user("bob"),
        )
    };
    assert_eq!(
        client.post(bindings, to("view")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        client.post(bindings, to("cluster-admin")).await.0,
        StatusCode::FORBIDDEN
    );
    // `bind` on one ClusterRole lets a user grant it without holding it.
    client.sim.create_as_admin(cluster_role(
        "may-bind-cluster-admin",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]),
    ));
    client.sim.create_as_admin(binding(
        "ClusterRoleBinding",
        "alice-binds",
        None,
        ("ClusterRole", "may-bind-cluster-admin"),
        user("alice"),
    ));
    assert_eq!(
        client.post(bindings, to("cluster-admin")).await.0,
        StatusCode::CREATED
    );
    // Cluster roles need cluster-wide permissions: admin in one namespace is not enough.
    let (code, _) = client
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            cluster_role(
                "pods",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

/// SelfSubjectRulesReview: https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
/// — the rules the caller has in a namespace; `incomplete` when an authorizer (like EKS's
/// access policies) cannot list its rules.
#[tokio::test]
async fn a_rules_review_lists_the_rules_in_a_namespace() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "view", &["shop"]);
    let rules = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
    let ask = |ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
               "spec": {"namespace": ns}})
    };
    let (code, shop) = client.post(rules, ask("shop")).await;
    assert_eq!(code, StatusCode::CREATED);
    let listed = shop["status"]["resourceRules"].to_string();
    assert!(
        listed.contains("deployments") && !listed.contains("\"secrets\""),
        "{listed}"
    );
    assert_eq!(shop["status"]["incomplete"], false);
    let (_, other) = client.post(rules, ask("other")).await;
    assert!(
        !other["status"]["resourceRules"]
            .to_string()
            .contains("deployments")
    );
    assert!(
        other["status"]["resourceRules"]
            .to_string()
            .contains("selfsubjectaccessreviews"),
        "system:basic-user applies everywhere: {other}"
    );

    let eks = Client::on(
        &client.sim,
        client.sim.add_access_entry(edit_entry(&["shop"])).unwrap(),
    );
    let (_, answer) = eks.post(rules, ask("shop")).await;
    assert_eq!(answer["status"]["incomplete"], true, "{answer}");
    assert!(
        !answer["status"]["resourceRules"]
            .to_string()
            .contains("deployments")
    );
}

fn edit_entry(namespaces: &[&str]) -> AccessEntry {
    AccessEntry {
        username: "arn:aws:sts::123456789012:assumed-role/deploy/{{SessionName}}".into(),
        kubernetes_groups: vec!["deployers".into()],
        policies: vec![PolicyAssociation {
            policy: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy".into(),
            scope: AccessScope::Namespaces(namespaces.iter().map(|n| n.to_string()).collect()),
        }],
    }
}

/// EKS access policies: https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
/// — AmazonEKSEditPolicy is the `edit` role's permissions, here at namespace scope: nothing
/// outside its namespaces and nothing cluster-scoped; the entry's Kubernetes groups are
/// subjects RBAC bindings can name
/// (https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html).
#[tokio::test]
async fn an_eks_access_entry_grants_its_policies_at_their_scope_and_groups_to_rbac() {
    let admin = Client::start();
    for name in ["shop", "other"] {
        admin.sim.create_as_admin(namespace(name));
    }
    let client = Client::on(
        &admin.sim,
        admin.sim.add_access_entry(edit_entry(&["shop"])).unwrap(),
    );
    assert!(can_i(&client, "create", "apps", "deployments", "shop").await);
    assert!(can_i(&client, "get", "", "secrets", "shop").await);
    assert!(!can_i(&client, "create", "apps", "deployments", "other").await);
    assert!(!can_i(&client, "create", "", "namespaces", "").await);
    assert!(!can_i(&client, "list", "", "nodes", "").await);
    let (code, refused) = client.get("/apis/storage.k8s.io/v1/storageclasses").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(refused["message"].as_str().unwrap().contains(
        "User \"arn:aws:sts::123456789012:assumed-role/deploy/{{SessionName}}\" cannot list resource \"storageclasses\""
    ));
    // Its group, bound by RBAC, adds to the policy.
    admin.sim.create_as_admin(cluster_role(
        "node-reader",
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]),
    ));
    admin.sim.create_as_admin(binding(
        "ClusterRoleBinding",
        "deployers-read-nodes",
        None,
        ("ClusterRole", "node-reader"),
        json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "deployers"}),
    ));
    assert!(can_i(&client, "list", "", "nodes", "").await);

    let view = AccessEntry {
        policies: vec![PolicyAssociation {
            policy: "AmazonEKSViewPolicy".into(),
            scope: AccessScope::Cluster,
        }],
        ..edit_entry(&[])
    };
    let viewer = Client::on(&admin.sim, admin.sim.add_access_entry(view).unwrap());
    assert!(can_i(&viewer, "list", "apps", "deployments", "other").await);
    assert!(!can_i(&viewer, "get", "", "secrets", "other").await);
    let cluster_admin = AccessEntry {
        policies: vec![PolicyAssociation {
            policy: "AmazonEKSClusterAdminPolicy".into(),
            scope: AccessScope::Cluster,
        }],
        ..edit_entry(&[])
    };
    let root = Client::on(
        &admin.sim,
        admin.sim.add_access_entry(cluster_admin).unwrap(),
    );
    assert!(can_i(&root, "create", "storage.k8s.io", "storageclasses", "").await);
    let unknown = AccessEntry {
        policies: vec![PolicyAssociation {
            policy: "AmazonEKSSomethingPolicy".into(),
            scope: AccessScope::Cluster,
        }],
        ..edit_entry(&[])
    };
    assert!(
        admin
            .sim
            .add_access_entry(unknown)
            .unwrap_err()
            .contains("unknown EKS access policy")
    );
}

/// Every decision is audited, refusals included, with the attributes upstream derives.
#[tokio::test]
async fn the_audit_log_records_each_decision_with_its_attributes() {
    let client = alice(&[]);
    client.sim.bind_in_namespaces("alice", "view", &["shop"]);
    client.sim.take_audit();
    client
        .get("/apis/apps/v1/namespaces/shop/deployments/web/scale")
        .await;
    client.get("/api/v1/namespaces/other/pods").await;
    let audit = client.sim.take_audit();
    let seen: Vec<(String, String, String, bool)> = audit
        .iter()
        .filter(|r| !r.review)
        .map(|r| {
            (
                r.attributes.verb.clone(),
                r.attributes.combined_resource(),
                r.attributes.namespace.clone(),
                r.allowed,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "get".into(),
                "deployments/scale".into(),
                "shop".into(),
                true
            ),
            ("list".into(), "pods".into(), "other".into(), false),
        ]
    );
    // A review records the question asked, marked as a review.
    can_i(&client, "delete", "", "pods", "shop").await;
    let asked = client.sim.take_audit();
    assert!(asked.iter().any(|r| r.review
        && !r.allowed
        && r.attributes.verb == "delete"
        && r.attributes.resource == "pods"));
}
