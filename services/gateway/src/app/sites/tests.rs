//! The fan-out deadline and the read retried once. (Code names, transient codes and backoff are tested where they
//! live, `coldchain_runtime::retry`.)
use std::time::Duration;

use super::*;

#[test]
fn fan_out_deadline_leaves_room_within_the_clients() {
    let configured = Duration::from_millis(1500);
    assert_eq!(fan_out_deadline(configured, None), configured);
    assert_eq!(
        fan_out_deadline(configured, Some(Duration::from_secs(10))),
        configured
    );
    assert_eq!(
        fan_out_deadline(configured, Some(Duration::from_millis(500))),
        Duration::from_millis(400)
    );
}

#[tokio::test]
async fn a_read_that_fails_unavailable_at_once_is_tried_again_with_what_is_left() {
    let deadline = Duration::from_secs(2);
    let mut calls = Vec::new();
    let answer = retry_once_if_unavailable(deadline, |left| {
        calls.push(left);
        let first = calls.len() == 1;
        async move {
            if first {
                Err(tonic::Status::unavailable("connection reset"))
            } else {
                Ok(7)
            }
        }
    })
    .await;
    assert_eq!(answer.unwrap(), 7);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], deadline);
    assert!(calls[1] <= deadline && calls[1] > deadline / 2);
}

#[tokio::test]
async fn other_failures_and_a_second_unavailable_are_answered_as_they_are() {
    let deadline = Duration::from_secs(2);
    let mut count = 0;
    let answer: Result<(), _> = retry_once_if_unavailable(deadline, |_| {
        count += 1;
        async { Err(tonic::Status::unavailable("down")) }
    })
    .await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unavailable);
    assert_eq!(count, 2, "tried twice, not more");

    let mut count = 0;
    let answer: Result<(), _> = retry_once_if_unavailable(deadline, |_| {
        count += 1;
        async { Err(tonic::Status::permission_denied("no")) }
    })
    .await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(count, 1, "a refusal is not retried");
}

#[tokio::test]
async fn a_failure_late_in_the_deadline_is_not_retried() {
    let deadline = Duration::from_millis(100);
    let mut count = 0;
    let answer: Result<(), _> = retry_once_if_unavailable(deadline, |_| {
        count += 1;
        async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Err(tonic::Status::unavailable("slow failure"))
        }
    })
    .await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unavailable);
    assert_eq!(count, 1);
}
