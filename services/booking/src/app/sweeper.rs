//! The background worker that stores lapsed holds and no-shows (the write is the store's:
//! [`Bookings::sweep_due`]). Correctness does not depend on it: reads show the effective
//! state and holds lapse what is due inside their own write.

use std::time::Duration;

use coldchain_runtime::Shutdown;

use crate::store::Bookings;

/// Stores lapsed holds and no-shows every `interval` until shutdown.
pub fn spawn_sweeper(bookings: Bookings, interval: Duration, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
            match bookings.sweep_due().await {
                Ok(0) => {}
                Ok(swept) => tracing::debug!(swept, "lapsed expired holds and no-shows"),
                Err(error) => tracing::warn!(%error, "sweeping due bookings failed"),
            }
        }
    });
}
