#![forbid(unsafe_code)]
//! `coldchain soak`: a seeded, reproducible run of the network under random faults, checked
//! against invariants.
//!
//! 1. The chosen sites' services and the gateway start as separate `coldchain serve`
//!    processes (the running executable), on free ports, each with its own data directory,
//!    requiring the keys of a keyring made for the run ([`cluster`]).
//! 2. The fault schedule is drawn from the seed and printed ([`schedule`]): SIGKILL and
//!    restart, SIGSTOP and SIGCONT, sometimes of several processes at once.
//! 3. Concurrent clients run the workload for the duration, retrying transient failures
//!    with the same request id and recording every acknowledged write ([`workload`]).
//! 4. Faults stop, every process runs again, transfers still on their way are received, and
//!    the network is given a bounded time to settle (no transfer short of terminal, no hold
//!    pending, the alarm watcher caught up).
//! 5. The final state is read ([`observe`]) and [`checker::check`] judges it with the
//!    history; the report ([`report`]) lists every violation. Exit 0 only when none.

mod bookings;
pub mod call;
pub mod checker;
pub mod cluster;
pub mod model;
pub mod observe;
pub mod report;
pub mod run;
pub mod schedule;
pub mod workload;

pub use run::{SoakArgs, run};
