//! The cluster the manifests assume is the cluster Terraform builds. One check across the
//! artefacts — each cloud environment's values, its rendered manifests, its Terraform stack
//! (parsed with an HCL parser and evaluated with the variables shopctl passes it) and the
//! workflows — that whatever one names, another provides: AWS names, aliases, roles and
//! buckets; image tags; the ingress class, the storage class, the autoscaler's metrics;
//! NetworkPolicy enforcement; the network ranges NetworkPolicies admit; canary intervals that
//! span two of the rendered Prometheus's scrapes. Each injected break
//! fails it with a message naming both ends.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use shopctl::cluster::progressive::analysis::{longest_scrape_interval, prometheus_duration};
use shopctl::cluster::progressive::canary::DEFAULT_INTERVAL;
use shopctl::env::Environment;
use support::terraform::{self, Instance};
use support::{iam, workspace_root};

/// Everything the check reads for one environment.
#[derive(Clone)]
struct Artefacts {
    env: Environment,
    stack: Instance,
    manifests: Vec<Value>,
    images_workflow: Value,
    deploy_workflow: Option<Value>,
}

fn workflow(name: &str) -> Option<Value> {
    let path = workspace_root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_saphyr::from_str(&text).unwrap())
}

fn artefacts(env: &str) -> Artefacts {
    let env = terraform::environment(env);
    Artefacts {
        stack: terraform::environment_stack(&env),
        manifests: terraform::rendered(&env),
        images_workflow: workflow("images.yml").unwrap(),
        deploy_workflow: workflow(&format!("deploy-{}.yml", env.name)),
        env,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The context an IRSA trust policy is evaluated in for a service account's token.
fn irsa_context(stack: &Instance, namespace: &str, name: &str) -> BTreeMap<String, String> {
    let issuer = stack.modules["platform"].modules["eks"].outputs["oidc_issuer"]
        .as_str()
        .unwrap()
        .to_string();
    BTreeMap::from([
        (
            format!("{issuer}:sub"),
            format!("system:serviceaccount:{namespace}:{name}"),
        ),
        (format!("{issuer}:aud"), "sts.amazonaws.com".to_string()),
    ])
}

fn addon<'s>(stack: &'s [(String, Value)], name: &str) -> Option<&'s Value> {
    stack
        .iter()
        .map(|(_, a)| a)
        .find(|a| a["addon_name"] == name)
}

/// Every inconsistency between the artefacts, each naming both ends.
fn problems(a: &Artefacts) -> Vec<String> {
    let env = &a.env;
    let values = format!("templates/environments/{}.yaml", env.name);
    let stack_name = format!("terraform/envs/{}", env.name);
    let mut problems = Vec::new();
    let roles = a.stack.roles();
    let aliases = a.stack.all("aws_kms_alias");
    let addons = a.stack.all("aws_eks_addon");
    let alias = |name: &str| aliases.iter().map(|(_, v)| v).find(|v| v["name"] == name);
    let key_arn = |key_id: &Value| {
        a.stack
            .all("aws_kms_key")
            .into_iter()
            .map(|(_, k)| k)
            .find(|k| k["key_id"] == *key_id)
            .map(|k| k["arn"].as_str().unwrap().to_string())
    };

    // The backup bucket and the key the backup job writes with.
    let buckets = a.stack.all("aws_s3_bucket");
    if !buckets
        .iter()
        .any(|(_, b)| b["bucket"] == env.backup.bucket.as_str())
    {
        problems.push(format!(
            "{values} backup.bucket {} is created by no aws_s3_bucket of {stack_name}",
            env.backup.bucket
        ));
    }
    if let Some(key) = &env.backup.kms_key {
        let encryption = a
            .stack
            .all("aws_s3_bucket_server_side_encryption_configuration")
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c["bucket"] == env.backup.bucket.as_str());
        let bucket_key = encryption.map(|c| {
            c["rule"][0]["apply_server_side_encryption_by_default"][0]["kms_master_key_id"].clone()
        });
        match alias(key) {
            None => problems.push(format!(
                "{values} backup.kms_key {key} is created by no aws_kms_alias of {stack_name}"
            )),
            Some(found) if bucket_key != key_arn(&found["target_key_id"]).map(Value::from) => {
                problems.push(format!(
                    "{values} backup.kms_key {key} is not the key {stack_name} encrypts bucket {} with",
                    env.backup.bucket
                ));
            }
            Some(_) => {}
        }
    }

    for manifest in &a.manifests {
        let kind = manifest["kind"].as_str().unwrap_or("");
        let name = manifest["metadata"]["name"].as_str().unwrap_or("");
        let id = format!("rendered {kind}/{name}");
        match kind {
            // IRSA: the role exists and trusts exactly this service account.
            "ServiceAccount" => {
                let Some(arn) =
                    manifest["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str()
                else {
                    continue;
                };
                let namespace = manifest["metadata"]["namespace"].as_str().unwrap();
                match roles.values().find(|r| r.arn == arn) {
                    None => problems.push(format!(
                        "{id} assumes {arn}, which {stack_name} does not create"
                    )),
                    Some(role) => {
                        let context = irsa_context(&a.stack, namespace, name);
                        if !iam::allows(&role.trust, "sts:AssumeRoleWithWebIdentity", arn, &context)
                        {
                            problems.push(format!(
                                "{id} assumes {arn}, but {stack_name} has that role trust another service account"
                            ));
                        }
                    }
                }
            }
            "StorageClass" => {
                let provisioner = manifest["provisioner"].as_str().unwrap_or("");
                let driver = addon(&addons, "aws-ebs-csi-driver");
                if provisioner == "ebs.csi.aws.com" && driver.is_none() {
                    problems.push(format!(
                        "{id} is provisioned by {provisioner}, but {stack_name} installs no aws-ebs-csi-driver add-on"
                    ));
                }
                let Some(key) = manifest["parameters"]["kmsKeyId"].as_str() else {
                    continue;
                };
                let Some(found) = alias(key) else {
                    problems.push(format!(
                        "{id} encrypts volumes with {key}, which no aws_kms_alias of {stack_name} names"
                    ));
                    continue;
                };
                // The driver's role may hand the key to EC2 for volumes.
                let key = key_arn(&found["target_key_id"]).unwrap_or_default();
                let role = driver
                    .and_then(|d| d["service_account_role_arn"].as_str())
                    .and_then(|arn| roles.values().find(|r| r.arn == arn));
                let grant =
                    BTreeMap::from([("kms:GrantIsForAWSResource".to_string(), "true".to_string())]);
                let may = role.is_some_and(|r| {
                    iam::allows(&r.policy, "kms:CreateGrant", &key, &grant)
                        && iam::allows(
                            &r.policy,
                            "kms:GenerateDataKeyWithoutPlaintext",
                            &key,
                            &grant,
                        )
                });
                if !may {
                    problems.push(format!(
                        "{id} encrypts volumes with {}, but {stack_name}'s EBS CSI driver role may not use that key",
                        manifest["parameters"]["kmsKeyId"].as_str().unwrap()
                    ));
                }
            }
            "Ingress" => {
                let class = manifest["spec"]["ingressClassName"].as_str().unwrap_or("");
                let controller = a
                    .stack
                    .all("helm_release")
                    .into_iter()
                    .map(|(_, r)| r)
                    .find(|r| r["chart"] == "aws-load-balancer-controller");
                let Some(controller) = controller else {
                    problems.push(format!(
                        "{id} has class {class}, but {stack_name} installs no AWS Load Balancer Controller"
                    ));
                    continue;
                };
                let set: BTreeMap<String, String> = controller["set"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        Some((
                            s["name"].as_str()?.to_string(),
                            s["value"].as_str()?.to_string(),
                        ))
                    })
                    .collect();
                if set.get("ingressClass").map(String::as_str) != Some(class) {
                    problems.push(format!(
                        "{id} has class {class}, but {stack_name}'s load balancer controller serves {:?}",
                        set.get("ingressClass")
                    ));
                }
                let namespace = controller["namespace"].as_str().unwrap_or("");
                if namespace != env.ingress.controller_namespace {
                    problems.push(format!(
                        "{values} ingress.controller_namespace is {}, but {stack_name} installs the controller into {namespace}",
                        env.ingress.controller_namespace
                    ));
                }
                let role = set
                    .get("serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn")
                    .and_then(|arn| roles.values().find(|r| &r.arn == arn));
                let account = set.get("serviceAccount.name").cloned().unwrap_or_default();
                let trusted = role.is_some_and(|r| {
                    iam::allows(
                        &r.trust,
                        "sts:AssumeRoleWithWebIdentity",
                        &r.arn,
                        &irsa_context(&a.stack, namespace, &account),
                    )
                });
                if !trusted {
                    problems.push(format!(
                        "{stack_name}'s load balancer controller runs as {namespace}/{account}, which no role of it trusts"
                    ));
                }
            }
            "HorizontalPodAutoscaler" => {
                let resource_metrics = manifest["spec"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["type"] == "Resource");
                if resource_metrics && addon(&addons, "metrics-server").is_none() {
                    problems.push(format!(
                        "{id} scales on resource metrics, but {stack_name} installs no metrics-server add-on"
                    ));
                }
            }
            "NetworkPolicy" => {
                let enforced = addon(&addons, "vpc-cni").and_then(|cni| {
                    let config: Value =
                        serde_json::from_str(cni["configuration_values"].as_str()?).ok()?;
                    Some(config["enableNetworkPolicy"] == "true")
                });
                if enforced != Some(true)
                    && !problems
                        .iter()
                        .any(|p: &String| p.contains("enforces no NetworkPolicy"))
                {
                    problems.push(format!(
                        "{id} (and every NetworkPolicy) needs enforcement, but {stack_name} enforces no NetworkPolicy (vpc-cni enableNetworkPolicy)"
                    ));
                }
            }
            _ => {}
        }
    }

    // The ranges NetworkPolicies admit are the subnets Terraform makes for them.
    let vpc = &a.stack.modules["platform"].modules["vpc"].outputs;
    for (field, ours, output) in [
        (
            "cluster.api_server_cidrs",
            &env.cluster.api_server_cidrs,
            "control_plane_subnet_cidrs",
        ),
        (
            "cluster.pod_cidrs",
            &env.cluster.pod_cidrs,
            "private_subnet_cidrs",
        ),
        (
            "ingress.source_cidrs",
            &env.ingress.source_cidrs,
            "public_subnet_cidrs",
        ),
    ] {
        let theirs = strings(&vpc[output]);
        if *ours != theirs {
            problems.push(format!(
                "{values} {field} {ours:?} are not {stack_name}'s {output} {theirs:?}"
            ));
        }
    }
    let (_, cluster) = a.stack.all("aws_eks_cluster").pop().unwrap();
    if cluster["vpc_config"][0]["subnet_ids"] != vpc["control_plane_subnet_ids"] {
        problems.push(format!(
            "{stack_name}'s control plane is not in the control-plane subnets {values} cluster.api_server_cidrs name"
        ));
    }

    // Images: every one from the environment's registry is a repository of the stack,
    // pushed by images.yml under the commit SHA, and its tag is set by the environment's
    // deploy workflow to that SHA.
    let repositories: BTreeSet<String> = a
        .stack
        .all("aws_ecr_repository")
        .into_iter()
        .flat_map(|(_, r)| r.as_object().unwrap().values().cloned().collect::<Vec<_>>())
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    let matrix = &a.images_workflow["jobs"]["push"]["strategy"]["matrix"];
    let pushed: BTreeSet<String> = matrix["image"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect();
    let registries = strings(&matrix["registry"]);
    let tagged_with_sha = serde_json::to_string(&a.images_workflow)
        .unwrap()
        .contains(r#""TAG":"${{ github.sha }}""#);
    let deploy_sets: BTreeSet<String> = a
        .deploy_workflow
        .iter()
        .flat_map(|w| {
            w["jobs"]
                .as_object()
                .unwrap()
                .values()
                .cloned()
                .collect::<Vec<_>>()
        })
        .flat_map(|job| job["steps"].as_array().cloned().unwrap_or_default())
        .filter_map(|step| step["run"].as_str().map(str::to_string))
        .flat_map(|run| {
            run.split("--set")
                .skip(1)
                .filter_map(|s| {
                    let assignment = s.split_whitespace().next()?.trim_matches('"');
                    assignment.strip_suffix("=$TAG").map(str::to_string)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let tag_paths: BTreeMap<String, String> = [
        (&env.services.frontend, "services.frontend.tag"),
        (&env.services.backend, "services.backend.tag"),
        (&env.services.ml, "services.ml.tag"),
    ]
    .into_iter()
    .map(|(service, path)| (service.image.clone(), path.to_string()))
    .chain([("shopmicro-shopctl".to_string(), "backup.tag".to_string())])
    .collect();
    let images: BTreeSet<String> = a
        .manifests
        .iter()
        .flat_map(|m| {
            let text = m.to_string();
            text.split("\"image\":\"")
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|image| image.starts_with(&format!("{}/", env.images.registry)))
        .collect();
    for image in images {
        let path = image.trim_start_matches(&format!("{}/", env.images.registry));
        let repository = path.split(':').next().unwrap();
        if !repositories.contains(repository) {
            problems.push(format!(
                "rendered image {image}: {stack_name} creates no ECR repository {repository}"
            ));
        }
        if !pushed.contains(repository) || !registries.contains(&env.name) || !tagged_with_sha {
            problems.push(format!(
                "rendered image {image}: .github/workflows/images.yml does not push {repository} to {}'s registry under the commit SHA",
                env.name
            ));
        }
        match tag_paths.get(repository) {
            Some(tag) if deploy_sets.contains(tag) => {}
            Some(tag) => problems.push(format!(
                "rendered image {image}: .github/workflows/deploy-{}.yml does not set {tag} to the SHA images.yml pushes",
                env.name
            )),
            None => problems.push(format!(
                "rendered image {image}: no environment value sets its tag"
            )),
        }
    }
    problems.extend(secrets_passed(a));
    problems.extend(canary_intervals(a));
    problems
}

/// Every canary interval the environment may be judged over (shopctl's default, and any
/// `--interval` its deploy workflow passes) spans two scrapes of the Prometheus rendered for
/// it: `apply --strategy canary` refuses a shorter one before it starts.
fn canary_intervals(a: &Artefacts) -> Vec<String> {
    let Some(config) = a
        .manifests
        .iter()
        .find_map(|m| m["data"]["prometheus.yml"].as_str())
    else {
        return vec!["no rendered ConfigMap holds a prometheus.yml to judge canaries".into()];
    };
    let scrape = longest_scrape_interval(config).unwrap();
    let mut intervals = vec![(
        "shopctl's default --interval".to_string(),
        DEFAULT_INTERVAL.to_string(),
    )];
    if let Some(deploy) = &a.deploy_workflow {
        let text = deploy.to_string();
        for (at, _) in text.match_indices("--interval ") {
            let value = text[at + "--interval ".len()..]
                .split(|c: char| c.is_whitespace() || c == '\\' || c == '"')
                .next()
                .unwrap();
            intervals.push((
                format!(".github/workflows/deploy-{}.yml's --interval", a.env.name),
                value.to_string(),
            ));
        }
    }
    intervals
        .into_iter()
        .filter(|(_, value)| prometheus_duration(value).unwrap() < 2 * scrape)
        .map(|(source, value)| {
            format!(
                "{source} {value} is shorter than two scrapes of the rendered prometheus.yml ({scrape:?} each): apply --strategy canary refuses it"
            )
        })
        .collect()
}

/// Every secret the environment needs (the platform's, each alert receiver's
/// destination) reaches the step that deploys it: from the repository's secrets, through
/// `workflow_call` when another workflow calls the deploy.
fn secrets_passed(a: &Artefacts) -> Vec<String> {
    let Some(deploy) = &a.deploy_workflow else {
        return Vec::new();
    };
    let file = format!(".github/workflows/deploy-{}.yml", a.env.name);
    let deploy_env: BTreeMap<String, String> = deploy["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_array().cloned().unwrap_or_default())
        .filter(|step| {
            step["run"]
                .as_str()
                .is_some_and(|run| run.contains("shopctl up"))
        })
        .flat_map(|step| step["env"].as_object().cloned().unwrap_or_default())
        .map(|(name, value)| (name, value.as_str().unwrap_or_default().to_string()))
        .collect();
    let called = deploy["on"]["workflow_call"].is_object();
    let callers: Vec<&Value> = a.images_workflow["jobs"]
        .as_object()
        .unwrap()
        .values()
        .filter(|job| job["uses"].as_str().is_some_and(|u| u.ends_with(&file)))
        .collect();
    let mut problems = Vec::new();
    for (key, variable) in shopctl::secrets::required(&a.env) {
        let from_secrets = format!("${{{{ secrets.{variable} }}}}");
        if deploy_env.get(&variable) != Some(&from_secrets) {
            problems.push(format!(
                "secret {key} of templates/environments/{}.yaml: the step of {file} that runs `shopctl up` does not set {variable} from the repository's secrets",
                a.env.name
            ));
            continue;
        }
        if called {
            if !deploy["on"]["workflow_call"]["secrets"][&variable].is_object() {
                problems.push(format!(
                    "secret {key}: {file} does not declare {variable} among its workflow_call secrets"
                ));
            }
            for caller in &callers {
                if caller["secrets"][&variable] != json!(from_secrets) {
                    problems.push(format!(
                        "secret {key}: .github/workflows/images.yml calls {file} without passing {variable}"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_cloud_environment_gets_from_terraform_and_the_workflows_what_its_manifests_name() {
    for env in ["dev", "prod"] {
        let found = problems(&artefacts(env));
        assert!(found.is_empty(), "{env}:\n{}", found.join("\n"));
    }
}

/// Breaks one artefact in `artefacts`.
type Break = fn(&mut Artefacts);

fn remove_resource(a: &mut Artefacts, module: &[&str], kind: &str, name: &str) {
    let mut instance = &mut a.stack;
    for m in module {
        instance = instance.modules.get_mut(*m).unwrap();
    }
    instance
        .resources
        .get_mut(kind)
        .unwrap()
        .remove(name)
        .unwrap();
}

fn eks_module(a: &mut Artefacts) -> &mut Instance {
    a.stack
        .modules
        .get_mut("platform")
        .unwrap()
        .modules
        .get_mut("eks")
        .unwrap()
}

/// Replaces `from` with `to` in the deploy workflow's text; `from` must be there.
fn edit_deploy_workflow(a: &mut Artefacts, from: &str, to: &str) {
    let deploy = a.deploy_workflow.as_mut().unwrap();
    let text = deploy.to_string().replace(from, to);
    assert_ne!(
        text,
        deploy.to_string(),
        "{from} is not in the deploy workflow"
    );
    *deploy = serde_json::from_str(&text).unwrap();
}

#[test]
fn each_injected_break_fails_the_check_naming_both_ends() {
    let breaks: &[(&str, Break, &[&str])] = &[
        (
            "the volume key's alias renamed",
            |a| {
                let eks = eks_module(a);
                eks.resources
                    .get_mut("aws_kms_alias")
                    .unwrap()
                    .get_mut("ebs")
                    .unwrap()["name"] = json!("alias/renamed");
            },
            &[
                "rendered StorageClass/gp3-encrypted",
                "alias/shopmicro-prod-ebs",
                "aws_kms_alias",
                "terraform/envs/prod",
            ],
        ),
        (
            "the shopctl image no longer pushed",
            |a| {
                a.images_workflow["jobs"]["push"]["strategy"]["matrix"]["image"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|i| i["name"] != "shopmicro-shopctl");
            },
            &["shopmicro-shopctl", ".github/workflows/images.yml"],
        ),
        (
            "the load balancer controller dropped",
            |a| {
                remove_resource(
                    a,
                    &["platform", "load_balancer_controller"],
                    "helm_release",
                    "controller",
                )
            },
            &[
                "rendered Ingress/storefront",
                "class alb",
                "terraform/envs/prod",
                "Load Balancer Controller",
            ],
        ),
        (
            "metrics-server dropped",
            |a| remove_resource(a, &["platform", "eks"], "aws_eks_addon", "metrics_server"),
            &["rendered HorizontalPodAutoscaler/backend", "metrics-server"],
        ),
        (
            "NetworkPolicies no longer enforced",
            |a| {
                let eks = eks_module(a);
                eks.resources
                    .get_mut("aws_eks_addon")
                    .unwrap()
                    .get_mut("vpc_cni")
                    .unwrap()["configuration_values"] = json!("{}");
            },
            &["NetworkPolicy", "enforces no NetworkPolicy"],
        ),
        (
            "the API server admitted from the whole VPC",
            |a| a.env.cluster.api_server_cidrs = vec!["10.0.0.0/16".into()],
            &[
                "templates/environments/prod.yaml cluster.api_server_cidrs",
                "control_plane_subnet_cidrs",
            ],
        ),
        (
            "Prometheus scraping less often than the default canary interval allows",
            |a| {
                let config = a
                    .manifests
                    .iter_mut()
                    .find(|m| m["data"]["prometheus.yml"].is_string())
                    .unwrap();
                let text = config["data"]["prometheus.yml"].as_str().unwrap();
                let slower = text.replacen("scrape_interval: 15s", "scrape_interval: 45s", 1);
                assert_ne!(slower, text, "the rendered Prometheus scrapes every 15s");
                config["data"]["prometheus.yml"] = json!(slower);
            },
            &[
                "shopctl's default --interval 1m",
                "prometheus.yml (45s each)",
            ],
        ),
        (
            "the backup tag left to a version nobody pushes",
            |a| {
                edit_deploy_workflow(a, r#" --set \"backup.tag=$TAG\""#, "");
            },
            &[
                "shopmicro-shopctl",
                ".github/workflows/deploy-prod.yml",
                "backup.tag",
            ],
        ),
        (
            "the pager's destination not passed to the deploy",
            |a| {
                edit_deploy_workflow(
                    a,
                    "SHOPMICRO_ALERT_RECEIVER_PAGER",
                    "SHOPMICRO_ALERT_RECEIVER_PAGE",
                );
            },
            &[
                "alert_receiver_pager",
                "templates/environments/prod.yaml",
                ".github/workflows/deploy-prod.yml",
                "SHOPMICRO_ALERT_RECEIVER_PAGER",
            ],
        ),
        (
            "the backup bucket's key renamed",
            |a| a.env.backup.kms_key = Some("alias/elsewhere".into()),
            &["backup.kms_key alias/elsewhere", "aws_kms_alias"],
        ),
    ];
    let healthy = artefacts("prod");
    for (what, break_it, named) in breaks {
        let mut broken = healthy.clone();
        break_it(&mut broken);
        let found = problems(&broken).join("\n");
        for needle in *named {
            assert!(
                found.contains(needle),
                "{what}: expected {needle:?} in:\n{found}"
            );
        }
    }
}
