//! Placeholder: filled in by the service work (see the issue notes).

mod common;
