//! The rules, unit and property tests.

use std::time::Duration;

use super::*;
use chrono::DateTime;
use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_audit::Author;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn sample(state: BookingState) -> Booking {
    let mut b = new_hold(
        "BK-1".into(),
        "frozen-a",
        "FROZEN",
        &HoldTerms {
            customer_id: "c".into(),
            customer_reference: String::new(),
            pallets: 4,
            first_day: d("2026-12-01"),
            last_day: d("2026-12-03"),
            ttl_ms: 1000,
        },
        0,
        i64::MAX,
        &Author::system(),
    );
    b.state = state;
    if state != BookingState::Held {
        b.check_in_deadline_ms = Some(10_000);
    }
    if state == BookingState::Completed {
        b.completed_through = Some(d("2026-12-02"));
    }
    b
}

#[test]
fn every_transition_and_every_refusal() {
    use BookingState::*;
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Confirm,
        Cancel,
        CheckIn,
        Complete,
    }
    let expected = |op: Op, from: BookingState| -> Option<BookingState> {
        match (op, from) {
            (Op::Confirm, Held) => Some(Confirmed),
            (Op::Cancel, Held | Confirmed) => Some(Cancelled),
            (Op::CheckIn, Confirmed) => Some(CheckedIn),
            (Op::Complete, CheckedIn) => Some(Completed),
            _ => None,
        }
    };
    for from in BookingState::ALL {
        for op in [Op::Confirm, Op::Cancel, Op::CheckIn, Op::Complete] {
            let b = sample(from);
            let result = match op {
                Op::Confirm => confirm(&b, 10, 5000, &Author::system()),
                Op::Cancel => cancel(&b, 10, "changed plans", &Author::system()),
                Op::CheckIn => check_in(&b, 10, None, &Author::system()),
                Op::Complete => complete(&b, 10, d("2026-12-02"), &Author::system()),
            };
            match (expected(op, from), result) {
                (Some(to), Ok(after)) => {
                    assert_eq!(after.state, to, "{op:?} from {from}");
                    assert_eq!(after.updated_at_ms, 10);
                }
                (None, Err(BookingError::WrongState { state, .. })) => {
                    assert_eq!(state, from, "{op:?} from {from} names the state");
                }
                (None, Err(BookingError::HoldExpired { .. })) => {
                    assert!(
                        matches!((op, from), (Op::Confirm, Expired)),
                        "{op:?} from {from}"
                    );
                }
                (want, got) => panic!("{op:?} from {from}: want {want:?}, got {got:?}"),
            }
        }
    }
}

#[test]
fn refusals_name_the_current_state() {
    let error = confirm(
        &sample(BookingState::Cancelled),
        10,
        5000,
        &Author::system(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("BK-1 is CANCELLED"), "{text}");
    assert!(text.contains("ConfirmBooking"), "{text}");
}

#[test]
fn expiry_is_strictly_after_expires_at() {
    let held = sample(BookingState::Held);
    assert_eq!(held.expires_at_ms, 1000);
    assert!(
        confirm(&held, 1000, 5000, &Author::system()).is_ok(),
        "at expires_at it is still held"
    );
    let error = confirm(&held, 1001, 5000, &Author::system()).unwrap_err();
    assert!(matches!(error, BookingError::HoldExpired { .. }));
    assert!(error.to_string().contains("hold expired"));
    assert_eq!(held.effective(1001).state, BookingState::Expired);
    assert_eq!(held.effective(1001).updated_at_ms, 1000);
    // Any other transition of a lapsed hold names EXPIRED.
    match cancel(&held, 1001, "x", &Author::system()).unwrap_err() {
        BookingError::WrongState { state, .. } => assert_eq!(state, BookingState::Expired),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_show_after_the_check_in_deadline() {
    let confirmed = sample(BookingState::Confirmed);
    assert!(check_in(&confirmed, 10_000, None, &Author::system()).is_ok());
    assert_eq!(confirmed.effective(10_001).state, BookingState::NoShow);
    match check_in(&confirmed, 10_001, None, &Author::system()).unwrap_err() {
        BookingError::WrongState { state, .. } => assert_eq!(state, BookingState::NoShow),
        other => panic!("{other:?}"),
    }
    assert_eq!(confirmed.effective(10_001).occupancy(), None);
}

#[test]
fn check_in_pallets_arrived() {
    let b = sample(BookingState::Confirmed);
    assert_eq!(
        check_in(&b, 1, None, &Author::system())
            .unwrap()
            .pallets_arrived,
        4
    );
    assert_eq!(
        check_in(&b, 1, Some(3), &Author::system())
            .unwrap()
            .pallets_arrived,
        3
    );
    for bad in [0, 5, -1, i64::from(u32::MAX) + 1] {
        assert!(matches!(
            check_in(&b, 1, Some(bad), &Author::system()),
            Err(BookingError::ArrivedOutOfRange { .. })
        ));
    }
    // Fewer arrived: the booked pallets stay counted.
    let after = check_in(&b, 1, Some(1), &Author::system()).unwrap();
    assert_eq!(after.occupancy().unwrap().pallets, 4);
    assert_eq!(after.occupancy().unwrap().bucket, Bucket::CheckedIn);
}

#[test]
fn completion_frees_the_days_after_today() {
    let b = sample(BookingState::CheckedIn);
    let mid = complete(&b, 1, d("2026-12-02"), &Author::system()).unwrap();
    let occ = mid.occupancy().unwrap();
    assert_eq!((occ.first, occ.last), (d("2026-12-01"), d("2026-12-02")));
    let early = complete(&b, 1, d("2026-11-20"), &Author::system()).unwrap();
    assert_eq!(early.occupancy(), None);
    let late = complete(&b, 1, d("2027-01-01"), &Author::system()).unwrap();
    assert_eq!(late.occupancy().unwrap().last, d("2026-12-03"));
    let change = CounterChange::between(Some(&b), &mid);
    assert_eq!(change.days(), vec![d("2026-12-03")]);
}

#[test]
fn ranges() {
    assert!(check_range(d("2026-12-01"), d("2026-12-01")).is_ok());
    assert_eq!(
        check_range(d("2026-12-02"), d("2026-12-01")),
        Err(RangeError::Reversed)
    );
    assert!(check_range(d("2026-01-01"), d("2026-12-31")).is_ok());
    assert!(
        check_range(d("2024-01-01"), d("2024-12-31")).is_ok(),
        "366 days, leap year"
    );
    assert_eq!(
        check_range(d("2026-01-01"), d("2027-01-02")),
        Err(RangeError::TooLong(367))
    );
}

#[test]
fn site_local_days_and_deadlines() {
    let tz: Tz = "Asia/Shanghai".parse().unwrap();
    // 2026-11-30T16:30Z is 2026-12-01 00:30 in Shanghai.
    let ms = DateTime::parse_from_rfc3339("2026-11-30T16:30:00Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(local_day(tz, ms), d("2026-12-01"));
    assert_eq!(local_day(chrono_tz::UTC, ms), d("2026-11-30"));
    let start = start_of_day_ms(tz, d("2026-12-01"));
    assert_eq!(rfc3339(start), "2026-11-30T16:00:00.000Z");
    let deadline = check_in_deadline_ms(tz, d("2026-12-01"), Duration::from_secs(6 * 3600));
    assert_eq!(rfc3339(deadline), "2026-12-01T22:00:00.000Z");
    // Havana springs forward at midnight: 2026-03-08 starts at 01:00 (CDT, UTC-4).
    let havana: Tz = "America/Havana".parse().unwrap();
    assert_eq!(
        rfc3339(start_of_day_ms(havana, d("2026-03-08"))),
        "2026-03-08T05:00:00.000Z"
    );
    assert_eq!(
        rfc3339(start_of_day_ms(havana, d("2026-03-09"))),
        "2026-03-09T04:00:00.000Z"
    );
}

#[test]
fn day_numbers_round_trip_in_order() {
    let a = d("2026-12-01");
    let b = d("2026-12-02");
    assert!(day_number(a) < day_number(b));
    assert_eq!(from_day_number(day_number(a)), Some(a));
}

fn zone(id: &str, capacity: u32, used: &[u32]) -> ZoneDays {
    ZoneDays {
        zone_id: id.into(),
        capacity,
        days: used
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    d("2026-12-01") + chrono::Days::new(i as u64),
                    DayCounts {
                        held: *u,
                        ..DayCounts::default()
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn tightest_fit_is_chosen() {
    let zones = [
        zone("a", 100, &[0, 0]),
        zone("b", 20, &[10, 5]),
        zone("c", 20, &[12, 0]),
    ];
    // 8 pallets: a leaves 92, b leaves 2, c leaves 0 → c.
    assert_eq!(choose_zone(&zones, 8), Ok(2));
    // 9 pallets: c is short on day 1; b leaves 1 → b.
    assert_eq!(choose_zone(&zones, 9), Ok(1));
    // 50: only a.
    assert_eq!(choose_zone(&zones, 50), Ok(0));
    let short = choose_zone(&zones, 101).unwrap_err().unwrap();
    assert_eq!(short.zone_id, "a");
    assert_eq!(short.days.len(), 2);
    assert_eq!(short.days[0].short_by, 1);
    assert!(
        short
            .to_string()
            .contains("2026-12-01 short by 1 (100 free)")
    );
    assert_eq!(choose_zone(&[], 1), Err(None));
}

// ----- property tests: the capacity arithmetic under random operation sequences -----

/// An in-memory site: the same arithmetic the store applies, without the database.
struct Model {
    capacity: Vec<u32>,
    counters: BTreeMap<(usize, NaiveDate), DayCounts>,
    bookings: Vec<(usize, Booking)>,
    now: i64,
}

#[derive(Debug, Clone)]
enum Action {
    Hold {
        zone: Option<usize>,
        start: u8,
        len: u8,
        pallets: u32,
        ttl: i64,
    },
    Confirm(usize),
    Cancel(usize),
    CheckIn(usize, Option<i64>),
    Complete(usize, u8),
    Advance(i64),
    Sweep,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (proptest::option::of(0usize..3), 0u8..8, 0u8..4, 1u32..12, 1i64..50)
            .prop_map(|(zone, start, len, pallets, ttl)| Action::Hold { zone, start, len, pallets, ttl }),
        2 => any::<usize>().prop_map(Action::Confirm),
        1 => any::<usize>().prop_map(Action::Cancel),
        1 => (any::<usize>(), proptest::option::of(0i64..14)).prop_map(|(i, a)| Action::CheckIn(i, a)),
        1 => (any::<usize>(), 0u8..12).prop_map(|(i, t)| Action::Complete(i, t)),
        1 => (1i64..40).prop_map(Action::Advance),
        1 => Just(Action::Sweep),
    ]
}

const BASE: &str = "2026-12-01";

impl Model {
    fn day(offset: u8) -> NaiveDate {
        d(BASE) + chrono::Days::new(u64::from(offset))
    }

    fn apply_change(&mut self, zone: usize, change: CounterChange) {
        for day in change.days() {
            let counts = self.counters.entry((zone, day)).or_default();
            change
                .apply(day, counts)
                .expect("counters follow the bookings");
        }
    }

    fn replace(&mut self, i: usize, after: Booking) {
        let (zone, before) = self.bookings[i].clone();
        self.apply_change(zone, CounterChange::between(Some(&before), &after));
        self.bookings[i].1 = after;
    }

    fn sweep(&mut self) {
        for i in 0..self.bookings.len() {
            let b = self.bookings[i].1.clone();
            if b.is_lapsed(self.now) {
                self.replace(i, b.lapsed().unwrap());
            }
        }
    }

    fn step(&mut self, action: Action) {
        match action {
            Action::Hold {
                zone,
                start,
                len,
                pallets,
                ttl,
            } => {
                // The store sweeps due bookings before it checks room.
                self.sweep();
                let first = Self::day(start);
                let last = Self::day(start + len);
                let zones: Vec<usize> = match zone {
                    Some(z) => vec![z],
                    None => (0..self.capacity.len()).collect(),
                };
                let candidates: Vec<ZoneDays> = zones
                    .iter()
                    .map(|z| ZoneDays {
                        zone_id: z.to_string(),
                        capacity: self.capacity[*z],
                        days: days(first, last)
                            .map(|day| {
                                (
                                    day,
                                    self.counters.get(&(*z, day)).copied().unwrap_or_default(),
                                )
                            })
                            .collect(),
                    })
                    .collect();
                match choose_zone(&candidates, pallets) {
                    Ok(i) => {
                        let z = zones[i];
                        let terms = HoldTerms {
                            customer_id: "c".into(),
                            customer_reference: String::new(),
                            pallets,
                            first_day: first,
                            last_day: last,
                            ttl_ms: ttl,
                        };
                        let b = new_hold(
                            format!("b{}", self.bookings.len()),
                            &z.to_string(),
                            "X",
                            &terms,
                            self.now,
                            i64::MAX,
                            &Author::system(),
                        );
                        self.apply_change(z, CounterChange::between(None, &b));
                        self.bookings.push((z, b));
                    }
                    Err(Some(shortage)) => {
                        // Refused only when really short, and the days listed are short.
                        assert!(!shortage.days.is_empty());
                        for c in &candidates {
                            assert!(!short_days(c, pallets).is_empty());
                        }
                    }
                    Err(None) => unreachable!("there is always a candidate"),
                }
            }
            Action::Confirm(i) => {
                if let Some(i) = self.pick(i) {
                    let b = &self.bookings[i].1;
                    if let Ok(after) = confirm(b, self.now, self.now + 30, &Author::system()) {
                        self.replace(i, after);
                    }
                }
            }
            Action::Cancel(i) => {
                if let Some(i) = self.pick(i)
                    && let Ok(after) = cancel(&self.bookings[i].1, self.now, "r", &Author::system())
                {
                    self.replace(i, after);
                }
            }
            Action::CheckIn(i, arrived) => {
                if let Some(i) = self.pick(i)
                    && let Ok(after) =
                        check_in(&self.bookings[i].1, self.now, arrived, &Author::system())
                {
                    self.replace(i, after);
                }
            }
            Action::Complete(i, today) => {
                if let Some(i) = self.pick(i)
                    && let Ok(after) = complete(
                        &self.bookings[i].1,
                        self.now,
                        Self::day(today),
                        &Author::system(),
                    )
                {
                    self.replace(i, after);
                }
            }
            Action::Advance(ms) => self.now += ms,
            Action::Sweep => self.sweep(),
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.bookings.is_empty()).then(|| i % self.bookings.len())
    }

    /// The invariant: counters = Σ occupancy of the stored bookings ≤ capacity, and the
    /// free positions seen at `now` = capacity − Σ effective occupancy of live bookings.
    fn check(&self) {
        let mut expected: BTreeMap<(usize, NaiveDate), DayCounts> = BTreeMap::new();
        for (z, b) in &self.bookings {
            if let Some(o) = b.occupancy() {
                for day in o.days() {
                    expected
                        .entry((*z, day))
                        .or_default()
                        .add(day, o.bucket, o.pallets)
                        .unwrap();
                }
            }
        }
        let stored: BTreeMap<_, _> = self
            .counters
            .iter()
            .filter(|(_, c)| !c.is_zero())
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(stored, expected);
        for ((z, day), counts) in &self.counters {
            let cap = self.capacity[*z];
            assert!(
                counts.used() <= u64::from(cap),
                "zone {z} {day}: {counts:?} > {cap}"
            );
            // What GetAvailability shows: counters minus lapsed-but-unswept bookings.
            let mut effective = *counts;
            for (bz, b) in &self.bookings {
                if bz == z
                    && b.is_lapsed(self.now)
                    && let Some(o) = b.occupancy().filter(|o| o.covers(*day))
                {
                    effective.remove(*day, o.bucket, o.pallets).unwrap();
                }
            }
            let live: u64 = self
                .bookings
                .iter()
                .filter(|(bz, _)| bz == z)
                .filter_map(|(_, b)| b.effective(self.now).occupancy())
                .filter(|o| o.covers(*day))
                .map(|o| u64::from(o.pallets))
                .sum();
            assert_eq!(u64::from(effective.free(cap)), u64::from(cap) - live);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn capacity_is_never_exceeded_and_free_is_capacity_minus_live(
        capacity in proptest::collection::vec(1u32..25, 3),
        actions in proptest::collection::vec(action(), 1..120),
    ) {
        let mut model = Model { capacity, counters: BTreeMap::new(), bookings: Vec::new(), now: 0 };
        for action in actions {
            model.step(action);
            model.check();
        }
        // Everything lapses in the end, and a final sweep leaves only non-held bookings.
        model.now += 1_000_000;
        model.sweep();
        model.check();
        prop_assert!(model.bookings.iter().all(|(_, b)| !matches!(b.state, BookingState::Held | BookingState::Confirmed)));
    }

    #[test]
    fn the_chosen_zone_has_room_on_every_day(
        zones in proptest::collection::vec((1u32..30, proptest::collection::vec(0u32..30, 3)), 1..5),
        pallets in 1u32..30,
    ) {
        let candidates: Vec<ZoneDays> = zones
            .iter()
            .enumerate()
            .map(|(i, (cap, used))| {
                let used: Vec<u32> = used.iter().map(|u| u % (cap + 1)).collect();
                zone(&format!("z{i}"), *cap, &used)
            })
            .collect();
        match choose_zone(&candidates, pallets) {
            Ok(i) => {
                let chosen = &candidates[i];
                prop_assert!(short_days(chosen, pallets).is_empty());
                // Tightest: no other fitting zone leaves less slack.
                let slack = |z: &ZoneDays| z.days.iter().map(|(_, c)| c.free(z.capacity) - pallets).min().unwrap();
                for z in &candidates {
                    if short_days(z, pallets).is_empty() {
                        prop_assert!(slack(chosen) <= slack(z));
                    }
                }
            }
            Err(Some(shortage)) => {
                for z in &candidates {
                    prop_assert!(!short_days(z, pallets).is_empty());
                }
                let zone = candidates.iter().find(|z| z.zone_id == shortage.zone_id).unwrap();
                prop_assert_eq!(&shortage.days, &short_days(zone, pallets));
                for day in &shortage.days {
                    prop_assert_eq!(day.free + day.short_by, pallets);
                }
            }
            Err(None) => prop_assert!(false, "candidates were given"),
        }
    }

    #[test]
    fn counter_changes_round_trip(
        pallets in 1u32..50, start in 0u8..10, len in 0u8..10, through in 0u8..25,
    ) {
        // hold → confirm → check in → complete, then undoing every change leaves zero.
        let mut counts: BTreeMap<NaiveDate, DayCounts> = BTreeMap::new();
        let terms = HoldTerms {
            customer_id: "c".into(), customer_reference: String::new(), pallets,
            first_day: Model::day(start), last_day: Model::day(start + len), ttl_ms: 10,
        };
        let held = new_hold("b".into(), "z", "X", &terms, 0, i64::MAX, &Author::system());
        let confirmed = confirm(&held, 1, 100, &Author::system()).unwrap();
        let checked = check_in(&confirmed, 2, None, &Author::system()).unwrap();
        let completed = complete(&checked, 3, Model::day(through), &Author::system()).unwrap();
        let steps = [(None, &held), (Some(&held), &confirmed), (Some(&confirmed), &checked), (Some(&checked), &completed)];
        for (before, after) in steps {
            let change = CounterChange::between(before, after);
            for day in change.days() {
                change.apply(day, counts.entry(day).or_default()).unwrap();
            }
        }
        for (day, c) in &counts {
            let expected = completed.occupancy().filter(|o| o.covers(*day)).map_or(0, |o| o.pallets);
            prop_assert_eq!(c.checked_in, expected);
            prop_assert_eq!(c.held + c.confirmed, 0);
        }
    }
}

#[test]
fn pallet_counts_are_bounded_so_every_reported_sum_fits_int32() {
    assert_eq!(zone_capacity(u32::MAX), i32::MAX as u32);
    assert_eq!(zone_capacity(2400), 2400);
    // A full zone-day of the largest capacity: the sum and the free positions fit.
    let capacity = zone_capacity(u32::MAX);
    let counts = DayCounts {
        held: capacity / 3,
        confirmed: capacity / 3,
        checked_in: capacity - 2 * (capacity / 3),
    };
    assert_eq!(counts.used(), u64::from(capacity));
    assert!(counts.used() <= i32::MAX as u64);
    assert_eq!(counts.free(capacity), 0);
    // No room beyond the bound: the zone choice refuses one pallet more.
    let zone = ZoneDays {
        zone_id: "huge".into(),
        capacity,
        days: vec![(d("2026-12-01"), counts)],
    };
    assert!(choose_zone(&[zone], 1).is_err());
}

/// A booking row exactly as the build before authors (16ef299) wrote it: the same fields
/// in the same order, without `changes`.
#[derive(serde::Serialize)]
struct BookingAsOf16ef299 {
    booking_id: String,
    customer_id: String,
    customer_reference: String,
    zone_id: String,
    class: String,
    pallets: u32,
    pallets_arrived: u32,
    first_day: NaiveDate,
    last_day: NaiveDate,
    state: BookingState,
    expires_at_ms: i64,
    check_in_deadline_ms: Option<i64>,
    created_at_ms: i64,
    updated_at_ms: i64,
    cancel_reason: String,
    completed_through: Option<NaiveDate>,
}

#[test]
fn rows_and_ledger_entries_of_the_build_before_authors_decode_with_unknown_authors() {
    let old = BookingAsOf16ef299 {
        booking_id: "BK-000000000003-cn-huaihua-park".into(),
        customer_id: "c".into(),
        customer_reference: "PO-1".into(),
        zone_id: "frozen-a".into(),
        class: "FROZEN".into(),
        pallets: 2,
        pallets_arrived: 2,
        first_day: d("2026-12-01"),
        last_day: d("2026-12-02"),
        state: BookingState::CheckedIn,
        expires_at_ms: 900,
        check_in_deadline_ms: Some(5_000),
        created_at_ms: 100,
        updated_at_ms: 3_000,
        cancel_reason: String::new(),
        completed_through: Some(d("2026-12-02")),
    };
    let row: Booking = postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
    assert_eq!(row.completed_through, Some(d("2026-12-02")));
    assert!(row.changes.is_empty());
    let unknown = |state, at| BookingChange {
        state,
        changed_at_ms: at,
        changed_by: Author::unknown(),
    };
    assert_eq!(
        row.history(),
        [
            unknown(BookingState::Held, 100),
            unknown(BookingState::CheckedIn, 3_000)
        ]
    );
    // A ledger entry of that build: the booking is its last field.
    #[derive(serde::Serialize)]
    struct EntryAsOf16ef299 {
        sequence: u64,
        recorded_at_ms: i64,
        booking: BookingAsOf16ef299,
    }
    let entry = EntryAsOf16ef299 {
        sequence: 7,
        recorded_at_ms: 3_000,
        booking: old,
    };
    let decoded: LedgerEntry =
        postcard::from_bytes(&postcard::to_allocvec(&entry).unwrap()).unwrap();
    assert_eq!(decoded.sequence, 7);
    assert_eq!(decoded.booking, row);

    // Rows of this build keep their changes through a round trip.
    let who = Author::new("wh-1", "Anna");
    let done = complete(&row, 4_000, d("2026-12-02"), &who).unwrap();
    let again: Booking = postcard::from_bytes(&postcard::to_allocvec(&done).unwrap()).unwrap();
    assert_eq!(again, done);
    assert_eq!(
        again.history().last().unwrap().changed_by,
        who,
        "the new change is recorded after the proven ones"
    );
    assert_eq!(again.history().len(), 3);
}

#[test]
fn every_transition_appends_one_change_and_a_lapse_is_the_systems() {
    let who = Author::new("wh-1", "Anna");
    let held = new_hold(
        "b".into(),
        "z",
        "X",
        &HoldTerms {
            customer_id: "c".into(),
            customer_reference: String::new(),
            pallets: 1,
            first_day: d("2026-12-01"),
            last_day: d("2026-12-01"),
            ttl_ms: 1000,
        },
        0,
        i64::MAX,
        &who,
    );
    assert_eq!(held.history().len(), 1);
    let confirmed = confirm(&held, 10, 5_000, &Author::new("wh-2", "")).unwrap();
    let states: Vec<_> = confirmed.history().iter().map(|c| c.state).collect();
    assert_eq!(states, [BookingState::Held, BookingState::Confirmed]);
    assert_eq!(confirmed.history()[0].changed_by, who);
    let no_show = confirmed.lapsed().unwrap();
    let last = no_show.last_change().unwrap();
    assert_eq!(last.state, BookingState::NoShow);
    assert_eq!(last.changed_by, Author::system());
    assert_eq!(last.changed_at_ms, 5_000);
    // A refused transition records nothing (it returns no booking).
    assert!(check_in(&held, 20, None, &who).is_err());
}
