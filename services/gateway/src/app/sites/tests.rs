//! The fan-out deadline. (Code names, transient codes and backoff are tested where they
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
