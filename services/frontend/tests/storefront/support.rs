//! Spawning the full stack, and a tiny cookie-keeping HTTP "browser" for form flows.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use shopmicro_common::config::{Env, ServerConfig, ServiceUrl};
use shopmicro_common::overload::Limits;
use shopmicro_common::testing::{TestDatabase, server_config};
use sqlx::PgPool;

pub struct Stack {
    pub frontend: String,
    /// The backend behind it, for changes made the way another shopper's would be.
    pub backend: String,
    /// The frontend's admin port, where `/metrics` is served.
    pub frontend_admin: String,
    pub db: PgPool,
    _database: TestDatabase,
}

/// Database, ml (trained), backend (with ml and Redis) and frontend, all on free ports.
pub async fn spawn_stack() -> Stack {
    capture_logs();
    let database = TestDatabase::create().await;

    let db = PgPool::connect(database.url()).await.unwrap();
    // The backend owns the schema and the demo data that ml trains on.
    shopmicro_backend::db::migrate(&db).await.unwrap();
    shopmicro_backend::seed::ensure_demo_data(&db)
        .await
        .unwrap();

    let mut ml =
        shopmicro_ml::Config::from_env(&Env::from_pairs([("DATABASE_URL", database.url())]))
            .unwrap();
    ml.server = server_config();
    let ml_app = shopmicro_ml::Application::build(ml).await.unwrap();
    ml_app
        .wait_until_trained(Duration::from_secs(30))
        .await
        .unwrap();
    let ml_url: ServiceUrl = format!("http://127.0.0.1:{}", ml_app.port())
        .parse()
        .unwrap();
    tokio::spawn(ml_app.run_until(std::future::pending()));

    let mut backend =
        shopmicro_backend::Config::from_env(&Env::from_pairs([("DATABASE_URL", database.url())]))
            .unwrap();
    backend.server = server_config();
    backend.redis_url = Some(shopmicro_common::secret::Secret::new(
        shopmicro_common::testing::redis_url(),
    ));
    backend.cache_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    backend.ml_url = Some(ml_url);
    backend.ml_timeout = Duration::from_secs(2);
    let backend_app = shopmicro_backend::Application::build(backend)
        .await
        .unwrap();
    let backend_url = format!("http://127.0.0.1:{}", backend_app.port());
    tokio::spawn(backend_app.run_until(std::future::pending()));

    let (frontend, frontend_admin) =
        start_frontend(&backend_url, Duration::from_secs(3), Limits::default()).await;
    Stack {
        frontend,
        backend: backend_url,
        frontend_admin,
        db,
        _database: database,
    }
}

/// A frontend in front of whatever `backend_url` is (a real backend, or a fault).
pub async fn spawn_frontend(backend_url: &str, timeout: Duration) -> String {
    start_frontend(backend_url, timeout, Limits::default())
        .await
        .0
}

/// A frontend that takes on at most `limits`.
pub async fn spawn_limited_frontend(backend_url: &str, limits: Limits) -> String {
    start_frontend(backend_url, Duration::from_secs(1), limits)
        .await
        .0
}

/// A frontend's public and admin addresses.
async fn start_frontend(backend_url: &str, timeout: Duration, limits: Limits) -> (String, String) {
    capture_logs();
    let mut config =
        shopmicro_frontend::Config::from_env(&Env::from_pairs([("BACKEND_URL", backend_url)]))
            .unwrap();
    config.server = ServerConfig {
        limits,
        ..server_config()
    };
    config.backend_timeout = timeout;
    let app = shopmicro_frontend::Application::build(config)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    tokio::spawn(app.run_until(std::future::pending()));
    (address, admin)
}

impl Stack {
    pub async fn order_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// Log lines of every service in this test process, as the JSON the services print.
pub fn captured_logs() -> Vec<serde_json::Value> {
    let bytes = LOGS
        .get()
        .map(|logs| logs.lock().unwrap().clone())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
static TELEMETRY: Once = Once::new();

#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    TELEMETRY.call_once(|| {
        let buffer = LOGS.get_or_init(Arc::default).clone();
        let guard = shopmicro_common::telemetry::init_with(
            "frontend",
            move || LogBuffer(buffer.clone()),
            None,
        )
        .expect("telemetry installs once");
        // The process ends with the test binary; nothing to flush without an exporter.
        std::mem::forget(guard);
    });
}

/// Keeps cookies between requests and never follows redirects, so tests see the 303s.
pub struct Session {
    client: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Session {
    pub fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// One of `product_id` in the cart; the checkout form's idempotency key.
    pub async fn ready_to_check_out(&mut self, product_id: &str) -> String {
        self.post_form(
            "/cart/items",
            &[("product_id", product_id), ("quantity", "1")],
        )
        .await;
        hidden_input(&self.get("/cart").await.body, "idempotency_key")
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie_header: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if cookie_header.is_empty() {
            request
        } else {
            request.header("cookie", cookie_header.join("; "))
        };
        let response = request.send().await.unwrap();
        for set_cookie in response.headers().get_all("set-cookie") {
            let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
        }
    }
}

/// The value of the first `name="..." value="..."` hidden input in a page.
pub fn hidden_input(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} input"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}
