//! The backend's side of recommendations. The real ml service is exercised end to end in
//! the storefront tests; here stand-in ml servers inject the faults (slow, down, errors,
//! garbage) that the fallback exists for.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shopmicro_common::config::ServiceUrl;
use shopmicro_common::testing::closed_port;

use crate::helpers::{TestApp, error_code, metric_value, spawn_app, spawn_app_with};

/// Serves `router` on loopback as a stand-in ml service; returns its base URL.
async fn fake_ml(router: Router) -> ServiceUrl {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://127.0.0.1:{port}").parse().unwrap()
}

async fn app_with_ml(ml_url: ServiceUrl) -> TestApp {
    spawn_app_with(|config| {
        config.ml_url = Some(ml_url);
        config.ml_timeout = Duration::from_millis(300);
    })
    .await
}

fn recommended_ids(body: &serde_json::Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product"]["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn ml_answers_are_served_in_ml_order_without_the_product_itself() {
    let ml = fake_ml(Router::new().route(
        "/recommendations",
        get(|| async {
            axum::Json(serde_json::json!({"recommendations": [
                {"product_id": 1, "score": 0.99},
                {"product_id": 9, "score": 0.9},
                {"product_id": 999999, "score": 0.8},
                {"product_id": 4, "score": 0.7}
            ]}))
        }),
    ))
    .await;
    let app = app_with_ml(ml).await;
    let (status, body) = app.get_json("/products/1/recommendations?limit=4").await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "ml");
    assert!(body["fallback_reason"].is_null());
    assert_eq!(
        recommended_ids(&body),
        vec![9, 4],
        "self and unknown ids dropped"
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "recommendations_served_total",
            &[("source", "ml")]
        ),
        Some(1.0)
    );
}

async fn assert_falls_back(app: &TestApp, reason: &str) {
    let (status, body) = app.get_json("/products/1/recommendations").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "fallback");
    assert_eq!(body["fallback_reason"], reason);
    let items = body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i["product"]["category"] == "electronics" && i["product"]["id"] != 1)
    );
}

#[tokio::test]
async fn ml_down_falls_back_to_popular_products_of_the_category() {
    let url: ServiceUrl = format!("http://127.0.0.1:{}", closed_port())
        .parse()
        .unwrap();
    let app = app_with_ml(url).await;
    assert_falls_back(&app, "ml_unavailable").await;
}

#[tokio::test]
async fn slow_ml_falls_back_after_the_timeout() {
    let ml = fake_ml(Router::new().route(
        "/recommendations",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "too late"
        }),
    ))
    .await;
    let app = app_with_ml(ml).await;
    assert_falls_back(&app, "ml_timeout").await;
}

#[tokio::test]
async fn ml_errors_and_garbage_fall_back() {
    let ml = fake_ml(Router::new().route(
        "/recommendations",
        get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    ))
    .await;
    assert_falls_back(&app_with_ml(ml).await, "ml_error").await;

    let garbage = fake_ml(Router::new().route(
        "/recommendations",
        get(|| async { "<html>not json</html>" }),
    ))
    .await;
    assert_falls_back(&app_with_ml(garbage).await, "ml_invalid_response").await;

    let nan = fake_ml(Router::new().route(
        "/recommendations",
        get(|| async {
            axum::Json(serde_json::json!({"recommendations": [{"product_id": -4, "score": 1.0}]}))
        }),
    ))
    .await;
    assert_falls_back(&app_with_ml(nan).await, "ml_invalid_response").await;
}

#[tokio::test]
async fn without_ml_url_recommendations_come_from_the_fallback() {
    let app = spawn_app().await;
    assert_falls_back(&app, "ml_disabled").await;
}

#[tokio::test]
async fn recommendations_validate_the_product_and_limit() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/products/999999/recommendations").await;
    assert_eq!((status, error_code(&body)), (404, "product_not_found"));
    let (status, body) = app.get_json("/products/1/recommendations?limit=500").await;
    assert_eq!((status, error_code(&body)), (400, "invalid_limit"));
}
