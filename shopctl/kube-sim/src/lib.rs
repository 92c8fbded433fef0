//! A simulated Kubernetes API server on loopback, for testing `shopctl` where no cluster can
//! run. It is not Kubernetes: it imitates the behaviour a client observes — discovery,
//! CRUD with upstream metadata bookkeeping, server-side apply with managed fields,
//! patches, selectors, watches, status and scale subresources, the service proxy, garbage
//! collection, controllers for Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs
//! and Pods whose behaviour image tags script (see `controllers`), and authorisation by
//! upstream RBAC plus EKS access entries (`rbac`, `eks`, `authz`). Each imitated behaviour
//! has a test citing the upstream documentation it follows.

pub mod api;
pub mod authz;
pub mod controllers;
pub mod eks;
pub mod error;
pub mod fields;
pub mod logs;
pub mod proxy;
pub mod rbac;
pub mod resources;
pub mod selectors;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

pub use authz::AuditRecord;
use authz::{Authority, Credential};
pub use eks::{AccessEntry, AccessScope, PolicyAssociation};
pub use rbac::UserInfo;
use store::{Store, WriteOptions};

#[derive(Debug, Clone)]
pub struct Config {
    /// How long a healthy pod takes to become ready (or a Job's pod to finish).
    pub ready_after: Duration,
    /// Serve requests without credentials as `system:anonymous` (for kubectl, which sends
    /// tokens only over TLS); otherwise they get 401, as a secured API server answers.
    /// What the anonymous user may do is up to RBAC, as upstream.
    pub anonymous: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_millis(100),
            anonymous: false,
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    store: Store,
    authority: Authority,
    backends: proxy::Backends,
    logs: logs::PodLogs,
    jobs_held: Arc<AtomicBool>,
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
        let authority = Authority::new(config.anonymous);
        let admin_token = random_token();
        authority.insert(
            admin_token.clone(),
            Credential {
                user: authenticated("admin", &[rbac::MASTERS]),
                expired: false,
                access_entry: None,
            },
        );
        let backends = proxy::Backends::default();
        let pod_logs = logs::PodLogs::default();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = api::AppState {
            store: store.clone(),
            authority: authority.clone(),
            backends: backends.clone(),
            logs: pod_logs.clone(),
        };
        let controller_store = store.clone();
        let controller_logs = pod_logs.clone();
        let jobs_held = Arc::new(AtomicBool::new(false));
        let controller_jobs_held = jobs_held.clone();
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
                        controllers::Controllers::new(
                            controller_store,
                            config.ready_after,
                            controller_jobs_held,
                            controller_logs,
                        )
                        .run(),
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
            authority,
            backends,
            logs: pod_logs,
            jobs_held,
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

    fn issue(&self, credential: Credential) -> String {
        let token = random_token();
        self.authority.insert(token.clone(), credential);
        token
    }

    /// A bearer token for `user` in `groups` (and `system:authenticated`, as upstream adds
    /// to every authenticated user). What it may do is whatever RBAC grants them.
    pub fn add_user(&self, user: &str, groups: &[&str]) -> String {
        self.issue(Credential {
            user: authenticated(user, groups),
            expired: false,
            access_entry: None,
        })
    }

    /// A token the server recognises but no longer accepts: every request is a 401.
    pub fn add_expired_token(&self, user: &str) -> String {
        self.issue(Credential {
            user: authenticated(user, &[]),
            expired: true,
            access_entry: None,
        })
    }

    /// A token for an EKS access entry: its user name and Kubernetes groups for RBAC, and
    /// its access policies evaluated as EKS does (see `eks`).
    pub fn add_access_entry(&self, entry: AccessEntry) -> Result<String, String> {
        entry.validate()?;
        let groups: Vec<&str> = entry.kubernetes_groups.iter().map(String::as_str).collect();
        Ok(self.issue(Credential {
            user: authenticated(&entry.username, &groups),
            expired: false,
            access_entry: Some(entry),
        }))
    }

    /// Binds ClusterRole `role` to `user` in each of `namespaces` (RoleBindings), as an
    /// administrator would with `kubectl create rolebinding`.
    pub fn bind_in_namespaces(&self, user: &str, role: &str, namespaces: &[&str]) {
        for namespace in namespaces {
            let binding = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("{role}:{user}"), "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
            });
            self.create_as_admin(binding);
        }
    }

    /// Creates an object directly in the store, as an administrator (RBAC objects a test
    /// arranges, namespaces a binding needs).
    pub fn create_as_admin(&self, object: Value) {
        let rt = resources::by_kind(
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
        )
        .unwrap_or_else(|| panic!("not a served kind: {object}"));
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let options = WriteOptions {
            field_manager: "simulator-admin".into(),
            ..WriteOptions::default()
        };
        self.store
            .create(rt, &namespace, object, &options)
            .unwrap_or_else(|e| panic!("{}", e.message));
        rbac::aggregate(&self.store);
    }

    /// Binds `cluster-admin` to `system:anonymous`, what an administrator would have to do
    /// on a real cluster to let unauthenticated requests (kubectl over plain HTTP) do
    /// anything. Only meaningful with `Config::anonymous`.
    pub fn make_anonymous_admin(&self) {
        self.create_as_admin(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "simulator:anonymous-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:anonymous"}],
        }));
    }

    /// Every authorisation decision since the last call: which user asked to do what, and
    /// whether it was allowed.
    pub fn take_audit(&self) -> Vec<AuditRecord> {
        self.authority.take_audit()
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

    /// Writes `line` to the running log of `container` in pod `namespace/pod`, as if the
    /// container printed it (the simulator runs no processes).
    pub fn write_log(&self, namespace: &str, pod: &str, container: &str, line: &str) {
        self.logs.write(namespace, pod, container, line);
    }

    /// While held, Jobs' pods keep running instead of finishing: a test plays what their
    /// containers do (the simulator runs no processes), then lets them finish.
    pub fn hold_jobs(&self, held: bool) {
        self.jobs_held.store(held, Ordering::SeqCst);
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

fn authenticated(user: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push(rbac::AUTHENTICATED.into());
    UserInfo {
        name: user.into(),
        groups,
    }
}

pub fn kubeconfig(server: &str, token: &str, cluster: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}-user\ncurrent-context: {cluster}\nusers:\n- name: {cluster}-user\n  user:\n    token: {token}\n"
    )
}

/// What a new cluster has: the default namespaces, the default RBAC roles and bindings,
/// and three nodes in three zones.
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
    for object in rbac::bootstrap_objects() {
        let rt = resources::by_kind(
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
        )
        .expect("bootstrap RBAC objects are served kinds");
        store
            .create(rt, "", object, &options)
            .expect("a fresh store accepts the default roles");
    }
    rbac::aggregate(store);
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
