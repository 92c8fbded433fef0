//! The simulator against the upstream behaviour it imitates, each test citing the
//! Kubernetes documentation it follows. Real HTTP on loopback, as shopctl sees it.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shopmicro_kube_sim::{Config, Simulator};
use support::Client;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    })
}

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// Discovery: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api
/// (unaggregated: /api, /apis, then one APIResourceList per group version, listing
/// subresources as `resource/subresource`).
#[tokio::test]
async fn discovery_lists_groups_resources_and_their_subresources() {
    let client = Client::start();
    let (_, core) = client.get("/api").await;
    assert_eq!(core["versions"], json!(["v1"]));
    let (_, groups) = client.get("/apis").await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps")
    );
    let (_, apps) = client.get("/apis/apps/v1").await;
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for expected in [
        "deployments",
        "deployments/status",
        "deployments/scale",
        "statefulsets",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

/// Object metadata: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
/// (uid, resourceVersion, creationTimestamp set by the server) and the Status kind for
/// errors: https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind
#[tokio::test]
async fn create_sets_server_metadata_and_errors_are_status_objects() {
    let client = Client::start();
    let (code, created) = client
        .post(CONFIGMAPS, config_map("settings", json!({"a": "1"})))
        .await;
    assert_eq!(code, StatusCode::CREATED);
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(created["metadata"][field].is_string(), "{field}: {created}");
    }
    assert_eq!(created["metadata"]["namespace"], "default");

    let (code, duplicate) = client
        .post(CONFIGMAPS, config_map("settings", json!({})))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(
        (
            duplicate["kind"].as_str(),
            duplicate["reason"].as_str(),
            duplicate["code"].as_i64()
        ),
        (Some("Status"), Some("AlreadyExists"), Some(409))
    );

    let (code, missing) = client.get(&format!("{CONFIGMAPS}/nope")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "configmaps \"nope\" not found");
    assert_eq!(missing["details"]["name"], "nope");
}

/// Creating in a namespace that does not exist is refused (NamespaceLifecycle admission);
/// a workload whose selector does not match its template is 422 Invalid, and
/// `spec.selector` is immutable for apps/v1 workloads:
/// https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#label-selector-updates
#[tokio::test]
async fn invalid_objects_are_rejected_with_404_or_422() {
    let client = Client::start();
    let (code, _) = client
        .post(
            "/api/v1/namespaces/absent/configmaps",
            config_map("x", json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    let mut mismatched = deployment("web", "nginx:1");
    mismatched["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let (code, invalid) = client.post(DEPLOYMENTS, mismatched).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid["reason"], "Invalid");

    client.post(DEPLOYMENTS, deployment("web", "nginx:1")).await;
    let relabel = json!({"spec": {"selector": {"matchLabels": {"tier": "x"}}, "template": {"metadata": {"labels": {"tier": "x"}}}}});
    let (code, immutable) = client
        .patch(
            &format!("{DEPLOYMENTS}/web"),
            "application/merge-patch+json",
            relabel,
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        immutable["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable")
    );
}

/// `metadata.generation` counts changes to the desired state (spec), not to metadata or
/// status; with a status subresource, writes to the main resource ignore status and writes
/// to /status change only status:
/// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
#[tokio::test]
async fn generation_follows_the_spec_and_the_status_subresource_separates_status() {
    let client = Client::start();
    let mut paused = deployment("paused", "nginx:1");
    paused["spec"]["paused"] = json!(true);
    let (_, created) = client.post(DEPLOYMENTS, paused).await;
    assert_eq!(created["metadata"]["generation"], 1);
    let path = format!("{DEPLOYMENTS}/paused");

    let (_, relabelled) = client
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"team": "a"}}}),
        )
        .await;
    assert_eq!(relabelled["metadata"]["generation"], 1);
    assert_ne!(
        relabelled["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    let (_, rescaled) = client
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"spec": {"replicas": 3}, "status": {"replicas": 99}}),
        )
        .await;
    assert_eq!(rescaled["metadata"]["generation"], 2);
    assert_ne!(
        rescaled["status"]["replicas"], 99,
        "status is ignored on the main resource"
    );

    let (_, status) = client
        .patch(
            &format!("{path}/status"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 7}, "status": {"observedGeneration": 42}}),
        )
        .await;
    assert_eq!(status["status"]["observedGeneration"], 42);
    assert_eq!(status["spec"]["replicas"], 3, "spec is ignored on /status");
    assert_eq!(status["metadata"]["generation"], 2);
}

/// Optimistic concurrency: an update carrying a stale resourceVersion is a 409 Conflict:
/// https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
#[tokio::test]
async fn an_update_with_a_stale_resource_version_is_a_conflict() {
    let client = Client::start();
    let (_, created) = client
        .post(CONFIGMAPS, config_map("cm", json!({"a": "1"})))
        .await;
    let mut first = created.clone();
    first["data"]["a"] = json!("2");
    assert_eq!(
        client.put(&format!("{CONFIGMAPS}/cm"), first).await.0,
        StatusCode::OK
    );
    let mut stale = created;
    stale["data"]["a"] = json!("3");
    let (code, conflict) = client.put(&format!("{CONFIGMAPS}/cm"), stale).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
}

/// Server-side apply: https://kubernetes.io/docs/reference/using-api/server-side-apply/
/// (create-or-update; managedFields per manager; a conflict when changing a field another
/// manager owns, unless forced, which moves ownership; fields a manager stops applying are
/// removed; equal values are shared, not conflicts; a no-op apply changes nothing).
#[tokio::test]
async fn server_side_apply_tracks_owners_conflicts_and_removals() {
    let client = Client::start();
    let path = format!("{CONFIGMAPS}/app");
    let (code, created) = client
        .apply(
            &path,
            "shopctl",
            false,
            config_map("app", json!({"a": "1", "b": "2"})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "shopctl"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );

    let (code, same) = client
        .apply(
            &path,
            "shopctl",
            false,
            config_map("app", json!({"a": "1", "b": "2"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        same["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"],
        "a no-op apply is not stored"
    );

    let (code, shared) = client
        .apply(&path, "other", false, config_map("app", json!({"a": "1"})))
        .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "the same value is shared ownership: {shared}"
    );

    let (code, conflict) = client
        .apply(
            &path,
            "other",
            false,
            config_map("app", json!({"a": "changed"})),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(conflict["details"]["causes"][0]["field"], ".data.a");
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"shopctl\"")
    );

    let (_, forced) = client
        .apply(
            &path,
            "other",
            true,
            config_map("app", json!({"a": "changed"})),
        )
        .await;
    assert_eq!(forced["data"]["a"], "changed");
    let owners = shopmicro_kube_sim::fields::owners(&forced);
    assert_eq!(
        owners["shopctl"],
        [".data.b"],
        "forcing moved .data.a away from shopctl"
    );

    let (_, removed) = client
        .apply(&path, "shopctl", false, config_map("app", json!({})))
        .await;
    assert!(
        removed["data"].get("b").is_none(),
        "b is no longer applied by its only owner: {removed}"
    );
    assert_eq!(removed["data"]["a"], "changed", "a belongs to `other`");

    let (code, _) = client
        .patch(
            &path,
            "application/apply-patch+yaml",
            config_map("app", json!({})),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "apply requires a fieldManager"
    );
}

/// JSON merge patch (RFC 7386: null deletes) and JSON patch (RFC 6902):
/// https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
#[tokio::test]
async fn merge_and_json_patches_follow_their_rfcs() {
    let client = Client::start();
    client
        .post(CONFIGMAPS, config_map("p", json!({"a": "1", "b": "2"})))
        .await;
    let path = format!("{CONFIGMAPS}/p");
    let (_, merged) = client
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"data": {"a": null, "c": "3"}}),
        )
        .await;
    assert_eq!(merged["data"], json!({"b": "2", "c": "3"}));
    let (_, patched) = client.patch(&path, "application/json-patch+json", json!([{"op": "replace", "path": "/data/b", "value": "20"}, {"op": "remove", "path": "/data/c"}])).await;
    assert_eq!(patched["data"], json!({"b": "20"}));
    let (code, _) = client
        .patch(
            &path,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/data/b", "value": "nope"}]),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a failed test op changes nothing"
    );
    let (code, _) = client.patch(&path, "text/plain", json!({})).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Selectors on list: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#api
/// and field selectors, unsupported fields being an error:
/// https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let client = Client::start();
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let mut cm = config_map(name, json!({}));
        cm["metadata"]["labels"] = json!({"tier": tier});
        client.post(CONFIGMAPS, cm).await;
    }
    let names = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, web) = client
        .get(&format!("{CONFIGMAPS}?labelSelector=tier%3Dweb"))
        .await;
    assert_eq!(names(&web), ["a", "c"]);
    let (_, set) = client
        .get(&format!("{CONFIGMAPS}?labelSelector=tier%20notin%20(web)"))
        .await;
    assert_eq!(names(&set), ["b"]);
    let (_, by_name) = client
        .get(&format!("{CONFIGMAPS}?fieldSelector=metadata.name%3Dc"))
        .await;
    assert_eq!(names(&by_name), ["c"]);
    let (code, _) = client
        .get(&format!("{CONFIGMAPS}?fieldSelector=data.x%3D1"))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

/// Watch: https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
/// (from a resourceVersion, every later change in order; without one, synthetic ADDED
/// events for the current state; 410 Gone once the history was compacted).
#[tokio::test]
async fn watches_replay_from_a_resource_version_and_expire_after_compaction() {
    let client = Client::start();
    let (_, first) = client
        .post(CONFIGMAPS, config_map("w", json!({"v": "1"})))
        .await;
    let from = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .patch(
            &format!("{CONFIGMAPS}/w"),
            "application/merge-patch+json",
            json!({"data": {"v": "2"}}),
        )
        .await;
    client.delete(&format!("{CONFIGMAPS}/w")).await;

    let events = client
        .watch(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={from}&timeoutSeconds=1"
        ))
        .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["MODIFIED", "DELETED"]);
    assert_eq!(events[0]["object"]["data"]["v"], "2");

    client.post(CONFIGMAPS, config_map("now", json!({}))).await;
    let initial = client
        .watch(&format!("{CONFIGMAPS}?watch=1&timeoutSeconds=1"))
        .await;
    assert!(
        initial
            .iter()
            .any(|e| e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "now"),
        "{initial:?}"
    );

    client.sim.store().compact();
    let (_, expired) = client
        .get(&format!(
            "{CONFIGMAPS}?watch=true&resourceVersion={from}&timeoutSeconds=1"
        ))
        .await;
    assert_eq!(expired["code"], 410, "{expired}");
}

/// The scale subresource: https://kubernetes.io/docs/reference/kubernetes-api/autoscaling/v1/scale-v1/
#[tokio::test]
async fn the_scale_subresource_reads_and_writes_spec_replicas() {
    let client = Client::start();
    client.post(DEPLOYMENTS, deployment("s", "nginx:1")).await;
    let (_, scale) = client.get(&format!("{DEPLOYMENTS}/s/scale")).await;
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(2))
    );
    assert_eq!(scale["status"]["selector"], "app=s");
    let (_, rescaled) = client
        .patch(
            &format!("{DEPLOYMENTS}/s/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 4}}),
        )
        .await;
    assert_eq!(rescaled["spec"]["replicas"], 4);
    let (_, live) = client.get(&format!("{DEPLOYMENTS}/s")).await;
    assert_eq!(live["spec"]["replicas"], 4);
}

/// Garbage collection: https://kubernetes.io/docs/concepts/architecture/garbage-collection/
/// (background cascading deletion removes dependents through ownerReferences; `Orphan`
/// leaves them, without the reference; a dependent whose owners are all absent is deleted).
#[tokio::test]
async fn deleting_an_owner_cascades_unless_orphaned() {
    let client = Client::start();
    for (name, policy) in [("cascade", "Background"), ("orphan", "Orphan")] {
        let (_, owner) = client.post(CONFIGMAPS, config_map(name, json!({}))).await;
        let mut dependent = config_map(&format!("{name}-child"), json!({}));
        dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": owner["metadata"]["uid"]}]);
        client.post(CONFIGMAPS, dependent).await;
        client
            .delete(&format!("{CONFIGMAPS}/{name}?propagationPolicy={policy}"))
            .await;
    }
    assert_eq!(
        client.get(&format!("{CONFIGMAPS}/cascade-child")).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, orphan) = client.get(&format!("{CONFIGMAPS}/orphan-child")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));

    // A dependent created after its owner is gone (a controller acting on a stale list)
    // is accepted, then collected: it never stays.
    let mut dangling = config_map("dangling", json!({}));
    dangling["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "cascade", "uid": "0b0e5e1e-gone"}]);
    assert_eq!(
        client.post(CONFIGMAPS, dangling).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        client.get(&format!("{CONFIGMAPS}/dangling")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Deployments: https://kubernetes.io/docs/concepts/workloads/controllers/deployment/
/// (a ReplicaSet per pod template with the `deployment.kubernetes.io/revision`
/// annotation; rolling back to an old template reuses its ReplicaSet under the next
/// revision number; a rollout that stops progressing gets Progressing=False with reason
/// ProgressDeadlineExceeded after progressDeadlineSeconds; Warning events for failing pods).
#[tokio::test]
async fn deployments_get_replica_set_revisions_and_report_a_stalled_rollout() {
    let client = Client::start();
    let path = format!("{DEPLOYMENTS}/web");
    client
        .apply(&path, "t", false, deployment("web", "nginx:1"))
        .await;
    // As `kubectl rollout status` judges: only a status observed for the current
    // generation counts (the controller writes the revision before the status).
    let ready = |d: &Value| {
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["availableReplicas"] == 2
            && d["status"]["updatedReplicas"] == 2
            && d["status"]["replicas"] == 2
    };
    let first = client
        .eventually(&path, "revision 1 available", ready)
        .await;
    assert_eq!(
        first["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        first["status"]["observedGeneration"],
        first["metadata"]["generation"]
    );

    client
        .apply(&path, "t", false, deployment("web", "nginx:2"))
        .await;
    client
        .eventually(&path, "revision 2", |d| {
            d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2" && ready(d)
        })
        .await;
    client
        .apply(&path, "t", false, deployment("web", "nginx:1"))
        .await;
    client
        .eventually(&path, "revision 3", |d| {
            d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3" && ready(d)
        })
        .await;
    let (_, sets) = client
        .get("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb")
        .await;
    assert_eq!(
        sets["items"].as_array().unwrap().len(),
        2,
        "the first ReplicaSet was reused: {sets}"
    );

    client
        .apply(&path, "t", false, deployment("web", "nginx:3-never-ready"))
        .await;
    let stalled = client
        .eventually(&path, "ProgressDeadlineExceeded", |d| {
            d["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "Progressing"
                        && c["status"] == "False"
                        && c["reason"] == "ProgressDeadlineExceeded"
                })
                // The previous ReplicaSet's pods may still be draining when the deadline
                // passes; what must hold is that the last good pods keep serving.
                && d["status"]["availableReplicas"] == 2
        })
        .await;
    assert_eq!(
        stalled["status"]["updatedReplicas"], 2,
        "the new pods exist but are not ready"
    );
    let (_, events) = client
        .get("/api/v1/namespaces/default/events?fieldSelector=type%3DWarning,reason%3DUnhealthy")
        .await;
    assert!(!events["items"].as_array().unwrap().is_empty());
}

/// Jobs: https://kubernetes.io/docs/concepts/workloads/controllers/job/ (Complete, or
/// Failed with BackoffLimitExceeded after backoffLimit retries) and a Job created from a
/// CronJob (`kubectl create job --from=cronjob/…`) counted in the CronJob's
/// lastSuccessfulTime: https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/
#[tokio::test]
async fn jobs_complete_or_fail_as_scripted_and_cron_jobs_record_success() {
    let client = Client::start();
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let template = |image: &str| json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": image}]}});
    let (_, cron) = client.post("/apis/batch/v1/namespaces/default/cronjobs", json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template("tool:1")}}},
    })).await;
    client.post(jobs, json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "backup-manual", "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": cron["metadata"]["uid"], "controller": true}]},
        "spec": {"template": template("tool:1")},
    })).await;
    client.post(jobs, json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "broken"}, "spec": {"backoffLimit": 1, "template": template("tool:1-fail")}})).await;

    let condition = |kind: &'static str| {
        move |job: &Value| {
            job["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == kind && c["status"] == "True")
        }
    };
    client
        .eventually(
            &format!("{jobs}/backup-manual"),
            "Complete",
            condition("Complete"),
        )
        .await;
    let broken = client
        .eventually(&format!("{jobs}/broken"), "Failed", condition("Failed"))
        .await;
    assert_eq!(
        broken["status"]["failed"], 2,
        "one try plus backoffLimit retries"
    );
    client
        .eventually(
            "/apis/batch/v1/namespaces/default/cronjobs/backup",
            "lastSuccessfulTime",
            |c| c["status"]["lastSuccessfulTime"].is_string(),
        )
        .await;
    let (_, events) = client
        .get("/api/v1/namespaces/default/events?fieldSelector=reason%3DBackoffLimitExceeded")
        .await;
    assert_eq!(events["items"][0]["involvedObject"]["name"], "broken");
}

/// Secrets: "stringData is a write-only convenience field … merged into the data field"
/// (https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data).
#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data() {
    let client = Client::start();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "bee"}});
    let (_, created) = client
        .post("/api/v1/namespaces/default/secrets", secret.clone())
        .await;
    assert_eq!(created["data"], json!({"a": "YQ==", "b": "YmVl"}));
    assert!(created.get("stringData").is_none());
    let path = "/api/v1/namespaces/default/secrets/s";
    let (_, applied) = client.apply(path, "t", true, secret.clone()).await;
    let (_, again) = client.apply(path, "t", false, secret).await;
    assert_eq!(
        again["metadata"]["resourceVersion"], applied["metadata"]["resourceVersion"],
        "re-applying stringData is a no-op"
    );
}

/// HPAs keep their target within [minReplicas, maxReplicas], except that a target scaled
/// to zero deactivates them ("Implicit maintenance-mode deactivation"):
/// https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#implicit-maintenance-mode-deactivation
#[tokio::test]
async fn autoscalers_enforce_their_bounds_but_leave_a_target_scaled_to_zero_alone() {
    let client = Client::start();
    let mut web = deployment("web", "nginx:1");
    web["spec"]["replicas"] = json!(1);
    client.post(DEPLOYMENTS, web).await;
    client.post("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 5},
    })).await;
    client
        .eventually(
            &format!("{DEPLOYMENTS}/web"),
            "scaled to the minimum",
            |d| d["spec"]["replicas"] == 3,
        )
        .await;

    client
        .patch(
            &format!("{DEPLOYMENTS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 0}}),
        )
        .await;
    client
        .eventually(
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
            "ScalingDisabled",
            |h| {
                h["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["reason"] == "ScalingDisabled")
            },
        )
        .await;
    let (_, live) = client.get(&format!("{DEPLOYMENTS}/web")).await;
    assert_eq!(live["spec"]["replicas"], 0);
}

/// Dry run: https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run
/// (the request is processed, validated and answered, but nothing is persisted).
#[tokio::test]
async fn dry_run_requests_are_answered_but_not_persisted() {
    let client = Client::start();
    let (code, answered) = client
        .post(
            &format!("{CONFIGMAPS}?dryRun=All"),
            config_map("dry", json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(answered["metadata"]["name"], "dry");
    assert_eq!(
        client.get(&format!("{CONFIGMAPS}/dry")).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, _) = client
        .patch(
            &format!("{CONFIGMAPS}/dry2?fieldManager=x&dryRun=All"),
            "application/apply-patch+yaml",
            config_map("dry2", json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        client.get(&format!("{CONFIGMAPS}/dry2")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Authentication and authorisation answers: 401 for a missing or rejected token, 403 for
/// a request the user may not make:
/// https://kubernetes.io/docs/reference/access-authn-authz/authentication/ and
/// https://kubernetes.io/docs/reference/access-authn-authz/authorization/
#[tokio::test]
async fn requests_need_a_valid_token_and_permission() {
    let mut client = Client::start();
    client.token = client.sim.add_expired_token("expired");
    assert_eq!(client.get(CONFIGMAPS).await.0, StatusCode::UNAUTHORIZED);
    client.token = client.sim.add_user("dev", &[]);
    client.sim.bind_in_namespaces("dev", "edit", &["default"]);
    assert_eq!(client.get(CONFIGMAPS).await.0, StatusCode::OK);
    let (code, forbidden) = client
        .get("/api/v1/namespaces/kube-system/configmaps")
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        forbidden["message"]
            .as_str()
            .unwrap()
            .contains("User \"dev\" cannot list resource \"configmaps\"")
    );
    assert_eq!(
        client.get("/version").await.0,
        StatusCode::OK,
        "/version needs no credentials"
    );

    let anonymous = |sim: &Simulator| {
        let url = format!("{}/api/v1/namespaces", sim.url());
        async move { reqwest::get(url).await.unwrap().status() }
    };
    assert_eq!(anonymous(&client.sim).await, StatusCode::UNAUTHORIZED);
    let open = Config {
        anonymous: true,
        ..Config::default()
    };
    let open = Simulator::start("127.0.0.1:0".parse().unwrap(), open).unwrap();
    assert_eq!(
        anonymous(&open).await,
        StatusCode::FORBIDDEN,
        "anonymous requests are let in as system:anonymous, and RBAC grants it nothing"
    );
}

/// A stand-in for a pod's process: answers with the path and query it was asked for, or
/// with the status `/status/{code}` names.
async fn echo_server() -> String {
    use axum::extract::{Path, Request};
    let app = axum::Router::new()
        .route(
            "/status/{code}",
            axum::routing::get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap()
            }),
        )
        .fallback(|request: Request| async move { request.uri().to_string() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The service proxy: https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls
/// (`services/[https:]name[:port_name]/proxy`; a port is named or numbered, only Ready
/// endpoints receive traffic, none is a 503 "no endpoints available", RBAC on
/// `services/proxy`).
#[tokio::test]
async fn the_service_proxy_reaches_ready_endpoints_only() {
    let client = Client::start();
    const SERVICES: &str = "/api/v1/namespaces/default/services";
    let proxy = |service: &str, rest: &str| format!("{SERVICES}/{service}/proxy{rest}");
    let (code, missing) = client.get(&proxy("web:http", "/")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "services \"web\" not found");

    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    });
    assert_eq!(client.post(SERVICES, service).await.0, StatusCode::CREATED);
    let (code, unavailable) = client.get(&proxy("web:http", "/")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "no pods yet");
    assert_eq!(
        unavailable["message"],
        "no endpoints available for service \"web\""
    );

    let path = format!("{DEPLOYMENTS}/web");
    client
        .apply(&path, "t", false, deployment("web", "nginx:1"))
        .await;
    client
        .eventually(&path, "available", |d| {
            d["status"]["availableReplicas"] == 2
        })
        .await;
    let (code, refused) = client.get(&proxy("web:http", "/")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("error trying to reach service: dial tcp 10.244."),
        "nothing serves the pods yet: {refused}"
    );

    client
        .sim
        .serve("default", "web", "http", &echo_server().await);
    let (code, echoed) = client.get(&proxy("web:http", "/products?limit=1")).await;
    assert_eq!((code, echoed), (StatusCode::OK, json!("/products?limit=1")));
    assert_eq!(
        client.get(&proxy("http:web:80", "/by-number")).await.1,
        json!("/by-number"),
        "a port by number, with a scheme"
    );
    assert_eq!(
        client.get(&proxy("web", "/")).await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "an omitted port matches only an unnamed one"
    );
    assert_eq!(
        client.get(&proxy("web:http", "/status/418")).await.0,
        StatusCode::IM_A_TEAPOT,
        "the endpoint's status passes through"
    );

    let mut restricted = Client::start();
    restricted.token = restricted.sim.add_user("dev", &[]);
    restricted.sim.create_as_admin(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    restricted.sim.bind_in_namespaces("dev", "edit", &["shop"]);
    let (code, forbidden) = restricted.get(&proxy("web:http", "/")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        forbidden["message"]
            .as_str()
            .unwrap()
            .contains("cannot get resource \"services/proxy\""),
        "{forbidden}"
    );

    // Scaled to zero: the pods go, and with them the endpoints.
    let (code, _) = client
        .patch(
            &format!("{path}/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 0}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(&proxy("web:http", "/")).await.0 == StatusCode::OK {
        assert!(Instant::now() < deadline, "the endpoints never went away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.get(&proxy("web:http", "/")).await.1["message"],
        "no endpoints available for service \"web\""
    );
}

/// Dynamic provisioning and binding: https://kubernetes.io/docs/concepts/storage/persistent-volumes/#binding
/// and https://kubernetes.io/docs/concepts/storage/dynamic-provisioning/#defaulting-behavior
/// (a claim for a class no provisioner serves stays Pending; a claim without a class gets
/// the default one; a bound claim stays bound).
#[tokio::test]
async fn claims_bind_through_their_storage_class_or_stay_pending() {
    let client = Client::start();
    const CLAIMS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";
    const CLASSES: &str = "/apis/storage.k8s.io/v1/storageclasses";
    let claim = |name: &str, class: Option<&str>| {
        let mut claim = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        });
        if let Some(class) = class {
            claim["spec"]["storageClassName"] = json!(class);
        }
        claim
    };
    for (name, class) in [("missing", Some("nowhere")), ("defaulted", None)] {
        assert_eq!(
            client.post(CLAIMS, claim(name, class)).await.0,
            StatusCode::CREATED
        );
    }
    client
        .eventually(&format!("{CLAIMS}/missing"), "Pending", |c| {
            c["status"]["phase"] == "Pending"
        })
        .await;

    let class = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com",
    });
    assert_eq!(client.post(CLASSES, class).await.0, StatusCode::CREATED);
    let bound = client
        .eventually(
            &format!("{CLAIMS}/defaulted"),
            "bound by the default class",
            |c| c["status"]["phase"] == "Bound",
        )
        .await;
    assert_eq!(bound["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(
        client.get(&format!("{CLAIMS}/missing")).await.1["status"]["phase"],
        "Pending",
        "still no provisioner for its class"
    );
}

/// SelfSubjectAccessReview: https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
/// (any authenticated user may ask what it may do; the answer is in `status.allowed`).
#[tokio::test]
async fn a_self_subject_access_review_answers_for_the_caller() {
    let mut client = Client::start();
    const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let review = |namespace: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": "get", "resource": "services", "subresource": "proxy"}},
        })
    };
    let (code, answer) = client.post(REVIEWS, review("shop")).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(answer["status"]["allowed"], true, "the admin may: {answer}");

    client.token = client.sim.add_user("dev", &[]);
    client.sim.create_as_admin(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    client.sim.bind_in_namespaces("dev", "edit", &["shop"]);
    assert_eq!(
        client.post(REVIEWS, review("shop")).await.1["status"]["allowed"],
        true
    );
    let (code, answer) = client.post(REVIEWS, review("monitoring")).await;
    assert_eq!(code, StatusCode::CREATED, "asking is allowed, doing is not");
    assert_eq!(answer["status"]["allowed"], false);

    client.token = client.sim.add_expired_token("gone");
    assert_eq!(
        client.post(REVIEWS, review("shop")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})
}

/// The raw body of a log request.
async fn log(client: &Client, pod: &str, query: &str) -> (StatusCode, String) {
    let response = client
        .http
        .get(format!("{}{PODS}/{pod}/log?{query}", client.sim.url()))
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn started(client: &Client, pod: &str) {
    client
        .eventually(&format!("{PODS}/{pod}"), "the pod to run", |p| {
            p["status"]["containerStatuses"].is_array()
        })
        .await;
}

/// `pods/log` (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod):
/// the container's output as text; `tailLines` the last N, `timestamps` an RFC 3339 time
/// before each line, `sinceSeconds` only the recent ones; the container must be named
/// when the pod has several, and must be one of its containers.
#[tokio::test]
async fn pod_logs_are_served_with_tail_timestamps_since_and_the_container_choice() {
    let client = Client::start();
    client.post(PODS, pod("web", &[("app", "web:1")])).await;
    started(&client, "web").await;
    for line in ["one", "two", "three"] {
        client.sim.write_log("default", "web", "app", line);
    }

    let (status, text) = log(&client, "web", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "started web:1\none\ntwo\nthree\n");
    assert_eq!(log(&client, "web", "tailLines=2").await.1, "two\nthree\n");
    let (_, stamped) = log(&client, "web", "tailLines=1&timestamps=true").await;
    let (time, line) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(line, "three");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{stamped}"
    );
    assert_eq!(
        log(&client, "web", "sinceSeconds=3600")
            .await
            .1
            .lines()
            .count(),
        4
    );
    assert_eq!(
        log(&client, "web", "sinceSeconds=0").await.0,
        StatusCode::BAD_REQUEST
    );

    client
        .post(PODS, pod("two", &[("app", "web:1"), ("proxy", "envoy:1")]))
        .await;
    started(&client, "two").await;
    let (status, message) = log(&client, "two", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message
            .contains("a container name must be specified for pod two, choose one of: [app proxy]"),
        "{message}"
    );
    assert_eq!(
        log(&client, "two", "container=proxy").await.1,
        "started envoy:1\n"
    );
    let (status, message) = log(&client, "two", "container=sidecar").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("container sidecar is not valid for pod two"),
        "{message}"
    );
    assert_eq!(log(&client, "missing", "").await.0, StatusCode::NOT_FOUND);
}

/// A restarted container's last instance stays readable with `previous=true`
/// (https://kubernetes.io/docs/concepts/cluster-administration/logging/#how-nodes-handle-container-logs);
/// a container that never restarted has none.
#[tokio::test]
async fn a_crashed_containers_previous_log_is_kept() {
    let client = Client::start();
    client.post(PODS, pod("web", &[("app", "web:1")])).await;
    started(&client, "web").await;
    let (status, message) = log(&client, "web", "previous=true").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("previous terminated container \\\"app\\\" in pod \\\"web\\\" not found"),
        "{message}"
    );

    client
        .post(PODS, pod("crashy", &[("app", "web:crashloop")]))
        .await;
    client
        .eventually(&format!("{PODS}/crashy"), "a restart", |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .is_some_and(|r| r >= 1)
        })
        .await;
    let (status, previous) = log(&client, "crashy", "previous=true").await;
    assert_eq!(status, StatusCode::OK);
    assert!(previous.ends_with("exited with code 1\n"), "{previous}");
    let (_, current) = log(&client, "crashy", "").await;
    assert!(current.starts_with("started web:crashloop\n"), "{current}");
    assert!(!current.contains("exited"), "{current}");
}

/// `follow=true` streams what the container writes next and ends when the pod goes.
#[tokio::test]
async fn following_a_log_streams_new_lines_until_the_pod_is_deleted() {
    let client = Client::start();
    client.post(PODS, pod("web", &[("app", "web:1")])).await;
    started(&client, "web").await;
    let mut response = client
        .http
        .get(format!("{}{PODS}/web/log?follow=true", client.sim.url()))
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(first, "started web:1\n");
    client.sim.write_log("default", "web", "app", "later");
    let next = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the new line arrives")
        .unwrap()
        .unwrap();
    assert_eq!(next, "later\n");
    client.delete(&format!("{PODS}/web")).await;
    let end = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the stream ends with the pod")
        .unwrap();
    assert!(end.is_none());
}
