//! Catalogue pages kept as the HTML they are answered with.
//!
//! A catalogue page is the backend's categories and one listing rendered through Tera. The
//! backend keeps both answers, yet two round trips, two JSON parses and a render still cost
//! nine tenths of what the backend's cached listing costs (RESULTS.md). So the page itself
//! is kept: keyed by everything it shows (the query and the cart count in the header) under
//! the catalogue's version, which the backend gives from a read begun after the request
//! arrived. Any change to products or categories (an order's stock, a price) retires every
//! kept page on every replica on the next request: a shopper who just ordered never sees the
//! old stock.
//!
//! When the backend cannot say a version (it keeps no cache, or its store is down), or the
//! budget is zero, every page is rendered: nothing is kept that could go stale unseen.

use std::time::Duration;

use axum::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use shopmicro_common::fresh_reads::FreshReads;
use shopmicro_common::single_flight::SingleFlight;
use shopmicro_common::versioned_memory::Memory;

use crate::backend::{BackendClient, BackendError};
use crate::pages::PageError;

/// How long a page is kept when no version change retires it first: a bound for a change
/// whose announcement was lost, as the backend's own layer has.
const KEPT_AT_MOST: Duration = Duration::from_secs(300);

/// A page shared by the requests that waited for one render; a failed render is `Err(())`
/// to them (its own request has the error).
type Rendered = Result<Bytes, ()>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// kept (served from memory), rendered, shared (waited for another request's render),
    /// uncached (no version to key by, or no budget).
    result: &'static str,
}

pub struct CataloguePages {
    /// `None` with no budget: then no version is asked for nothing.
    versions: Option<FreshReads<i64>>,
    memory: Memory,
    flights: SingleFlight<(i64, String), Rendered>,
    served: Family<ResultLabels, Counter>,
}

impl CataloguePages {
    pub fn new(backend: BackendClient, budget_bytes: usize, registry: &mut Registry) -> Self {
        let served = Family::default();
        registry.register(
            "catalogue_pages",
            "Catalogue pages by how they were answered: kept, rendered, shared (waited for \
             another request's render of the same page) or uncached",
            served.clone(),
        );
        let versions = (budget_bytes > 0).then(|| {
            FreshReads::start(move || {
                let backend = backend.clone();
                async move { backend.catalogue_version().await }
            })
        });
        Self {
            versions,
            memory: Memory::new(budget_bytes, KEPT_AT_MOST),
            flights: SingleFlight::new(),
            served,
        }
    }

    /// The page for `key` (which must name everything the page shows besides the
    /// catalogue): kept if the catalogue has not changed since it was rendered, else from
    /// `render`, once however many requests ask for it at the same time.
    pub async fn page<Fut>(
        &self,
        key: String,
        render: impl FnOnce() -> Fut,
    ) -> Result<Bytes, PageError>
    where
        Fut: Future<Output = Result<Bytes, PageError>>,
    {
        let version = match &self.versions {
            Some(versions) => versions.current().await,
            None => None,
        };
        let Some(version) = version else {
            self.count("uncached");
            return render().await;
        };
        if let Some(page) = self.memory.get(version, &key) {
            self.count("kept");
            return Ok(page);
        }
        let mut failure = None;
        let (rendered, rendered_here) = self
            .flights
            .run((version, key.clone()), || async {
                match render().await {
                    Ok(page) => {
                        // Kept before the flight ends, so no request finds neither.
                        self.memory.insert(version, key, page.clone());
                        Ok(page)
                    }
                    Err(err) => {
                        failure = Some(err);
                        Err(())
                    }
                }
            })
            .await;
        self.count(if rendered_here { "rendered" } else { "shared" });
        rendered.map_err(|()| {
            failure.unwrap_or_else(|| {
                PageError::Backend(BackendError::Unavailable(
                    "the render of this page that the request waited for failed".into(),
                ))
            })
        })
    }

    fn count(&self, result: &'static str) {
        self.served.get_or_create(&ResultLabels { result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use shopmicro_common::testing::{closed_port, metric_value};

    use super::*;

    #[tokio::test]
    async fn without_a_version_or_a_budget_every_page_is_rendered() {
        let unreachable = BackendClient::new(
            format!("http://127.0.0.1:{}", closed_port())
                .parse()
                .unwrap(),
            Duration::from_secs(1),
        );
        // No budget; a budget but no backend to say the version.
        for budget in [0, 1 << 20] {
            let mut registry = Registry::default();
            let pages = CataloguePages::new(unreachable.clone(), budget, &mut registry);
            let renders = AtomicUsize::new(0);
            for _ in 0..2 {
                let page = pages
                    .page("key".into(), || async {
                        renders.fetch_add(1, Ordering::SeqCst);
                        Ok(Bytes::from_static(b"<html>"))
                    })
                    .await
                    .unwrap();
                assert_eq!(&page[..], b"<html>");
            }
            assert_eq!(renders.load(Ordering::SeqCst), 2, "budget {budget}");
            let mut metrics = String::new();
            prometheus_client::encoding::text::encode(&mut metrics, &registry).unwrap();
            assert_eq!(
                metric_value(&metrics, "catalogue_pages_total", &[("result", "uncached")]),
                Some(2.0),
                "{metrics}"
            );
        }
    }
}
