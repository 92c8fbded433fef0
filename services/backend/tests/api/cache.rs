use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopmicro_common::secret::Secret;
use shopmicro_common::testing::closed_port;

use crate::helpers::{Running, TestApp, error_code, metric_value, spawn_app, spawn_app_with};
use crate::query_counter::QueryCounter;

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

fn reads_from(metrics: &str, source: &str) -> f64 {
    metric_value(metrics, "catalogue_reads_total", &[("source", source)]).unwrap_or(0.0)
}

#[tokio::test]
async fn catalogue_answers_are_loaded_once_then_served_from_memory() {
    let app = spawn_app().await;
    for path in [
        "/products/1",
        "/products?limit=5&sort=price_desc",
        "/categories",
    ] {
        let first = app.get(path).await;
        assert_eq!(
            first.headers()["content-type"],
            "application/json",
            "{path} is JSON from the database"
        );
        let first: Value = first.json().await.unwrap();
        let second = app.get(path).await;
        assert_eq!(second.headers()["content-type"], "application/json");
        assert_eq!(first, second.json::<Value>().await.unwrap(), "{path}");
    }
    let metrics = app.metrics().await;
    assert_eq!(reads_from(&metrics, "database"), 3.0, "{metrics}");
    assert_eq!(reads_from(&metrics, "memory"), 3.0, "{metrics}");
    assert_eq!(
        cache_count(&metrics, "get", "miss"),
        3.0,
        "Redis was asked first"
    );
}

#[tokio::test]
async fn a_second_replica_takes_answers_from_redis_not_the_database() {
    let app = spawn_app().await;
    let (_, first) = app.get_json("/products?limit=7&category=books").await;
    let replica = app.spawn_replica().await;
    let (status, on_replica) = app
        .get_json_from(&replica.address, "/products?limit=7&category=books")
        .await;
    assert_eq!((status, &on_replica), (200, &first));
    let metrics = app.metrics_from(&replica.admin_address).await;
    assert_eq!(reads_from(&metrics, "redis"), 1.0, "{metrics}");
    assert_eq!(reads_from(&metrics, "database"), 0.0, "{metrics}");
}

#[tokio::test]
async fn a_cold_listing_under_200_concurrent_readers_costs_one_query() {
    let app = spawn_app().await;
    // A replica whose every statement is counted on the wire, with Redis keys of its own so
    // nothing is warm for it.
    let counter = QueryCounter::start(app.config.database_url.expose()).await;
    let mut config = app.config.clone();
    config.database_url = counter.url.parse().unwrap();
    config.cache_prefix = format!("{}counted:", config.cache_prefix);
    let replica = Running::start(config).await;
    const LISTING: &str = "FROM products WHERE TRUE";
    assert_eq!(counter.executions_of(LISTING), 0);

    let path = "/products?limit=13&sort=name&category=home-kitchen";
    let readers: Vec<_> = (0..200)
        .map(|_| app.get_json_from(&replica.address, path))
        .collect();
    let answers = futures_util::future::join_all(readers).await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert!(
        answers.iter().all(|(_, page)| *page == answers[0].1),
        "every reader got the same page"
    );
    assert_eq!(answers[0].1["items"].as_array().unwrap().len(), 13);
    assert_eq!(
        counter.executions_of(LISTING),
        1,
        "one query reached PostgreSQL"
    );

    let metrics = app.metrics_from(&replica.admin_address).await;
    assert_eq!(reads_from(&metrics, "database"), 1.0, "{metrics}");
    assert_eq!(
        reads_from(&metrics, "shared") + reads_from(&metrics, "memory"),
        199.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn an_orders_stock_change_shows_on_the_next_read_on_every_replica() {
    let app = spawn_app().await;
    let replica = app.spawn_replica().await;
    let replicas = [app.address.clone(), replica.address.clone()];
    let stock = async |base: &str| {
        let (_, product) = app.get_json_from(base, "/products/5").await;
        let (_, page) = app.get_json_from(base, "/products?limit=10").await;
        let listed = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["id"] == 5)
            .expect("product 5 is on the first page")["stock"]
            .as_i64();
        (product["stock"].as_i64().unwrap(), listed.unwrap())
    };
    // Every layer warm on both replicas.
    for base in &replicas {
        stock(base).await;
        stock(base).await;
    }
    let (before, _) = stock(&replicas[0]).await;

    for round in 1..=4 {
        // Orders placed on each replica in turn.
        let response = app
            .client
            .post(format!("{}/orders", replicas[round % 2]))
            .json(&json!({"items": [{"product_id": 5, "quantity": 2}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let expected = before - 2 * round as i64;
        for base in &replicas {
            assert_eq!(
                stock(base).await,
                (expected, expected),
                "after order {round}, read from {base}"
            );
        }
    }
}

#[tokio::test]
async fn a_price_changed_in_sql_shows_within_the_sync_interval() {
    let app = spawn_app().await;
    let replica = app.spawn_replica().await;
    for base in [&app.address, &replica.address] {
        app.get_json_from(base, "/products/9").await;
        app.get_json_from(base, "/products/9").await;
    }
    sqlx::query("UPDATE products SET price_cents = 4242 WHERE id = 9")
        .execute(&app.db)
        .await
        .unwrap();
    // Nothing announces a change made in SQL: each replica's sync finds it (every second).
    for base in [&app.address, &replica.address] {
        assert!(
            price_becomes(&app, base, 9, 4242).await,
            "{base} still serves the old price"
        );
    }
}

#[tokio::test]
async fn a_missing_product_costs_one_query_until_the_catalogue_changes() {
    let app = spawn_app().await;
    let replica = app.spawn_replica().await;
    let missing = "/products/999999";
    for _ in 0..3 {
        let (status, body) = app.get_json(missing).await;
        assert_eq!((status, error_code(&body)), (404, "product_not_found"));
    }
    let metrics = app.metrics().await;
    assert_eq!(reads_from(&metrics, "database"), 1.0, "{metrics}");
    assert_eq!(reads_from(&metrics, "memory"), 2.0, "{metrics}");

    let (status, body) = app.get_json_from(&replica.address, missing).await;
    assert_eq!((status, error_code(&body)), (404, "product_not_found"));
    let metrics = app.metrics_from(&replica.admin_address).await;
    assert_eq!(
        reads_from(&metrics, "redis"),
        1.0,
        "the absence is shared: {metrics}"
    );
    assert_eq!(reads_from(&metrics, "database"), 0.0, "{metrics}");

    // A product created afterwards is a change of version, so no replica keeps hiding it.
    sqlx::query(
        "INSERT INTO products (id, name, category, description, price_cents, stock)
         OVERRIDING SYSTEM VALUE
         SELECT 999999, 'Late arrival', slug, 'Arrived after it was asked for', 1234, 3
         FROM categories LIMIT 1",
    )
    .execute(&app.db)
    .await
    .unwrap();
    for base in [&app.address, &replica.address] {
        assert!(
            price_becomes(&app, base, 999999, 1234).await,
            "{base} still answers 404"
        );
    }
}

/// Whether product `id` read from `base` shows `price_cents` within ten sync intervals.
async fn price_becomes(app: &TestApp, base: &str, id: i64, price_cents: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (_, product) = app.get_json_from(base, &format!("/products/{id}")).await;
        if product["price_cents"].as_i64() == Some(price_cents) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_database_restored_to_an_older_version_is_not_served_from_newer_cached_answers() {
    let app = spawn_app().await;
    let (_, before) = app.get_json("/products/11").await;
    // A restore in miniature: the data changes and the version goes back, as when the
    // database is replaced by a dump taken before the cached answers were made.
    let mut tx = app.db.begin().await.unwrap();
    for statement in [
        "ALTER TABLE products DISABLE TRIGGER products_change_the_catalogue",
        "UPDATE products SET price_cents = price_cents + 1 WHERE id = 11",
        "ALTER TABLE products ENABLE TRIGGER products_change_the_catalogue",
        "UPDATE catalogue_version SET version = version - 1000000",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let restored = before["price_cents"].as_i64().unwrap() + 1;
    // The sync finds the copy in Redis ahead of the database and brings it back down.
    assert!(
        price_becomes(&app, &app.address, 11, restored).await,
        "the pre-restore answer is still served"
    );
}

#[tokio::test]
async fn without_redis_every_change_shows_on_the_next_read() {
    let app = spawn_app_with(|config| config.redis_url = None).await;
    let replica = app.spawn_replica().await;
    for base in [&app.address, &replica.address] {
        app.get_json_from(base, "/products/9").await;
        app.get_json_from(base, "/products/9").await;
    }
    sqlx::query("UPDATE products SET price_cents = 4343 WHERE id = 9")
        .execute(&app.db)
        .await
        .unwrap();
    for base in [&app.address, &replica.address] {
        let (_, product) = app.get_json_from(base, "/products/9").await;
        assert_eq!(product["price_cents"], 4343, "{base}");
    }
    let metrics = app.metrics().await;
    assert!(
        reads_from(&metrics, "memory") >= 1.0,
        "memory still serves: {metrics}"
    );
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
    let (_, before) = app.get_json("/products/1").await;
    let replica = app.spawn_replica().await;
    assert_eq!(
        app.get_json_from(&replica.address, "/products/1").await.0,
        200
    );
    assert_eq!(
        cache_count(
            &app.metrics_from(&replica.admin_address).await,
            "get",
            "hit"
        ),
        1.0
    );

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
    // Versions come from PostgreSQL now: the change shows at once on both replicas.
    for base in [&app.address, &replica.address] {
        let (_, after) = app.get_json_from(base, "/products/1").await;
        assert_eq!(
            after["stock"].as_i64(),
            before["stock"].as_i64().map(|s| s - 1)
        );
    }
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

/// The version clients key their own caches by (the storefront's pages): it rises with any
/// change, and a backend that keeps no cache says it cannot tell rather than a number.
#[tokio::test]
async fn the_catalogue_version_rises_with_an_order_and_is_unknown_when_nothing_caches() {
    let app = spawn_app().await;
    let (status, before) = app.get_json("/catalogue/version").await;
    assert_eq!(status, 200, "{before}");
    let (status, _) = app
        .post_order(&json!({"items": [{"product_id": 3, "quantity": 1}]}), None)
        .await;
    assert_eq!(status, 201);
    let (_, after) = app.get_json("/catalogue/version").await;
    assert!(
        after["version"].as_i64().unwrap() > before["version"].as_i64().unwrap(),
        "{before} then {after}"
    );

    let uncached = spawn_app_with(|config| {
        config.redis_url = None;
        config.catalogue_memory_bytes = 0;
    })
    .await;
    let (status, body) = uncached.get_json("/catalogue/version").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("catalogue_version_unknown")),
        "{body}"
    );
}
