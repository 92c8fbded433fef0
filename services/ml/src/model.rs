//! The recommendation model: item-to-item similarity learned from co-purchases, with a
//! content-based fallback (same category, similar price) for products without history.
//!
//! Pure and deterministic: the same training data always yields the same model, the same
//! version string and the same rankings (ties break on product id).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Recommendations kept per product; requests ask for at most 50.
const MAX_RANKED: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct ProductFeatures {
    pub id: i64,
    pub category: String,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    pub products: Vec<ProductFeatures>,
    /// Each order's distinct product ids.
    pub baskets: Vec<Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub product_id: i64,
    pub score: f64,
}

#[derive(Debug)]
pub struct Model {
    pub version: String,
    pub trained_at: DateTime<Utc>,
    pub training_orders: usize,
    pub products: usize,
    /// Every known product's best [`MAX_RANKED`] recommendations, ranked at training, so
    /// that a request is a lookup and a slice.
    ranked: HashMap<i64, Vec<Scored>>,
}

impl Model {
    pub fn train(data: &TrainingData, trained_at: DateTime<Utc>) -> Self {
        let features: BTreeMap<i64, ProductFeatures> =
            data.products.iter().map(|p| (p.id, p.clone())).collect();
        let mut neighbours = co_purchase_neighbours(data, &features);
        let ranked = features
            .values()
            .map(|product| {
                let learned = neighbours.remove(&product.id).unwrap_or_default();
                (product.id, rank(product, learned, &features))
            })
            .collect();
        Self {
            version: version_of(data),
            trained_at,
            training_orders: data.baskets.len(),
            products: features.len(),
            ranked,
        }
    }

    pub fn knows(&self, product: i64) -> bool {
        self.ranked.contains_key(&product)
    }

    /// The `k` best recommendations (at most [`MAX_RANKED`]), or `None` for a product the
    /// model has never seen.
    ///
    /// Scores: co-purchase neighbours in (0.5, 1], content-based fill in [0, 0.5), so
    /// learned signal always ranks above the fallback.
    pub fn recommend(&self, product: i64, k: usize) -> Option<&[Scored]> {
        let ranked = self.ranked.get(&product)?;
        Some(&ranked[..k.min(ranked.len())])
    }
}

/// Each product's co-purchase neighbours: the cosine similarity of the products' basket
/// vectors, best first, at most [`MAX_RANKED`].
fn co_purchase_neighbours(
    data: &TrainingData,
    features: &BTreeMap<i64, ProductFeatures>,
) -> HashMap<i64, Vec<Scored>> {
    // How many baskets hold each product, and each pair of products.
    let mut counts: HashMap<i64, f64> = HashMap::new();
    let mut pairs: HashMap<(i64, i64), f64> = HashMap::new();
    for basket in &data.baskets {
        let mut items: Vec<i64> = basket
            .iter()
            .copied()
            .filter(|id| features.contains_key(id))
            .collect();
        items.sort_unstable();
        items.dedup();
        for (i, a) in items.iter().enumerate() {
            *counts.entry(*a).or_default() += 1.0;
            for b in &items[i + 1..] {
                *pairs.entry((*a, *b)).or_default() += 1.0;
            }
        }
    }
    let mut neighbours: HashMap<i64, Vec<Scored>> = HashMap::new();
    for ((a, b), together) in &pairs {
        let similarity = together / (counts[a] * counts[b]).sqrt();
        neighbours.entry(*a).or_default().push(Scored {
            product_id: *b,
            score: similarity,
        });
        neighbours.entry(*b).or_default().push(Scored {
            product_id: *a,
            score: similarity,
        });
    }
    for list in neighbours.values_mut() {
        keep_best(list, MAX_RANKED);
    }
    neighbours
}

/// `product`'s recommendations: its `learned` neighbours scored into (0.5, 1], then, when
/// there are fewer than [`MAX_RANKED`], the most similar other products by content.
fn rank(
    product: &ProductFeatures,
    learned: Vec<Scored>,
    features: &BTreeMap<i64, ProductFeatures>,
) -> Vec<Scored> {
    let mut ranked: Vec<Scored> = learned
        .into_iter()
        .map(|s| Scored {
            product_id: s.product_id,
            score: 0.5 + 0.5 * s.score,
        })
        .collect();
    if ranked.len() < MAX_RANKED {
        let mut content: Vec<Scored> = features
            .values()
            .filter(|p| p.id != product.id && !ranked.iter().any(|s| s.product_id == p.id))
            .map(|p| Scored {
                product_id: p.id,
                score: 0.5 * content_similarity(product, p),
            })
            .collect();
        keep_best(&mut content, MAX_RANKED - ranked.len());
        ranked.extend(content);
    }
    ranked
}

/// Keeps the `n` best of `list`, ranked: a selection first, so a large catalogue costs a
/// sort of `n`, not of everything.
fn keep_best(list: &mut Vec<Scored>, n: usize) {
    if list.len() > n && n > 0 {
        list.select_nth_unstable_by(n - 1, ranking);
    }
    list.truncate(n);
    list.sort_by(ranking);
}

/// In [0, 1): mostly "same category", then closeness of price on a log scale.
fn content_similarity(a: &ProductFeatures, b: &ProductFeatures) -> f64 {
    let same_category = if a.category == b.category { 1.0 } else { 0.0 };
    let ratio = (a.price_cents.max(1) as f64 / b.price_cents.max(1) as f64)
        .ln()
        .abs();
    let price_closeness = 1.0 / (1.0 + ratio);
    (0.7 * same_category + 0.3 * price_closeness).min(0.999)
}

/// Best first: higher score, then lower product id (ties break the same way every time).
fn ranking(x: &Scored, y: &Scored) -> std::cmp::Ordering {
    y.score
        .total_cmp(&x.score)
        .then(x.product_id.cmp(&y.product_id))
}

/// A short digest of the training data: equal data, equal version.
fn version_of(data: &TrainingData) -> String {
    let mut hasher = Sha256::new();
    let mut products: Vec<&ProductFeatures> = data.products.iter().collect();
    products.sort_by_key(|p| p.id);
    for p in products {
        hasher.update(format!("p{}:{}:{};", p.id, p.category, p.price_cents));
    }
    for basket in &data.baskets {
        hasher.update(format!("o{basket:?};"));
    }
    let digest = format!("{:x}", hasher.finalize());
    format!("cooc-{}", &digest[..12])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn product(id: i64, category: &str, price_cents: i64) -> ProductFeatures {
        ProductFeatures {
            id,
            category: category.to_owned(),
            price_cents,
        }
    }

    fn shop() -> TrainingData {
        TrainingData {
            products: vec![
                product(1, "electronics", 9_999),  // earbuds
                product(2, "electronics", 2_999),  // charger, bought with 1
                product(3, "electronics", 59_999), // monitor
                product(4, "electronics", 9_999),  // monitor arm, bought with 3
                product(5, "books", 1_999),
                product(6, "books", 2_099), // no history at all
            ],
            baskets: vec![
                vec![1, 2],
                vec![1, 2],
                vec![2, 1],
                vec![3, 4],
                vec![3, 4],
                vec![1, 5],
            ],
        }
    }

    #[test]
    fn products_bought_together_rank_above_unrelated_ones() {
        let model = Model::train(&shop(), Utc::now());
        let recs = model.recommend(1, 5).unwrap();
        assert_eq!(recs[0].product_id, 2, "{recs:?}");
        let rank = |id| recs.iter().position(|s| s.product_id == id);
        // 5 was bought with 1 once; 3 and 4 never: learned signal beats none.
        assert!(rank(5) < rank(3).or(Some(usize::MAX)), "{recs:?}");
        assert!(recs.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn stronger_co_purchase_means_higher_score() {
        let model = Model::train(&shop(), Utc::now());
        let recs = model.recommend(1, 2).unwrap();
        assert_eq!(
            recs.iter().map(|s| s.product_id).collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert!(recs[0].score > recs[1].score);
    }

    #[test]
    fn products_without_history_get_content_based_recommendations() {
        let model = Model::train(&shop(), Utc::now());
        let recs = model.recommend(6, 2).unwrap();
        // Same category, closest price first.
        assert_eq!(recs[0].product_id, 5, "{recs:?}");
        assert!(recs.iter().all(|s| s.score < 0.5));
    }

    #[test]
    fn training_is_deterministic_and_versioned_by_data() {
        let a = Model::train(&shop(), Utc::now());
        let b = Model::train(&shop(), Utc::now());
        assert_eq!(a.version, b.version);
        assert_eq!(a.recommend(3, 4), b.recommend(3, 4));
        let mut more = shop();
        more.baskets.push(vec![5, 6]);
        assert_ne!(Model::train(&more, Utc::now()).version, a.version);
    }

    #[test]
    fn unknown_products_get_none_and_k_is_respected() {
        let model = Model::train(&shop(), Utc::now());
        assert!(model.recommend(99, 3).is_none());
        assert_eq!(model.recommend(1, 3).unwrap().len(), 3);
        assert_eq!(
            model.recommend(1, 100).unwrap().len(),
            5,
            "all other products, no more"
        );
        assert_eq!(model.training_orders, 6);
        assert_eq!(model.products, 6);
    }

    /// The recommendations as they were computed per request before training ranked them:
    /// neighbours first, then as many content-based products as `k` still needs.
    fn ranked_on_request(
        features: &BTreeMap<i64, ProductFeatures>,
        neighbours: &HashMap<i64, Vec<Scored>>,
        product: i64,
        k: usize,
    ) -> Vec<Scored> {
        let target = &features[&product];
        let mut ranked: Vec<Scored> = neighbours
            .get(&product)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|s| Scored {
                product_id: s.product_id,
                score: 0.5 + 0.5 * s.score,
            })
            .collect();
        let mut content: Vec<Scored> = features
            .values()
            .filter(|p| p.id != product && !ranked.iter().any(|s| s.product_id == p.id))
            .map(|p| Scored {
                product_id: p.id,
                score: 0.5 * content_similarity(target, p),
            })
            .collect();
        content.sort_by(ranking);
        ranked.extend(content);
        ranked.truncate(k);
        ranked
    }

    /// A catalogue of 120 products in 4 categories and 1,500 pseudo-random baskets: most
    /// products have more neighbours than are kept, a few (91–100, rarely bought) have some,
    /// and 101–120 have none.
    fn large_shop() -> TrainingData {
        let categories = ["books", "electronics", "garden", "toys"];
        let products = (1..=120)
            .map(|id: i64| {
                product(
                    id,
                    categories[(id % 4) as usize],
                    500 + (id * 7919) % 20_000,
                )
            })
            .collect();
        let mut state = 42u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let baskets = (0..1_500)
            .map(|_| {
                let size = 1 + next() % 8;
                (0..size)
                    .map(|_| match next() % 200 {
                        0 => 91 + (next() % 10) as i64,
                        _ => 1 + (next() % 90) as i64,
                    })
                    .collect()
            })
            .collect();
        TrainingData { products, baskets }
    }

    #[test]
    fn ranking_at_training_answers_as_ranking_per_request_did() {
        let data = large_shop();
        let model = Model::train(&data, Utc::now());
        let features: BTreeMap<i64, ProductFeatures> =
            data.products.iter().map(|p| (p.id, p.clone())).collect();
        let neighbours = co_purchase_neighbours(&data, &features);
        let on_request = |product, k| ranked_on_request(&features, &neighbours, product, k);
        let mut learned_counts = BTreeSet::new();
        for product in &data.products {
            let full = on_request(product.id, usize::MAX);
            learned_counts.insert(full.iter().filter(|s| s.score > 0.5).count());
            for k in [1, 2, 5, 17, 49, 50] {
                assert_eq!(
                    model.recommend(product.id, k).unwrap(),
                    &on_request(product.id, k)[..],
                    "product {}, k {k}",
                    product.id
                );
            }
        }
        // Every case: no neighbours, a few filled up by content, more than are kept.
        assert!(learned_counts.contains(&0), "{learned_counts:?}");
        assert!(
            learned_counts.iter().any(|n| (1..MAX_RANKED).contains(n)),
            "{learned_counts:?}"
        );
        assert!(learned_counts.contains(&MAX_RANKED), "{learned_counts:?}");
    }

    #[test]
    fn keeping_the_best_is_sorting_and_truncating() {
        let list: Vec<Scored> = (0..300)
            .map(|i: i64| Scored {
                product_id: (i * 37) % 300,
                score: ((i * 13) % 17) as f64,
            })
            .collect();
        for n in [0, 1, 10, 299, 300, 400] {
            let mut sorted = list.clone();
            sorted.sort_by(ranking);
            sorted.truncate(n);
            let mut kept = list.clone();
            keep_best(&mut kept, n);
            assert_eq!(kept, sorted, "n {n}");
        }
    }

    #[test]
    fn an_empty_shop_trains_an_empty_model() {
        let model = Model::train(&TrainingData::default(), Utc::now());
        assert_eq!(model.products, 0);
        assert!(model.recommend(1, 3).is_none());
    }
}
