use coldchain_proto::booking::v1 as pb;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::Code;

use super::requests;

fn hold(first: common::Date) -> pb::HoldSpaceRequest {
    pb::HoldSpaceRequest {
        request_id: "r".into(),
        customer_id: "c".into(),
        space: Some(pb::hold_space_request::Space::ZoneId("z".into())),
        pallets: 1,
        first_day: Some(first),
        last_day: Some(common::Date {
            year: 2026,
            month: 12,
            day: 2,
        }),
        ..Default::default()
    }
}

fn first_day_problem(year: i32, month: i32, day: i32) -> Option<String> {
    match requests::hold_space(&hold(common::Date { year, month, day })) {
        Ok(_) => None,
        Err(error) => {
            assert_eq!(error.code, Code::InvalidArgument);
            error
                .field_violations
                .iter()
                .find(|v| v.field == "first_day")
                .map(|v| v.description.clone())
        }
    }
}

#[test]
fn dates_are_checked_with_the_wording_clients_see() {
    assert_eq!(
        first_day_problem(2026, 2, 29).as_deref(),
        Some("2026-02-29 is not a valid date")
    );
    assert_eq!(
        first_day_problem(0, 1, 1).as_deref(),
        Some("year 0 is out of range 1 to 9999")
    );
    assert_eq!(
        first_day_problem(2026, 0, 1).as_deref(),
        Some("2026-00-01 is not a valid date")
    );
    assert_eq!(
        first_day_problem(2026, 1, -1).as_deref(),
        Some("2026-1--1 is not a valid date")
    );
    assert_eq!(first_day_problem(2026, 12, 1), None);
}
