//! The storefront when the backend is down or slow: friendly pages, honest status codes,
//! nothing internal leaked.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shopmicro_common::testing::closed_port;

use crate::support::{Session, spawn_frontend};

fn assert_friendly(body: &str) {
    assert!(body.contains("error-heading"), "{body}");
    for leak in [
        "reqwest",
        "Connection refused",
        "127.0.0.1",
        "panicked",
        "tcp connect",
    ] {
        assert!(!body.contains(leak), "page leaks {leak}: {body}");
    }
}

#[tokio::test]
async fn backend_down_gives_a_friendly_503_and_not_ready() {
    let frontend = spawn_frontend(
        &format!("http://127.0.0.1:{}", closed_port()),
        Duration::from_secs(1),
    )
    .await;
    let mut session = Session::new(&frontend);
    for path in ["/", "/products/1", "/orders/1"] {
        let page = session.get(path).await;
        assert_eq!(page.status, 503, "{path}");
        assert_friendly(&page.body);
        assert!(
            page.body.contains("We&#x27;ll be right back")
                || page.body.contains("We'll be right back")
        );
    }
    assert_eq!(session.get("/readyz").await.status, 503);
    assert_eq!(session.get("/healthz").await.status, 200, "still alive");
}

#[tokio::test]
async fn a_slow_backend_gives_a_friendly_504() {
    let slow = Router::new().fallback(get(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "too late"
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, slow).await });

    let frontend = spawn_frontend(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(300),
    )
    .await;
    let page = Session::new(&frontend).get("/products/1").await;
    assert_eq!(page.status, 504);
    assert_friendly(&page.body);
}

#[tokio::test]
async fn a_backend_answering_500_is_a_503_page_not_a_stack_trace() {
    let broken = Router::new().fallback(get(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "panic at src/db.rs:42 password=hunter2",
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, broken).await });

    let frontend =
        spawn_frontend(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)).await;
    let page = Session::new(&frontend).get("/").await;
    assert_eq!(page.status, 503);
    assert_friendly(&page.body);
    assert!(!page.body.contains("hunter2"));
}
