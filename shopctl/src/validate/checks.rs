//! The checks. Each asks the target for what it needs and returns a verdict with a hint.

use serde_json::Value;

use super::alert_routes;
use super::target::{Reply, Target};
use super::{Check, CheckFuture, Verdict};
use crate::env::model::Provider;

pub static ALL: &[Check] = &[
    Check::new("workloads.components-ready", "workloads", components_ready),
    Check::new("workloads.no-crash-loop", "workloads", no_crash_loop),
    Check::new("workloads.release-current", "workloads", release_current),
    Check::new("storage.database", "storage", database),
    Check::new("storage.backups", "storage", backups),
    Check::new("app.frontend-ready", "app", |t| ready(t, "frontend")),
    Check::new("app.backend-ready", "app", |t| ready(t, "backend")),
    Check::new("app.ml-ready", "app", |t| ready(t, "ml")),
    Check::new("app.products", "app", products),
    Check::new("app.storefront", "app", storefront),
    Check::new("obs.prometheus", "obs", prometheus_ready),
    Check::new("obs.loki", "obs", loki_ready),
    Check::new("obs.tempo", "obs", tempo_ready),
    Check::new("obs.targets", "obs", scrape_targets),
    Check::new("obs.alerts", "obs", critical_alerts),
    Check::new("obs.alert-receivers", "obs", alert_receivers),
    Check::new("obs.slo-availability", "obs", slo_availability),
    Check::new("obs.slo-latency", "obs", slo_latency),
];

fn components_ready(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let components = target.components();
        let not_ready: Vec<String> = components
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.clone())
            .collect();
        if not_ready.is_empty() {
            Verdict::pass(format!("{} components ready", components.len()))
        } else {
            Verdict::fail(
                format!("not ready: {}", not_ready.join(", ")),
                format!(
                    "look at `shopctl logs {}`; the supervisor restarts crashed services",
                    not_ready[0]
                ),
            )
        }
    })
}

fn no_crash_loop(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let restarted: Vec<(String, u32)> = target
            .components()
            .into_iter()
            .filter(|c| c.managed && c.restarts > 0)
            .map(|c| (c.name, c.restarts))
            .collect();
        let describe = |list: &[(String, u32)]| {
            list.iter()
                .map(|(n, r)| format!("{n} restarted {r}x"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match restarted.iter().map(|(_, r)| *r).max() {
            None => Verdict::pass("no restarts"),
            Some(worst) if worst >= 3 => Verdict::fail(
                describe(&restarted),
                "a service keeps crashing: read its log and fix the cause",
            ),
            Some(_) => Verdict::warn(
                describe(&restarted),
                "a service crashed and was restarted; read its log",
            ),
        }
    })
}

fn release_current(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match target.releases() {
            Some((running, newest)) if running == newest => {
                Verdict::pass(format!("running revision {running}"))
            }
            Some((0, newest)) => Verdict::fail(
                format!("the workloads do not run the images release {newest} recorded"),
                "something changed them outside shopctl; `shopctl apply` or `shopctl rollback` restores a release",
            ),
            Some((running, newest)) => Verdict::warn(
                format!("running revision {running}; the newest recorded is {newest}"),
                "`shopctl history` shows both; `shopctl up` or `shopctl rollback` chooses",
            ),
            None => Verdict::warn("no release record", "run `shopctl up` to record one"),
        }
    })
}

/// Why `service` cannot be asked, if it cannot: the caller may not (skipped; the
/// permissions check says why), or the environment does not run it (`missing`).
fn unavailable(
    target: &dyn Target,
    service: &str,
    missing: impl FnOnce() -> Verdict,
) -> Option<Verdict> {
    if let Some(reason) = target.denied(service) {
        return Some(Verdict::skipped(reason));
    }
    (!target.runs(service)).then(missing)
}

/// GET from one of the platform's own services: not running it at all is a failure.
async fn ask(
    target: &dyn Target,
    service: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Reply, Verdict> {
    if let Some(verdict) = unavailable(target, service, || {
        Verdict::fail(
            format!("{service} is not part of this environment"),
            "deploy it: `shopctl up`",
        )
    }) {
        return Err(verdict);
    }
    target.get(service, path, query).await.map_err(|err| {
        Verdict::fail(
            format!("{service} unreachable: {err}"),
            format!("`shopctl logs {service}`; `shopctl status`"),
        )
    })
}

fn ready<'a>(target: &'a dyn Target, service: &'static str) -> CheckFuture<'a> {
    Box::pin(async move {
        match ask(target, service, "/readyz", &[]).await {
            Ok(reply) if reply.status == 200 => {
                Verdict::pass(format!("{service} /readyz answers ready"))
            }
            Ok(reply) => Verdict::fail(
                format!(
                    "{service} /readyz answered {}: {}",
                    reply.status,
                    reply.json()
                ),
                format!(
                    "its readiness names the dependency that is down; `shopctl logs {service}`"
                ),
            ),
            Err(verdict) => verdict,
        }
    })
}

fn database(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match ask(target, "backend", "/readyz", &[]).await {
            Ok(reply) if reply.json()["postgres"] == "ok" => {
                Verdict::pass("PostgreSQL answers the backend")
            }
            Ok(reply) => Verdict::fail(
                format!(
                    "the backend reports PostgreSQL as {}",
                    reply.json()["postgres"]
                ),
                "`shopctl logs postgres`; is the disk full?",
            ),
            Err(_) => Verdict::fail(
                "the backend cannot be asked about PostgreSQL",
                "check app.backend-ready first",
            ),
        }
    })
}

fn backups(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let Some(dir) = target.backups() else {
            return Verdict::skipped("this target keeps no backups");
        };
        let newest = match dir.list() {
            Ok(list) => list.into_iter().next(),
            Err(err) => {
                return Verdict::fail(
                    format!("reading backups failed: {err:#}"),
                    "check the backup directory",
                );
            }
        };
        let Some(newest) = newest else {
            return Verdict::warn(
                "no backups yet",
                "`shopctl backup` takes one; `shopctl backup verify` proves it restores",
            );
        };
        let age = chrono::Utc::now() - newest.created_at;
        let age = format!("{}h{:02}m", age.num_hours(), age.num_minutes() % 60);
        match &newest.verification {
            Some(v) if v.ok => Verdict::pass(format!(
                "newest backup {} ({age} old) verified: restores in {} ms",
                newest.id, v.restore_millis
            )),
            Some(v) => Verdict::fail(
                format!(
                    "newest backup {} failed verification: {}",
                    newest.id, v.detail
                ),
                "take a new backup and verify it",
            ),
            None => Verdict::warn(
                format!("newest backup {} ({age} old) is not verified", newest.id),
                "`shopctl backup verify` restores it into a scratch database",
            ),
        }
    })
}

fn products(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match ask(target, "backend", "/products", &[("limit", "1")]).await {
            Ok(reply)
                if reply.status == 200
                    && reply.json()["items"]
                        .as_array()
                        .is_some_and(|i| !i.is_empty()) =>
            {
                Verdict::pass("GET /products returns products")
            }
            Ok(reply) => Verdict::fail(
                format!("GET /products answered {} without products", reply.status),
                "is the catalogue empty? check the backend log",
            ),
            Err(verdict) => Verdict::fail(
                format!("GET /products failed: {}", verdict.detail),
                "check app.backend-ready first",
            ),
        }
    })
}

fn storefront(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match ask(target, "frontend", "/", &[]).await {
            Ok(reply) if reply.is_success() => {
                if reply.body.contains("<article class=\"card\">") {
                    Verdict::pass("the catalogue page renders products")
                } else {
                    Verdict::fail(
                        "the catalogue page has no products",
                        "the backend answers without items; check app.products",
                    )
                }
            }
            Ok(reply) => Verdict::fail(
                format!("the storefront answered {}", reply.status),
                "`shopctl logs frontend`",
            ),
            Err(verdict) => verdict,
        }
    })
}

/// Runs `query` on Prometheus: the series, or the verdict when it cannot be asked (skipped
/// where there is no Prometheus or the caller may not reach it, failed when it errs).
async fn promql(target: &dyn Target, query: &str) -> Result<Vec<Value>, Verdict> {
    if let Some(verdict) = unavailable(target, "prometheus", || Verdict::skipped(NO_PROMETHEUS)) {
        return Err(verdict);
    }
    let result = async {
        let reply = target
            .get("prometheus", "/api/v1/query", &[("query", query)])
            .await?;
        if !reply.is_success() {
            return Err(format!("Prometheus answered {}", reply.status));
        }
        Ok(reply.json()["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    };
    result.await.map_err(|err| {
        Verdict::fail(
            format!("querying Prometheus failed: {err}"),
            "check obs.prometheus first",
        )
    })
}

const NO_PROMETHEUS: &str = "no Prometheus in this environment (locally: install the `prometheus` binary and run `shopctl up` again)";

/// An observability component's readiness endpoint; skipped where it is not deployed
/// (with `missing` as the reason).
async fn component_ready(
    target: &dyn Target,
    service: &str,
    name: &str,
    path: &str,
    missing: &str,
) -> Verdict {
    if let Some(verdict) = unavailable(target, service, || Verdict::skipped(missing)) {
        return verdict;
    }
    match target.get(service, path, &[]).await {
        Ok(reply) if reply.is_success() => Verdict::pass(format!("{name} is ready")),
        Ok(reply) => Verdict::fail(
            format!("{name} answered {}: {}", reply.status, reply.body.trim()),
            format!("`shopctl logs {service}`; its pod's events say why"),
        ),
        Err(err) => Verdict::fail(
            format!("{name} unreachable: {err}"),
            format!("`shopctl logs {service}`; `shopctl status`"),
        ),
    }
}

fn prometheus_ready(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(component_ready(
        target,
        "prometheus",
        "Prometheus",
        "/-/ready",
        NO_PROMETHEUS,
    ))
}

fn loki_ready(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(component_ready(
        target,
        "loki",
        "Loki",
        "/ready",
        "no Loki in this environment",
    ))
}

fn tempo_ready(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(component_ready(
        target,
        "tempo",
        "Tempo",
        "/ready",
        "no Tempo in this environment",
    ))
}

fn scrape_targets(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match promql(target, "up").await {
            Err(verdict) => verdict,
            Ok(series) if series.is_empty() => Verdict::warn(
                "no scrape results yet",
                "Prometheus scrapes every 15 s; run validate again shortly",
            ),
            Ok(series) => {
                let down: Vec<String> = series
                    .iter()
                    .filter(|s| s["value"][1] != "1")
                    .map(|s| {
                        let labels = &s["metric"];
                        // The services carry `service`; other targets (the Pushgateway) `job`.
                        let name = labels["service"].as_str().or(labels["job"].as_str());
                        name.unwrap_or("?").to_owned()
                    })
                    .collect();
                if down.is_empty() {
                    Verdict::pass(format!("{} targets up", series.len()))
                } else {
                    Verdict::fail(
                        format!("scrapes failing: {}", down.join(", ")),
                        "the service is down or its /metrics fails; check its readiness",
                    )
                }
            }
        }
    })
}

fn critical_alerts(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        match promql(
            target,
            "ALERTS{alertstate=\"firing\",severity=\"critical\"}",
        )
        .await
        {
            Err(verdict) => verdict,
            Ok(firing) if firing.is_empty() => Verdict::pass("no critical alert firing"),
            Ok(firing) => {
                let names: Vec<&str> = firing
                    .iter()
                    .filter_map(|a| a["metric"]["alertname"].as_str())
                    .collect();
                Verdict::fail(
                    format!("firing: {}", names.join(", ")),
                    "follow each alert's runbook (runbooks/)",
                )
            }
        }
    })
}

/// Whether a critical and a warning alert reach anyone, by the running Alertmanager's own
/// configuration. Nobody hearing `critical` fails a cloud environment: its pages would
/// reach nobody.
fn alert_receivers(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        if let Some(verdict) = unavailable(target, "alertmanager", || {
            Verdict::skipped("no Alertmanager in this environment")
        }) {
            return verdict;
        }
        let config = match target.get("alertmanager", "/api/v2/status", &[]).await {
            Ok(reply) if reply.is_success() => reply.json()["config"]["original"]
                .as_str()
                .map(str::to_owned),
            Ok(reply) => {
                return Verdict::fail(
                    format!("Alertmanager answered {}", reply.status),
                    "`shopctl logs alertmanager`; its pod's events say why",
                );
            }
            Err(err) => {
                return Verdict::fail(
                    format!("Alertmanager unreachable: {err}"),
                    "`shopctl status`; its pod's events say why",
                );
            }
        };
        let Some(config) = config else {
            return Verdict::fail(
                "Alertmanager's status has no configuration",
                "check the alertmanager-config Secret",
            );
        };
        let hint = "add a receiver for the severity under observability.alerting.receivers in \
                    the environment file, set its destination secret (alert_receiver_<name>), \
                    then `shopctl apply`";
        let mut heard = Vec::new();
        for severity in ["critical", "warning"] {
            let reaching: Vec<String> =
                match alert_routes::receivers_for(&config, &[("severity", severity)]) {
                    Ok(found) => found
                        .into_iter()
                        .filter(|(_, reaches)| *reaches)
                        .map(|(name, _)| name)
                        .collect(),
                    Err(err) => return Verdict::fail(err, "check the alertmanager-config Secret"),
                };
            if reaching.is_empty() {
                let detail = format!("no receiver hears {severity} alerts: they reach nobody");
                let cloud = target
                    .cluster()
                    .and_then(|s| s.environment.as_ref())
                    .is_some_and(|env| env.cluster.provider == Provider::Eks);
                return if severity == "critical" && cloud {
                    Verdict::fail(detail, hint)
                } else {
                    Verdict::warn(detail, hint)
                };
            }
            heard.push(format!("{severity} → {}", reaching.join(", ")));
        }
        Verdict::pass(heard.join("; "))
    })
}

/// An SLI against its objective; no data yet is a warning, not a failure.
async fn slo(
    target: &dyn Target,
    record: &str,
    objective: f64,
    describe: fn(f64) -> String,
) -> Verdict {
    match promql(target, record).await {
        Err(verdict) => verdict,
        Ok(series) => match series
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
        {
            None => Verdict::warn(
                format!("{record} has no data yet"),
                "the SLI needs a few minutes of traffic",
            ),
            Some(value) if value.is_nan() => Verdict::warn(
                format!("{record} has no traffic to measure"),
                "send some traffic",
            ),
            Some(value) if value <= objective => Verdict::pass(describe(value)),
            Some(value) => Verdict::fail(
                describe(value),
                "outside the SLO: see templates/observability/SLOS.md and the matching runbook",
            ),
        },
    }
}

fn slo_availability(target: &dyn Target) -> CheckFuture<'_> {
    let budget = 1.0 - crate::slo::AVAILABILITY;
    Box::pin(slo(target, "slo:api_errors:ratio_rate5m", budget, |v| {
        format!(
            "{:.3}% of API requests failed (SLO: at most {:.1}%)",
            v * 100.0,
            (1.0 - crate::slo::AVAILABILITY) * 100.0
        )
    }))
}

fn slo_latency(target: &dyn Target) -> CheckFuture<'_> {
    let objective = crate::slo::PRODUCT_READ_P95;
    Box::pin(slo(
        target,
        "slo:product_read_latency:p95_5m",
        objective.as_secs_f64(),
        |v| {
            format!(
                "product reads p95 {:.0} ms (SLO: under {} ms)",
                v * 1000.0,
                crate::slo::PRODUCT_READ_P95.as_millis()
            )
        },
    ))
}
