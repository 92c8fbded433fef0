//! A client for the simulator as tests use it: real HTTP on loopback with a bearer token.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shopmicro_kube_sim::{Config, Simulator};

pub struct Client {
    /// Shared, so several clients (tokens) can talk to one simulator.
    pub sim: Arc<Simulator>,
    pub http: reqwest::Client,
    pub token: String,
}

impl Client {
    pub fn start() -> Self {
        let sim = Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            Config {
                ready_after: Duration::from_millis(20),
                ..Config::default()
            },
        )
        .unwrap();
        let token = sim.admin_token().to_string();
        Self {
            sim: Arc::new(sim),
            http: reqwest::Client::new(),
            token,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.sim.url()))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, "", None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, "application/json", Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, "application/json", Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, content_type, Some(body))
            .await
    }

    pub async fn apply(
        &self,
        path: &str,
        manager: &str,
        force: bool,
        body: Value,
    ) -> (StatusCode, Value) {
        let path = format!("{path}?fieldManager={manager}&force={force}");
        self.patch(&path, "application/apply-patch+yaml", body)
            .await
    }

    /// A watch request, read until the server ends it, as its events.
    pub async fn watch(&self, path: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.sim.url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, "", None).await
    }

    /// Polls until `check` holds; controllers are asynchronous, as upstream.
    pub async fn eventually(
        &self,
        path: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, object) = self.get(path).await;
            if check(&object) {
                return object;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {object}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Client {
    /// Another client of the same simulator, asking with `token`.
    pub fn on(sim: &Arc<Simulator>, token: String) -> Self {
        Self {
            sim: sim.clone(),
            http: reqwest::Client::new(),
            token,
        }
    }

    /// The same simulator, asking as another token.
    pub fn with_token(mut self, token: String) -> Self {
        self.token = token;
        self
    }
}
