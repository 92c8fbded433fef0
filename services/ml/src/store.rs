//! The serving model and (re)training. One training runs at a time, and a retrain asked
//! for while one runs is answered at once rather than queued (retrains cannot pile up);
//! requests keep using the previous model until the new one is swapped in.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::metrics::{MlMetrics, ResultLabels};
use crate::model::Model;
use crate::training_data;

/// Why a retrain produced no model.
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error("a retrain is already running; its model will serve when it finishes")]
    Running,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

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

    pub async fn retrain(&self) -> Result<Arc<Model>, RetrainError> {
        let Ok(_one_at_a_time) = self.training.try_lock() else {
            return Err(RetrainError::Running);
        };
        let result = training_data::load(&self.db).await;
        let data = match result {
            Ok(data) => data,
            Err(err) => {
                self.metrics
                    .trainings
                    .get_or_create(&ResultLabels { result: "error" })
                    .inc();
                return Err(err.into());
            }
        };
        let model = Arc::new(
            tokio::task::spawn_blocking(move || Model::train(&data, Utc::now()))
                .await
                .map_err(anyhow::Error::from)?,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_retrain_asked_for_while_one_runs_is_answered_not_queued() {
        // Never connected: the refusal comes before any query.
        let db = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let store = ModelStore::new(db, MlMetrics::register(&mut Default::default()));
        let running = store.training.clone().try_lock_owned().unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(1), store.retrain())
            .await
            .expect("answered at once");
        assert!(
            matches!(answered, Err(RetrainError::Running)),
            "{answered:?}"
        );
        drop(running);
        // Free again: this one runs (and fails, with no database), not refused.
        let ran = store.retrain().await;
        assert!(matches!(ran, Err(RetrainError::Failed(_))), "{ran:?}");
    }
}
