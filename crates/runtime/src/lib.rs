#![forbid(unsafe_code)]
//! What every service shares at runtime: configuration, the network file, tracing, metrics
//! and traces (`observe`), the server bootstrap, the client connector and its retry policy,
//! errors, validation, page tokens, time and temperature-class conversions, idempotency and
//! shutdown.

pub mod admin;
pub mod auth;
pub mod class;
pub mod client;
pub mod coalesce;
pub mod config;
pub mod drainer;
pub mod error;
pub mod feed;
pub mod host;
pub mod idempotency;
pub mod logging;
pub mod observe;
pub mod page_token;
pub mod proto_time;
pub mod retry;
pub mod security;
pub mod server;
pub mod shutdown;
pub mod validate;

/// The network model (sites, zones, classes), re-exported for the runtime's users.
pub use coldchain_network as network;

pub use error::{Code, ServiceError};
pub use shutdown::Shutdown;
