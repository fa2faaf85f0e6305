//! The pages, one module each, and the console's two static files.

pub mod alarms;
pub mod booking;
pub mod login;
pub mod network;
pub mod sensor;
pub mod site;
pub mod transfers;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::views;

/// The style sheet.
pub async fn static_style() -> Response {
    static_file("text/css; charset=utf-8", views::STYLE)
}

/// The live-alarms script.
pub async fn static_script() -> Response {
    static_file("text/javascript; charset=utf-8", views::ALARMS_SCRIPT)
}

/// The icon, at the paths browsers ask for.
pub async fn favicon() -> Response {
    static_file("image/svg+xml", views::FAVICON)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
