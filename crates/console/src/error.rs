//! What a page answers when it cannot show what was asked: the service's refusal, said
//! plainly, with the HTTP status that matches it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::views;

/// Why a page is not shown.
#[derive(Debug)]
pub enum PageError {
    /// No session, or one that is no longer accepted: log in (again).
    LoginNeeded,
    /// The services refused this credential (or a form's token was wrong).
    Denied(String),
    /// No such site, sensor, alarm or transfer.
    NotFound(String),
    /// A query parameter or form field the console or a service refused.
    BadInput(String),
    /// A service could not be reached or failed.
    Unavailable(String),
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::PermissionDenied => PageError::Denied(message),
            tonic::Code::Unauthenticated => PageError::LoginNeeded,
            tonic::Code::NotFound => PageError::NotFound(message),
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                PageError::BadInput(message)
            }
            _ => PageError::Unavailable(coldchain_runtime::retry::describe(&status)),
        }
    }
}

impl PageError {
    /// True when the services refused the credential (the section is then left out).
    pub fn is_denied(&self) -> bool {
        matches!(self, PageError::Denied(_))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::LoginNeeded => return Redirect::to("/login").into_response(),
            PageError::Denied(message) => (StatusCode::FORBIDDEN, "Not allowed", message),
            PageError::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            PageError::BadInput(message) => (StatusCode::BAD_REQUEST, "Not accepted", message),
            PageError::Unavailable(message) => {
                (StatusCode::BAD_GATEWAY, "Service unavailable", message)
            }
        };
        let body = views::bare(
            title,
            html! {
                h1 { (title) }
                p.problem { (message) }
                p { a href="/" { "Back to the network" } }
            },
        );
        (status, body).into_response()
    }
}
