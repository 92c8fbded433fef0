//! Shared plumbing for the ShopMicro services.
//!
//! Every service gets the same telemetry (JSON logs with trace ids, OTLP traces, RED
//! metrics), the same configuration rules, the same error shape and the same graceful
//! shutdown, so that operating one service is like operating all of them.

pub mod config;
pub mod error;
pub mod fresh_reads;
pub mod handover;
pub mod http_client;
pub mod metrics;
pub mod observe;
pub mod overload;
pub mod propagation;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod single_flight;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod versioned_memory;
