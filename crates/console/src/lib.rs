#![forbid(unsafe_code)]
//! The operations console: web pages of the network, its temperatures and its space, for
//! people who will not read `grpcurl` output.
//!
//! An axum server at the hub, next to the gateway. Pages are HTML rendered on the server
//! (maud), charts are SVG written by the server, and every page works without JavaScript;
//! one small script of its own adds live alarms (server-sent events). Everything is read
//! through the gateway and the site services over gRPC as the person logged in
//! ([`backend`]): the services decide what a credential may see, the console only leaves
//! out what they refuse.
//!
//! Login is with an API key of the keyring; the session is a signed `HttpOnly;
//! SameSite=Strict` cookie with an expiry, the key stays on the server ([`session`]), and
//! every form carries a token bound to the session (CSRF).

pub mod backend;
pub mod error;
mod pages;
pub mod probe;
pub mod session;
pub mod svg;
pub mod throttle;
mod tls;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use coldchain_runtime::Shutdown;
use coldchain_runtime::auth::Credentials;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::network::NetworkConfig;

use crate::backend::{Backend, Caller};
use crate::error::PageError;
use crate::session::{SESSION_COOKIE, Session, Sessions, SigningKey};

/// What the console needs from the process: the network, how to call the services, whose
/// keys to accept, how to sign sessions, and TLS.
pub struct ConsoleSettings {
    /// The network file.
    pub network: Arc<NetworkConfig>,
    /// How to call the services (TLS, deadlines); each call carries the session's key.
    pub client: ClientOptions,
    /// The credentials the services accept: logins are checked against them (and the role
    /// shapes the pages). `None` when the network runs without authentication.
    pub credentials: Option<Arc<Credentials>>,
    /// The file of the session-signing key; `None` makes a random one.
    pub session_key_file: Option<PathBuf>,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// The server's certificate chain and key (PEM): serve HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Fired when the process stops: live streams end then, so that stopping waits for
    /// no open page.
    pub shutdown: Shutdown,
    /// How many failed logins a client address, or a key id, may make in a window.
    pub login_limit: throttle::LoginLimit,
}

/// The state every handler shares.
pub struct Console {
    pub(crate) backend: Arc<Backend>,
    pub(crate) sessions: Sessions,
    pub(crate) key: SigningKey,
    pub(crate) credentials: Option<Arc<Credentials>>,
    pub(crate) ttl: Duration,
    /// Cookies get `Secure` when the console speaks HTTPS.
    pub(crate) secure: bool,
    pub(crate) shutdown: Shutdown,
    /// Failed logins per client address and key id.
    pub(crate) logins: std::sync::Mutex<throttle::LoginThrottle>,
}

impl Console {
    /// A caller of the services as `key`.
    pub(crate) fn caller(&self, key: Option<coldchain_runtime::auth::ApiKey>) -> Caller {
        Caller::new(self.backend.clone(), key)
    }

    /// The attributes every cookie of the console carries.
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }
}

/// A console ready to serve: its router, and TLS if configured.
pub struct Prepared {
    router: Router,
    tls: Option<tls::Acceptor>,
}

/// Reads the signing key and the TLS files, and builds the router. Every problem is said
/// at once.
pub fn prepare(settings: ConsoleSettings) -> Result<Prepared, String> {
    let mut problems = Vec::new();
    let key = match &settings.session_key_file {
        Some(path) => SigningKey::from_file(path)
            .map_err(|p| problems.push(p))
            .ok(),
        None => Some(SigningKey::random()),
    };
    let tls = match &settings.tls {
        Some((cert, key)) => tls::Acceptor::from_files(cert, key)
            .map(Some)
            .map_err(|p| problems.push(p))
            .ok()
            .flatten(),
        None => None,
    };
    let (Some(key), true) = (key, problems.is_empty()) else {
        return Err(problems.join("; "));
    };
    let console = Arc::new(Console {
        backend: Arc::new(Backend::new(settings.network, settings.client)),
        sessions: Sessions::default(),
        key,
        credentials: settings.credentials,
        ttl: settings.session_ttl,
        secure: tls.is_some(),
        shutdown: settings.shutdown,
        logins: std::sync::Mutex::new(throttle::LoginThrottle::new(settings.login_limit)),
    });
    Ok(Prepared {
        router: router(console),
        tls,
    })
}

/// Every page of the console.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::network::page))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/alarms", get(pages::alarms::page))
        .route("/alarms/events", get(pages::alarms::events))
        .route(
            "/sites/{site}/alarms/{alarm}/acknowledge",
            post(pages::alarms::acknowledge),
        )
        .route("/sites/{site}", get(pages::site::page))
        .route("/sites/{site}/sensors/{sensor}", get(pages::sensor::page))
        .route("/transfers", get(pages::transfers::list))
        .route("/transfers/{transfer}", get(pages::transfers::one))
        .route("/booking", get(pages::booking::page))
        .route("/static/console.css", get(pages::static_style))
        .route("/static/alarms.js", get(pages::static_script))
        .route("/favicon.svg", get(pages::favicon))
        .route("/favicon.ico", get(pages::favicon))
        .route(probe::HEALTH_PATH, get(healthz))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// `GET /healthz`: the console is up and serving pages (open, like the services' gRPC
/// health; it tells nothing about the data). Container health checks ask it.
pub(crate) async fn healthz() -> &'static str {
    "serving\n"
}

/// Headers of every answer: no framing, no sniffing, nothing from elsewhere, no caching of
/// pages that show one person's data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The session of a request and its form token; refused cookies and unknown or expired
/// sessions send the person to the login page.
pub struct Authed {
    /// The session.
    pub session: Session,
    /// The token its forms carry.
    pub csrf: String,
}

impl Authed {
    /// Checks a submitted form's token.
    pub(crate) fn check_form(
        &self,
        console: &Console,
        token: Option<&str>,
    ) -> Result<(), PageError> {
        if console.key.check_form_token(&self.session.id, token) {
            Ok(())
        } else {
            Err(PageError::Denied(
                "this form's token is missing or wrong: open the page again and resend it"
                    .to_owned(),
            ))
        }
    }
}

impl FromRequestParts<Arc<Console>> for Authed {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let now = SystemTime::now();
        let value = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find_map(|h| session::cookie(h, SESSION_COOKIE))
            .ok_or(PageError::LoginNeeded)?;
        let id = console
            .key
            .open_session_cookie(value, now)
            .map_err(|_| PageError::LoginNeeded)?;
        let session = console
            .sessions
            .get(&id, now)
            .map_err(|_| PageError::LoginNeeded)?;
        let csrf = console.key.form_token(&session.id);
        Ok(Authed { session, csrf })
    }
}

/// Serves the console on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    prepared: Prepared,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    match prepared.tls {
        None => {
            // The client's address reaches the handlers (the login rate limit counts by it).
            let service = prepared
                .router
                .into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
        }
        Some(acceptor) => tls::serve(listener, acceptor, prepared.router, shutdown).await,
    }
}

/// The address a console listener is bound to, as people open it.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    format!("{scheme}://{addr}")
}

impl Prepared {
    /// True when it serves HTTPS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }
}
