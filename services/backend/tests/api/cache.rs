use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use shopmicro_common::secret::Secret;
use shopmicro_common::testing::closed_port;

use crate::helpers::{metric_value, spawn_app, spawn_app_with};

/// A redis-server of this test's own, so stopping it affects no other test.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = closed_port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server is installed (the README's test command installs it)");
        // Ready once it says so: no guessing with sleeps.
        let stdout = child.stdout.take().expect("piped stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        assert!(ready, "redis-server did not start");
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cache_count(metrics: &str, operation: &str, result: &str) -> f64 {
    metric_value(
        metrics,
        "cache_operations_total",
        &[("operation", operation), ("result", result)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn product_reads_are_cached_and_hits_are_counted() {
    let app = spawn_app().await;
    let (_, first) = app.get_json("/products/1").await;
    let (_, second) = app.get_json("/products/1").await;
    assert_eq!(first, second);
    let metrics = app.metrics().await;
    assert_eq!(cache_count(&metrics, "get", "miss"), 1.0);
    assert_eq!(cache_count(&metrics, "get", "hit"), 1.0);
}

#[tokio::test]
async fn an_order_invalidates_the_cached_products_it_changed() {
    let app = spawn_app().await;
    let (_, before) = app.get_json("/products/5").await;
    let (status, _) = app
        .post_order(&json!({"items": [{"product_id": 5, "quantity": 2}]}), None)
        .await;
    assert_eq!(status, 201);
    let (_, after) = app.get_json("/products/5").await;
    assert_eq!(
        after["stock"].as_i64().unwrap(),
        before["stock"].as_i64().unwrap() - 2
    );
}

#[tokio::test]
async fn redis_stopping_mid_run_fails_no_request() {
    let mut redis = PrivateRedis::start();
    let url = redis.url.clone();
    let app = spawn_app_with(|config| config.redis_url = Some(Secret::new(url))).await;
    assert_eq!(app.get_json("/products/1").await.0, 200);
    assert_eq!(app.get_json("/products/1").await.0, 200);
    assert_eq!(cache_count(&app.metrics().await, "get", "hit"), 1.0);

    redis.stop();

    for path in [
        "/products/1",
        "/products/2",
        "/products?limit=5",
        "/products/3/recommendations",
    ] {
        assert_eq!(app.get_json(path).await.0, 200, "{path} with Redis gone");
    }
    let (status, _) = app
        .post_order(&json!({"items": [{"product_id": 1, "quantity": 1}]}), None)
        .await;
    assert_eq!(status, 201);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "Redis is optional for readiness");
    assert_eq!(ready["redis"], "unavailable");
    let metrics = app.metrics().await;
    assert!(
        cache_count(&metrics, "get", "error") >= 1.0,
        "fallbacks are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_from_the_start_is_not_an_outage() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let app = spawn_app_with(|config| config.redis_url = Some(Secret::new(url))).await;
    assert_eq!(app.get_json("/products/1").await.0, 200);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(
        (status, ready["redis"].as_str()),
        (200, Some("unavailable"))
    );
}

#[tokio::test]
async fn without_redis_url_the_cache_is_disabled() {
    let app = spawn_app_with(|config| config.redis_url = None).await;
    assert_eq!(app.get_json("/products/1").await.0, 200);
    assert_eq!(app.get_json("/readyz").await.1["redis"], "disabled");
}
