//! How the soak's clients call, like real clients: a deadline on every attempt, transient
//! failures retried with backoff and the SAME request, until an answer or until the network
//! has had its time to settle. Every answer no client should get is recorded.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coldchain_runtime::retry::{code_name, is_transient};
use serde::Serialize;

use crate::model::{BadAnswer, History};

/// Counts of the run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Calls made (a call and its retries count once).
    pub operations: AtomicU64,
    /// Calls answered with success.
    pub acknowledgements: AtomicU64,
    /// Calls answered with a definite refusal (not enough stock, no space, …).
    pub refusals: AtomicU64,
    /// Attempts repeated after a transient failure.
    pub retries: AtomicU64,
    /// WatchAlarms reconnections.
    pub reconnections: AtomicU64,
    /// Failures made on the client's side from a broken connection (retried).
    pub transport_errors: AtomicU64,
}

/// The counts, read at the end.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    /// Calls made.
    pub operations: u64,
    /// Calls acknowledged.
    pub acknowledgements: u64,
    /// Calls refused.
    pub refusals: u64,
    /// Attempts retried.
    pub retries: u64,
    /// WatchAlarms reconnections.
    pub reconnections: u64,
    /// Client-side failures of a broken connection, retried.
    pub transport_errors: u64,
}

impl Stats {
    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            operations: self.operations.load(Ordering::Relaxed),
            acknowledgements: self.acknowledgements.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reconnections: self.reconnections.load(Ordering::Relaxed),
            transport_errors: self.transport_errors.load(Ordering::Relaxed),
        }
    }
}

/// What a call came to.
pub enum Outcome<T> {
    /// Acknowledged.
    Ack(T),
    /// A definite refusal: the call did nothing.
    Refused(tonic::Status),
    /// No answer before the clients gave up (recorded as a bad answer).
    NoAnswer,
}

/// What every client shares: the counts, the history and when to give up.
#[derive(Clone)]
pub struct Recorder {
    /// The counts.
    pub stats: Arc<Stats>,
    /// The history.
    pub history: Arc<Mutex<History>>,
    give_up: Arc<Mutex<Option<Instant>>>,
}

/// The deadline of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Recorder {
    /// A recorder with an empty history.
    pub fn new() -> Self {
        Self {
            stats: Arc::default(),
            history: Arc::default(),
            give_up: Arc::default(),
        }
    }

    /// Calls still retrying stop at `at`.
    pub fn give_up_at(&self, at: Instant) {
        *self.give_up.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    fn giving_up(&self) -> bool {
        self.give_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Changes the history.
    pub fn record(&self, change: impl FnOnce(&mut History)) {
        change(&mut self.history.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn bad(&self, call: &str, code: &str, message: &str) {
        self.record(|h| {
            h.bad_answers.push(BadAnswer {
                call: call.to_owned(),
                code: code.to_owned(),
                message: message.to_owned(),
            });
        });
    }

    /// Makes a call (`attempt` sends the same request each time) until it is answered.
    pub async fn call<T, F, Fut>(&self, what: &str, mut attempt: F) -> Outcome<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.stats.operations.fetch_add(1, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(50);
        loop {
            let code = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
                Ok(Ok(answer)) => {
                    self.stats.acknowledgements.fetch_add(1, Ordering::Relaxed);
                    return Outcome::Ack(answer.into_inner());
                }
                Ok(Err(status)) => {
                    let code = status.code();
                    if matches!(code, tonic::Code::Internal | tonic::Code::Unknown) {
                        if std::error::Error::source(&status).is_some() {
                            // Made on this side from a broken connection (tonic answers
                            // UNKNOWN "transport error" when a server dies mid-answer): no
                            // server said it.
                            self.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.bad(what, code_name(code), status.message());
                        }
                    }
                    if !is_transient(code) {
                        self.stats.refusals.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Refused(status);
                    }
                    code
                }
                // No answer within the attempt's deadline.
                Err(_) => tonic::Code::DeadlineExceeded,
            };
            if self.giving_up() {
                self.bad(
                    what,
                    "NO_ANSWER",
                    &format!("still {} when the clients gave up", code_name(code)),
                );
                return Outcome::NoAnswer;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// A request with the attempt's deadline, sent as `grpc-timeout`.
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(ATTEMPT_TIMEOUT);
    request
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Calls with `answers` given in turn, one an attempt.
    async fn call_with(
        recorder: &Recorder,
        answers: Vec<Result<u32, tonic::Status>>,
    ) -> (Outcome<u32>, usize) {
        let answers = Mutex::new(VecDeque::from(answers));
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let outcome = recorder
            .call("Op r-1", || {
                attempts.fetch_add(1, Ordering::Relaxed);
                let next = answers.lock().unwrap().pop_front();
                async move {
                    next.unwrap_or_else(|| Err(tonic::Status::unavailable("down")))
                        .map(tonic::Response::new)
                }
            })
            .await;
        (outcome, attempts.into_inner())
    }

    #[tokio::test]
    async fn a_server_answering_internal_is_recorded_and_the_same_request_retried() {
        let recorder = Recorder::new();
        let (outcome, attempts) =
            call_with(&recorder, vec![Err(tonic::Status::internal("boom")), Ok(7)]).await;
        assert!(matches!(outcome, Outcome::Ack(7)));
        assert_eq!(attempts, 2);
        let history = recorder.history.lock().unwrap();
        assert_eq!(history.bad_answers.len(), 1);
        assert_eq!(history.bad_answers[0].code, "INTERNAL");
        assert_eq!(recorder.stats.counts().retries, 1);
    }

    #[tokio::test]
    async fn a_broken_connection_is_retried_without_blaming_a_server() {
        let recorder = Recorder::new();
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("reset")));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        let (outcome, _) = call_with(&recorder, vec![Err(broken), Ok(1)]).await;
        assert!(matches!(outcome, Outcome::Ack(1)));
        assert!(recorder.history.lock().unwrap().bad_answers.is_empty());
        assert_eq!(recorder.stats.counts().transport_errors, 1);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let recorder = Recorder::new();
        let (outcome, attempts) = call_with(
            &recorder,
            vec![Err(tonic::Status::failed_precondition("no stock"))],
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Refused(s) if s.code() == tonic::Code::FailedPrecondition)
        );
        assert_eq!(attempts, 1);
        assert_eq!(recorder.stats.counts().refusals, 1);
    }

    #[tokio::test]
    async fn a_call_unanswered_when_the_clients_give_up_is_recorded() {
        let recorder = Recorder::new();
        recorder.give_up_at(Instant::now());
        let (outcome, _) = call_with(&recorder, vec![]).await;
        assert!(matches!(outcome, Outcome::NoAnswer));
        let history = recorder.history.lock().unwrap();
        assert_eq!(history.bad_answers[0].code, "NO_ANSWER");
        assert_eq!(history.bad_answers[0].call, "Op r-1");
    }
}
