//! Logging in with an API key, and out.
//!
//! The login form is protected like every other: a signed cookie holds a random nonce and
//! the form carries the token of that nonce, so a form posted from another site (which can
//! neither read the cookie nor compute the token) is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use coldchain_runtime::auth::{ApiKey, Role};
use maud::html;
use serde::Deserialize;

use crate::session::{self, LOGIN_COOKIE, LOGIN_FORM_TTL, SESSION_COOKIE};
use crate::throttle::Subject;
use crate::{Authed, Console, views};

/// What the login form sends.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    csrf: Option<String>,
}

/// What a form with only its token sends.
#[derive(Deserialize)]
pub struct TokenForm {
    csrf: Option<String>,
}

/// The login form, with a fresh nonce cookie.
pub async fn form(State(console): State<Arc<Console>>) -> Response {
    login_page(&console, StatusCode::OK, None)
}

fn login_page(console: &Console, status: StatusCode, problem: Option<&str>) -> Response {
    let nonce = session::nonce();
    let expires = session::unix(SystemTime::now() + LOGIN_FORM_TTL);
    let cookie = console.cookie(
        LOGIN_COOKIE,
        &console.key.login_cookie(&nonce, expires),
        LOGIN_FORM_TTL,
    );
    let token = console.key.form_token(&format!("login:{nonce}"));
    let body = views::bare(
        "Log in",
        html! {
            h1 { "Cold-chain console" }
            @if let Some(problem) = problem { p.problem { (problem) } }
            form.stack method="post" action="/login" {
                label {
                    "API key (" code { "cc1.<id>.<secret>" } ")"
                    br;
                    input type="password" name="key" required autocomplete="off" size="80";
                }
                input type="hidden" name="csrf" value=(token);
                button type="submit" { "Log in" }
            }
            p.muted { "The key stays on the console's server; your browser keeps only a signed session cookie." }
        },
    );
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

/// Too many failed logins from this address or for this key: 429, and when to come back.
fn too_many(console: &Console, retry_after: Duration) -> Response {
    let minutes = retry_after.as_secs().div_ceil(60);
    let mut page = login_page(
        console,
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!(
            "Too many failed logins from here or for this key: try again in {minutes} min."
        )),
    );
    page.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after.as_secs().max(1)),
    );
    page
}

/// A refused login, counted against its subjects.
fn failed(console: &Console, subjects: &[Subject], problem: &str) -> Response {
    if let Ok(mut logins) = console.logins.lock() {
        logins.failed(subjects, Instant::now());
    }
    login_page(console, StatusCode::UNAUTHORIZED, Some(problem))
}

/// Checks the form's token, the rate limit and the key; starts a session.
pub async fn submit(
    State(console): State<Arc<Console>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = SystemTime::now();
    let nonce = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| session::cookie(h, LOGIN_COOKIE))
        .and_then(|value| console.key.open_login_cookie(value, now));
    let token_ok = nonce.as_ref().is_some_and(|nonce| {
        console
            .key
            .check_form_token(&format!("login:{nonce}"), form.csrf.as_deref())
    });
    if !token_ok {
        return login_page(
            &console,
            StatusCode::FORBIDDEN,
            Some("This login form expired or was not sent from this page: please log in again."),
        );
    }
    let mut subjects: Vec<Subject> = peer
        .map(|Extension(ConnectInfo(addr))| Subject::Address(addr.ip()))
        .into_iter()
        .collect();
    let key = ApiKey::parse(form.key.trim());
    if let Ok(key) = &key {
        subjects.push(Subject::KeyId(key.id().to_owned()));
    }
    // A poisoned lock (a panic elsewhere) must not lock everyone out: it is not checked.
    let refused = match console.logins.lock() {
        Ok(logins) => logins.check(&subjects, Instant::now()),
        Err(_) => Ok(()),
    };
    if let Err(retry_after) = refused {
        return too_many(&console, retry_after);
    }
    let Ok(key) = key else {
        return failed(
            &console,
            &subjects,
            "That is not an API key (cc1.<id>.<secret>).",
        );
    };
    let role = match &console.credentials {
        None => None,
        Some(credentials) => match credentials.authenticate(Some(&key.header_value())) {
            Ok(principal) => Some(principal.role),
            Err(_) => {
                return failed(&console, &subjects, "The network does not accept that key.");
            }
        },
    };
    if let Ok(mut logins) = console.logins.lock() {
        logins.succeeded(&subjects);
    }
    if let Some(Role::Service(_)) = role {
        return login_page(
            &console,
            StatusCode::FORBIDDEN,
            Some("A service's own key cannot log in to the console."),
        );
    }
    let caller = console.caller(Some(key.clone()));
    let started = console.sessions.start(&key, role, caller, console.ttl, now);
    let value = console
        .key
        .session_cookie(&started.id, session::unix(started.expires));
    // Appended: an array of headers would keep only the last cookie.
    let headers = AppendHeaders([
        (
            header::SET_COOKIE,
            console.cookie(SESSION_COOKIE, &value, console.ttl),
        ),
        (
            header::SET_COOKIE,
            console.cookie(LOGIN_COOKIE, "", Duration::ZERO),
        ),
    ]);
    (headers, Redirect::to("/")).into_response()
}

/// Ends the session (the form's token must match it).
pub async fn logout(
    State(console): State<Arc<Console>>,
    authed: Authed,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(refused) = authed.check_form(&console, form.csrf.as_deref()) {
        return refused.into_response();
    }
    console.sessions.end(&authed.session.id);
    (
        [(
            header::SET_COOKIE,
            console.cookie(SESSION_COOKIE, "", Duration::ZERO),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}
