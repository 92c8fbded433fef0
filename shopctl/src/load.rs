//! `shopctl load`: an open-model load generator with an SLO verdict.
//!
//! Requests are sent at a constant arrival rate, and each one's latency is measured from
//! the time it was *meant* to be sent, as wrk2 and k6's constant-arrival-rate executor do:
//! when the server stalls, the requests that should have gone out meanwhile wait in the
//! queue and their wait counts, so a stall shows in the tail instead of hiding behind the
//! few connections that were stuck (coordinated omission). Latencies go into an HDR
//! histogram per route. Every run is bounded in time and in count, and sends only to the
//! addresses it is given (the environment's own).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::time::Instant;

/// The most a run may send, whatever rate and duration ask for.
pub const MAX_REQUESTS: u64 = 1_000_000;
/// The longest a run may last.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// How long requests still in flight at the end may take before they count as timed out.
const GRACE: Duration = Duration::from_secs(10);
/// Products the demo catalogue has (ids 1..=240).
const PRODUCTS: u64 = 240;

/// A weighted mix of what shoppers and API clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Backend API reads: listings, product details, categories.
    Api,
    /// Shoppers browsing the storefront: catalogue, search, product pages (which ask ml
    /// for recommendations).
    Browse,
    /// Browsing, adding to carts and ordering through the API (writes: orders are made).
    Shop,
    /// One backend read only, `GET /products?limit=20`: the same request every time, to
    /// compare with another load generator (see `shopctl/benches/load-vs-wrk.sh`).
    Listing,
}

/// Where a run sends: the environment's storefront and (locally) its backend API.
#[derive(Debug, Clone)]
pub struct Targets {
    pub storefront: String,
    pub backend: Option<String>,
}

/// One kind of request.
#[derive(Debug, Clone, Copy)]
struct Route {
    name: &'static str,
    weight: u32,
    /// A product read (listing or product page) the latency SLO is about.
    product_read: bool,
    build: fn(&Targets, u64) -> Option<Request>,
}

#[derive(Debug, Clone)]
struct Request {
    method: reqwest::Method,
    url: String,
    body: Option<(String, &'static str)>,
}

fn get(url: String) -> Option<Request> {
    Some(Request {
        method: reqwest::Method::GET,
        url,
        body: None,
    })
}

fn product(draw: u64) -> u64 {
    draw % PRODUCTS + 1
}

const API: [Route; 3] = [
    Route {
        name: "GET /products",
        weight: 6,
        product_read: true,
        build: |t, _| get(format!("{}/products?limit=20", t.backend.as_ref()?)),
    },
    Route {
        name: "GET /products/{id}",
        weight: 3,
        product_read: true,
        build: |t, draw| {
            get(format!(
                "{}/products/{}",
                t.backend.as_ref()?,
                product(draw)
            ))
        },
    },
    Route {
        name: "GET /categories",
        weight: 1,
        product_read: false,
        build: |t, _| get(format!("{}/categories", t.backend.as_ref()?)),
    },
];

const LISTING: [Route; 1] = [API[0]];

const BROWSE: [Route; 3] = [
    Route {
        name: "GET / (catalogue)",
        weight: 4,
        product_read: true,
        build: |t, _| get(format!("{}/", t.storefront)),
    },
    Route {
        name: "GET /?q= (search)",
        weight: 2,
        product_read: true,
        build: |t, draw| {
            let words = ["lamp", "mug", "desk", "chair", "blue"];
            get(format!(
                "{}/?q={}",
                t.storefront,
                words[draw as usize % words.len()]
            ))
        },
    },
    Route {
        name: "GET /products/{id} (page)",
        weight: 4,
        product_read: true,
        build: |t, draw| get(format!("{}/products/{}", t.storefront, product(draw))),
    },
];

const SHOP: [Route; 3] = [
    Route {
        name: "POST /cart/items",
        weight: 2,
        product_read: false,
        build: |t, draw| {
            Some(Request {
                method: reqwest::Method::POST,
                url: format!("{}/cart/items", t.storefront),
                body: Some((
                    format!("product_id={}&quantity=1", product(draw)),
                    "application/x-www-form-urlencoded",
                )),
            })
        },
    },
    Route {
        name: "POST /orders",
        weight: 1,
        product_read: false,
        build: |t, draw| {
            Some(Request {
                method: reqwest::Method::POST,
                url: format!("{}/orders", t.backend.as_ref()?),
                body: Some((
                    format!(
                        r#"{{"items": [{{"product_id": {}, "quantity": 1}}]}}"#,
                        product(draw)
                    ),
                    "application/json",
                )),
            })
        },
    },
    Route {
        name: "GET / (catalogue)",
        weight: 7,
        product_read: true,
        build: |t, _| get(format!("{}/", t.storefront)),
    },
];

impl Scenario {
    fn routes(self) -> &'static [Route] {
        match self {
            Scenario::Api => &API,
            Scenario::Browse => &BROWSE,
            Scenario::Shop => &SHOP,
            Scenario::Listing => &LISTING,
        }
    }

    /// Whether `targets` has what the scenario sends to.
    pub fn check(self, targets: &Targets) -> anyhow::Result<()> {
        for route in self.routes() {
            anyhow::ensure!(
                (route.build)(targets, 0).is_some(),
                "the {self:?} scenario sends `{}` to the backend API, which this environment does not expose; the browse scenario reaches the storefront",
                route.name
            );
        }
        Ok(())
    }

    /// The route for the `n`th arrival: the weights, spread evenly over the run.
    fn pick(self, draw: u64) -> &'static Route {
        let routes = self.routes();
        let total: u64 = routes.iter().map(|r| u64::from(r.weight)).sum();
        let mut slot = draw % total;
        for route in routes {
            if slot < u64::from(route.weight) {
                return route;
            }
            slot -= u64::from(route.weight);
        }
        &routes[0]
    }
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    /// Requests per second, sent on schedule whatever the answers take.
    pub rate: f64,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Sent but not measured: connections opened, caches filled.
    pub warmup: Duration,
    /// Requests in flight at most (connections in the pool).
    pub connections: usize,
    /// A request taking longer than this is a timeout.
    pub timeout: Duration,
}

impl Plan {
    /// The run's bounds, checked before anything is sent.
    pub fn check(&self) -> anyhow::Result<u64> {
        anyhow::ensure!(
            self.rate > 0.0 && self.rate.is_finite(),
            "--rate must be a positive number of requests per second"
        );
        anyhow::ensure!(
            self.connections > 0 && self.connections <= 1024,
            "--connections must be between 1 and 1024"
        );
        anyhow::ensure!(
            !self.duration.is_zero() && self.duration + self.warmup <= MAX_DURATION,
            "a run lasts between 1 ms and {} s, warm-up included",
            MAX_DURATION.as_secs()
        );
        let requests = (self.rate * (self.duration + self.warmup).as_secs_f64()).ceil() as u64;
        anyhow::ensure!(
            requests <= MAX_REQUESTS,
            "{requests} requests is more than one run may send ({MAX_REQUESTS}); lower --rate or --duration"
        );
        Ok(requests)
    }
}

/// What a run is doing, for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub planned: u64,
}

/// `shopctl load --output json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LoadReport {
    pub environment: String,
    pub scenario: Scenario,
    /// The arrival rate asked for, and the rate answers completed at.
    pub rate: f64,
    pub achieved_rate: f64,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub connections: usize,
    /// Measured requests (the warm-up's are not counted).
    pub requests: u64,
    pub routes: Vec<RouteReport>,
    pub verdict: Verdict,
}

/// One route's answers; latencies in milliseconds from the intended send time.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RouteReport {
    pub route: String,
    pub requests: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Failures by kind: `5xx`, `4xx`, `timeout`, `connect`, `other`.
    pub errors: BTreeMap<String, u64>,
}

/// The run against the platform's SLOs (`shopctl::slo`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Verdict {
    /// Share of requests not failed by the platform (5xx, timeouts, connection errors).
    pub availability: f64,
    pub availability_objective: f64,
    /// p95 of the product reads, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_read_p95_ms: Option<f64>,
    pub product_read_p95_objective_ms: f64,
    pub passed: bool,
    /// What broke the SLOs, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

/// What one route has seen so far.
struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // Microseconds, up to an hour, three significant digits.
            latencies: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }
}

/// A failure that is not an HTTP status, by kind.
fn kind_of(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "other"
    }
}

/// The kinds of failure that count against availability (a 4xx is the client's).
fn platform_failure(kind: &str) -> bool {
    kind != "4xx"
}

/// Sends one request; its failure kind, if it failed. An answer counts once its body
/// has arrived.
async fn send(client: &reqwest::Client, request: Request) -> Option<&'static str> {
    let mut builder = client.request(request.method, &request.url);
    if let Some((body, content_type)) = request.body {
        builder = builder
            .header("content-type", content_type)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .body(body);
    }
    match builder.send().await {
        Ok(response) => {
            let status = response.status();
            match response.bytes().await {
                Err(err) => Some(kind_of(&err)),
                Ok(_) if status.is_server_error() => Some("5xx"),
                Ok(_) if status.is_client_error() => Some("4xx"),
                Ok(_) => None,
            }
        }
        Err(err) => Some(kind_of(&err)),
    }
}

/// Runs `plan` against `targets`; `progress` hears about it twice a second.
pub async fn run(
    environment: &str,
    plan: &Plan,
    targets: &Targets,
    progress: impl Fn(Live),
) -> anyhow::Result<LoadReport> {
    let planned = plan.check()?;
    plan.scenario.check(targets)?;
    let client = reqwest::Client::builder()
        .timeout(plan.timeout)
        .pool_max_idle_per_host(plan.connections)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let tallies: Mutex<BTreeMap<&'static str, Tally>> = Mutex::default();
    let live = Mutex::new(Live {
        planned,
        ..Live::default()
    });
    let start = Instant::now() + Duration::from_millis(50);
    let measured_from = start + plan.warmup;
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let due = |n: u64| start + interval.mul_f64(n as f64);

    // The schedule: arrival n is meant to leave at start + n × interval, and waits in the
    // queue for a free connection when none is.
    let (queue, jobs) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let jobs = tokio::sync::Mutex::new(jobs);
    let schedule = async move {
        for n in 0..planned {
            tokio::time::sleep_until(due(n)).await;
            if queue.send(n).is_err() {
                break;
            }
        }
    };
    let worker = || async {
        loop {
            let next = jobs.lock().await.recv().await;
            let Some(n) = next else { break };
            let route = plan.scenario.pick(n);
            let Some(request) = (route.build)(targets, spread(n)) else {
                continue;
            };
            live.lock().unwrap_or_else(|p| p.into_inner()).sent += 1;
            let kind = send(&client, request).await;
            // From the time it was meant to leave: queueing behind a stall counts.
            let latency = due(n).elapsed();
            {
                let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
                live.completed += 1;
                live.failed += u64::from(kind.is_some_and(platform_failure));
            }
            if due(n) >= measured_from {
                let mut tallies = tallies.lock().unwrap_or_else(|p| p.into_inner());
                let tally = tallies.entry(route.name).or_insert_with(Tally::new);
                tally
                    .latencies
                    .saturating_record(latency.as_micros().max(1) as u64);
                if let Some(kind) = kind {
                    *tally.errors.entry(kind.to_owned()).or_default() += 1;
                }
            }
        }
    };
    let workers = futures_util::future::join_all((0..plan.connections).map(|_| worker()));
    let ticker = async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            progress(*live.lock().unwrap_or_else(|p| p.into_inner()));
        }
    };
    let deadline = measured_from + plan.duration + GRACE;
    tokio::select! {
        _ = async { tokio::join!(schedule, workers) } => {}
        () = tokio::time::sleep_until(deadline) => {}
        () = ticker => {}
    }
    progress(*live.lock().unwrap_or_else(|p| p.into_inner()));

    // Arrivals still unanswered at the deadline count as timeouts of their routes.
    let mut tallies = tallies.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut expected: BTreeMap<&'static str, u64> = BTreeMap::new();
    for n in (0..planned).filter(|n| due(*n) >= measured_from) {
        *expected.entry(plan.scenario.pick(n).name).or_default() += 1;
    }
    for (route, count) in &expected {
        let tally = tallies.entry(route).or_insert_with(Tally::new);
        let answered = tally.latencies.len();
        if *count > answered {
            *tally.errors.entry("timeout".to_owned()).or_default() += count - answered;
        }
    }
    Ok(report(environment, plan, &tallies, &expected))
}

fn report(
    environment: &str,
    plan: &Plan,
    tallies: &BTreeMap<&'static str, Tally>,
    expected: &BTreeMap<&'static str, u64>,
) -> LoadReport {
    let ms = |histogram: &Histogram<u64>, quantile: f64| {
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    };
    let mut routes = Vec::new();
    let mut requests = 0;
    let mut answered = 0;
    let mut failed = 0;
    let mut product_reads =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
    for (route, tally) in tallies {
        let count = expected.get(route).copied().unwrap_or(0);
        requests += count;
        answered += tally.latencies.len();
        failed += tally
            .errors
            .iter()
            .filter(|(kind, _)| platform_failure(kind))
            .map(|(_, n)| n)
            .sum::<u64>();
        if plan
            .scenario
            .routes()
            .iter()
            .any(|r| r.name == *route && r.product_read)
        {
            let _ = product_reads.add(&tally.latencies);
        }
        routes.push(RouteReport {
            route: (*route).to_owned(),
            requests: count,
            p50_ms: ms(&tally.latencies, 0.50),
            p90_ms: ms(&tally.latencies, 0.90),
            p95_ms: ms(&tally.latencies, 0.95),
            p99_ms: ms(&tally.latencies, 0.99),
            max_ms: tally.latencies.max() as f64 / 1000.0,
            errors: tally.errors.clone(),
        });
    }
    let availability = if requests == 0 {
        1.0
    } else {
        1.0 - failed as f64 / requests as f64
    };
    let product_read_p95_ms = (!product_reads.is_empty()).then(|| ms(&product_reads, 0.95));
    let objective_ms = crate::slo::PRODUCT_READ_P95.as_secs_f64() * 1000.0;
    let mut violations = Vec::new();
    if availability < crate::slo::AVAILABILITY {
        violations.push(format!(
            "availability {:.3}% is below the SLO's {:.1}%",
            availability * 100.0,
            crate::slo::AVAILABILITY * 100.0
        ));
    }
    if let Some(p95) = product_read_p95_ms.filter(|p95| *p95 > objective_ms) {
        violations.push(format!(
            "product reads' p95 {p95:.0} ms is above the SLO's {objective_ms:.0} ms"
        ));
    }
    LoadReport {
        environment: environment.to_owned(),
        scenario: plan.scenario,
        rate: plan.rate,
        achieved_rate: answered as f64 / plan.duration.as_secs_f64(),
        duration_seconds: plan.duration.as_secs_f64(),
        warmup_seconds: plan.warmup.as_secs_f64(),
        connections: plan.connections,
        requests,
        routes,
        verdict: Verdict {
            availability,
            availability_objective: crate::slo::AVAILABILITY,
            product_read_p95_ms,
            product_read_p95_objective_ms: objective_ms,
            passed: violations.is_empty(),
            violations,
        },
    }
}

/// Spreads arrival numbers over products and words, so consecutive arrivals differ.
fn spread(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_the_weights_and_bounds_are_checked_before_sending() {
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for n in 0..1000 {
            *seen.entry(Scenario::Api.pick(n).name).or_default() += 1;
        }
        assert_eq!(seen["GET /products"], 600);
        assert_eq!(seen["GET /products/{id}"], 300);
        assert_eq!(seen["GET /categories"], 100);

        let plan = Plan {
            scenario: Scenario::Api,
            rate: 10_000.0,
            duration: Duration::from_secs(500),
            warmup: Duration::ZERO,
            connections: 8,
            timeout: Duration::from_secs(5),
        };
        assert!(
            plan.check()
                .unwrap_err()
                .to_string()
                .contains("more than one run may send")
        );
        let storefront_only = Targets {
            storefront: "http://127.0.0.1:1".into(),
            backend: None,
        };
        assert!(Scenario::Api.check(&storefront_only).is_err());
        assert!(Scenario::Browse.check(&storefront_only).is_ok());
    }
}
