//! Placeholder: filled in by the CLI work (see the issue notes).

mod common;
