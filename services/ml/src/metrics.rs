//! Model metrics: which model is serving, what it learned from, how training goes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::Model;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone)]
pub struct MlMetrics {
    /// Info-style metric: 1 for the serving version, 0 for earlier ones.
    pub model_info: Family<VersionLabels, Gauge>,
    pub training_orders: Gauge,
    pub model_products: Gauge,
    pub trainings: Family<ResultLabels, Counter>,
    pub last_trained: Gauge,
}

impl MlMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            model_info: Family::default(),
            training_orders: Gauge::default(),
            model_products: Gauge::default(),
            trainings: Family::default(),
            last_trained: Gauge::default(),
        };
        registry.register(
            "ml_model_info",
            "Serving model version (value 1)",
            metrics.model_info.clone(),
        );
        registry.register(
            "ml_model_training_orders",
            "Orders in the serving model's training set",
            metrics.training_orders.clone(),
        );
        registry.register(
            "ml_model_products",
            "Products the serving model knows",
            metrics.model_products.clone(),
        );
        registry.register(
            "ml_model_trainings",
            "Training runs by result",
            metrics.trainings.clone(),
        );
        registry.register(
            "ml_model_last_trained_timestamp_seconds",
            "When the serving model was trained (Unix time)",
            metrics.last_trained.clone(),
        );
        metrics
    }

    pub fn serving(&self, model: &Model, previous: Option<&str>) {
        if let Some(previous) = previous {
            self.model_info
                .get_or_create(&VersionLabels {
                    version: previous.to_owned(),
                })
                .set(0);
        }
        self.model_info
            .get_or_create(&VersionLabels {
                version: model.version.clone(),
            })
            .set(1);
        self.training_orders.set(model.training_orders as i64);
        self.model_products.set(model.products as i64);
        self.last_trained.set(model.trained_at.timestamp());
    }
}
