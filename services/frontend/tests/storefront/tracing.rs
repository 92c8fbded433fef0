//! One trace across frontend → backend → ml, visible in every service's log lines.

use crate::support::{captured_logs, spawn_stack};

#[tokio::test]
async fn a_product_page_request_carries_one_trace_id_through_all_three_services() {
    let stack = spawn_stack().await;
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");

    let response = reqwest::Client::new()
        .get(format!("{}/products/1", stack.frontend))
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let lines: Vec<_> = captured_logs()
        .into_iter()
        .filter(|line| line["trace_id"] == trace_id.as_str())
        .collect();
    let routes_of = |service: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|line| line["service"] == service && line["message"] == "request completed")
            .map(|line| line["http.route"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(routes_of("frontend"), vec!["/products/{id}"], "{lines:#?}");
    let backend = routes_of("backend");
    assert!(
        backend.contains(&"/products/{id}/recommendations".to_owned()),
        "{backend:?}"
    );
    assert!(
        backend.contains(&"/products/{id}".to_owned()),
        "{backend:?}"
    );
    assert_eq!(routes_of("ml"), vec!["/recommendations"]);

    // Every hop is its own span within the trace.
    let span_ids: std::collections::HashSet<_> = lines
        .iter()
        .filter(|l| l["message"] == "request completed")
        .map(|l| l["span_id"].clone())
        .collect();
    assert!(span_ids.len() >= 4, "{span_ids:?}");
    assert!(lines.iter().all(|line| line["span_id"].is_string()));
}
