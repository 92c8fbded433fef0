//! Every cluster identity can do exactly its job. The identities are built from the EKS
//! access entries the Terraform declares (read with an HCL parser, never re-typed): the
//! cluster's creator is its administrator and applies the cluster base; the GitHub deploy
//! role has the EKS edit policy in the platform's namespaces and a Kubernetes group the
//! base grants its cluster-wide reads. The deployer runs everything the workflows and the
//! runbooks ask of it; with any one permission it used taken away, the command that needed
//! it stops, naming the identity, the verb and the resource, having changed nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use shopmicro_common::testing::TestDatabase;
use shopmicro_kube_sim::rbac::Attributes;
use shopmicro_kube_sim::resources::RESOURCES;
use shopmicro_kube_sim::selectors::{FieldSelector, LabelSelector};
use shopmicro_kube_sim::{AccessEntry, AccessScope, PolicyAssociation};

use crate::harness::*;
use crate::support::terraform::{self, Instance};

/// The cluster identities an environment's Terraform creates.
pub struct ClusterIdentities {
    pub administrator: AccessEntry,
    pub deployer: AccessEntry,
    pub planner: AccessEntry,
}

/// EKS names an IAM role's principal as the role assumed with a session.
fn username(principal_arn: &str, session: &str) -> String {
    let (account, role) = principal_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
        .unwrap_or_else(|| panic!("not a role ARN: {principal_arn}"));
    format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The access entries of `stack`, with the policies associated with each principal.
fn access_entries(stack: &Instance) -> Vec<AccessEntry> {
    let associations = stack.all("aws_eks_access_policy_association");
    stack
        .all("aws_eks_access_entry")
        .into_iter()
        .map(|(_, entry)| {
            let principal = entry["principal_arn"].as_str().unwrap();
            let policies = associations
                .iter()
                .filter(|(_, a)| a["principal_arn"] == principal)
                .map(|(_, a)| {
                    let scope = &a["access_scope"][0];
                    PolicyAssociation {
                        policy: a["policy_arn"].as_str().unwrap().to_string(),
                        scope: match scope["type"].as_str() {
                            Some("cluster") => AccessScope::Cluster,
                            _ => AccessScope::Namespaces(strings(&scope["namespaces"])),
                        },
                    }
                })
                .collect();
            AccessEntry {
                username: username(principal, "github-4711"),
                kubernetes_groups: strings(&entry["kubernetes_groups"]),
                policies,
            }
        })
        .collect()
}

pub fn cluster_identities(env: &str) -> ClusterIdentities {
    let stack = terraform::environment_stack(&terraform::environment(env));
    let (_, cluster) = stack
        .all("aws_eks_cluster")
        .pop()
        .expect("the stack creates a cluster");
    // EKS documents that the creator, with this flag, gets AmazonEKSClusterAdminPolicy at
    // cluster scope: whoever runs `shopctl up` (terraform apply) administers the cluster.
    assert_eq!(
        cluster["access_config"][0]["bootstrap_cluster_creator_admin_permissions"], true,
        "the cluster's creator must be its administrator, to apply the cluster base"
    );
    let administrator = AccessEntry {
        username: "arn:aws:sts::123456789012:assumed-role/platform-admin/operator".into(),
        kubernetes_groups: Vec::new(),
        policies: vec![PolicyAssociation {
            policy: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy".into(),
            scope: AccessScope::Cluster,
        }],
    };
    let environment = terraform::environment(env);
    let entries = access_entries(&stack);
    assert_eq!(entries.len(), 2, "deploy and plan, besides the creator");
    let in_group = |group: &str| {
        entries
            .iter()
            .find(|e| e.kubernetes_groups == [group])
            .unwrap_or_else(|| panic!("{env}: no access entry in group {group}"))
            .clone()
    };
    ClusterIdentities {
        administrator,
        deployer: in_group(&environment.cluster.deployer_group),
        planner: in_group(&environment.cluster.planner_group),
    }
}

#[test]
fn the_deployer_may_edit_exactly_the_namespaces_a_release_uses_in_every_cloud_environment() {
    for env in ["dev", "prod"] {
        let identities = cluster_identities(env);
        let deployer = &identities.deployer;
        let environment = terraform::environment(env);
        let manifests = terraform::rendered(&environment);
        let [edit] = deployer.policies.as_slice() else {
            panic!("{env}: one access policy: {:?}", deployer.policies);
        };
        assert_eq!(
            edit.policy, "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
            "{env}"
        );
        let AccessScope::Namespaces(namespaces) = &edit.scope else {
            panic!("{env}: the deployer's policy must be namespace-scoped");
        };
        assert_eq!(
            namespaces.iter().cloned().collect::<BTreeSet<_>>(),
            shopctl::cluster::base::namespaces(&shopctl::cluster::base::split(&manifests).1),
            "{env}: edit, in the rendered release's namespaces and no others"
        );
        assert_eq!(
            deployer.kubernetes_groups,
            vec![environment.cluster.deployer_group.clone()],
            "{env}: the group the cluster base binds"
        );
        let bound: Vec<&Value> = manifests
            .iter()
            .filter(|m| m["kind"] == "ClusterRoleBinding")
            .flat_map(|m| m["subjects"].as_array().unwrap())
            .filter(|s| s["kind"] == "Group")
            .collect();
        assert_eq!(
            bound,
            vec![
                &json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": environment.cluster.deployer_group})
            ],
            "{env}: the base binds the deployer's group"
        );
    }
}

/// The plan identity refreshes the load balancer controller's Helm release (its Secrets, in
/// the controller's namespace) and can do nothing else: no access policy, only the group
/// the cluster base binds to a namespaced read.
#[tokio::test(flavor = "multi_thread")]
async fn the_planner_reads_the_controller_release_and_nothing_else() {
    let cluster = TestCluster::start();
    let identities = cluster_identities("dev");
    assert!(
        identities.planner.policies.is_empty(),
        "{:?}",
        identities.planner.policies
    );
    let administrator = cluster
        .sim
        .add_access_entry(identities.administrator.clone())
        .unwrap();
    let planner = cluster
        .sim
        .add_access_entry(identities.planner.clone())
        .unwrap();
    cluster.switch_to(&administrator);
    cluster.json(&["apply", "--env", "dev", "--base"], 0);

    let controller = terraform::environment("dev").ingress.controller_namespace;
    let http = reqwest::Client::new();
    let status = |method: reqwest::Method, path: String| {
        let request = http
            .request(method.clone(), format!("{}{path}", cluster.sim.url()))
            .bearer_auth(&planner)
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}));
        async move {
            (
                method,
                path,
                request.send().await.unwrap().status().as_u16(),
            )
        }
    };
    // What the Helm provider's refresh does: the release's Secrets, by label.
    let release = format!(
        "/api/v1/namespaces/{controller}/secrets?labelSelector=owner%3Dhelm%2Cname%3Daws-load-balancer-controller"
    );
    let allowed = status(reqwest::Method::GET, release).await;
    assert_eq!(allowed.2, 200, "{allowed:?}");
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/namespaces/{NS}/secrets"),
        ),
        (reqwest::Method::GET, "/api/v1/secrets".to_string()),
        (reqwest::Method::GET, "/api/v1/nodes".to_string()),
        (
            reqwest::Method::POST,
            format!("/api/v1/namespaces/{controller}/configmaps"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/namespaces/{controller}/secrets/sh.helm.release.v1.x.v1"),
        ),
    ] {
        let refused = status(method, path).await;
        assert_eq!(refused.2, 403, "{refused:?}");
    }
}

/// The access entry waits for the cluster: its cluster name is the cluster module's
/// output, so Terraform orders the two (a name rebuilt from variables would race).
#[test]
fn resources_that_need_the_cluster_take_its_name_from_the_cluster_module() {
    let platform = terraform::Module::load("terraform/modules/platform");
    let iam = platform
        .blocks("module")
        .find(|b| b.labels()[0].as_str() == "iam")
        .unwrap();
    for argument in ["cluster_name", "cluster_arn"] {
        let expression = iam
            .body()
            .attributes()
            .find(|a| a.key() == argument)
            .unwrap_or_else(|| panic!("module.iam has no {argument}"))
            .expr()
            .to_string();
        assert!(
            expression.starts_with("module.eks."),
            "module.iam.{argument} = {expression}: use the eks module's output"
        );
    }
    let module = terraform::Module::load("terraform/modules/iam");
    let entry = module
        .blocks("resource")
        .find(|b| b.labels()[0].as_str() == "aws_eks_access_entry")
        .unwrap();
    let cluster_name = entry
        .body()
        .attributes()
        .find(|a| a.key() == "cluster_name")
        .unwrap()
        .expr()
        .to_string();
    assert_eq!(cluster_name, "var.cluster_name");
}

/// One command the deployer runs, with what it may need to do work each time it runs.
#[derive(Clone)]
struct Step {
    args: Vec<String>,
    /// validate reports a missing permission as a failed check (exit 1), not an error.
    reports: bool,
}

fn step(args: &[&str]) -> Step {
    Step {
        args: args.iter().map(|a| a.to_string()).collect(),
        reports: args[0] == "validate",
    }
}

/// A request as RBAC grants it: verb, group, resource[/sub], namespace ("" cluster-wide).
type Grant = (String, String, String, String);

fn grant_of(attributes: &Attributes) -> Grant {
    (
        attributes.verb.clone(),
        attributes.api_group.clone(),
        attributes.combined_resource(),
        attributes.namespace.clone(),
    )
}

/// What `user` did and asked it may do (both allowed) since the last call: the grants it
/// needs, the requests it made and the questions it asked. Creating reviews, whoami and
/// discovery are every authenticated user's by default and are left out.
fn used(cluster: &TestCluster, user: &str) -> (BTreeSet<Grant>, Vec<Attributes>, Vec<Attributes>) {
    let audit = cluster.sim.take_audit();
    let mine = audit.iter().filter(|r| r.user == user);
    let requests: Vec<&_> = mine
        .clone()
        .filter(|r| !r.review && r.allowed && r.attributes.path.is_none())
        .filter(|r| {
            !matches!(
                r.attributes.resource.as_str(),
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews" | "selfsubjectreviews"
            )
        })
        .collect();
    let reviewed: Vec<Attributes> = mine
        .filter(|r| r.review && r.allowed)
        .map(|r| r.attributes.clone())
        .collect();
    (
        requests
            .iter()
            .map(|r| grant_of(&r.attributes))
            .chain(reviewed.iter().map(grant_of))
            .collect(),
        requests.iter().map(|r| r.attributes.clone()).collect(),
        reviewed,
    )
}

/// What shopctl writes, as people compare it: spec, data, rules and bindings, labels and
/// annotations; never the status or bookkeeping controllers change on their own.
fn written(cluster: &TestCluster) -> BTreeMap<String, String> {
    let mut objects = BTreeMap::new();
    for rt in RESOURCES
        .iter()
        .filter(|r| !matches!(r.kind, "Pod" | "Event" | "ReplicaSet" | "Node"))
    {
        let (items, _) = cluster.sim.store().list(
            rt,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        for mut item in items {
            let id = format!(
                "{}/{}/{}",
                rt.kind,
                item["metadata"]["namespace"].as_str().unwrap_or(""),
                item["metadata"]["name"].as_str().unwrap_or("")
            );
            if let Some(map) = item.as_object_mut() {
                map.remove("status");
            }
            if let Some(metadata) = item["metadata"].as_object_mut() {
                for field in ["resourceVersion", "managedFields", "generation"] {
                    metadata.remove(field);
                }
            }
            // The controllers' own writes to a workload: its revision and autoscaled size.
            if let Some(annotations) = item["metadata"]["annotations"].as_object_mut() {
                annotations.remove("deployment.kubernetes.io/revision");
            }
            if let Some(spec) = item["spec"].as_object_mut() {
                spec.remove("replicas");
            }
            objects.insert(id, item.to_string());
        }
    }
    objects
}

/// RBAC granting exactly `grants` to `user`: a Role per namespace, a ClusterRole for the
/// rest.
fn grant_exactly(cluster: &TestCluster, user: &str, grants: &BTreeSet<Grant>) {
    let mut by_namespace: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (verb, group, resource, namespace) in grants {
        by_namespace
            .entry(namespace.as_str())
            .or_default()
            .push(json!({"apiGroups": [group], "resources": [resource], "verbs": [verb]}));
    }
    let subject = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]);
    for (namespace, rules) in by_namespace {
        let name = format!("exactly-{}", user.replace([':', '/'], "-"));
        let (role, binding) = if namespace.is_empty() {
            ("ClusterRole", "ClusterRoleBinding")
        } else {
            ("Role", "RoleBinding")
        };
        let mut metadata = json!({"name": name});
        if !namespace.is_empty() {
            metadata["namespace"] = json!(namespace);
        }
        cluster.sim.create_as_admin(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": role,
            "metadata": metadata, "rules": rules,
        }));
        cluster.sim.create_as_admin(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": binding,
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name},
            "subjects": subject,
        }));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_identity_does_its_whole_job_and_nothing_less_is_enough() {
    let moto = moto().await;
    let database = TestDatabase::create().await;
    let processes = Processes::start().await;
    let cluster = TestCluster::start();
    processes.serve(&cluster);
    cloud_fixtures(&moto, &cluster).await;
    let identities = cluster_identities("dev");
    let deployer = identities.deployer.username.clone();
    let administrator = cluster
        .sim
        .add_access_entry(identities.administrator.clone())
        .unwrap();
    let deploy_token = cluster
        .sim
        .add_access_entry(identities.deployer.clone())
        .unwrap();

    // Before the administrator has applied the base, the deployer may not create it.
    cluster.switch_to(&deploy_token);
    let refused = cluster.shopctl(&["apply", "--env", "dev"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for needle in [
        deployer.as_str(),
        "does not exist",
        "get storageclasses (API group storage.k8s.io)",
        "apply --env dev --base",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    cluster.switch_to(&administrator);
    let base = cluster.json(&["apply", "--env", "dev", "--base"], 0);
    assert!(
        !base["base_changes"].as_array().unwrap().is_empty(),
        "{base:#}"
    );
    cluster.switch_to(&deploy_token);
    cluster.sim.take_audit();

    // Everything the workflows and runbooks run as the deployer.
    let mut steps: Vec<(Step, BTreeSet<Grant>)> = Vec::new();
    // What a step used, checking it asked before it changed anything.
    let record = |steps: &mut Vec<(Step, BTreeSet<Grant>)>, step: Step| {
        let args = &step.args;
        let (grants, requests, reviewed) = used(&cluster, &deployer);
        // Asked before acting: every change was reviewed first.
        for request in requests
            .iter()
            .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        {
            assert!(
                reviewed.iter().any(|q| q.verb == request.verb
                    && q.api_group == request.api_group
                    && q.combined_resource() == request.combined_resource()
                    && q.namespace == request.namespace
                    && (q.name.is_empty() || q.name == request.name)),
                "{args:?} made {request:?} without asking first"
            );
        }
        steps.push((step, grants));
    };
    let run = |steps: &mut Vec<(Step, BTreeSet<Grant>)>, step: Step, expect: i32| {
        let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
        let outcome = cluster.shopctl_aws(&moto, &args);
        assert_eq!(
            outcome.code, expect,
            "{args:?}\n{}\n{}",
            outcome.stdout, outcome.stderr
        );
        record(steps, step);
    };
    let apply = |tag: &str| {
        step(&[
            "apply",
            "--env",
            "dev",
            "--wait",
            "--timeout",
            "30s",
            "--history-max",
            "2",
            "--set",
            &format!("services.frontend.tag={tag}"),
        ])
    };
    run(&mut steps, apply("0.1.0"), 0);
    run(&mut steps, apply("0.1.1"), 0);
    run(&mut steps, step(&["status", "--env", "dev"]), 0);
    run(&mut steps, step(&["history", "--env", "dev"]), 0);
    run(
        &mut steps,
        step(&[
            "rollback",
            "--env",
            "dev",
            "--service",
            "frontend",
            "--timeout",
            "30s",
        ]),
        0,
    );
    run(
        &mut steps,
        step(&[
            "rollback",
            "--env",
            "dev",
            "--timeout",
            "30s",
            "--history-max",
            "2",
        ]),
        0,
    );
    run(&mut steps, step(&["backup", "--env", "dev"]), 0);
    let (backup, id) = while_a_job_runs(
        &cluster,
        "db-backup-manual-",
        || {
            cluster.shopctl_aws(
                &moto,
                &["backup", "--env", "dev", "--wait", "--timeout", "60s"],
            )
        },
        || backed_up(&cluster, &moto, &database),
    );
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    record(
        &mut steps,
        step(&["backup", "--env", "dev", "--wait", "--timeout", "60s"]),
    );
    let location = format!("s3://{BACKUP_BUCKET}/postgres/");
    let (verify, _) = while_a_job_runs(
        &cluster,
        "db-verify-",
        || {
            cluster.shopctl_aws(
                &moto,
                &[
                    "backup",
                    "--env",
                    "dev",
                    "--timeout",
                    "60s",
                    "verify",
                    "--backup",
                    &id,
                ],
            )
        },
        || {
            let played = cluster.shopctl_aws(
                &moto,
                &[
                    "db",
                    "verify",
                    "--database-url",
                    database.url(),
                    "--from",
                    &location,
                    "--backup",
                    &id,
                ],
            );
            assert_eq!(played.code, 0, "{}", played.stderr);
        },
    );
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    record(
        &mut steps,
        step(&[
            "backup",
            "--env",
            "dev",
            "--timeout",
            "60s",
            "verify",
            "--backup",
            &id,
        ]),
    );
    run(
        &mut steps,
        step(&[
            "restore",
            "--env",
            "dev",
            "--backup",
            &id,
            "--yes",
            "--timeout",
            "60s",
        ]),
        0,
    );
    run(
        &mut steps,
        step(&["validate", "--env", "dev", "--output", "json"]),
        0,
    );

    // Nothing cluster-scoped: the base is the administrator's.
    let base = cluster.shopctl(&["apply", "--env", "dev", "--base"]);
    assert_eq!(base.code, 2, "{}", base.stderr);
    assert!(
        base.stderr.contains(&format!("{deployer} may not"))
            && base
                .stderr
                .contains("patch clusterroles (API group rbac.authorization.k8s.io)"),
        "{}",
        base.stderr
    );
    let changed_base = cluster.shopctl(&[
        "apply",
        "--env",
        "dev",
        "--set",
        "storage.parameters.type=io2",
    ]);
    assert_eq!(changed_base.code, 2, "{}", changed_base.stderr);
    assert!(
        changed_base
            .stderr
            .contains("was set up by another version of the base")
            && changed_base.stderr.contains("patch storageclasses"),
        "{}",
        changed_base.stderr
    );

    // Take each permission away in turn: the first command that used it stops, naming
    // it, and changes nothing. (Four at a time, each as its own user.)
    let needed: BTreeSet<Grant> = steps.iter().flat_map(|(_, g)| g.clone()).collect();
    let trials: Vec<(usize, &Grant)> = needed.iter().enumerate().collect();
    for (i, missing) in &trials {
        let mut fewer = needed.clone();
        fewer.remove(missing);
        grant_exactly(&cluster, &format!("deployer-without-{i}"), &fewer);
    }
    let before = written(&cluster);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = trials
            .chunks(trials.len().div_ceil(4))
            .map(|chunk| {
                let (cluster, moto, steps) = (&cluster, &moto, &steps);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(i, missing)| without(cluster, moto, steps, *i, missing).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(
        written(&cluster),
        before,
        "a command without a permission changed something"
    );
}

/// Runs the first step that used `missing` as a user granted everything else; it must
/// stop (exit 2, or validate's 1) naming the user, the verb and the resource.
fn without(
    cluster: &TestCluster,
    moto: &Moto,
    steps: &[(Step, BTreeSet<Grant>)],
    i: usize,
    missing: &Grant,
) -> Result<(), String> {
    let user = format!("deployer-without-{i}");
    let kubeconfig = cluster.scratch.path(&format!("kubeconfig-{user}"));
    cluster
        .sim
        .write_kubeconfig(
            &kubeconfig,
            &cluster.sim.add_user(&user, &[]),
            "shopmicro-dev",
        )
        .unwrap();
    let (step, _) = steps.iter().find(|(_, g)| g.contains(missing)).unwrap();
    let mut args: Vec<String> = step.args.clone();
    if args[0] == "apply" {
        // A new tag, so this apply has work to do.
        *args.last_mut().unwrap() = format!("services.frontend.tag=0.3.{i}");
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = cluster.shopctl_aws_at(moto, &kubeconfig, &[], &args);
    let (verb, _, resource, _) = missing;
    // Named as a resource (`networkpolicies`) or as a kind (`NetworkPolicy`).
    let plural = resource.split('/').next().unwrap();
    let singular = if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural.strip_suffix("sses") {
        format!("{stem}ss")
    } else {
        plural.trim_end_matches('s').to_string()
    };
    let said = if step.reports {
        &outcome.stdout
    } else {
        &outcome.stderr
    };
    let expected = if step.reports { 1 } else { 2 };
    let named = said.contains(&user)
        && said.contains(verb.as_str())
        && (said.contains(plural) || said.to_lowercase().contains(&singular));
    let one_line = step.reports || outcome.stderr.trim().lines().count() == 1;
    if outcome.code == expected && named && one_line {
        Ok(())
    } else {
        Err(format!(
            "without {missing:?}, {args:?} exited {} and must name {user}, {verb} and {resource} in one line:\n{said}",
            outcome.code
        ))
    }
}
