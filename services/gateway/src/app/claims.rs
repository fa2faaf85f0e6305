//! Who drives a transfer's saga step: the one place that decides it (a claim per transfer
//! id).
//!
//! Today's rule, kept as it was (issue 29 is about changing it): a handler always claims
//! and drives; claims are counted, not exclusive, so two handlers of one transfer (a
//! StartTransfer and its replay) may drive it at once. The resumer skips a transfer that
//! is claimed when it picks its round, but does not claim what it drives, so a handler
//! that arrives after the resumer picked a transfer drives the same step concurrently.
//! The steps are idempotent at the sites (request ids derived from the transfer) and the
//! state machine ignores stale results, so this costs duplicate calls, not wrong state.
//! Making claims exclusive (the resumer taking one, a handler waiting for it) is the fix,
//! and belongs here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The transfers being driven by a handler.
#[derive(Clone, Default)]
pub struct Claims {
    busy: Arc<Mutex<HashMap<String, usize>>>,
}

/// Marks a transfer as driven by a handler while alive.
pub struct Claim {
    claims: Claims,
    transfer_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut busy = self.claims.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.transfer_id) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.transfer_id);
            }
        }
    }
}

impl Claims {
    /// A handler drives `transfer_id` until the claim is dropped.
    pub fn claim(&self, transfer_id: &str) -> Claim {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy.entry(transfer_id.to_string()).or_insert(0) += 1;
        Claim {
            claims: self.clone(),
            transfer_id: transfer_id.to_string(),
        }
    }

    /// Whether the resumer may pick `transfer_id` for its round: no handler drives it.
    pub fn resumer_may_drive(&self, transfer_id: &str) -> bool {
        !self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(transfer_id)
    }
}
