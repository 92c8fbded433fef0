//! `spawn_app()` and typed request helpers.

use std::num::NonZeroU32;

use serde_json::Value;
use shopmicro_backend::{Application, Config};
use shopmicro_common::config::Env;
pub use shopmicro_common::testing::metric_value;
use shopmicro_common::testing::{self, TestDatabase};
use sqlx::PgPool;
use tokio::sync::oneshot;

pub struct TestApp {
    /// What it was built with: a replica is another backend built with the same.
    pub config: Config,
    pub address: String,
    /// The admin port's address, where `/metrics` is served.
    pub admin_address: String,
    pub db: PgPool,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    // Dropped last: the database outlives the pool and the server.
    _database: TestDatabase,
}

/// The default test configuration: fresh database, real Redis with a per-test key
/// prefix, no ml service.
pub fn test_config(database: &TestDatabase) -> Config {
    let env = Env::from_pairs([("DATABASE_URL", database.url())]);
    let mut config = Config::from_env(&env).expect("test configuration is valid");
    config.server = shopmicro_common::testing::server_config();
    config.redis_url = Some(shopmicro_common::secret::Secret::new(testing::redis_url()));
    config.cache_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    config.database_max_connections = NonZeroU32::new(20).unwrap();
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database);
    configure(&mut config);
    let Running {
        address,
        admin_address,
        shutdown,
    } = Running::start(config.clone()).await;
    let db = PgPool::connect(database.url())
        .await
        .expect("connecting to the test database");
    TestApp {
        config,
        address,
        admin_address,
        db,
        client: reqwest::Client::new(),
        shutdown: Some(shutdown),
        _database: database,
    }
}

/// One backend process's worth of application, stopped when dropped.
pub struct Running {
    pub address: String,
    pub admin_address: String,
    shutdown: oneshot::Sender<()>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        let app = Application::build(config)
            .await
            .expect("the backend builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let admin_address = format!("http://127.0.0.1:{}", app.admin_port());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            admin_address,
            shutdown,
        }
    }
}

impl TestApp {
    /// Another backend on the same database and Redis keys, as a second pod would be.
    pub async fn spawn_replica(&self) -> Running {
        Running::start(self.config.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.get_json_from(&self.address, path).await
    }

    /// A GET to the backend at `base` (this one or a replica).
    pub async fn get_json_from(&self, base: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn post_order(&self, body: &Value, idempotency_key: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(self.url("/orders")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn stock_of(&self, product_id: i64) -> i32 {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product_id)
            .fetch_one(&self.db)
            .await
            .expect("product exists")
    }

    pub async fn set_stock(&self, product_id: i64, stock: i32) {
        sqlx::query("UPDATE products SET stock = $2 WHERE id = $1")
            .bind(product_id)
            .bind(stock)
            .execute(&self.db)
            .await
            .expect("stock updated");
    }

    pub async fn order_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// What Prometheus scrapes from the admin port.
    pub async fn metrics(&self) -> String {
        self.metrics_from(&self.admin_address).await
    }

    /// What Prometheus scrapes from the admin port at `admin_base` (this one or a replica's).
    pub async fn metrics_from(&self, admin_base: &str) -> String {
        self.client
            .get(format!("{admin_base}/metrics"))
            .send()
            .await
            .expect("scraping the admin port")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An error body's code, asserting the shared error shape.
pub fn error_code(body: &Value) -> &str {
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message is a string");
    assert!(!message.is_empty());
    body["error"]["code"]
        .as_str()
        .expect("error.code is a string")
}
