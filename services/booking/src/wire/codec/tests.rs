use chrono::NaiveDate;
use coldchain_audit::Author;
use coldchain_store::ReplyCodec;
use prost::Message;

use super::*;
use crate::domain::{BookingState, HoldTerms, new_hold};

fn sample(state: BookingState) -> Booking {
    let day = |s: &str| s.parse::<NaiveDate>().unwrap();
    let mut b = new_hold(
        "BK-000000000007-cn-huaihua-park".into(),
        "pharma-a",
        "PHARMA",
        &HoldTerms {
            customer_id: "cust-1".into(),
            customer_reference: "PO-7".into(),
            pallets: 5,
            first_day: day("2026-12-02"),
            last_day: day("2026-12-04"),
            ttl_ms: 900_000,
        },
        1_796_090_400_123,
        i64::MAX,
        &Author::system(),
    );
    b.state = state;
    if state != BookingState::Held {
        b.check_in_deadline_ms = Some(1_796_220_000_000);
        b.pallets_arrived = 3;
        b.cancel_reason = "plans changed".into();
    }
    b
}

#[test]
fn an_answer_keeps_the_bytes_of_the_booking_response_and_replays_the_same() {
    let codec = BookingCodec::new("cn-huaihua-park");
    for state in BookingState::ALL {
        let booking = sample(state);
        let bytes = codec.encode(&booking);
        assert_eq!(
            bytes,
            convert::booking_pb("cn-huaihua-park", &booking).encode_to_vec(),
            "the stored bytes are the response"
        );
        let replayed = codec.decode(&bytes).unwrap();
        assert_eq!(
            codec.encode(&replayed),
            bytes,
            "{state}: replays the same answer"
        );
        assert_eq!(
            Booking {
                completed_through: booking.completed_through,
                ..replayed
            },
            booking
        );
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let codec = BookingCodec::new("s");
    assert!(codec.decode(&[0xff, 0xff]).is_err());
    // A response without its required fields is not a booking.
    let empty = pb::Booking::default().encode_to_vec();
    assert!(codec.decode(&empty).is_err());
}
