//! A simulated Kubernetes API server on loopback, for testing `shopctl` where no cluster can
//! run. It is not Kubernetes: it imitates the behaviour a client observes — discovery,
//! CRUD with upstream metadata bookkeeping, server-side apply with managed fields,
//! patches, selectors, watches, status and scale subresources, the service proxy, garbage
//! collection, and controllers for Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs
//! and Pods whose behaviour image tags script (see `controllers`). Each imitated behaviour
//! has a test citing the upstream documentation it follows.

pub mod api;
pub mod controllers;
pub mod error;
pub mod fields;
pub mod proxy;
pub mod resources;
pub mod selectors;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

pub use api::Access;
use store::{Store, WriteOptions};

#[derive(Debug, Clone)]
pub struct Config {
    /// How long a healthy pod takes to become ready (or a Job's pod to finish).
    pub ready_after: Duration,
    /// Serve requests without credentials with this access (for kubectl, which sends
    /// tokens only over TLS); None answers them 401, as a secured API server does.
    pub anonymous: Option<Access>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_millis(100),
            anonymous: None,
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    store: Store,
    tokens: Arc<Mutex<HashMap<String, (String, Access)>>>,
    backends: proxy::Backends,
    admin_token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Simulator {
    /// Starts on `listen` (port 0 picks one) on a thread of its own, so synchronous tests
    /// and async ones can use it alike.
    pub fn start(listen: SocketAddr, config: Config) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let store = Store::new();
        bootstrap(&store);
        let admin_token = random_token();
        let tokens = Arc::new(Mutex::new(HashMap::from([(
            admin_token.clone(),
            ("admin".to_string(), Access::Admin),
        )])));
        let backends = proxy::Backends::default();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = api::AppState {
            store: store.clone(),
            tokens: tokens.clone(),
            anonymous: config.anonymous.clone(),
            backends: backends.clone(),
        };
        let controller_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("kube-sim".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                    let app = axum::Router::new().fallback(api::handle).with_state(state);
                    tokio::spawn(
                        controllers::Controllers::new(controller_store, config.ready_after).run(),
                    );
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        Ok(Self {
            addr,
            store,
            tokens,
            backends,
            admin_token,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A new bearer token for `user` with the given access.
    pub fn add_token(&self, user: &str, access: Access) -> String {
        let token = random_token();
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), (user.to_string(), access));
        token
    }

    /// Makes the server at `url` answer, through the service proxy, for the pods behind
    /// port `port` (its name) of Service `namespace/service`: the simulation's pod network.
    pub fn serve(&self, namespace: &str, service: &str, port: &str, url: &str) {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (namespace.into(), service.into(), port.into()),
                url.trim_end_matches('/').into(),
            );
    }

    /// Stops answering for a Service port, as if its process died.
    pub fn stop_serving(&self, namespace: &str, service: &str, port: &str) {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.into(), service.into(), port.into()));
    }

    /// Direct access to the objects, for tests that arrange or inspect state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes a kubeconfig (mode 0600) whose current context, named after `cluster`,
    /// points here with `token`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str, cluster: &str) -> std::io::Result<()> {
        std::fs::write(path, kubeconfig(&self.url(), token, cluster))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn kubeconfig(server: &str, token: &str, cluster: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}-user\ncurrent-context: {cluster}\nusers:\n- name: {cluster}-user\n  user:\n    token: {token}\n"
    )
}

/// What a new cluster has: the default namespaces and three nodes in three zones.
fn bootstrap(store: &Store) {
    let options = WriteOptions {
        field_manager: "kube-apiserver".into(),
        ..WriteOptions::default()
    };
    for namespace in ["default", "kube-system", "kube-public"] {
        let object =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        store
            .create(resources::lookup("", "Namespace"), "", object, &options)
            .expect("a fresh store accepts the default namespaces");
    }
    for (node, zone) in controllers::NODES {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
        });
        store
            .create(resources::lookup("", "Node"), "", object, &options)
            .expect("a fresh store accepts the nodes");
    }
}
