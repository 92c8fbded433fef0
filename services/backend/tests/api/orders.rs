use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, metric_value, spawn_app};

fn order(lines: &[(i64, i64)]) -> Value {
    json!({"items": lines.iter().map(|(id, qty)| json!({"product_id": id, "quantity": qty})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn placing_an_order_reserves_stock_and_records_it() {
    let app = spawn_app().await;
    let (before_1, before_2) = (app.stock_of(1).await, app.stock_of(2).await);
    let (_, p1) = app.get_json("/products/1").await;
    let (_, p2) = app.get_json("/products/2").await;

    let (status, placed) = app.post_order(&order(&[(1, 2), (2, 1)]), None).await;

    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["status"], "confirmed");
    let expected_total =
        p1["price_cents"].as_i64().unwrap() * 2 + p2["price_cents"].as_i64().unwrap();
    assert_eq!(placed["total_cents"].as_i64().unwrap(), expected_total);
    assert_eq!(app.stock_of(1).await, before_1 - 2);
    assert_eq!(app.stock_of(2).await, before_2 - 1);

    let reference = placed["reference"].as_str().unwrap();
    let (status, fetched) = app.get_json(&format!("/orders/{reference}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["reference"], placed["reference"]);
    assert_eq!(fetched["items"].as_array().unwrap().len(), 2);
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, "shop_orders_created_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "shop_order_value_cents_total", &[]),
        Some(expected_total as f64)
    );
}

/// Asserts a rejected order changed nothing.
async fn assert_nothing_written(app: &TestApp, orders_before: i64, stock_before: i32) {
    assert_eq!(
        app.order_count().await,
        orders_before,
        "no order row written"
    );
    assert_eq!(app.stock_of(1).await, stock_before, "stock unchanged");
}

#[tokio::test]
async fn malformed_and_invalid_orders_are_rejected_and_write_nothing() {
    let app = spawn_app().await;
    let orders_before = app.order_count().await;
    let stock_before = app.stock_of(1).await;

    let raw_cases: [(&str, u16, &str); 5] = [
        ("{\"items\": [", 400, "malformed_json"),
        ("not json", 400, "malformed_json"),
        (
            "{\"items\": [{\"product_id\": 1, \"quantity\": \"two\"}]}",
            422,
            "invalid_body",
        ),
        ("{\"items\": [{\"product_id\": 1}]}", 422, "invalid_body"),
        (
            "{\"items\": [{\"product_id\": 1, \"quantity\": 1, \"price_cents\": 1}]}",
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in raw_cases {
        let response = app
            .client
            .post(app.url("/orders"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(error_code(&json), code, "{body}");
    }

    let response = app
        .client
        .post(app.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415, "missing content type");

    let json_cases = [
        (json!({"items": []}), 422, "invalid_items"),
        (order(&[(1, 0)]), 422, "invalid_quantity"),
        (order(&[(1, -3)]), 422, "invalid_quantity"),
        (order(&[(0, 1)]), 422, "invalid_product_id"),
        (order(&[(1, 1), (1, 2)]), 422, "duplicate_product"),
        (order(&[(1, 1), (999_999, 1)]), 404, "unknown_product"),
        (order(&[(1, 1_000_000)]), 422, "invalid_quantity"),
    ];
    for (body, status, code) in json_cases {
        let (got, json) = app.post_order(&body, None).await;
        assert_eq!((got, error_code(&json)), (status, code), "{body}");
    }
    assert_nothing_written(&app, orders_before, stock_before).await;
}

#[tokio::test]
async fn ordering_more_than_stock_is_a_conflict_that_names_the_product() {
    let app = spawn_app().await;
    app.set_stock(1, 3).await;
    let orders_before = app.order_count().await;

    let (status, body) = app.post_order(&order(&[(2, 1), (1, 4)]), None).await;

    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "insufficient_stock");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("product 1")
    );
    assert_nothing_written(&app, orders_before, 3).await;
    assert_eq!(
        metric_value(&app.metrics().await, "shop_stockouts_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn concurrent_orders_for_the_last_units_never_oversell() {
    let app = Arc::new(spawn_app().await);
    app.set_stock(7, 5).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..25 {
        let app = Arc::clone(&app);
        attempts.spawn(async move { app.post_order(&order(&[(7, 1)]), None).await.0 });
    }
    let mut statuses = Vec::new();
    while let Some(status) = attempts.join_next().await {
        statuses.push(status.unwrap());
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(app.stock_of(7).await, 0);
}

#[tokio::test]
async fn multi_line_orders_in_opposite_order_do_not_deadlock() {
    let app = Arc::new(spawn_app().await);
    app.set_stock(10, 100).await;
    app.set_stock(11, 100).await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = Arc::clone(&app);
        let lines = if i % 2 == 0 {
            vec![(10, 1), (11, 1)]
        } else {
            vec![(11, 1), (10, 1)]
        };
        attempts.spawn(async move { app.post_order(&order(&lines), None).await.0 });
    }
    while let Some(status) = attempts.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    assert_eq!((app.stock_of(10).await, app.stock_of(11).await), (80, 80));
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_order() {
    let app = spawn_app().await;
    let stock_before = app.stock_of(3).await;

    let (first_status, first) = app.post_order(&order(&[(3, 2)]), Some("retry-me")).await;
    let (second_status, second) = app.post_order(&order(&[(3, 2)]), Some("retry-me")).await;

    assert_eq!(first_status, 201);
    assert_eq!(second_status, 200);
    assert_eq!(first["reference"], second["reference"]);
    assert_eq!(app.stock_of(3).await, stock_before - 2, "stock taken once");
}

#[tokio::test]
async fn a_reused_idempotency_key_with_a_different_body_is_refused() {
    let app = spawn_app().await;
    app.post_order(&order(&[(3, 1)]), Some("key-1")).await;
    let (status, body) = app.post_order(&order(&[(3, 5)]), Some("key-1")).await;
    assert_eq!((status, error_code(&body)), (422, "idempotency_key_reused"));

    let (status, body) = app.post_order(&order(&[(3, 1)]), Some("has spaces")).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_idempotency_key")
    );
}

#[tokio::test]
async fn the_same_idempotency_key_sent_concurrently_creates_one_order() {
    let app = Arc::new(spawn_app().await);
    let orders_before = app.order_count().await;
    let stock_before = app.stock_of(4).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let app = Arc::clone(&app);
        attempts.spawn(async move {
            app.post_order(&order(&[(4, 1)]), Some("double-click"))
                .await
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(result) = attempts.join_next().await {
        let (status, body) = result.unwrap();
        assert!(status == 200 || status == 201, "{status}: {body}");
        ids.insert(body["reference"].as_str().unwrap().to_owned());
    }

    assert_eq!(ids.len(), 1);
    assert_eq!(app.order_count().await, orders_before + 1);
    assert_eq!(app.stock_of(4).await, stock_before - 1);
}

#[tokio::test]
async fn unknown_and_invalid_order_references() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/orders/6f1c1f0e-4a57-4c1e-9d5c-0d6a1b2c3d4e")
        .await;
    assert_eq!((status, error_code(&body)), (404, "order_not_found"));
    for bad in ["0", "not-a-uuid", "6f1c1f0e-4a57-4c1e-9d5c"] {
        let (status, body) = app.get_json(&format!("/orders/{bad}")).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_order_reference"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn orders_cannot_be_enumerated_by_their_internal_ids() {
    let app = spawn_app().await;
    let (_, first) = app.post_order(&order(&[(5, 1)]), None).await;
    let (_, second) = app.post_order(&order(&[(5, 1)]), None).await;
    assert!(first.get("id").is_none(), "no internal id in {first}");

    // Consecutive orders share nothing guessable: each reference is a random (v4) UUID.
    let references: Vec<uuid::Uuid> = [&first, &second]
        .iter()
        .map(|order| order["reference"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_ne!(references[0], references[1]);
    assert!(references.iter().all(|r| r.get_version_num() == 4));

    // The sequential id a client could guess finds nothing.
    let internal_id: i64 = sqlx::query_scalar("SELECT max(id) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for guess in [internal_id, internal_id - 1] {
        let (status, body) = app.get_json(&format!("/orders/{guess}")).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_order_reference")
        );
    }
}
