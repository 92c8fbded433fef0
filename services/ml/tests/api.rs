//! ml API tests: the real application on port 0, trained from a fresh database that has
//! the backend's schema and demo history.

use std::time::Duration;

use serde_json::Value;
use shopmicro_common::config::Env;
use shopmicro_common::testing::{TestDatabase, closed_port, eventually_status};
use shopmicro_ml::{Application, Config};
use sqlx::PgPool;

struct TestApp {
    address: String,
    admin_address: String,
    db: PgPool,
    _database: TestDatabase,
}

fn config_for(database_url: &str) -> Config {
    let mut config = Config::from_env(&Env::from_pairs([("DATABASE_URL", database_url)])).unwrap();
    config.server = shopmicro_common::testing::server_config();
    config.training_retry = Duration::from_millis(100);
    config.retrain_token = Some(shopmicro_common::secret::Secret::new(
        RETRAIN_TOKEN.to_owned(),
    ));
    config
}

const RETRAIN_TOKEN: &str = "test-retrain-token-0123456789abcdef";

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    let db = PgPool::connect(database.url()).await.unwrap();
    shopmicro_backend::db::migrate(&db).await.unwrap();
    shopmicro_backend::seed::ensure_demo_data(&db)
        .await
        .unwrap();
    let mut config = config_for(database.url());
    configure(&mut config);
    let app = Application::build(config).await.unwrap();
    app.wait_until_trained(Duration::from_secs(30))
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin_address = format!("http://127.0.0.1:{}", app.admin_port());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        admin_address,
        db,
        _database: database,
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn retrain(&self) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/model/retrain", self.address))
            .bearer_auth(RETRAIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn the_model_trains_on_the_order_history_at_start_up() {
    let app = spawn_app().await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, model) = app.get("/model").await;
    assert_eq!(status, 200);
    assert_eq!(model["training_orders"], 400);
    assert_eq!(model["products"], 240);
    assert_eq!(ready["model_version"], model["version"]);
}

#[tokio::test]
async fn complementary_products_are_recommended_first() {
    let app = spawn_app().await;
    // The demo history pairs each brand's earbuds (1) with its charger (2).
    let (status, body) = app.get("/recommendations?product_id=1&k=5").await;
    assert_eq!(status, 200);
    let recs = body["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["product_id"], 2);
    let scores: Vec<f64> = recs.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[tokio::test]
async fn retraining_on_the_same_data_keeps_the_version_and_new_orders_change_it() {
    let app = spawn_app().await;
    let (_, before) = app.get("/model").await;
    let score_of_200_for_100 = |body: &Value| {
        body["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["product_id"] == 200)
            .map_or(0.0, |r| r["score"].as_f64().unwrap())
    };
    let (_, earlier) = app.get("/recommendations?product_id=100&k=50").await;
    assert!(
        score_of_200_for_100(&earlier) < 0.5,
        "never bought together yet"
    );
    assert_eq!(app.retrain().await["version"], before["version"]);

    // Shoppers start buying product 100 with product 200.
    for _ in 0..5 {
        let order_id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (status, total_cents) VALUES ('confirmed', 0) RETURNING id",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
             VALUES ($1, 100, 1, 0), ($1, 200, 1, 0)",
        )
        .bind(order_id)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let after = app.retrain().await;
    assert_ne!(after["version"], before["version"]);
    assert_eq!(after["training_orders"], 405);
    let (_, later) = app.get("/recommendations?product_id=100&k=50").await;
    assert!(
        score_of_200_for_100(&later) > 0.5,
        "learned from the new orders: {later}"
    );
}

#[tokio::test]
async fn bad_and_unknown_ids_are_400_and_404() {
    let app = spawn_app().await;
    let cases = [
        ("/recommendations", 400, "missing_product_id"),
        ("/recommendations?product_id=abc", 400, "invalid_query"),
        ("/recommendations?product_id=0", 400, "invalid_product_id"),
        ("/recommendations?product_id=1&k=0", 400, "invalid_k"),
        ("/recommendations?product_id=1&k=51", 400, "invalid_k"),
        ("/recommendations?product_id=999999", 404, "unknown_product"),
    ];
    for (path, status, code) in cases {
        let (got, body) = app.get(path).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn without_a_database_ml_is_alive_but_not_ready() {
    let url = format!("postgres://postgres@127.0.0.1:{}/none", closed_port());
    let app = Application::build(config_for(&url)).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));

    let get = |path: &'static str| {
        let address = address.clone();
        async move {
            reqwest::get(format!("{address}{path}"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/readyz").await, 503);
    assert_eq!(get("/model").await, 503);
    assert_eq!(get("/recommendations?product_id=1").await, 503);
}

#[tokio::test]
async fn model_metrics_expose_the_serving_version() {
    let app = spawn_app().await;
    let (_, model) = app.get("/model").await;
    let (status, _) = app.get("/metrics").await;
    assert_eq!(status, 404, "metrics are not on the public port");
    let metrics = reqwest::get(format!("{}/metrics", app.admin_address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let version = model["version"].as_str().unwrap();
    assert!(
        metrics.contains(&format!("ml_model_info{{version=\"{version}\"}} 1")),
        "{metrics}"
    );
    assert!(metrics.contains("ml_model_training_orders 400"));
}

#[tokio::test]
async fn openapi_document_lists_the_api() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in ["/recommendations", "/model", "/model/retrain", "/readyz"] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // The contract says what the service enforces: no product, no recommendations.
    let parameters = doc["paths"]["/recommendations"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let product_id = parameters
        .iter()
        .find(|p| p["name"] == "product_id")
        .unwrap();
    assert_eq!(product_id["required"], true, "{product_id}");
    let (status, _) = app.get("/recommendations").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn retraining_takes_the_operator_token() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let url = format!("{}/model/retrain", app.address);
    for request in [
        http.post(&url),
        http.post(&url).bearer_auth("not-the-token"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert!(!body.to_string().contains(RETRAIN_TOKEN));
    }
    assert_eq!(app.retrain().await["training_orders"], 400);
}

/// Past its limit ml sheds at once (503 with Retry-After), keeps answering its probes, and
/// serves again once the slot frees. The slot is held by a retrain stuck behind a lock on
/// the order history, as a slow database would hold it.
#[tokio::test]
async fn past_its_limit_ml_sheds_keeps_its_probes_and_recovers() {
    let app = spawn_app_with(|config| config.server.limits.max_in_flight = 1).await;
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let url = format!("{}/model/retrain", app.address);
    let stuck = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(RETRAIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });

    let recommendations = format!("{}/recommendations?product_id=1", app.address);
    let shed = eventually_status("a request to be shed", &recommendations, 503).await;
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);

    lock.rollback().await.unwrap();
    assert_eq!(
        stuck.await.unwrap(),
        200,
        "the retrain finishes once the lock goes"
    );
    assert_eq!(app.get("/recommendations?product_id=1").await.0, 200);
}
