//! The shopper's journey in a real browser: headless Chromium driven over the W3C
//! WebDriver protocol by chromedriver (Debian `chromium` and `chromium-driver`).
//! The storefront needs no JavaScript; clicks submit real forms.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use shopmicro_common::testing::closed_port;

use crate::support::spawn_stack;

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct ChromeDriver {
    child: Child,
    url: String,
    _profile: TempDir,
}

impl ChromeDriver {
    fn start() -> Self {
        let port = closed_port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("chromedriver is installed (Debian chromium-driver; the README's test command installs it)");
        let stdout = child.stdout.take().unwrap();
        let started = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("started successfully"));
        assert!(started, "chromedriver did not start");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: TempDir::new(),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway Chromium profile directory.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "shopmicro-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn open(driver: &ChromeDriver) -> Self {
        let http = reqwest::Client::new();
        let profile = format!("--user-data-dir={}", driver._profile.0.display());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // No network beyond loopback here: keep Chromium from trying.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", profile]
            }
        }}});
        let response: Value = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {response}"));
        let browser = Self {
            http,
            session: format!("{}/session/{id}", driver.url),
        };
        // Element look-ups wait up to 10 s for the page that a click loads.
        browser
            .command("timeouts", json!({"implicit": 10_000}))
            .await;
        browser
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let response: Value = self
            .http
            .post(format!("{}/{path}", self.session))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(response["value"]["error"].is_null(), "{path}: {response}");
        response["value"].clone()
    }

    async fn query(&self, path: &str) -> Value {
        let response: Value = self
            .http
            .get(format!("{}/{path}", self.session))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["value"].clone()
    }

    async fn visit(&self, url: &str) {
        self.command("url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let element = self
            .command("element", json!({"using": "css selector", "value": css}))
            .await;
        element[ELEMENT_KEY].as_str().unwrap().to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(&format!("element/{element}/click"), json!({}))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.query(&format!("element/{element}/text"))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

#[tokio::test]
async fn a_shopper_browses_adds_to_cart_and_checks_out_in_a_real_browser() {
    let stack = spawn_stack().await;
    let driver = ChromeDriver::start();
    let browser = Browser::open(&driver).await;

    // Catalogue → a category → a product.
    browser.visit(&stack.frontend).await;
    assert_eq!(browser.text("#listing-heading").await, "All products");
    browser.click("a[href='/?category=home-kitchen']").await;
    assert_eq!(browser.text("#listing-heading").await, "Home & Kitchen");
    let product_name = browser.text(".card-title a").await;
    browser.click(".card-title a").await;
    assert_eq!(browser.text("#product-name").await, product_name);

    // Add to cart → cart → checkout → confirmation.
    browser.click(".add-to-cart button").await;
    assert!(browser.text("table.cart").await.contains(&product_name));
    browser.click(".checkout button").await;
    let confirmation = browser.text("#confirmation-heading").await;
    let reference = browser.text(".order-id").await;
    assert!(confirmation.starts_with("Thank you!"), "{confirmation}");
    browser.close().await;

    // The order exists in the database with the product the shopper chose.
    let ordered: String = sqlx::query_scalar(
        "SELECT p.name FROM order_items i JOIN products p ON p.id = i.product_id
         JOIN orders o ON o.id = i.order_id WHERE o.reference::text = $1",
    )
    .bind(&reference)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(ordered, product_name);
}
