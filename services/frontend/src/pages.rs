//! Rendering: the Tera templates compiled into the binary, money formatting, and the
//! friendly error pages every failure turns into.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use tera::{Context, Tera};

use crate::backend::BackendError;

const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("../templates/base.html")),
    (
        "catalogue.html",
        include_str!("../templates/catalogue.html"),
    ),
    ("product.html", include_str!("../templates/product.html")),
    ("cart.html", include_str!("../templates/cart.html")),
    ("order.html", include_str!("../templates/order.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("macros.html", include_str!("../templates/macros.html")),
];

pub const STYLESHEET: &str = include_str!("../static/style.css");

/// Parses every template at start-up, so a broken template stops the service instead of
/// failing one page in production.
pub fn templates() -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES)?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
}

/// `1999` → `$19.99`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let dollars = cents / 100;
    let mut grouped = String::new();
    for (i, digit) in dollars.to_string().chars().rev().enumerate() {
        if i > 0 && i % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let grouped: String = grouped.chars().rev().collect();
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// Everything a handler can fail with, each rendered as a page a shopper understands.
#[derive(Debug)]
pub enum PageError {
    NotFound(&'static str),
    BadInput(&'static str),
    Backend(BackendError),
    Render(tera::Error),
}

impl From<BackendError> for PageError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::NotFound => PageError::NotFound("We couldn't find that page."),
            other => PageError::Backend(other),
        }
    }
}

impl From<tera::Error> for PageError {
    fn from(err: tera::Error) -> Self {
        PageError::Render(err)
    }
}

#[derive(Serialize)]
struct ErrorView {
    title: &'static str,
    message: String,
}

impl PageError {
    fn view(&self) -> (StatusCode, ErrorView) {
        match self {
            PageError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                ErrorView {
                    title: "Not found",
                    message: (*message).to_owned(),
                },
            ),
            PageError::BadInput(message) => (
                StatusCode::BAD_REQUEST,
                ErrorView {
                    title: "Something was not right",
                    message: (*message).to_owned(),
                },
            ),
            PageError::Backend(BackendError::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorView {
                    title: "This is taking too long",
                    message:
                        "Our shop is responding slowly right now. Please try again in a moment."
                            .into(),
                },
            ),
            PageError::Backend(BackendError::Rejected {
                status, message, ..
            }) => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                ErrorView {
                    title: "We couldn't do that",
                    message: message.clone(),
                },
            ),
            PageError::Backend(BackendError::Unavailable(_) | BackendError::NotFound)
            | PageError::Render(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorView {
                    title: "We'll be right back",
                    message:
                        "Part of our shop is unavailable right now. Please try again in a moment."
                            .into(),
                },
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, view) = self.view();
        match &self {
            PageError::Render(err) => tracing::error!(error = %err, "rendering a page failed"),
            PageError::Backend(err) => {
                tracing::warn!(error = %err, status = status.as_u16(), "backend call failed")
            }
            PageError::NotFound(_) | PageError::BadInput(_) => {}
        }
        // The error page itself must not fail: fall back to plain text if it does.
        let body = templates()
            .and_then(|tera| {
                let mut context = Context::new();
                context.insert("error", &view);
                context.insert("cart_count", &0);
                Ok(tera.render("error.html", &context)?)
            })
            .unwrap_or_else(|_| format!("{}: {}", view.title, view.message));
        (status, Html(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_cents_as_dollars() {
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(1999), "$19.99");
        assert_eq!(money(123_456_789), "$1,234,567.89");
        assert_eq!(money(-50), "-$0.50");
    }

    #[test]
    fn all_templates_parse() {
        templates().unwrap();
    }

    #[test]
    fn backend_failures_map_to_honest_status_codes() {
        assert_eq!(
            PageError::from(BackendError::Timeout).view().0,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            PageError::from(BackendError::NotFound).view().0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            PageError::from(BackendError::Unavailable("refused".into()))
                .view()
                .0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, view) = PageError::from(BackendError::Rejected {
            status: 409,
            code: "insufficient_stock".into(),
            message: "only 2 left".into(),
        })
        .view();
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(view.message, "only 2 left");
    }
}
