//! ListExpiring: the positions whose lots expire within a window of the site's local
//! today, earliest expiry first, expired ones included, paged; the window moves at the
//! site's midnight, not UTC's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::Duration;

use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::Code;

async fn expiring(
    c: &mut Client,
    within_days: i32,
    zone_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListExpiringResponse, tonic::Status> {
    c.list_expiring(pb::ListExpiringRequest {
        within_days,
        zone_id: zone_id.into(),
        page_size,
        page_token: page_token.into(),
    })
    .await
    .map(|r| r.into_inner())
}

/// (lot, zone, expired) of every level, in order.
fn rows(response: &pb::ListExpiringResponse) -> Vec<(String, String, bool)> {
    response
        .levels
        .iter()
        .map(|l| {
            (
                l.lot.as_ref().unwrap().lot_id.clone(),
                l.zone_id.clone(),
                l.expired,
            )
        })
        .collect()
}

fn row(lot: &str, zone: &str, expired: bool) -> (String, String, bool) {
    (lot.into(), zone.into(), expired)
}

#[tokio::test]
async fn expiring_lots_come_earliest_first_within_the_sites_local_window() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    // The park's today is 2026-03-01 (10:00 in Asia/Shanghai at START_MS).
    record(
        &mut c,
        "receipts",
        vec![
            receipt("KIWI", "L-0308", CHILLED, 5, date(2026, 3, 8)),
            receipt("KIWI", "L-0301", CHILLED, 5, date(2026, 3, 1)),
            receipt("KIWI", "L-0309", CHILLED, 5, date(2026, 3, 9)),
            receipt("PEAR", "P-0305", FROZEN, 5, date(2026, 3, 5)),
            receipt("KIWI", "L-0308", FROZEN, 5, date(2026, 3, 8)),
        ],
    )
    .await
    .unwrap();
    // A position emptied by an issue is not listed.
    record(
        &mut c,
        "empty",
        vec![
            receipt("FIG", "F-0302", CHILLED, 2, date(2026, 3, 2)),
            issue("FIG", "F-0302", CHILLED, 2),
        ],
    )
    .await
    .unwrap();

    let week = expiring(&mut c, 7, "", 0, "").await.unwrap();
    assert_eq!(week.as_of, Some(date(2026, 3, 1)));
    assert_eq!(
        rows(&week),
        [
            row("L-0301", CHILLED, false),
            row("P-0305", FROZEN, false),
            row("L-0308", CHILLED, false),
            row("L-0308", FROZEN, false),
        ]
    );
    assert!(week.next_page_token.is_empty());
    assert_eq!(
        rows(&expiring(&mut c, 0, "", 0, "").await.unwrap()),
        [row("L-0301", CHILLED, false)],
        "what expires today"
    );
    assert_eq!(
        rows(&expiring(&mut c, 7, FROZEN, 0, "").await.unwrap()),
        [row("P-0305", FROZEN, false), row("L-0308", FROZEN, false)]
    );

    // 23:59:59 at the park (15:59:59 UTC): still the 1st.
    h.clock
        .advance(Duration::from_secs(13 * 3600 + 59 * 60 + 59));
    assert_eq!(
        rows(&expiring(&mut c, 7, "", 0, "").await.unwrap()).len(),
        4
    );
    // One second later it is the 2nd at the park (still the 1st in UTC): the window
    // reaches the 9th, and the lot of the 1st has expired.
    h.clock.advance(Duration::from_secs(1));
    let next_day = expiring(&mut c, 7, "", 0, "").await.unwrap();
    assert_eq!(next_day.as_of, Some(date(2026, 3, 2)));
    assert_eq!(
        rows(&next_day),
        [
            row("L-0301", CHILLED, true),
            row("P-0305", FROZEN, false),
            row("L-0308", CHILLED, false),
            row("L-0308", FROZEN, false),
            row("L-0309", CHILLED, false),
        ]
    );

    // Pages of two give the same rows, in the same order, each once.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = expiring(&mut c, 7, "", 2, &token).await.unwrap();
        assert!(page.levels.len() <= 2);
        paged.extend(rows(&page));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, rows(&next_day));
}

#[tokio::test]
async fn bad_windows_tokens_and_zones_are_refused() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    for days in [-1, 3651] {
        let status = expiring(&mut c, days, "", 0, "").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{days}");
        assert_eq!(fields(&status), ["within_days"]);
    }
    let status = expiring(&mut c, 7, "no-such-zone", 0, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // A token of another window is refused.
    for n in 0..3 {
        record(
            &mut c,
            &format!("r-{n}"),
            vec![receipt(
                "KIWI",
                &format!("L-{n}"),
                CHILLED,
                1,
                date(2026, 3, 2),
            )],
        )
        .await
        .unwrap();
    }
    let first = expiring(&mut c, 7, "", 1, "").await.unwrap();
    assert!(!first.next_page_token.is_empty());
    let status = expiring(&mut c, 8, "", 1, &first.next_page_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["page_token"]);
}
