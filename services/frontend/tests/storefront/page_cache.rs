//! Catalogue pages kept as rendered HTML: served again only while the catalogue is
//! unchanged, never across shoppers with different carts, rendered once under a crowd.

use std::time::Duration;

use shopmicro_common::testing::{eventually_async, metric_value};

use crate::support::{Session, Stack, spawn_stack};

async fn pages_served(stack: &Stack, result: &str) -> f64 {
    let metrics = Session::new(&stack.frontend_admin)
        .get("/metrics")
        .await
        .body;
    metric_value(&metrics, "catalogue_pages_total", &[("result", result)]).unwrap_or(0.0)
}

/// The stock line of product `id`'s card on a catalogue page.
fn stock_on_card(body: &str, id: i64) -> &str {
    let card = body
        .split(&format!("href=\"/products/{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("product {id} is on the page"));
    let card = &card[..card.find("</article>").unwrap()];
    if card.contains("Out of stock") {
        "out of stock"
    } else {
        "in stock"
    }
}

async fn catalogue_version(stack: &Stack) -> i64 {
    let answer: serde_json::Value = reqwest::get(format!("{}/catalogue/version", stack.backend))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["version"]
        .as_i64()
        .expect("the backend keeps a version")
}

#[tokio::test]
async fn a_kept_page_is_served_until_an_order_changes_the_catalogue_then_shows_it_at_once() {
    let stack = spawn_stack().await;
    let mut shopper = Session::new(&stack.frontend);
    // One unit left of product 1, made in SQL and so seen once the backend's sync has run.
    let before = catalogue_version(&stack).await;
    sqlx::query("UPDATE products SET stock = 1 WHERE id = 1")
        .execute(&stack.db)
        .await
        .unwrap();
    eventually_async(
        "the SQL change to reach the version",
        Duration::from_secs(5),
        || async {
            let now = catalogue_version(&stack).await;
            if now > before { Ok(()) } else { Err(now) }
        },
    )
    .await;

    let first = shopper.get("/").await;
    let again = shopper.get("/").await;
    assert_eq!(first.body, again.body);
    assert_eq!(stock_on_card(&again.body, 1), "in stock");
    assert_eq!(pages_served(&stack, "rendered").await, 1.0);
    assert_eq!(pages_served(&stack, "kept").await, 1.0);

    // Another shopper buys the last one, straight through the backend.
    let ordered = reqwest::Client::new()
        .post(format!("{}/orders", stack.backend))
        .json(&serde_json::json!({"items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ordered.status(), 201);
    let after = shopper.get("/").await;
    assert_eq!(
        stock_on_card(&after.body, 1),
        "out of stock",
        "the next page after the order shows it"
    );
    assert_eq!(pages_served(&stack, "rendered").await, 2.0);
}

#[tokio::test]
async fn shoppers_with_different_carts_never_get_each_others_page() {
    let stack = spawn_stack().await;
    let mut empty = Session::new(&stack.frontend);
    let mut filled = Session::new(&stack.frontend);
    filled
        .post_form("/cart/items", &[("product_id", "2"), ("quantity", "3")])
        .await;
    for _ in 0..2 {
        assert!(
            empty
                .get("/?sort=price_asc")
                .await
                .body
                .contains("aria-label=\"0 items\"")
        );
        assert!(
            filled
                .get("/?sort=price_asc")
                .await
                .body
                .contains("aria-label=\"3 items\"")
        );
    }
    assert_eq!(
        pages_served(&stack, "rendered").await,
        2.0,
        "one per cart count"
    );
    assert_eq!(pages_served(&stack, "kept").await, 2.0);
}

#[tokio::test]
async fn a_cold_page_under_200_concurrent_shoppers_is_rendered_once() {
    let stack = spawn_stack().await;
    let client = reqwest::Client::new();
    let url = format!("{}/?category=books&sort=name", stack.frontend);
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let request = client.get(&url).send();
            tokio::spawn(async move { request.await.unwrap().text().await.unwrap() })
        })
        .collect();
    let mut bodies = Vec::new();
    for request in requests {
        bodies.push(request.await.unwrap());
    }
    assert!(
        bodies.iter().all(|body| body == &bodies[0]),
        "one page for all"
    );
    assert!(bodies[0].contains("<h1 id=\"listing-heading\">Books</h1>"));
    assert_eq!(pages_served(&stack, "rendered").await, 1.0);
    let others = pages_served(&stack, "shared").await + pages_served(&stack, "kept").await;
    assert_eq!(others, 199.0);
}
