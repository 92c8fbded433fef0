//! Catalogue reads on pipelined connections: many requests' queries share a few
//! connections, each answer still reaches its own request, and a connection that dies is
//! replaced without failing the reads that found it dead.

use std::num::NonZeroUsize;

use serde_json::Value;
use shopmicro_backend::db::reads::APPLICATION_NAME;

use crate::helpers::{TestApp, metric_value, spawn_app_with};

/// A backend that caches nothing, so every listing is a query, on `connections` lanes.
async fn uncached_app(connections: usize) -> TestApp {
    spawn_app_with(|config| {
        config.redis_url = None;
        config.catalogue_memory_bytes = 0;
        config.database_read_connections = NonZeroUsize::new(connections).unwrap();
    })
    .await
}

/// The server processes behind the read connections to this test's database.
async fn read_backends(app: &TestApp) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1 ORDER BY pid",
    )
    .bind(APPLICATION_NAME)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn two_hundred_concurrent_listings_share_two_connections_and_each_gets_its_own_page() {
    let app = uncached_app(2).await;
    // Every request asks for a different page, so an answer matched to the wrong request
    // would show: the limit decides the length, the sort and the category the content.
    let paths: Vec<String> = (0..200)
        .map(|n| match n % 3 {
            0 => format!("/products?limit={}", n % 100 + 1),
            1 => format!("/products?limit={}&sort=price_desc", n % 50 + 1),
            _ => format!(
                "/products?limit={}&category=home-kitchen&sort=name",
                n % 30 + 1
            ),
        })
        .collect();
    let answers = futures_util::future::join_all(paths.iter().map(|path| app.get_json(path))).await;

    for (path, (status, page)) in paths.iter().zip(&answers) {
        assert_eq!(*status, 200, "{path}: {page}");
        // The same page read alone, after the storm, is the reference.
        let (_, alone) = app.get_json(path).await;
        assert_eq!(page, &alone, "{path} got another request's page");
    }
    let first = &answers[0].1;
    assert_eq!(ids(first), vec![1], "limit=1 sorted by id");
    assert_eq!(ids(&answers[3].1).len(), 4);
    assert!(
        answers[2].1["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["category"] == "home-kitchen")
    );
    assert_eq!(
        read_backends(&app).await.len(),
        2,
        "200 concurrent reads used the two configured connections, no more"
    );
}

#[tokio::test]
async fn read_connections_terminated_by_the_server_are_replaced_without_a_failed_request() {
    let app = uncached_app(2).await;
    for _ in 0..4 {
        assert_eq!(app.get_json("/products?limit=5").await.0, 200);
    }
    let before = read_backends(&app).await;
    assert_eq!(before.len(), 2);

    // What a restarted or failed-over server, or an operator, does to a connection.
    let terminated: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
            .bind(&before)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(terminated, vec![true, true]);

    for n in 1..=6 {
        let (status, page) = app.get_json(&format!("/products?limit={n}")).await;
        assert_eq!(status, 200, "read {n} after the termination: {page}");
        assert_eq!(ids(&page).len(), n);
    }
    let after = read_backends(&app).await;
    assert_eq!(after.len(), 2, "both lanes reconnected");
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "new server processes: {before:?} then {after:?}"
    );

    // What an operator sees: two connections replaced, both live again, none timed out.
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
    let metrics = app.metrics().await;
    let value = |name, labels: &[(&str, &str)]| metric_value(&metrics, name, labels);
    assert_eq!(value("db_read_connections_replaced_total", &[]), Some(2.0));
    assert_eq!(value("db_read_timeouts_total", &[]), Some(0.0));
    assert_eq!(
        value("db_read_connections", &[("state", "live")]),
        Some(2.0)
    );
    assert_eq!(value("db_read_connections", &[("state", "max")]), Some(2.0));
    assert_eq!(
        value("db_reads_in_flight", &[]),
        Some(0.0),
        "every read counted out"
    );
}

#[tokio::test]
async fn categories_single_products_and_recommendations_read_through_the_same_connections() {
    let app = uncached_app(1).await;
    let (status, categories) = app.get_json("/categories").await;
    assert_eq!(status, 200);
    let counted: i64 = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|category| category["product_count"].as_i64().unwrap())
        .sum();
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(counted, products);

    let (status, product) = app.get_json("/products/7").await;
    assert_eq!((status, product["id"].as_i64()), (200, Some(7)));
    let (status, missing) = app.get_json("/products/999999").await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("product_not_found"))
    );
    let (status, recommended) = app.get_json("/products/7/recommendations").await;
    assert_eq!(status, 200, "{recommended}");
    assert_eq!(read_backends(&app).await.len(), 1);
}
