use crate::support::{Session, spawn_stack};

/// Tera escapes `/` and `&` in attributes; browsers decode them, and so must we.
fn unescape(attribute: &str) -> String {
    attribute.replace("&#x2F;", "/").replace("&amp;", "&")
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

#[tokio::test]
async fn the_catalogue_lists_products_categories_and_a_next_page() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);

    let page = session.get("/").await;

    assert_eq!(page.status, 200);
    assert_eq!(count(&page.body, "<article class=\"card\">"), 24);
    assert!(page.body.contains("href=\"/?category=books\""));
    assert!(
        page.body
            .contains("<h1 id=\"listing-heading\">All products</h1>")
    );
    let next = page
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .expect("a next page link");
    let next = unescape(next.split('"').next().unwrap());
    let second = session.get(&next).await;
    assert_eq!(second.status, 200);
    assert!(
        !second.body.contains("/products/1\""),
        "page two starts after page one"
    );
}

#[tokio::test]
async fn category_and_search_narrow_the_catalogue() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);

    let books = session.get("/?category=books").await;
    assert!(books.body.contains("<h1 id=\"listing-heading\">Books</h1>"));
    assert!(books.body.contains("aria-current=\"page\">Books"));
    assert!(!books.body.contains("Wireless Earbuds"));

    let search = session.get("/?q=grinder").await;
    assert_eq!(count(&search.body, "<article class=\"card\">"), 6);
    assert!(search.body.contains("Results for “grinder”"));

    let nothing = session.get("/?q=zzzzqqq").await;
    assert!(nothing.body.contains("No products match"));
}

#[tokio::test]
async fn user_input_is_escaped_in_pages() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    let page = session.get("/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn the_product_page_shows_recommendations_from_ml() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);

    let page = session.get("/products/1").await;

    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<h1 id=\"product-name\">Aurora Wireless Earbuds</h1>")
    );
    assert!(page.body.contains("data-source=\"ml\""));
    // Bought together in the history: the charger is recommended.
    assert!(page.body.contains("Aurora USB-C Charger"));
    assert!(
        page.body
            .contains("<label for=\"quantity\">Quantity</label>")
    );
}

#[tokio::test]
async fn unknown_products_and_pages_are_friendly_404s() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    for path in [
        "/products/999999",
        "/products/abc",
        "/products/-1",
        "/orders/1",
        "/orders/6f1c1f0e-4a57-4c1e-9d5c-0d6a1b2c3d4e",
        "/no/such/page",
    ] {
        let page = session.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.body
                .contains("<h1 id=\"error-heading\">Not found</h1>"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn health_and_metrics_endpoints() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    assert_eq!(session.get("/healthz").await.status, 200);
    assert_eq!(session.get("/readyz").await.status, 200);
    session.get("/products/2").await;
    // Shoppers' port has no metrics: it is what the Ingress routes.
    let public = session.get("/metrics").await;
    assert_eq!(public.status, 404);
    let metrics = Session::new(&stack.frontend_admin)
        .get("/metrics")
        .await
        .body;
    assert!(
        metrics.contains(
            "http_requests_total{method=\"GET\",route=\"/products/{id}\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    let css = session.get("/static/style.css").await;
    assert!(css.body.contains("--accent"));
}
