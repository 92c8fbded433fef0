//! The storefront when the backend is down or slow: friendly pages, honest status codes,
//! nothing internal leaked.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shopmicro_common::testing::{closed_port, eventually_status};

use crate::support::{Session, spawn_frontend, spawn_limited_frontend};

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
    for path in [
        "/",
        "/products/1",
        "/orders/6f1c1f0e-4a57-4c1e-9d5c-0d6a1b2c3d4e",
    ] {
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

/// Past its limit the storefront sheds at once (503 with Retry-After) instead of queueing
/// shoppers, keeps answering its probes, and serves again once the slot frees. The slot is
/// held the way a slow client holds one: a form whose body never finishes arriving.
#[tokio::test]
async fn past_its_limit_the_storefront_sheds_keeps_its_probes_and_recovers() {
    use tokio::io::AsyncWriteExt;
    let limits = shopmicro_common::overload::Limits {
        max_in_flight: 1,
        ..Default::default()
    };
    let frontend =
        spawn_limited_frontend(&format!("http://127.0.0.1:{}", closed_port()), limits).await;
    let address = frontend.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /cart/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nproduct_id=",
    )
    .await
    .unwrap();

    // The stylesheet needs no backend: what answers is the frontend's own limit.
    let stylesheet = format!("{frontend}/static/style.css");
    let shed = eventually_status("a request to be shed", &stylesheet, 503).await;
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(Session::new(&frontend).get("/healthz").await.status, 200);

    drop(slow);
    eventually_status("the storefront to serve again", &stylesheet, 200).await;
}
