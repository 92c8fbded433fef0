use std::num::NonZeroU32;
use std::process::Command;

use shopmicro_backend::config::Migrations;
use shopmicro_backend::{Application, Config, db, seed};
use shopmicro_common::config::Env;
use shopmicro_common::testing::{TestDatabase, closed_port};

use crate::helpers::{error_code, metric_value, spawn_app, test_config};

#[tokio::test]
async fn healthz_answers_while_the_process_lives() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn readyz_reports_postgres_and_redis() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["ml"], "disabled");
}

#[tokio::test]
async fn startup_fails_clearly_when_postgres_is_unreachable_and_hides_the_password() {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database);
    let url = format!(
        "postgres://shop:SuperSecret1@127.0.0.1:{}/shop",
        closed_port()
    );
    config.database_url = url.parse().unwrap();
    let err = Application::build(config)
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{err:#}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(!message.contains("SuperSecret1"), "{message}");
}

/// On the platform the schema owner migrates (`shopmicro-backend migrate`, an init
/// container) and the backend only checks: it refuses a schema it was not built for, and
/// names the command that fixes it.
#[tokio::test]
async fn a_backend_that_only_verifies_refuses_an_unmigrated_schema_and_says_what_to_run() {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database);
    config.migrations = Migrations::Verify;
    let err = Application::build(config.clone())
        .await
        .err()
        .expect("an empty database is refused");
    let message = format!("{err:#}");
    assert!(message.contains("shopmicro-backend migrate"), "{message}");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&db::pool(&config.database_url, NonZeroU32::MIN).unwrap())
            .await
            .unwrap();
    assert_eq!(tables, 0, "verifying changed nothing");

    // `migrate` (the init container's command) applies them; then the backend starts.
    let migrated = Command::new(env!("CARGO_BIN_EXE_shopmicro-backend"))
        .arg("migrate")
        .env("DATABASE_URL", database.url())
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    Application::build(config)
        .await
        .expect("a migrated database is accepted");

    let unknown = Command::new(env!("CARGO_BIN_EXE_shopmicro-backend"))
        .arg("migrat")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("`migrate`"));
}

#[tokio::test]
async fn migrations_and_seeding_are_safe_when_replicas_start_together() {
    let database = TestDatabase::create().await;
    let mut replicas = tokio::task::JoinSet::new();
    for _ in 0..4 {
        replicas.spawn(Application::build(test_config(&database)));
    }
    while let Some(started) = replicas.join_next().await {
        started.unwrap().expect("every replica starts");
    }

    let pool = db::pool(
        &test_config(&database).database_url,
        NonZeroU32::new(2).unwrap(),
    )
    .unwrap();
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products as usize, seed::PRODUCT_COUNT);
    assert_eq!(orders as usize, seed::ORDER_COUNT);
    pool.close().await;
}

#[tokio::test]
async fn metrics_are_labelled_by_route_template_not_raw_path() {
    let app = spawn_app().await;
    app.get("/products/1").await;
    app.get("/products/2").await;
    app.get("/products/999999").await;
    let metrics = app.metrics().await;
    let ok = metric_value(
        &metrics,
        "http_requests_total",
        &[("route", "/products/{id}"), ("status", "200")],
    );
    let missing = metric_value(
        &metrics,
        "http_requests_total",
        &[("route", "/products/{id}"), ("status", "404")],
    );
    assert_eq!(ok, Some(2.0));
    assert_eq!(missing, Some(1.0));
    assert!(!metrics.contains("/products/999999"));
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/metrics").await;
    assert_eq!((status, error_code(&body)), (404, "route_not_found"));
    assert!(app.metrics().await.contains("http_requests_total"));
    // The admin port serves nothing of the API.
    let api_on_admin = app
        .client
        .get(format!("{}/products", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(api_on_admin.status(), 404);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "route_not_found");

    let response = app
        .client
        .delete(app.url("/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "method_not_allowed");
}

#[tokio::test]
async fn openapi_document_describes_every_public_route() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/products",
        "/products/{id}",
        "/products/{id}/recommendations",
        "/categories",
        "/catalogue/version",
        "/orders",
        "/orders/{reference}",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["Product"].is_object());
}

#[test]
fn the_binary_refuses_to_start_without_database_url_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_shopmicro-backend"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn a_malformed_database_url_is_named_without_echoing_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_shopmicro-backend"))
        .env_clear()
        .env("DATABASE_URL", "mysql://root:Hunter22@db/shop")
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("DATABASE_URL is malformed"), "{all}");
    assert!(!all.contains("Hunter22"), "{all}");
}

#[test]
fn config_defaults_match_the_documentation() {
    let env = Env::from_pairs([("DATABASE_URL", "postgres://u@h/db")]);
    let config = Config::from_env(&env).unwrap();
    assert_eq!(config.server.port, 8080);
    assert_eq!(config.ml_timeout.as_millis(), 300);
    assert_eq!(config.cache_ttl.as_secs(), 60);
}

/// Past its limit the backend sheds at once (503 with Retry-After) instead of queueing,
/// keeps answering its probes, and serves again once the slot frees. The slot is held the
/// way a slow client holds one: an order whose body never finishes arriving.
#[tokio::test]
async fn past_its_limit_the_backend_sheds_keeps_its_probes_and_recovers() {
    use tokio::io::AsyncWriteExt;
    let app = crate::helpers::spawn_app_with(|config| config.server.limits.max_in_flight = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /orders HTTP/1.1\r\nHost: backend\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();

    let shed = shopmicro_common::testing::eventually_async(
        "a request to be shed",
        std::time::Duration::from_secs(5),
        || async {
            let response = app.get("/products?limit=1").await;
            match response.status().as_u16() {
                503 => Ok(response),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);

    drop(slow);
    shopmicro_common::testing::eventually_async(
        "the backend to serve again",
        std::time::Duration::from_secs(5),
        || async {
            match app.get("/products?limit=1").await.status().as_u16() {
                200 => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
}
