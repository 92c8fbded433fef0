//! Judging a canary: each service's SLIs per release track over the last interval, read
//! from Prometheus through the API server's service proxy, and the verdict against the
//! thresholds the SLO alerts use (`crate::slo`, held to SLOS.md) — never a verdict on too
//! few requests.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::Cluster;

/// One track's service level indicators over the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrackSli {
    /// Requests answered (probes and scrapes excluded).
    pub requests: f64,
    /// The share of them answered 5xx; None without requests.
    pub error_ratio: Option<f64>,
    /// p95 latency in seconds; None without requests.
    pub p95_seconds: Option<f64>,
}

impl TrackSli {
    /// "1.25%", or "-" without requests.
    pub fn errors_text(&self) -> String {
        self.error_ratio.map_or("-".into(), percent)
    }

    /// "42 ms", or "-" without requests.
    pub fn p95_text(&self) -> String {
        self.p95_seconds
            .map_or("-".into(), |p| format!("{:.0} ms", p * 1000.0))
    }
}

/// A service's indicators on both tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceSli {
    pub service: String,
    pub stable: TrackSli,
    pub canary: TrackSli,
}

/// What one analysis concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every canary met every threshold.
    Pass,
    /// A canary broke a threshold; each reason names the service, the value and the limit.
    Fail { reasons: Vec<String> },
    /// Not enough to judge (too few canary requests, or Prometheus unanswerable).
    WaitingForData { reason: String },
}

/// The limits a canary is held to.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A canary answering a larger share of 5xx fails (the `HighErrorRate` alert's limit).
    pub error_rate: f64,
    /// A canary under this availability fails when the stable track does better (the
    /// availability SLO: on a small sample one error is far below it, so only a canary
    /// worse than its stable twin is blamed).
    pub availability: f64,
    /// A canary whose p95 is over this fails (the latency SLO).
    pub p95: Duration,
    /// Fewer canary requests than this per service: no verdict.
    pub min_requests: u64,
}

impl Thresholds {
    /// The SLOs' thresholds, and the minimum sample the operator asked for.
    pub fn from_slos(min_requests: u64) -> Self {
        Self {
            error_rate: crate::slo::ERROR_RATE,
            availability: crate::slo::AVAILABILITY,
            p95: crate::slo::PRODUCT_READ_P95,
            min_requests,
        }
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

/// The verdict on every canaried service: waiting while any has too few requests, failed
/// when any breaks a threshold, else passed.
pub fn judge(services: &[ServiceSli], limits: &Thresholds) -> Verdict {
    let short: Vec<String> = services
        .iter()
        .filter(|s| s.canary.requests < limits.min_requests as f64)
        .map(|s| {
            format!(
                "{} canary answered {:.0} of the {} requests a verdict needs",
                s.service, s.canary.requests, limits.min_requests
            )
        })
        .collect();
    if !short.is_empty() {
        return Verdict::WaitingForData {
            reason: short.join("; "),
        };
    }
    let mut reasons = Vec::new();
    for service in services {
        let name = &service.service;
        let canary_errors = service.canary.error_ratio.unwrap_or(0.0);
        let stable_errors = service.stable.error_ratio;
        if canary_errors > limits.error_rate {
            reasons.push(format!(
                "{name} canary answered {} 5xx (limit {}; stable {})",
                percent(canary_errors),
                percent(limits.error_rate),
                service.stable.errors_text()
            ));
        } else if 1.0 - canary_errors < limits.availability
            && stable_errors.is_none_or(|stable| canary_errors > stable)
        {
            reasons.push(format!(
                "{name} canary availability {} is under the {} objective and worse than stable's {}",
                percent(1.0 - canary_errors),
                percent(limits.availability),
                stable_errors.map_or("(no requests)".into(), |e| percent(1.0 - e))
            ));
        }
        if let Some(p95) = service.canary.p95_seconds
            && p95 > limits.p95.as_secs_f64()
        {
            reasons.push(format!(
                "{name} canary p95 {:.0} ms is over the {} ms objective (stable {})",
                p95 * 1000.0,
                limits.p95.as_millis(),
                service.stable.p95_text()
            ));
        }
    }
    if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail { reasons }
    }
}

/// The Service (and its port) Prometheus answers on, in the monitoring namespace; a
/// render test holds it to the rendered manifests.
pub const PROMETHEUS_SERVICE: (&str, &str) = ("prometheus", "http");

/// Where Prometheus answers: its Service in the monitoring namespace.
pub struct Prometheus<'a> {
    pub cluster: &'a Cluster,
    pub namespace: String,
}

impl Prometheus<'_> {
    /// The `data` of Prometheus's answer to `path`, when it says it succeeded.
    async fn data(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let (status, body) = crate::cluster::proxy::get(
            &self.cluster.client,
            &self.namespace,
            PROMETHEUS_SERVICE.0,
            PROMETHEUS_SERVICE.1,
            path,
            params,
        )
        .await?;
        let mut reply: Value = serde_json::from_str(&body)
            .map_err(|_| format!("Prometheus answered {status} with no JSON"))?;
        if reply["status"] != "success" {
            return Err(format!(
                "Prometheus answered {status}: {}",
                reply["error"].as_str().unwrap_or("no error given")
            ));
        }
        Ok(reply["data"].take())
    }

    /// Each series of an instant query as (its labels, its value).
    async fn query(&self, expr: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
        let data = self.data("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| {
                let labels = serde_json::from_value(series["metric"].clone()).ok()?;
                let value = series["value"][1].as_str()?.parse::<f64>().ok()?;
                Some((labels, value))
            })
            .collect())
    }

    /// The longest scrape interval in the configuration Prometheus has loaded. Prometheus
    /// writes every job's own interval into it, the global one filled in where a job sets
    /// none.
    pub async fn scrape_interval(&self) -> Result<Duration, String> {
        let data = self.data("/api/v1/status/config", &[]).await?;
        let yaml = data["yaml"]
            .as_str()
            .ok_or("Prometheus answered without its configuration")?;
        longest_scrape_interval(yaml)
    }

    /// Every service's SLIs per track in `namespace` over the last `window`.
    pub async fn measure(
        &self,
        namespace: &str,
        services: &[String],
        window: Duration,
    ) -> Result<Vec<ServiceSli>, String> {
        let selector = format!(
            "namespace=\"{namespace}\",service=~\"{}\",track=~\"stable|canary\",route!~\"/healthz|/readyz|/metrics\"",
            services.join("|")
        );
        let window = format!("{}s", window.as_secs().max(1));
        let requests = self
            .query(&format!(
                "sum by (service, track) (increase(http_requests_total{{{selector}}}[{window}]))"
            ))
            .await?;
        let errors = self
            .query(&format!(
                "sum by (service, track) (increase(http_requests_total{{{selector},status=~\"5..\"}}[{window}]))"
            ))
            .await?;
        let p95 = self
            .query(&format!(
                "histogram_quantile(0.95, sum by (service, track, le) (rate(http_request_duration_seconds_bucket{{{selector}}}[{window}])))"
            ))
            .await?;
        Ok(combine(services, &requests, &errors, &p95))
    }
}

/// What of Prometheus's configuration says how often it scrapes.
#[derive(Deserialize)]
struct LoadedConfig {
    #[serde(default)]
    global: ScrapeSettings,
    #[serde(default)]
    scrape_configs: Vec<ScrapeSettings>,
}

#[derive(Deserialize, Default)]
struct ScrapeSettings {
    scrape_interval: Option<String>,
}

/// The longest scrape interval in a Prometheus configuration: the jobs' own, else the
/// global one, else Prometheus's default of a minute.
pub fn longest_scrape_interval(yaml: &str) -> Result<Duration, String> {
    let config: LoadedConfig = serde_saphyr::from_str(yaml)
        .map_err(|err| format!("Prometheus's configuration did not parse: {err}"))?;
    let global = match &config.global.scrape_interval {
        Some(text) => prometheus_duration(text)?,
        None => Duration::from_secs(60),
    };
    config
        .scrape_configs
        .iter()
        .map(|job| {
            job.scrape_interval
                .as_deref()
                .map_or(Ok(global), prometheus_duration)
        })
        .try_fold(global, |longest, interval| Ok(longest.max(interval?)))
}

/// A duration as Prometheus writes one: `15s`, `1m30s`, `500ms`, `1h`, `2d`.
pub fn prometheus_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a Prometheus duration");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let count: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let after = &rest[digits..];
        let unit = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let seconds = match &after[..unit] {
            "ms" => {
                total += Duration::from_millis(count);
                0
            }
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "y" => 31_536_000,
            _ => return Err(invalid()),
        };
        total += Duration::from_secs(count.saturating_mul(seconds));
        rest = &after[unit..];
    }
    Ok(total)
}

type Series = [(BTreeMap<String, String>, f64)];

/// The three queries' series, per service and track.
fn combine(
    services: &[String],
    requests: &Series,
    errors: &Series,
    p95: &Series,
) -> Vec<ServiceSli> {
    let find = |series: &Series, service: &str, track: &str| {
        series
            .iter()
            .find(|(labels, _)| {
                labels.get("service").map(String::as_str) == Some(service)
                    && labels.get("track").map(String::as_str) == Some(track)
            })
            .map(|(_, value)| *value)
            .filter(|value| value.is_finite())
    };
    let track = |service: &str, track: &str| {
        let requests = find(requests, service, track).unwrap_or(0.0);
        let answered = requests > 0.0;
        TrackSli {
            requests,
            error_ratio: answered.then(|| find(errors, service, track).unwrap_or(0.0) / requests),
            p95_seconds: answered.then(|| find(p95, service, track)).flatten(),
        }
    };
    services
        .iter()
        .map(|service| ServiceSli {
            service: service.clone(),
            stable: track(service, "stable"),
            canary: track(service, "canary"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sli(requests: f64, errors: f64, p95_ms: f64) -> TrackSli {
        TrackSli {
            requests,
            error_ratio: (requests > 0.0).then(|| errors / requests),
            p95_seconds: (requests > 0.0).then(|| p95_ms / 1000.0),
        }
    }

    fn backend(stable: TrackSli, canary: TrackSli) -> Vec<ServiceSli> {
        vec![ServiceSli {
            service: "backend".into(),
            stable,
            canary,
        }]
    }

    fn limits() -> Thresholds {
        Thresholds::from_slos(50)
    }

    #[test]
    fn too_few_canary_requests_is_never_a_verdict_however_bad_they_look() {
        let verdict = judge(
            &backend(sli(500.0, 0.0, 10.0), sli(49.0, 49.0, 900.0)),
            &limits(),
        );
        let Verdict::WaitingForData { reason } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reason.contains("backend canary answered 49 of the 50"),
            "{reason}"
        );
    }

    #[test]
    fn a_canary_over_the_error_rate_alert_threshold_fails_with_its_values() {
        let verdict = judge(
            &backend(sli(500.0, 0.0, 10.0), sli(100.0, 12.0, 10.0)),
            &limits(),
        );
        assert_eq!(
            verdict,
            Verdict::Fail {
                reasons: vec![
                    "backend canary answered 12.00% 5xx (limit 5.00%; stable 0.00%)".into()
                ]
            }
        );
    }

    #[test]
    fn availability_under_the_objective_fails_only_when_stable_does_better() {
        // One error in 200: 99.5 %, under 99.9 %, but not over the 5 % alert threshold.
        let canary = sli(200.0, 1.0, 10.0);
        let verdict = judge(&backend(sli(1000.0, 0.0, 10.0), canary.clone()), &limits());
        assert!(
            matches!(&verdict, Verdict::Fail { reasons } if reasons[0].contains("availability 99.50%")),
            "{verdict:?}"
        );
        // The stable track fails as often: the canary is not to blame.
        let verdict = judge(&backend(sli(1000.0, 10.0, 10.0), canary), &limits());
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn a_canary_over_the_latency_objective_fails() {
        let verdict = judge(
            &backend(sli(500.0, 0.0, 20.0), sli(100.0, 0.0, 450.0)),
            &limits(),
        );
        assert_eq!(
            verdict,
            Verdict::Fail {
                reasons: vec![
                    "backend canary p95 450 ms is over the 300 ms objective (stable 20 ms)".into()
                ]
            }
        );
    }

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        let read = |text| prometheus_duration(text).unwrap();
        assert_eq!(read("15s"), Duration::from_secs(15));
        assert_eq!(read("1m30s"), Duration::from_secs(90));
        assert_eq!(read("500ms"), Duration::from_millis(500));
        assert_eq!(read("1h"), Duration::from_secs(3_600));
        assert_eq!(read("2d"), Duration::from_secs(172_800));
        for bad in ["", "15", "s", "1.5s", "15sec", "-1s"] {
            assert!(prometheus_duration(bad).is_err(), "{bad:?} was read");
        }
    }

    #[test]
    fn the_longest_scrape_interval_is_a_jobs_own_else_the_global_else_a_minute() {
        let config = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 30s\n  - job_name: b\n";
        assert_eq!(
            longest_scrape_interval(config).unwrap(),
            Duration::from_secs(30)
        );
        let global_only = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n";
        assert_eq!(
            longest_scrape_interval(global_only).unwrap(),
            Duration::from_secs(15)
        );
        assert_eq!(
            longest_scrape_interval("scrape_configs: []\n").unwrap(),
            Duration::from_secs(60)
        );
        assert!(longest_scrape_interval("global:\n  scrape_interval: often\n").is_err());
    }

    #[test]
    fn series_are_matched_by_service_and_track_and_absent_ones_mean_no_requests() {
        let labels = |service: &str, track: &str| {
            BTreeMap::from([
                ("service".to_string(), service.to_string()),
                ("track".to_string(), track.to_string()),
            ])
        };
        let requests = [
            (labels("backend", "stable"), 300.0),
            (labels("backend", "canary"), 60.0),
        ];
        let errors = [(labels("backend", "canary"), 6.0)];
        let p95 = [
            (labels("backend", "stable"), 0.012),
            (labels("backend", "canary"), f64::NAN),
        ];
        let services = ["backend".to_string(), "ml".to_string()];
        let combined = combine(&services, &requests, &errors, &p95);
        assert_eq!(combined[0].stable, sli(300.0, 0.0, 12.0));
        assert_eq!(combined[0].canary.error_ratio, Some(0.1));
        assert_eq!(combined[0].canary.p95_seconds, None);
        assert_eq!(combined[1].canary, TrackSli::default());
    }
}
