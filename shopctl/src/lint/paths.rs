//! The platform's network paths, evaluated with Kubernetes' NetworkPolicy semantics
//! (`network.rs`): every path the platform needs is open (SM010), no other path into its
//! workloads is (SM016), and no ipBlock admits pods by address (SM017). With the VPC CNI
//! pods get VPC addresses, so an ipBlock covering the pod ranges admits every pod of every
//! namespace, whatever the pod selectors beside it say.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

use super::checks::{of_kind, pod_labels, violation, workloads};
use super::network::{self, Peer, Verdict};
use super::selectors::Labels;
use super::{Context, Violation};
use crate::manifest::{Manifest, containers, pod_template};

/// The connections the platform needs, by workload name (`app.kubernetes.io/name`) and
/// the destination's named port (its first port when `None`). Paths whose workloads are
/// not in the release are skipped.
const PLATFORM_PATHS: [(&str, &str, Option<&str>); 18] = [
    ("frontend", "backend", None),
    ("backend", "ml", None),
    ("backend", "postgres", None),
    ("backend", "redis", None),
    ("ml", "postgres", None),
    ("db-backup", "postgres", None),
    ("db-backup", "s3", None),
    ("db-backup", "pushgateway", None),
    ("frontend", "tempo", Some("otlp-http")),
    ("backend", "tempo", Some("otlp-http")),
    ("ml", "tempo", Some("otlp-http")),
    ("prometheus", "alertmanager", None),
    ("prometheus", "pushgateway", None),
    ("grafana", "prometheus", None),
    ("grafana", "loki", Some("http")),
    ("grafana", "tempo", Some("http")),
    ("grafana", "alertmanager", None),
    ("alloy", "loki", Some("http")),
];

/// What `shopctl validate` reads through the API server's service proxy (workload, named
/// port or the first), which connects from the control plane's addresses.
const PROXIED: [(&str, Option<&str>); 7] = [
    ("frontend", None),
    ("backend", None),
    ("ml", None),
    ("prometheus", None),
    ("alertmanager", None),
    ("loki", Some("http")),
    ("tempo", Some("http")),
];

/// Sources SM016 tries besides the platform's own workloads.
const INGRESS_CONTROLLER: &str = "the ingress controller";
const OTHER_NAMESPACE: &str = "a pod of another namespace";
/// A namespace no policy of the release selects anything in.
const STRANGERS_NAMESPACE: &str = "shopmicro-lint-elsewhere";

/// The release's workloads and NetworkPolicies, as network peers.
struct Platform<'a> {
    policies: Vec<&'a Manifest>,
    workloads: Vec<(usize, &'a Manifest)>,
    /// The address every pod has, when the check models pod addresses.
    pod_address: Option<Ipv4Addr>,
}

/// A workload's name (`app.kubernetes.io/name` on its pods).
fn name_of(workload: &Manifest) -> Option<String> {
    pod_labels(workload).get("app.kubernetes.io/name").cloned()
}

/// A workload's declared container ports: name (maybe empty), number, protocol.
fn ports_of(workload: &Manifest) -> Vec<(String, u16, String)> {
    containers(workload)
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|port| {
            let number = port.get("containerPort").and_then(Value::as_u64)?;
            let text = |key: &str| port.get(key).and_then(Value::as_str).map(str::to_owned);
            Some((
                text("name").unwrap_or_default(),
                u16::try_from(number).ok()?,
                text("protocol").unwrap_or_else(|| "TCP".to_owned()),
            ))
        })
        .collect()
}

/// The port Prometheus scrapes a workload's pods on (its `prometheus.io/*` annotations).
fn metrics_port(workload: &Manifest) -> Option<u16> {
    let annotations = pod_template(workload)?.pointer("/metadata/annotations")?;
    let scraped = annotations
        .get("prometheus.io/scrape")
        .and_then(Value::as_str)
        == Some("true");
    let port = annotations
        .get("prometheus.io/port")
        .and_then(Value::as_str)?;
    scraped.then(|| port.parse().ok()).flatten()
}

impl<'a> Platform<'a> {
    fn new(objects: &'a [Manifest], pod_address: Option<Ipv4Addr>) -> Self {
        Self {
            policies: of_kind(objects, "NetworkPolicy").map(|(_, p)| p).collect(),
            workloads: workloads(objects).collect(),
            pod_address,
        }
    }

    fn workload(&self, name: &str) -> Option<(usize, &'a Manifest)> {
        self.workloads
            .iter()
            .copied()
            .find(|(_, w)| name_of(w).as_deref() == Some(name))
    }

    fn pod(&self, namespace: &str, labels: Labels) -> Peer {
        let mut peer = Peer::pod(namespace, labels);
        peer.ip = self.pod_address;
        peer
    }

    fn peer(&self, workload: &Manifest) -> Peer {
        let mut peer = self.pod(
            workload.namespace().unwrap_or("default"),
            pod_labels(workload),
        );
        peer.named_ports = ports_of(workload)
            .into_iter()
            .filter(|(name, _, _)| !name.is_empty())
            .map(|(name, number, _)| (name, number))
            .collect();
        peer
    }

    /// The port a path to `target` uses: the named one, else the first.
    fn port(target: &Manifest, name: Option<&str>) -> Option<u16> {
        let ports = ports_of(target);
        match name {
            Some(name) => ports.iter().find(|(n, _, _)| n == name),
            None => ports.first(),
        }
        .map(|(_, number, _)| *number)
    }

    /// Where the frontend's traffic comes from: the load balancer's addresses, or the
    /// controller's pods when it runs in the cluster.
    fn ingress_source(&self, context: &Context) -> Peer {
        match context
            .ingress_source_cidrs
            .first()
            .and_then(|c| network::address_in(c))
        {
            Some(ip) => Peer::address(ip),
            None => self.pod(&context.ingress_namespace, Labels::new()),
        }
    }

    /// Prometheus' pods: the release's, or pods labelled as a Prometheus in the
    /// observability namespace would be.
    fn prometheus(&self, context: &Context) -> Peer {
        self.workload("prometheus")
            .map(|(_, p)| self.peer(p))
            .unwrap_or_else(|| {
                self.pod(
                    &context.observability_namespace,
                    Labels::from([("app.kubernetes.io/name".to_owned(), "prometheus".to_owned())]),
                )
            })
    }

    /// Every (source, destination, port) the platform needs, by workload name.
    fn needed(&self) -> BTreeSet<(String, String, u16)> {
        let mut needed = BTreeSet::new();
        for (from, to, port_name) in PLATFORM_PATHS {
            if let Some((_, target)) = self.workload(to)
                && let Some(port) = Self::port(target, port_name)
            {
                needed.insert((from.to_owned(), to.to_owned(), port));
            }
        }
        for (_, workload) in &self.workloads {
            if let (Some(name), Some(port)) = (name_of(workload), metrics_port(workload)) {
                needed.insert(("prometheus".to_owned(), name, port));
            }
        }
        if let Some((_, frontend)) = self.workload("frontend")
            && let Some(port) = Self::port(frontend, None)
        {
            needed.insert((INGRESS_CONTROLLER.to_owned(), "frontend".to_owned(), port));
        }
        needed
    }
}

fn describe(verdict: Verdict, what: &str, port: u16, protocol: &str) -> Option<String> {
    match verdict {
        Verdict::Allowed => None,
        Verdict::BlockedByEgress => Some(format!(
            "{what} on {port}/{protocol} is blocked by the sender's egress policy"
        )),
        Verdict::BlockedByIngress => Some(format!(
            "{what} on {port}/{protocol} is blocked by the receiver's ingress policy"
        )),
    }
}

/// SM010: every path the platform needs is open, on both sides.
pub(super) fn reachable(objects: &[Manifest], context: &Context) -> Vec<Violation> {
    // Pods are not given addresses: a needed path must be open by selector, not because
    // an ipBlock happens to cover the pods.
    let platform = Platform::new(objects, None);
    let mut found = Vec::new();
    let mut require =
        |index: usize, from: &Peer, to: &Peer, port: u16, protocol: &str, what: &str| {
            let verdict = network::evaluate(&platform.policies, from, to, port, protocol);
            if let Some(message) = describe(verdict, what, port, protocol) {
                found.push(violation(index, message));
            }
        };
    if let Some((index, frontend)) = platform.workload("frontend")
        && let Some(port) = Platform::port(frontend, None)
    {
        let source = platform.ingress_source(context);
        let to = platform.peer(frontend);
        require(
            index,
            &source,
            &to,
            port,
            "TCP",
            "ingress controller → frontend",
        );
    }
    for (from, to, port_name) in PLATFORM_PATHS {
        let Some((from_index, source)) = platform.workload(from) else {
            continue;
        };
        let what = format!("{from} → {}", if to == "s3" { "S3" } else { to });
        if to == "s3" {
            let s3 = Peer::address("52.216.0.1".parse().expect("a literal address"));
            require(from_index, &platform.peer(source), &s3, 443, "TCP", &what);
            continue;
        }
        let Some((to_index, target)) = platform.workload(to) else {
            continue;
        };
        let Some(port) = Platform::port(target, port_name) else {
            continue;
        };
        let (from, to) = (platform.peer(source), platform.peer(target));
        require(to_index, &from, &to, port, "TCP", &what);
    }
    if let Some(api_server) = context
        .api_server_cidrs
        .first()
        .and_then(|c| network::address_in(c))
    {
        for (name, port_name) in PROXIED {
            if let Some((index, target)) = platform.workload(name)
                && let Some(port) = Platform::port(target, port_name)
            {
                let what = format!("API server proxy → {name}");
                let to = platform.peer(target);
                require(index, &Peer::address(api_server), &to, port, "TCP", &what);
            }
        }
    }
    let prometheus = platform.prometheus(context);
    // Every pod resolves names.
    let dns = Peer::pod(
        "kube-system",
        Labels::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
    );
    for &(index, workload) in &platform.workloads {
        let peer = platform.peer(workload);
        if let Some(port) = metrics_port(workload) {
            let what = format!("Prometheus → {} /metrics", workload.name());
            require(index, &prometheus, &peer, port, "TCP", &what);
        }
        let what = format!("{} → DNS", workload.name());
        require(index, &peer, &dns, 53, "UDP", &what);
    }
    found
}

/// Why one side of an open connection admits it.
fn admitted_by(
    platform: &Platform,
    direction: &str,
    subject: &Peer,
    other: &Peer,
    destination: &Peer,
    port: u16,
    protocol: &str,
) -> String {
    let policies = &platform.policies;
    match network::admitting(
        policies,
        direction,
        subject,
        other,
        destination,
        port,
        protocol,
    ) {
        None => "no policy isolates it".to_owned(),
        Some(names) => format!("admitted by NetworkPolicy {}", names.join(", ")),
    }
}

/// SM016: into each of the platform's workloads, only the paths it needs are open — from
/// its other workloads, from any pod of their namespaces or of another namespace, and
/// from the ingress controller. Pods have an address in the pod ranges, so an ipBlock
/// that covers them opens the path.
pub(super) fn only_needed_open(objects: &[Manifest], context: &Context) -> Vec<Violation> {
    let address = context
        .pod_cidrs
        .first()
        .and_then(|c| network::address_in(c));
    let platform = Platform::new(objects, address);
    let needed = platform.needed();
    let mut sources: Vec<(String, Peer)> = platform
        .workloads
        .iter()
        .filter_map(|(_, w)| Some((name_of(w)?, platform.peer(w))))
        .collect();
    let namespaces: BTreeSet<&str> = platform
        .workloads
        .iter()
        .filter_map(|(_, w)| w.namespace())
        .collect();
    // Anything someone runs beside the platform: unlabelled pods.
    for namespace in namespaces {
        sources.push((
            format!("a pod of namespace {namespace}"),
            platform.pod(namespace, Labels::new()),
        ));
    }
    sources.push((
        OTHER_NAMESPACE.to_owned(),
        platform.pod(STRANGERS_NAMESPACE, Labels::new()),
    ));
    sources.push((
        INGRESS_CONTROLLER.to_owned(),
        platform.pod(&context.ingress_namespace, Labels::new()),
    ));

    let mut found = Vec::new();
    for &(index, target) in &platform.workloads {
        let Some(to) = name_of(target) else { continue };
        let destination = platform.peer(target);
        for (from, source) in sources.iter().filter(|(from, _)| *from != to) {
            let mut open: BTreeMap<String, String> = BTreeMap::new();
            for (_, port, protocol) in ports_of(target) {
                if needed.contains(&(from.clone(), to.clone(), port))
                    || network::evaluate(&platform.policies, source, &destination, port, &protocol)
                        != Verdict::Allowed
                {
                    continue;
                }
                let why = format!(
                    "its ingress: {}; the sender's egress: {}",
                    admitted_by(
                        &platform,
                        "Ingress",
                        &destination,
                        source,
                        &destination,
                        port,
                        &protocol
                    ),
                    admitted_by(
                        &platform,
                        "Egress",
                        source,
                        &destination,
                        &destination,
                        port,
                        &protocol
                    ),
                );
                open.insert(format!("{port}/{protocol}"), why);
            }
            if !open.is_empty() {
                let ports: Vec<&str> = open.keys().map(String::as_str).collect();
                let why = open.values().next().expect("not empty");
                found.push(violation(
                    index,
                    format!(
                        "{from} → {to} on {} is open, but the platform does not use that path ({why})",
                        ports.join(", ")
                    ),
                ));
            }
        }
    }
    found
}

/// SM017: no ipBlock overlaps a pod range unless its `except` removes the whole range.
pub(super) fn ip_blocks_exclude_pods(objects: &[Manifest], context: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, policy) in of_kind(objects, "NetworkPolicy") {
        for (direction, peers_key) in [("ingress", "from"), ("egress", "to")] {
            let rules = policy
                .value
                .pointer(&format!("/spec/{direction}"))
                .and_then(Value::as_array);
            for (number, rule) in rules.into_iter().flatten().enumerate() {
                let blocks = rule
                    .get(peers_key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|peer| peer.get("ipBlock"));
                for block in blocks {
                    let cidr = block
                        .get("cidr")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let excepted: Vec<&str> = block
                        .get("except")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let pods: Vec<&str> = context
                        .pod_cidrs
                        .iter()
                        .map(String::as_str)
                        .filter(|pods| network::cidrs_overlap(cidr, pods))
                        .filter(|pods| !excepted.iter().any(|e| network::cidr_covers(e, pods)))
                        .collect();
                    if !pods.is_empty() {
                        found.push(violation(
                            index,
                            format!(
                                "{direction} rule {} admits {cidr}, which overlaps the pod ranges {}: every pod of every namespace matches it by address",
                                number + 1,
                                pods.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    found
}
