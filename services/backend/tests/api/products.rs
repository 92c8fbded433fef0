use std::collections::HashSet;

use serde_json::Value;
use shopmicro_backend::seed;

use crate::helpers::{TestApp, error_code, spawn_app};

/// Follows `next_cursor` to the end, returning every product seen.
async fn walk_all_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut path = format!("/products?{query}");
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/products?{query}&cursor={cursor}"),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn paging_visits_every_product_exactly_once_in_every_sort_order() {
    let app = spawn_app().await;
    for sort in ["id", "price_asc", "price_desc", "name"] {
        let products = walk_all_pages(&app, &format!("limit=37&sort={sort}")).await;
        let ids: HashSet<i64> = products.iter().map(|p| p["id"].as_i64().unwrap()).collect();
        assert_eq!(products.len(), seed::PRODUCT_COUNT, "{sort}");
        assert_eq!(ids.len(), seed::PRODUCT_COUNT, "{sort}: no duplicates");
        let ordered = products.windows(2).all(|pair| match sort {
            "id" => pair[0]["id"].as_i64() < pair[1]["id"].as_i64(),
            "price_asc" => pair[0]["price_cents"].as_i64() <= pair[1]["price_cents"].as_i64(),
            "price_desc" => pair[0]["price_cents"].as_i64() >= pair[1]["price_cents"].as_i64(),
            _ => pair[0]["name"].as_str() <= pair[1]["name"].as_str(),
        });
        assert!(ordered, "{sort} order holds across pages");
    }
}

#[tokio::test]
async fn products_have_the_contract_shape() {
    let app = spawn_app().await;
    let (status, page) = app.get_json("/products?limit=1").await;
    assert_eq!(status, 200);
    let product = &page["items"][0];
    assert!(product["id"].is_i64());
    for field in ["name", "category", "description"] {
        assert!(product[field].is_string(), "{field}");
    }
    assert!(product["price_cents"].is_i64());
    assert!(product["stock"].is_i64());
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn category_filter_returns_only_that_category() {
    let app = spawn_app().await;
    let books = walk_all_pages(&app, "category=books&limit=10").await;
    assert_eq!(books.len(), seed::PRODUCTS_PER_CATEGORY);
    assert!(books.iter().all(|p| p["category"] == "books"));

    let (status, page) = app.get_json("/products?category=no-such-category").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn search_matches_word_prefixes_in_names_and_descriptions() {
    let app = spawn_app().await;
    let (_, page) = app.get_json("/products?q=grind&limit=100").await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| n.contains("Grinder")));

    let (_, page) = app
        .get_json("/products?q=noise%20cancelling&category=electronics")
        .await;
    assert!(!page["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn hostile_search_strings_are_just_words() {
    let app = spawn_app().await;
    for q in [
        "'); DROP TABLE products; --",
        "%27%20OR%201%3D1%20--",
        "!!!%26%26%7C%7C",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%00",
        "%E2%80%AE%F0%9F%92%A3",
    ] {
        let (status, body) = app.get_json(&format!("/products?q={q}")).await;
        assert_eq!(status, 200, "q={q}: {body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count as usize, seed::PRODUCT_COUNT);
}

#[tokio::test]
async fn invalid_listing_parameters_get_400_naming_the_parameter() {
    let app = spawn_app().await;
    let long_q = "a".repeat(201);
    let cases = [
        ("/products?limit=0".to_owned(), "invalid_limit"),
        ("/products?limit=100000".to_owned(), "invalid_limit"),
        ("/products?limit=-3".to_owned(), "invalid_limit"),
        ("/products?limit=abc".to_owned(), "invalid_query"),
        ("/products?sort=random".to_owned(), "invalid_sort"),
        ("/products?cursor=garbage".to_owned(), "invalid_cursor"),
        (
            "/products?category=Robert%27%29%3B".to_owned(),
            "invalid_category",
        ),
        (format!("/products?q={long_q}"), "invalid_query"),
        ("/products?ids=1,x".to_owned(), "invalid_ids"),
        // A misspelt parameter is an error, not silently the default.
        ("/products?limt=5".to_owned(), "invalid_query"),
    ];
    for (path, code) in cases {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error_code(&body), code, "{path}");
    }
    let (_, body) = app.get_json("/products?limit=500").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 100")
    );
}

#[tokio::test]
async fn a_cursor_cannot_be_reused_with_another_sort() {
    let app = spawn_app().await;
    let (_, page) = app.get_json("/products?limit=5&sort=name").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = app
        .get_json(&format!("/products?sort=price_asc&cursor={cursor}"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "invalid_cursor");
}

#[tokio::test]
async fn products_by_id_list_come_back_in_one_call() {
    let app = spawn_app().await;
    let (status, page) = app.get_json("/products?ids=5,3,999999&limit=10").await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 5]);
}

#[tokio::test]
async fn single_products_are_found_or_404_or_400() {
    let app = spawn_app().await;
    let (status, product) = app.get_json("/products/1").await;
    assert_eq!(status, 200);
    assert_eq!(product["id"], 1);

    let (status, body) = app.get_json("/products/999999").await;
    assert_eq!((status, error_code(&body)), (404, "product_not_found"));
    for bad in ["0", "-1"] {
        let (status, body) = app.get_json(&format!("/products/{bad}")).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_product_id"));
    }
    for bad in ["abc", "99999999999999999999"] {
        let (status, body) = app.get_json(&format!("/products/{bad}")).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_path"));
    }
}

#[tokio::test]
async fn categories_list_every_category_with_counts() {
    let app = spawn_app().await;
    let (status, categories) = app.get_json("/categories").await;
    assert_eq!(status, 200);
    let categories = categories.as_array().unwrap();
    assert_eq!(categories.len(), 10);
    let total: i64 = categories
        .iter()
        .map(|c| c["product_count"].as_i64().unwrap())
        .sum();
    assert_eq!(total as usize, seed::PRODUCT_COUNT);
}
