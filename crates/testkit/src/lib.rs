#![forbid(unsafe_code)]
//! Test support shared by the services' tests (a dev-dependency only).
//!
//! [`table`]: the machinery of the validation tables in `services/*/tests/validation.rs`.
//! Each row mutates a valid base request and states the code and the exact
//! `google.rpc.BadRequest` field names the server must answer with.

pub mod table;
