use crate::support::{Session, hidden_input, spawn_stack};

#[tokio::test]
async fn add_to_cart_then_checkout_places_the_order() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    let stock_before: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
        .fetch_one(&stack.db)
        .await
        .unwrap();

    let added = session
        .post_form("/cart/items", &[("product_id", "1"), ("quantity", "2")])
        .await;
    assert_eq!(
        (added.status, added.location.as_deref()),
        (303, Some("/cart"))
    );
    let cart = session.get("/cart").await;
    assert!(cart.body.contains("Aurora Wireless Earbuds"));
    assert!(cart.body.contains("aria-label=\"2 items\""));

    let key = hidden_input(&cart.body, "idempotency_key");
    let placed = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;
    assert_eq!(placed.status, 303);
    let order_path = placed.location.unwrap();
    assert!(order_path.starts_with("/orders/"));

    let confirmation = session.get(&order_path).await;
    assert_eq!(confirmation.status, 200);
    let reference = order_path.trim_start_matches("/orders/");
    assert!(confirmation.body.contains(reference));
    let quantity: i32 = sqlx::query_scalar(
        "SELECT i.quantity FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE o.reference::text = $1 AND i.product_id = 1",
    )
    .bind(reference)
    .fetch_one(&stack.db)
    .await
    .unwrap();
    assert_eq!(quantity, 2);
    let stock_after: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = 1")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(stock_after, stock_before - 2);
    assert!(
        session
            .get("/cart")
            .await
            .body
            .contains("Your cart is empty"),
        "cart cleared"
    );
}

#[tokio::test]
async fn a_double_submitted_checkout_places_one_order() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    let key = session.ready_to_check_out("3").await;
    let cookies = session.cookies.clone();
    let orders_before = stack.order_count().await;

    let first = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;
    // The second click left the browser before the first response cleared the cart.
    session.cookies = cookies;
    let second = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;

    assert_eq!(first.location, second.location);
    assert_eq!(stack.order_count().await, orders_before + 1);
}

#[tokio::test]
async fn updating_and_removing_cart_lines() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    session
        .post_form("/cart/items", &[("product_id", "5"), ("quantity", "1")])
        .await;
    session
        .post_form("/cart/items", &[("product_id", "6"), ("quantity", "1")])
        .await;

    session
        .post_form("/cart/items/5", &[("quantity", "4")])
        .await;
    assert!(
        session
            .get("/cart")
            .await
            .body
            .contains("aria-label=\"5 items\"")
    );
    session
        .post_form("/cart/items/5", &[("quantity", "0")])
        .await;
    let cart = session.get("/cart").await.body;
    assert!(cart.contains("aria-label=\"1 items\""));
    assert!(!cart.contains("/products/5\""));
}

#[tokio::test]
async fn checkout_beyond_stock_explains_and_keeps_the_cart() {
    let stack = spawn_stack().await;
    sqlx::query("UPDATE products SET stock = 1 WHERE id = 8")
        .execute(&stack.db)
        .await
        .unwrap();
    let mut session = Session::new(&stack.frontend);
    session
        .post_form("/cart/items", &[("product_id", "8"), ("quantity", "3")])
        .await;
    let key = hidden_input(&session.get("/cart").await.body, "idempotency_key");
    let orders_before = stack.order_count().await;

    let attempt = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;

    assert_eq!(attempt.status, 409);
    assert!(
        attempt.body.contains("has 1 in stock; 3 requested"),
        "{}",
        attempt.body
    );
    assert!(attempt.body.contains("role=\"alert\""));
    assert_eq!(stack.order_count().await, orders_before);
    assert!(
        session
            .get("/cart")
            .await
            .body
            .contains("aria-label=\"3 items\""),
        "cart kept"
    );
}

#[tokio::test]
async fn checkout_of_a_product_no_longer_sold_keeps_the_cart_and_says_why() {
    let stack = spawn_stack().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO products (name, category, description, price_cents, stock)
         VALUES ('Discontinued Lamp', 'home-kitchen', 'gone soon', 1999, 5) RETURNING id",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    let mut session = Session::new(&stack.frontend);
    session
        .post_form(
            "/cart/items",
            &[("product_id", &id.to_string()), ("quantity", "1")],
        )
        .await;
    let key = hidden_input(&session.get("/cart").await.body, "idempotency_key");
    sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(id)
        .execute(&stack.db)
        .await
        .unwrap();

    let attempt = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;

    assert_eq!(attempt.status, 404);
    assert!(attempt.body.contains("no longer sold"), "{}", attempt.body);
    assert!(attempt.body.contains("role=\"alert\""));
}

#[tokio::test]
async fn a_forged_cart_cookie_is_ignored() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    session.cookies.insert("cart".into(), "1:5".into());
    assert!(
        session
            .get("/cart")
            .await
            .body
            .contains("Your cart is empty")
    );
}

#[tokio::test]
async fn bad_cart_forms_get_a_400_page_and_change_nothing() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    for form in [
        vec![("product_id", "1"), ("quantity", "0")],
        vec![("product_id", "1"), ("quantity", "-2")],
        vec![("product_id", "x"), ("quantity", "1")],
        vec![("quantity", "1")],
    ] {
        let page = session.post_form("/cart/items", &form).await;
        assert_eq!(page.status, 400, "{form:?}");
        assert!(page.body.contains("error-heading"));
    }
    let unknown = session
        .post_form(
            "/cart/items",
            &[("product_id", "999999"), ("quantity", "1")],
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(
        session
            .get("/cart")
            .await
            .body
            .contains("Your cart is empty")
    );
}

#[tokio::test]
async fn a_checkout_key_replayed_from_another_session_is_not_a_replay() {
    let stack = spawn_stack().await;
    let mut shopper = Session::new(&stack.frontend);
    let key = shopper.ready_to_check_out("3").await;
    let placed = shopper
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;
    let orders_before = stack.order_count().await;

    // A stranger who saw the shopper's key (not their cookies) checks out with it.
    let mut stranger = Session::new(&stack.frontend);
    stranger.ready_to_check_out("3").await;
    let theirs = stranger
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;

    assert_eq!(theirs.status, 303);
    assert_ne!(theirs.location, placed.location, "not the shopper's order");
    assert_eq!(
        stack.order_count().await,
        orders_before + 1,
        "their own order"
    );
}

#[tokio::test]
async fn a_checkout_with_a_forged_key_or_no_session_is_a_400_page_and_orders_nothing() {
    let stack = spawn_stack().await;
    let mut session = Session::new(&stack.frontend);
    let key = session.ready_to_check_out("3").await;
    let orders_before = stack.order_count().await;

    for forged in ["", "1", "retry-me", &"a".repeat(300), "' OR 1=1 --"] {
        let page = session
            .post_form("/checkout", &[("idempotency_key", forged)])
            .await;
        assert_eq!(page.status, 400, "{forged:?}");
        assert!(page.body.contains("not one of ours"), "{}", page.body);
    }
    session.cookies.remove("session");
    let page = session
        .post_form("/checkout", &[("idempotency_key", &key)])
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("session has expired"), "{}", page.body);

    assert_eq!(stack.order_count().await, orders_before);
}
