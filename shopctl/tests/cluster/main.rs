//! Cluster operations through the real `shopctl` binary against the simulated Kubernetes
//! API server (`shopmicro-kube-sim`, on loopback): apply, wait, prune, history, rollback,
//! status, and the ways access fails. Simulated, not a real cluster: what is proven is
//! shopctl's side of the protocol and its decisions.

#[path = "../support/mod.rs"]
mod support;

mod aws_roles;
mod backups;
mod blue_green;
mod canary;
mod harness;
mod identities;
mod oncall;
mod releases;
mod validation;
