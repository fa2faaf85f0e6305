//! The background resumer: drives every unfinished transfer forward, at start (after a
//! restart) and then every `resume_interval`, so a transfer whose site was down finishes
//! on its own. Which transfers it may pick is decided by [`super::claims`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use coldchain_runtime::retry::{Backoff, describe};
use coldchain_runtime::{ServiceError, Shutdown};
use futures::StreamExt;

use super::saga::Saga;
use crate::error;

/// Drives every unfinished transfer forward until `shutdown`: at start (after a
/// restart), then every `resume_interval`; a transfer whose step failed waits a
/// doubling backoff before its next attempt.
pub fn spawn(saga: Arc<Saga>, shutdown: Shutdown) {
    tokio::spawn(async move {
        let backoff = Backoff::new(
            saga.options().resume_backoff,
            saga.options().resume_backoff_max,
        );
        let mut backoffs: HashMap<String, (u32, tokio::time::Instant)> = HashMap::new();
        let mut ticker = tokio::time::interval(saga.options().resume_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {}
            }
            let pending = match saga.store().pending() {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(%error, "resumer cannot read pending transfers");
                    continue;
                }
            };
            let pending_set: HashSet<&String> = pending.iter().collect();
            backoffs.retain(|id, _| pending_set.contains(id));
            let now = tokio::time::Instant::now();
            let due: Vec<String> = pending
                .iter()
                .filter(|id| backoffs.get(*id).is_none_or(|(_, next)| *next <= now))
                .filter(|id| saga.claims().resumer_may_drive(id))
                .cloned()
                .collect();
            if due.is_empty() {
                continue;
            }
            let round = futures::stream::iter(due)
                .map(|id| {
                    let saga = saga.clone();
                    async move {
                        let result = match saga.store().get(&id) {
                            Ok(Some(transfer)) => saga.drive(transfer).await,
                            Ok(None) => Err(error::transfer_vanished(&id)),
                            Err(error) => Err(ServiceError::from(error)),
                        };
                        (id, result)
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>();
            let results = tokio::select! {
                () = &mut stop => return,
                results = round => results,
            };
            for (id, result) in results {
                let retry = match &result {
                    Ok(driven) => driven.retry,
                    Err(failure) => {
                        let status: tonic::Status = failure.clone().into();
                        tracing::warn!(transfer_id = %id, error = %describe(&status), "resuming a transfer failed");
                        true
                    }
                };
                if retry {
                    let attempts = backoffs.get(&id).map_or(1, |(n, _)| n.saturating_add(1));
                    let wait = backoff.next(attempts);
                    backoffs.insert(id, (attempts, tokio::time::Instant::now() + wait));
                } else {
                    backoffs.remove(&id);
                }
            }
        }
    });
}
