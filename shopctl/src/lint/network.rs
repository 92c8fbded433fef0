//! Evaluates NetworkPolicies the way Kubernetes does, to answer "can pod A reach pod B on
//! port P?" without a cluster.
//!
//! Semantics (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
//! a pod is isolated for a direction only when some policy selecting it lists that
//! direction in `policyTypes`; an isolated pod accepts exactly the union of what the
//! selecting policies' rules allow; a connection needs the source's egress and the
//! destination's ingress to both allow it.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::selectors::{Labels, matches};
use crate::manifest::Manifest;

/// A connection end: a pod (namespace and labels, and its address when the check models
/// pods with addresses in the pod ranges, as the VPC CNI gives them) or an address outside
/// the cluster.
#[derive(Debug, Clone)]
pub struct Peer {
    pub namespace: Option<String>,
    pub labels: Labels,
    pub ip: Option<Ipv4Addr>,
    /// Named container ports (`http` → 8080), for rules that name ports.
    pub named_ports: Vec<(String, u16)>,
}

impl Peer {
    pub fn pod(namespace: &str, labels: Labels) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            labels,
            ip: None,
            named_ports: Vec::new(),
        }
    }

    pub fn address(ip: Ipv4Addr) -> Self {
        Self {
            namespace: None,
            labels: Labels::new(),
            ip: Some(ip),
            named_ports: Vec::new(),
        }
    }
}

/// Which side of a connection refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    BlockedByEgress,
    BlockedByIngress,
}

pub fn evaluate(
    policies: &[&Manifest],
    from: &Peer,
    to: &Peer,
    port: u16,
    protocol: &str,
) -> Verdict {
    if !direction_allows(policies, "Egress", from, to, to, port, protocol) {
        Verdict::BlockedByEgress
    } else if !direction_allows(policies, "Ingress", to, from, to, port, protocol) {
        Verdict::BlockedByIngress
    } else {
        Verdict::Allowed
    }
}

/// Whether `subject`'s policies for `direction` allow traffic with `other`; `destination`
/// resolves named ports.
fn direction_allows(
    policies: &[&Manifest],
    direction: &str,
    subject: &Peer,
    other: &Peer,
    destination: &Peer,
    port: u16,
    protocol: &str,
) -> bool {
    admitting(
        policies,
        direction,
        subject,
        other,
        destination,
        port,
        protocol,
    )
    .is_none_or(|names| !names.is_empty())
}

/// The policies that admit traffic in `direction` for `subject` (its egress to `other`,
/// or its ingress from `other`): None when no policy isolates `subject` for `direction`
/// (then everything is admitted), else the admitting policies' names (empty: refused).
pub fn admitting(
    policies: &[&Manifest],
    direction: &str,
    subject: &Peer,
    other: &Peer,
    destination: &Peer,
    port: u16,
    protocol: &str,
) -> Option<Vec<String>> {
    let namespace = subject.namespace.as_ref()?;
    let selecting: Vec<&&Manifest> = policies
        .iter()
        .filter(|p| p.namespace() == Some(namespace.as_str()))
        .filter(|p| {
            p.value
                .pointer("/spec/podSelector")
                .is_some_and(|s| matches(s, &subject.labels))
        })
        .filter(|p| policy_types(p).contains(&direction))
        .collect();
    if selecting.is_empty() {
        return None;
    }
    let (rules_key, peers_key) = if direction == "Egress" {
        ("egress", "to")
    } else {
        ("ingress", "from")
    };
    let admits = |policy: &Manifest| {
        let policy_namespace = policy.namespace().unwrap_or_default();
        let rules = policy
            .value
            .pointer(&format!("/spec/{rules_key}"))
            .and_then(Value::as_array);
        rules.into_iter().flatten().any(|rule| {
            let peers_ok = match rule.get(peers_key).and_then(Value::as_array) {
                None => true,
                Some(peers) if peers.is_empty() => true,
                Some(peers) => peers
                    .iter()
                    .any(|peer| peer_matches(peer, policy_namespace, other)),
            };
            peers_ok && ports_match(rule.get("ports"), destination, port, protocol)
        })
    };
    Some(
        selecting
            .into_iter()
            .filter(|policy| admits(policy))
            .map(|policy| policy.name().to_owned())
            .collect(),
    )
}

/// `policyTypes` as the API server defaults it: Ingress always, Egress when egress
/// rules are present.
fn policy_types(policy: &Manifest) -> Vec<&str> {
    match policy
        .value
        .pointer("/spec/policyTypes")
        .and_then(Value::as_array)
    {
        Some(types) => types.iter().filter_map(Value::as_str).collect(),
        None => {
            let mut types = vec!["Ingress"];
            if policy.value.pointer("/spec/egress").is_some() {
                types.push("Egress");
            }
            types
        }
    }
}

fn peer_matches(peer: &Value, policy_namespace: &str, other: &Peer) -> bool {
    if let Some(block) = peer.get("ipBlock") {
        let Some(ip) = other.ip else { return false };
        let cidr = block
            .get("cidr")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let excluded = block
            .get("except")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|except| cidr_contains(except, ip));
        return cidr_contains(cidr, ip) && !excluded;
    }
    let Some(namespace) = &other.namespace else {
        return false;
    };
    let namespace_ok = match peer.get("namespaceSelector") {
        Some(selector) => {
            let namespace_labels =
                Labels::from([("kubernetes.io/metadata.name".to_owned(), namespace.clone())]);
            matches(selector, &namespace_labels)
        }
        None => namespace == policy_namespace,
    };
    let pod_ok = peer
        .get("podSelector")
        .is_none_or(|selector| matches(selector, &other.labels));
    namespace_ok && pod_ok
}

fn ports_match(ports: Option<&Value>, destination: &Peer, port: u16, protocol: &str) -> bool {
    let Some(ports) = ports.and_then(Value::as_array).filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|entry| {
        let entry_protocol = entry
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if entry_protocol != protocol {
            return false;
        }
        match entry.get("port") {
            None => true,
            Some(Value::Number(n)) => {
                let start = n.as_u64().unwrap_or_default();
                let end = entry
                    .get("endPort")
                    .and_then(Value::as_u64)
                    .unwrap_or(start);
                (start..=end).contains(&u64::from(port))
            }
            Some(Value::String(name)) => destination
                .named_ports
                .iter()
                .any(|(n, p)| n == name && *p == port),
            Some(_) => false,
        }
    })
}

/// An IPv4 CIDR block as its first address and prefix length; None when malformed.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u32)> {
    let (base, bits) = cidr.split_once('/')?;
    let (base, bits) = (base.parse::<Ipv4Addr>().ok()?, bits.parse::<u32>().ok()?);
    (bits <= 32).then(|| (Ipv4Addr::from(u32::from(base) & mask(bits)), bits))
}

fn mask(bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    }
}

pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    parse_cidr(cidr).is_some_and(|(base, bits)| u32::from(base) == u32::from(ip) & mask(bits))
}

/// Whether every address of `inner` is in `outer`.
pub fn cidr_covers(outer: &str, inner: &str) -> bool {
    match (parse_cidr(outer), parse_cidr(inner)) {
        (Some((_, outer_bits)), Some((base, inner_bits))) => {
            outer_bits <= inner_bits && cidr_contains(outer, base)
        }
        _ => false,
    }
}

/// Whether two blocks share an address (CIDR blocks either nest or are disjoint).
pub fn cidrs_overlap(a: &str, b: &str) -> bool {
    cidr_covers(a, b) || cidr_covers(b, a)
}

/// An address inside a CIDR block, to stand for traffic from that range.
pub fn address_in(cidr: &str) -> Option<Ipv4Addr> {
    let (base, _) = cidr.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    Some(Ipv4Addr::from(u32::from(base) | 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Manifest {
        Manifest {
            source: "test".into(),
            value: json!({"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "shop"}, "spec": spec}),
        }
    }

    fn pod(app: &str) -> Peer {
        Peer::pod("shop", Labels::from([("app".to_owned(), app.to_owned())]))
    }

    #[test]
    fn without_policies_everything_is_allowed() {
        assert_eq!(
            evaluate(&[], &pod("a"), &pod("b"), 80, "TCP"),
            Verdict::Allowed
        );
    }

    #[test]
    fn default_deny_blocks_both_directions_until_both_sides_allow() {
        let deny = policy(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
        let egress = policy(
            json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 80}]}]}),
        );
        let ingress = policy(
            json!({"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]}),
        );
        assert_eq!(
            evaluate(&[&deny], &pod("a"), &pod("b"), 80, "TCP"),
            Verdict::BlockedByEgress
        );
        assert_eq!(
            evaluate(&[&deny, &egress], &pod("a"), &pod("b"), 80, "TCP"),
            Verdict::BlockedByIngress
        );
        assert_eq!(
            evaluate(&[&deny, &egress, &ingress], &pod("a"), &pod("b"), 80, "TCP"),
            Verdict::Allowed
        );
        assert_eq!(
            evaluate(&[&deny, &egress, &ingress], &pod("a"), &pod("b"), 81, "TCP"),
            Verdict::BlockedByEgress
        );
    }

    // "policyTypes ... If this field is not specified, it will default to Ingress and
    // Egress will be set if the NetworkPolicy has any egress rules."
    #[test]
    fn policy_types_default_to_ingress_only() {
        let ingress_only = policy(json!({"podSelector": {}, "ingress": []}));
        assert_eq!(
            evaluate(&[&ingress_only], &pod("a"), &pod("b"), 80, "TCP"),
            Verdict::BlockedByIngress
        );
    }

    #[test]
    fn namespace_selectors_and_ip_blocks() {
        let from_monitoring = policy(
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.5.0/24"]}}
            ]}]}),
        );
        let prometheus = Peer::pod("monitoring", Labels::new());
        let stranger = Peer::pod("other", Labels::new());
        let vpc = Peer::address("10.0.1.7".parse().unwrap());
        let excluded = Peer::address("10.0.5.7".parse().unwrap());
        assert_eq!(
            evaluate(&[&from_monitoring], &prometheus, &pod("b"), 80, "TCP"),
            Verdict::Allowed
        );
        assert_eq!(
            evaluate(&[&from_monitoring], &stranger, &pod("b"), 80, "TCP"),
            Verdict::BlockedByIngress
        );
        assert_eq!(
            evaluate(&[&from_monitoring], &vpc, &pod("b"), 80, "TCP"),
            Verdict::Allowed
        );
        assert_eq!(
            evaluate(&[&from_monitoring], &excluded, &pod("b"), 80, "TCP"),
            Verdict::BlockedByIngress
        );
    }

    #[test]
    fn named_ports_and_protocols() {
        let named = policy(
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "http"}]}]}),
        );
        let mut server = pod("b");
        server.named_ports.push(("http".into(), 8080));
        assert_eq!(
            evaluate(&[&named], &pod("a"), &server, 8080, "TCP"),
            Verdict::Allowed
        );
        assert_eq!(
            evaluate(&[&named], &pod("a"), &server, 9090, "TCP"),
            Verdict::BlockedByIngress
        );
        assert_eq!(
            evaluate(&[&named], &pod("a"), &server, 8080, "UDP"),
            Verdict::BlockedByIngress
        );
    }

    #[test]
    fn cidrs() {
        assert!(cidrs_overlap("10.0.0.0/16", "10.0.128.0/20"));
        assert!(cidrs_overlap("10.0.128.0/20", "10.0.0.0/16"));
        assert!(!cidrs_overlap("10.0.48.0/28", "10.0.128.0/20"));
        assert!(cidr_covers("0.0.0.0/0", "10.0.128.0/20"));
        assert!(!cidr_covers("10.0.128.0/20", "10.0.0.0/16"));
        assert!(!cidr_contains("10.0.0.0/33", "10.0.0.1".parse().unwrap()));
        assert!(cidr_contains("0.0.0.0/0", "52.1.2.3".parse().unwrap()));
        assert!(!cidr_contains("10.0.0.0/8", "11.0.0.1".parse().unwrap()));
        assert_eq!(address_in("10.0.0.0/16"), Some("10.0.0.1".parse().unwrap()));
    }
}
