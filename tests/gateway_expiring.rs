//! The gateway's ListExpiring against the real site services: every site's expiring lots
//! merged earliest first, filtered by class, cut at the limit, and partial when a site is
//! down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod gateway_support;

use chrono::{Datelike, Days, NaiveDate, Utc};
use coldchain_proto::common::v1 as cc;
use coldchain_proto::network::v1 as pb;
use gateway_support::*;

/// The date `days` from today (UTC; every site's today is within a day of it).
fn in_days(days: u64) -> (NaiveDate, cc::Date) {
    let day = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(days))
        .unwrap();
    let date = cc::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    };
    (day, date)
}

/// (site, lot, zone) of every row, in order.
fn rows(answer: &pb::NetworkListExpiringResponse) -> Vec<(String, String, String)> {
    answer
        .levels
        .iter()
        .map(|row| {
            let level = row.level.as_ref().unwrap();
            (
                row.site_id.clone(),
                level.lot.as_ref().unwrap().lot_id.clone(),
                level.zone_id.clone(),
            )
        })
        .collect()
}

fn row(site: &str, lot: &str, zone: &str) -> (String, String, String) {
    (site.into(), lot.into(), zone.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiring_lots_are_merged_earliest_first_across_the_sites() {
    let net = Net::start(&[(PARK, INVENTORY), (VIENTIANE, INVENTORY)]).await;
    receive_lot(&net, PARK, "kiwi", "K-5", "chilled-a", 10, in_days(5).1).await;
    receive_lot(&net, PARK, "kiwi", "K-20", "frozen-a", 10, in_days(20).1).await;
    receive_lot(&net, PARK, "kiwi", "K-90", "chilled-a", 10, in_days(90).1).await;
    receive_lot(
        &net,
        VIENTIANE,
        "banana",
        "B-10",
        "cool-a",
        10,
        in_days(10).1,
    )
    .await;
    receive_lot(
        &net,
        VIENTIANE,
        "banana",
        "B-25",
        "chilled-a",
        10,
        in_days(25).1,
    )
    .await;
    let mut gateway = net.gateway().await;
    let ask =
        |within_days, classes: Vec<cc::TemperatureClass>, limit| pb::NetworkListExpiringRequest {
            within_days,
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            temperature_classes: classes.into_iter().map(|c| c as i32).collect(),
            limit,
        };

    let month = gateway
        .list_expiring(ask(30, vec![], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rows(&month),
        [
            row(PARK, "K-5", "chilled-a"),
            row(VIENTIANE, "B-10", "cool-a"),
            row(PARK, "K-20", "frozen-a"),
            row(VIENTIANE, "B-25", "chilled-a"),
        ]
    );
    assert!(!month.truncated);
    assert!(month.failures.is_empty());
    assert_eq!(
        month.levels[2].temperature_class,
        cc::TemperatureClass::Frozen as i32
    );

    let chilled = gateway
        .list_expiring(ask(30, vec![cc::TemperatureClass::Chilled], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rows(&chilled),
        [
            row(PARK, "K-5", "chilled-a"),
            row(VIENTIANE, "B-25", "chilled-a"),
        ]
    );

    let first_two = gateway
        .list_expiring(ask(30, vec![], 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rows(&first_two), rows(&month)[..2]);
    assert!(first_two.truncated);

    // Every site asked, two of them down: the answer holds the others' rows and says who
    // did not answer.
    let all_sites = gateway
        .list_expiring(pb::NetworkListExpiringRequest {
            within_days: 30,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rows(&all_sites), rows(&month));
    let failed: Vec<&str> = all_sites
        .failures
        .iter()
        .map(|f| f.site_id.as_str())
        .collect();
    assert_eq!(failed.len(), 6, "{failed:?}");
    assert!(all_sites.failures.iter().all(|f| f.code == "UNAVAILABLE"));
    assert!(!failed.contains(&PARK) && !failed.contains(&VIENTIANE));

    let bad = gateway.list_expiring(ask(-1, vec![], 0)).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(fields(&bad), ["within_days"]);
}
