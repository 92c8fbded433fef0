//! The serving model and (re)training. One training runs at a time; requests keep using
//! the previous model until the new one is swapped in.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::metrics::{MlMetrics, ResultLabels};
use crate::model::Model;
use crate::training_data;

#[derive(Clone)]
pub struct ModelStore {
    db: PgPool,
    /// A watch channel: readers take the current model, waiters wake when one arrives.
    current: Arc<watch::Sender<Option<Arc<Model>>>>,
    training: Arc<tokio::sync::Mutex<()>>,
    metrics: MlMetrics,
}

impl ModelStore {
    pub fn new(db: PgPool, metrics: MlMetrics) -> Self {
        Self {
            db,
            current: Arc::new(watch::Sender::new(None)),
            training: Arc::default(),
            metrics,
        }
    }

    pub fn current(&self) -> Option<Arc<Model>> {
        self.current.borrow().clone()
    }

    /// Waits for the first model, up to `limit`.
    pub async fn wait_until_trained(&self, limit: Duration) -> anyhow::Result<()> {
        let mut receiver = self.current.subscribe();
        tokio::time::timeout(limit, receiver.wait_for(Option::is_some))
            .await
            .map_err(|_| anyhow::anyhow!("no model trained within {limit:?}"))?
            .map(|_| ())
            .map_err(|_| anyhow::anyhow!("the model store was dropped"))
    }

    pub async fn retrain(&self) -> anyhow::Result<Arc<Model>> {
        let _one_at_a_time = self.training.lock().await;
        let result = training_data::load(&self.db).await;
        let data = match result {
            Ok(data) => data,
            Err(err) => {
                self.metrics
                    .trainings
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                return Err(err);
            }
        };
        let model =
            Arc::new(tokio::task::spawn_blocking(move || Model::train(&data, Utc::now())).await?);
        let previous = self.current.send_replace(Some(Arc::clone(&model)));
        self.metrics
            .trainings
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
        self.metrics
            .serving(&model, previous.as_ref().map(|m| m.version.as_str()));
        tracing::info!(
            version = %model.version,
            orders = model.training_orders,
            products = model.products,
            "model trained"
        );
        Ok(model)
    }
}
