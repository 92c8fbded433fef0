//! Business and dependency metrics of the backend, next to the shared RED metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shopmicro_common::metrics::latency_histogram;

use crate::db::reads::ReadUsage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub operation: &'static str,
    /// hit, miss, ok, error (Redis failed or timed out: we fell back to PostgreSQL).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

#[derive(Clone)]
pub struct BackendMetrics {
    pub orders_created: Counter,
    pub order_value_cents: Counter,
    pub stockouts: Counter,
    pub cache_operations: Family<CacheLabels, Counter>,
    pub recommendations: Family<SourceLabels, Counter>,
    pub catalogue_reads: Family<SourceLabels, Counter>,
    pub ml_request_duration: Histogram,
    pub db_pool_connections: Family<PoolLabels, Gauge>,
    /// The catalogue's pipelined read connections (`db::reads`).
    pub db_read_connections: Family<PoolLabels, Gauge>,
    pub db_reads_in_flight: Gauge,
    pub reads: ReadMetrics,
}

/// What the catalogue's read connections count as it happens; `db::reads` holds a copy.
#[derive(Clone, Default)]
pub struct ReadMetrics {
    /// Connections dropped because they died or stopped answering, to be opened again.
    pub replaced: Counter,
    /// Reads that ran out of time, on the server (`statement_timeout`) or waiting for it.
    pub timed_out: Counter,
}

impl BackendMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            orders_created: Counter::default(),
            order_value_cents: Counter::default(),
            stockouts: Counter::default(),
            cache_operations: Family::default(),
            recommendations: Family::default(),
            catalogue_reads: Family::default(),
            ml_request_duration: latency_histogram(),
            db_pool_connections: Family::default(),
            db_read_connections: Family::default(),
            db_reads_in_flight: Gauge::default(),
            reads: ReadMetrics::default(),
        };
        registry.register(
            "shop_orders_created",
            "Orders placed",
            metrics.orders_created.clone(),
        );
        registry.register(
            "shop_order_value_cents",
            "Total value of orders placed, in cents",
            metrics.order_value_cents.clone(),
        );
        registry.register(
            "shop_stockouts",
            "Orders rejected because a product did not have enough stock",
            metrics.stockouts.clone(),
        );
        registry.register(
            "cache_operations",
            "Redis cache operations by result; errors fell back to PostgreSQL",
            metrics.cache_operations.clone(),
        );
        registry.register(
            "recommendations_served",
            "Recommendation responses by source (ml or fallback)",
            metrics.recommendations.clone(),
        );
        registry.register(
            "catalogue_reads",
            "Catalogue answers by where they came from: memory, redis, database, or shared \
             (waited for another request's database read of the same answer)",
            metrics.catalogue_reads.clone(),
        );
        registry.register_with_unit(
            "ml_request_duration",
            "Latency of calls to the ml service, including failed ones",
            Unit::Seconds,
            metrics.ml_request_duration.clone(),
        );
        registry.register(
            "db_pool_connections",
            "PostgreSQL pool connections by state (idle, in_use, max)",
            metrics.db_pool_connections.clone(),
        );
        registry.register(
            "db_read_connections",
            "Pipelined catalogue read connections by state (live, max)",
            metrics.db_read_connections.clone(),
        );
        registry.register(
            "db_reads_in_flight",
            "Catalogue reads sent on the read connections and not yet answered",
            metrics.db_reads_in_flight.clone(),
        );
        registry.register(
            "db_read_connections_replaced",
            "Read connections dropped because they died or stopped answering",
            metrics.reads.replaced.clone(),
        );
        registry.register(
            "db_read_timeouts",
            "Catalogue reads that ran out of time (DATABASE_READ_TIMEOUT_MS)",
            metrics.reads.timed_out.clone(),
        );
        metrics
    }

    pub fn cache(&self, operation: &'static str, result: &'static str) {
        self.cache_operations
            .get_or_create(&CacheLabels { operation, result })
            .inc();
    }

    pub fn catalogue_read(&self, source: &'static str) {
        self.catalogue_reads
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    pub fn record_pool(&self, pool: &sqlx::PgPool) {
        let size = i64::from(pool.size());
        let idle = pool.num_idle() as i64;
        let max = i64::from(pool.options().get_max_connections());
        self.db_pool_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.db_pool_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(size - idle);
        self.db_pool_connections
            .get_or_create(&PoolLabels { state: "max" })
            .set(max);
    }

    pub fn record_reads(&self, usage: ReadUsage) {
        for (state, count) in [("live", usage.live), ("max", usage.max)] {
            self.db_read_connections
                .get_or_create(&PoolLabels { state })
                .set(count as i64);
        }
        self.db_reads_in_flight.set(usage.in_flight as i64);
    }
}
