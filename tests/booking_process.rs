//! The booking service as a real process under load, killed with SIGKILL and restarted:
//! every acknowledged booking survives in its acknowledged (or a later) state, and for every
//! zone and day the counters still equal the sum of the live bookings and never exceed the
//! capacity. Each load task is the booking client of its own customer; the checks after the
//! restart read as the site's warehouse system.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as common_pb;
use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::Channel;
use rand::{Rng, SeedableRng};
use tonic::Code;

const SITE: &str = "cn-huaihua-park";
const TASKS: usize = 8;
const LOAD: Duration = Duration::from_secs(2);

fn proto_date(day: NaiveDate) -> common_pb::Date {
    use chrono::Datelike;
    common_pb::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

fn to_day(d: Option<&common_pb::Date>) -> NaiveDate {
    let d = d.expect("a date");
    NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).expect("a valid date")
}

async fn connect(endpoint: &str, key: &ApiKey) -> BookingServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    BookingServiceClient::new(Channel::new(channel, Some(key)))
}

/// The customer of load task `task`.
fn task_customer(task: usize) -> String {
    format!("cust-{task}")
}

/// What a task saw acknowledged: booking id → the last state a call returned.
type Acked = HashMap<String, pb::BookingState>;

/// One client: holds, confirms and cancels until told to stop, recording what the server
/// acknowledged. Before the kill every error must be a capacity or state refusal.
async fn drive(
    endpoint: String,
    key: ApiKey,
    task: usize,
    first: NaiveDate,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
) -> (Acked, Option<(pb::HoldSpaceRequest, pb::Booking)>, usize) {
    let mut client = connect(&endpoint, &key).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(task as u64);
    let mut acked = Acked::new();
    let mut open: Vec<String> = Vec::new();
    let mut sample = None;
    let mut refused = 0;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let request_id = format!("load-{task}-{n}");
        let roll = rng.gen_range(0..100);
        let result = if roll < 60 || open.is_empty() {
            let start = first + chrono::Days::new(rng.gen_range(0..4));
            let last = start + chrono::Days::new(rng.gen_range(0..3));
            let space = if rng.gen_bool(0.7) {
                pb::hold_space_request::Space::ZoneId("pharma-a".into())
            } else {
                pb::hold_space_request::Space::TemperatureClass(
                    common_pb::TemperatureClass::Pharma as i32,
                )
            };
            let request = pb::HoldSpaceRequest {
                request_id,
                customer_id: task_customer(task),
                space: Some(space),
                pallets: rng.gen_range(10..=80),
                first_day: Some(proto_date(start)),
                last_day: Some(proto_date(last)),
                hold_ttl: None,
                customer_reference: String::new(),
                actor: Default::default(),
            };
            let result = client.hold_space(request.clone()).await;
            if let (Ok(response), None) = (&result, &sample) {
                sample = Some((request, response.get_ref().clone()));
            }
            result
        } else {
            let i = rng.gen_range(0..open.len());
            let id = open[i].clone();
            if roll < 85 && acked.get(&id) == Some(&pb::BookingState::Held) {
                client
                    .confirm_booking(pb::ConfirmBookingRequest {
                        request_id,
                        booking_id: id,
                        actor: Default::default(),
                    })
                    .await
            } else {
                open.swap_remove(i);
                client
                    .cancel_booking(pb::CancelBookingRequest {
                        request_id,
                        booking_id: id,
                        reason: "load test".into(),
                        actor: Default::default(),
                    })
                    .await
            }
        };
        match result {
            Ok(response) => {
                let booking = response.into_inner();
                let state = pb::BookingState::try_from(booking.state).expect("a state");
                if state == pb::BookingState::Held {
                    open.push(booking.booking_id.clone());
                }
                acked.insert(booking.booking_id, state);
            }
            Err(status) if status.code() == Code::FailedPrecondition => refused += 1,
            Err(status) => {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "task {task}: unexpected {status:?} before the kill"
                );
                // The server is gone: this request is not acknowledged. Wait to be stopped.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (acked, sample, refused)
}

/// The states a booking acknowledged in `acked` may be in later.
fn later_states(acked: pb::BookingState) -> &'static [pb::BookingState] {
    use pb::BookingState as S;
    match acked {
        S::Held => &[S::Held, S::Confirmed, S::Cancelled, S::Expired],
        S::Confirmed => &[
            S::Confirmed,
            S::Cancelled,
            S::CheckedIn,
            S::Completed,
            S::NoShow,
        ],
        S::Cancelled => &[S::Cancelled],
        other => panic!("the load never acknowledges {other:?}"),
    }
}

#[test]
fn acknowledged_bookings_and_counters_survive_sigkill_under_load() {
    let net = common::TestNetwork::new();
    let keyring = net.keyring();
    let keys: Vec<ApiKey> = (0..TASKS)
        .map(|task| keyring.key(&keyring.add_booking_client(&task_customer(task))))
        .collect();
    let server =
        common::Server::start_with_env(&net, "booking", Some(SITE), &common::NO_RATE_LIMIT);
    let endpoint = server.endpoint.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");

    // Days well ahead, so the site-local today (Asia/Shanghai, UTC+8) never matters.
    let first =
        (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive() + chrono::Days::new(10);
    let last = first + chrono::Days::new(6);
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            runtime.spawn(drive(
                endpoint.clone(),
                keys[task].clone(),
                task,
                first,
                stop.clone(),
                killed.clone(),
            ))
        })
        .collect();

    // Kill the server in the middle of the load, then stop the clients.
    std::thread::sleep(LOAD);
    killed.store(true, Ordering::SeqCst);
    server.kill();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let mut acked = Acked::new();
    let mut samples = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (mine, sample, r) = runtime.block_on(task).expect("task");
        acked.extend(mine);
        samples.extend(sample);
        refused += r;
    }
    assert!(
        acked.len() >= 20,
        "the load acknowledged only {} bookings",
        acked.len()
    );
    eprintln!(
        "acknowledged {} bookings, {refused} refusals for want of space or state",
        acked.len()
    );

    let server =
        common::Server::start_with_env(&net, "booking", Some(SITE), &common::NO_RATE_LIMIT);
    runtime.block_on(async {
        let mut client = connect(&server.endpoint, &keyring.key(&common::warehouse(SITE))).await;

        // Every acknowledged booking exists, in its acknowledged or a later state.
        for (id, state) in &acked {
            let booking = client
                .get_booking(pb::GetBookingRequest {
                    booking_id: id.clone(),
                })
                .await
                .unwrap_or_else(|status| panic!("acknowledged booking {id} lost: {status:?}"))
                .into_inner();
            let now = pb::BookingState::try_from(booking.state).expect("a state");
            assert!(
                later_states(*state).contains(&now),
                "{id}: acknowledged {state:?}, now {now:?}"
            );
        }

        // A retried hold answers what it answered before the crash (retried by the
        // customer's own booking client: only it may hold for that customer).
        for (request, response) in &samples {
            let key = keyring.key(&common::customer(&request.customer_id));
            let replay = connect(&server.endpoint, &key)
                .await
                .hold_space(request.clone())
                .await
                .expect("replay")
                .into_inner();
            assert_eq!(&replay, response);
        }

        // The counters equal the sums over the live bookings, and never exceed capacity.
        let mut bookings = Vec::new();
        let mut request = pb::ListBookingsRequest {
            page_size: 1000,
            ..Default::default()
        };
        loop {
            let page = client
                .list_bookings(request.clone())
                .await
                .expect("list")
                .into_inner();
            bookings.extend(page.bookings);
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        assert!(bookings.len() >= acked.len());
        let mut live: BTreeMap<(String, NaiveDate), (i32, i32, i32)> = BTreeMap::new();
        for b in &bookings {
            let state = pb::BookingState::try_from(b.state).expect("a state");
            let mut day = to_day(b.first_day.as_ref());
            while day <= to_day(b.last_day.as_ref()) {
                let sums = live.entry((b.zone_id.clone(), day)).or_default();
                match state {
                    pb::BookingState::Held => sums.0 += b.pallets,
                    pb::BookingState::Confirmed => sums.1 += b.pallets,
                    pb::BookingState::CheckedIn => sums.2 += b.pallets,
                    _ => {}
                }
                day = day.succ_opt().expect("a next day");
            }
        }
        let site = net.config().site(SITE).expect("site").clone();
        let mut full_days = 0;
        for zone in &site.zones {
            let days = client
                .get_availability(pb::GetAvailabilityRequest {
                    space: Some(pb::get_availability_request::Space::ZoneId(zone.id.clone())),
                    first_day: Some(proto_date(first)),
                    last_day: Some(proto_date(last)),
                })
                .await
                .expect("availability")
                .into_inner()
                .days;
            assert_eq!(days.len(), 7);
            for row in days {
                let day = to_day(row.date.as_ref());
                let want = live
                    .get(&(zone.id.clone(), day))
                    .copied()
                    .unwrap_or_default();
                assert_eq!(
                    (row.held, row.confirmed, row.checked_in),
                    want,
                    "zone {} on {day}",
                    zone.id
                );
                let used = row.held + row.confirmed + row.checked_in;
                assert!(
                    used <= row.capacity,
                    "zone {} on {day}: {used} > {}",
                    zone.id,
                    row.capacity
                );
                assert_eq!(row.free, row.capacity - used);
                if row.free < 10 {
                    full_days += 1;
                }
            }
        }
        eprintln!(
            "{} bookings after restart, {full_days} zone-days nearly full",
            bookings.len()
        );
    });
    server.kill();
}
