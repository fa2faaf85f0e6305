#![forbid(unsafe_code)]
//! Test support shared by the services' tests (a dev-dependency only).
//!
//! [`server`]: one harness for tests that start servers: a real service on `127.0.0.1:0`
//! over a temporary data directory, with a manual clock, restartable on the same data.
//!
//! [`table`]: the machinery of the validation tables in `services/*/tests/validation.rs`.
//! Each row mutates a valid base request and states the code and the exact
//! `google.rpc.BadRequest` field names the server must answer with.

pub mod server;
pub mod table;
