//! The demo catalogue (240 products in 10 categories) and an order history with real
//! co-purchase structure, so a fresh environment has something to browse and the
//! recommendation model has something to learn.
//!
//! Generation is deterministic: every environment seeded from scratch has the same ids,
//! prices and history, which makes demos and bug reports reproducible.

use anyhow::Context;
use sqlx::PgPool;

/// Serialises seeding across replicas that start together (any constant works; this one
/// spells "shopseed").
const SEED_LOCK: i64 = 0x73686f7073656564;

struct Category {
    slug: &'static str,
    name: &'static str,
    brands: [&'static str; 6],
    /// Item name, price range in cents, and what it is for.
    items: [(&'static str, i64, i64, &'static str); 4],
}

const CATALOGUE: [Category; 10] = [
    Category {
        slug: "electronics",
        name: "Electronics",
        brands: ["Aurora", "Nimbus", "Vertex", "Pulse", "Quantum", "Orbit"],
        items: [
            (
                "Wireless Earbuds",
                3_999,
                19_999,
                "noise-cancelling earbuds with a pocketable charging case",
            ),
            (
                "USB-C Charger",
                1_499,
                5_999,
                "fast charger for phones, tablets and laptops",
            ),
            (
                "27-inch 4K Monitor",
                24_999,
                69_999,
                "IPS monitor with accurate colour for work and play",
            ),
            (
                "Monitor Arm",
                4_999,
                14_999,
                "gas-spring arm that frees up the whole desk",
            ),
        ],
    },
    Category {
        slug: "books",
        name: "Books",
        brands: [
            "Harbor",
            "Lantern",
            "Meridian",
            "Northwind",
            "Quill",
            "Summit",
        ],
        items: [
            (
                "Cookbook",
                1_999,
                4_499,
                "seasonal recipes with step-by-step photographs",
            ),
            (
                "Kitchen Notebook",
                899,
                1_999,
                "lay-flat notebook for recipes and shopping lists",
            ),
            (
                "Mystery Novel",
                999,
                2_499,
                "a page-turner set in a fog-bound harbour town",
            ),
            (
                "Reading Light",
                1_299,
                3_499,
                "clip-on light with warm and cool settings",
            ),
        ],
    },
    Category {
        slug: "home-kitchen",
        name: "Home & Kitchen",
        brands: [
            "Copper & Oak",
            "Hearth",
            "Kettle & Co",
            "Larder",
            "Pantry",
            "Stoneware",
        ],
        items: [
            (
                "Pour-Over Coffee Maker",
                2_499,
                7_999,
                "glass pour-over brewer for clean, bright coffee",
            ),
            (
                "Burr Coffee Grinder",
                4_999,
                19_999,
                "conical burr grinder with 40 grind settings",
            ),
            (
                "Chef's Knife",
                3_999,
                14_999,
                "forged 20 cm knife balanced for everyday prep",
            ),
            (
                "End-Grain Cutting Board",
                2_999,
                8_999,
                "oiled hardwood board that is kind to edges",
            ),
        ],
    },
    Category {
        slug: "sports-outdoors",
        name: "Sports & Outdoors",
        brands: [
            "Alpine",
            "Basecamp",
            "Cairn",
            "Ridge",
            "Trailhead",
            "Tundra",
        ],
        items: [
            (
                "Trail Running Shoes",
                8_999,
                17_999,
                "grippy, light shoes for rough ground",
            ),
            (
                "Running Socks (3 pack)",
                1_299,
                2_999,
                "blister-free merino blend socks",
            ),
            (
                "Two-Person Tent",
                12_999,
                39_999,
                "freestanding tent that pitches in five minutes",
            ),
            (
                "Sleeping Pad",
                4_999,
                14_999,
                "insulated inflatable pad for three seasons",
            ),
        ],
    },
    Category {
        slug: "toys-games",
        name: "Toys & Games",
        brands: ["Bramble", "Cobble", "Fable", "Kite", "Marble", "Tinker"],
        items: [
            (
                "Strategy Board Game",
                2_999,
                6_999,
                "trading and building for 2 to 5 players",
            ),
            (
                "Card Sleeves (100)",
                599,
                1_499,
                "clear sleeves that keep cards like new",
            ),
            (
                "Wooden Train Set",
                3_999,
                11_999,
                "beech track with bridges and a tunnel",
            ),
            (
                "Train Set Expansion",
                1_999,
                4_999,
                "extra track, a station and two carriages",
            ),
        ],
    },
    Category {
        slug: "beauty",
        name: "Beauty",
        brands: ["Bloom", "Dew", "Lumen", "Petal", "Sage", "Verve"],
        items: [
            (
                "Facial Cleanser",
                999,
                2_999,
                "gentle gel cleanser for every skin type",
            ),
            (
                "Daily Moisturiser",
                1_499,
                4_499,
                "light moisturiser with SPF 30",
            ),
            ("Shampoo", 799, 2_499, "sulphate-free shampoo with rosemary"),
            (
                "Conditioner",
                799,
                2_499,
                "lightweight conditioner that detangles",
            ),
        ],
    },
    Category {
        slug: "clothing",
        name: "Clothing",
        brands: ["Arbor", "Canvas", "Fieldwork", "Loom", "Selvedge", "Thread"],
        items: [
            (
                "Rain Jacket",
                7_999,
                24_999,
                "packable waterproof shell with taped seams",
            ),
            (
                "Merino Base Layer",
                4_999,
                11_999,
                "odour-resistant long-sleeve base layer",
            ),
            (
                "Denim Jeans",
                4_999,
                12_999,
                "straight-leg jeans in heavy raw denim",
            ),
            (
                "Leather Belt",
                2_499,
                6_999,
                "full-grain belt with a solid brass buckle",
            ),
        ],
    },
    Category {
        slug: "garden",
        name: "Garden",
        brands: ["Fern", "Greenhouse", "Meadow", "Orchard", "Root", "Willow"],
        items: [
            (
                "Pruning Shears",
                1_999,
                5_999,
                "bypass shears for clean cuts up to 2 cm",
            ),
            (
                "Gardening Gloves",
                999,
                2_999,
                "thorn-proof gloves with breathable backs",
            ),
            (
                "Raised Garden Bed",
                7_999,
                19_999,
                "cedar raised bed, 120 by 60 cm",
            ),
            (
                "Organic Compost (40 L)",
                999,
                2_499,
                "peat-free compost for raised beds",
            ),
        ],
    },
    Category {
        slug: "office",
        name: "Office",
        brands: ["Atlas", "Cardinal", "Folio", "Ledger", "Memo", "Slate"],
        items: [
            (
                "Ergonomic Chair",
                19_999,
                59_999,
                "adjustable chair with lumbar support",
            ),
            (
                "Chair Mat",
                2_999,
                6_999,
                "hard-floor mat that protects wood and tile",
            ),
            (
                "Fountain Pen",
                2_499,
                14_999,
                "steel-nib pen that writes from the first stroke",
            ),
            (
                "Ink Bottles (3 pack)",
                999,
                2_999,
                "quick-drying inks in black, blue and green",
            ),
        ],
    },
    Category {
        slug: "pet-supplies",
        name: "Pet Supplies",
        brands: ["Burrow", "Fetch", "Paw & Co", "Scout", "Whisker", "Wag"],
        items: [
            (
                "Dog Harness",
                1_999,
                5_999,
                "no-pull harness with a padded chest plate",
            ),
            (
                "Dog Lead",
                999,
                2_999,
                "reflective 2 m lead that clips to any harness",
            ),
            (
                "Cat Scratching Post",
                2_499,
                7_999,
                "sisal post tall enough for a full stretch",
            ),
            (
                "Catnip Toys (5 pack)",
                599,
                1_499,
                "organic catnip toys that survive the zoomies",
            ),
        ],
    },
];

/// Products per category: one per brand and item.
pub const PRODUCTS_PER_CATEGORY: usize = 24;
pub const PRODUCT_COUNT: usize = CATALOGUE.len() * PRODUCTS_PER_CATEGORY;
pub const ORDER_COUNT: usize = 400;

/// A small deterministic generator (SplitMix64): good spread, no dependency, same
/// sequence on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

pub struct SeedProduct {
    pub name: String,
    pub category: &'static str,
    pub description: String,
    pub price_cents: i64,
    pub stock: i32,
}

/// The catalogue in id order (ids are assigned 1.. in this order on an empty database).
pub fn products() -> Vec<SeedProduct> {
    let mut rng = SplitMix(42);
    let mut products = Vec::with_capacity(PRODUCT_COUNT);
    for category in &CATALOGUE {
        for brand in category.brands {
            for (item, low, high, what) in category.items {
                // Round to .99 like a real shop.
                let price = low + rng.below((high - low) as u64) as i64;
                let price_cents = (price / 100) * 100 + 99;
                products.push(SeedProduct {
                    name: format!("{brand} {item}"),
                    category: category.slug,
                    description: format!("{brand} {item}: {what}."),
                    price_cents,
                    stock: 5 + rng.below(200) as i32,
                });
            }
        }
    }
    products
}

/// Historical orders as product-id lists. Shoppers buy complementary pairs from one brand
/// (earbuds with a charger, a tent with a sleeping pad), sometimes with a random extra, so
/// co-purchase signal exists for the model to learn.
pub fn order_history() -> Vec<Vec<(i64, i32)>> {
    let mut rng = SplitMix(7);
    let categories = CATALOGUE.len() as u64;
    (0..ORDER_COUNT)
        .map(|_| {
            let category = rng.below(categories) as usize;
            let brand = rng.below(6) as usize;
            let pair = rng.below(2) as usize * 2;
            let first = product_id(category, brand, pair);
            let mut lines = vec![(first, 1 + rng.below(2) as i32), (first + 1, 1)];
            if rng.below(4) == 0 {
                let extra = 1 + rng.below(PRODUCT_COUNT as u64) as i64;
                if extra != first && extra != first + 1 {
                    lines.push((extra, 1));
                }
            }
            lines
        })
        .collect()
}

fn product_id(category: usize, brand: usize, item: usize) -> i64 {
    (category * PRODUCTS_PER_CATEGORY + brand * 4 + item + 1) as i64
}

/// Loads the demo data into an empty database; does nothing when products exist.
pub async fn ensure_demo_data(pool: &PgPool) -> anyhow::Result<bool> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the seed transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK)
        .execute(&mut *tx)
        .await?;
    let seeded: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products)")
        .fetch_one(&mut *tx)
        .await?;
    if seeded {
        return Ok(false);
    }

    let (slugs, names): (Vec<&str>, Vec<&str>) = CATALOGUE.iter().map(|c| (c.slug, c.name)).unzip();
    sqlx::query("INSERT INTO categories (slug, name) SELECT * FROM UNNEST($1::text[], $2::text[])")
        .bind(&slugs)
        .bind(&names)
        .execute(&mut *tx)
        .await
        .context("seeding categories")?;

    let products = products();
    sqlx::query(
        "INSERT INTO products (name, category, description, price_cents, stock)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[])",
    )
    .bind(products.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.category).collect::<Vec<_>>())
    .bind(
        products
            .iter()
            .map(|p| p.description.clone())
            .collect::<Vec<_>>(),
    )
    .bind(products.iter().map(|p| p.price_cents).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.stock).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("seeding products")?;

    // Order history: one row per order, then all lines in one statement.
    let history = order_history();
    let totals: Vec<i64> = history
        .iter()
        .map(|lines| {
            lines
                .iter()
                .map(|(id, qty)| products[(*id - 1) as usize].price_cents * i64::from(*qty))
                .sum()
        })
        .collect();
    let order_ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO orders (status, total_cents, created_at)
         SELECT 'confirmed', total, now() - make_interval(hours => ord::int)
         FROM UNNEST($1::bigint[]) WITH ORDINALITY AS t(total, ord)
         RETURNING id",
    )
    .bind(&totals)
    .fetch_all(&mut *tx)
    .await
    .context("seeding orders")?;
    let (mut line_orders, mut line_products, mut line_qty, mut line_price) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (order_id, lines) in order_ids.iter().zip(&history) {
        for (product_id, qty) in lines {
            line_orders.push(*order_id);
            line_products.push(*product_id);
            line_qty.push(*qty);
            line_price.push(products[(*product_id - 1) as usize].price_cents);
        }
    }
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::int[], $4::bigint[])",
    )
    .bind(&line_orders)
    .bind(&line_products)
    .bind(&line_qty)
    .bind(&line_price)
    .execute(&mut *tx)
    .await
    .context("seeding order lines")?;

    tx.commit().await.context("committing the demo data")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_at_least_200_distinct_products() {
        let products = products();
        assert!(products.len() >= 200);
        let names: std::collections::HashSet<_> = products.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), products.len(), "product names are unique");
        assert!(products.iter().all(|p| p.price_cents > 0 && p.stock >= 5));
    }

    #[test]
    fn history_is_deterministic_and_references_real_products() {
        assert_eq!(order_history(), order_history());
        let max = PRODUCT_COUNT as i64;
        assert!(
            order_history()
                .iter()
                .flatten()
                .all(|(id, qty)| (1..=max).contains(id) && *qty > 0)
        );
    }
}
