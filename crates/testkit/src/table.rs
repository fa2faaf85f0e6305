//! Validation tables: rows of (name, mutation of a valid base request, expected code,
//! expected field violations), checked against a real server by [`check_table`].

use std::future::Future;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// One case of a table.
pub struct Row<R> {
    /// What the case breaks, for failure messages.
    pub name: String,
    /// Turns the valid base request into this case's request.
    pub mutate: Box<dyn Fn(&mut R)>,
    /// The code the server must answer with.
    pub code: Code,
    /// The exact fields its `BadRequest` detail must name (in any order).
    pub fields: Vec<String>,
}

/// A row answered with INVALID_ARGUMENT naming exactly `fields`.
pub fn invalid<R, S: AsRef<str>>(
    name: impl Into<String>,
    fields: &[S],
    mutate: impl Fn(&mut R) + 'static,
) -> Row<R> {
    Row {
        name: name.into(),
        mutate: Box::new(mutate),
        code: Code::InvalidArgument,
        fields: fields.iter().map(|f| f.as_ref().to_string()).collect(),
    }
}

/// A row answered with another code, without field violations.
pub fn refused<R>(
    name: impl Into<String>,
    code: Code,
    mutate: impl Fn(&mut R) + 'static,
) -> Row<R> {
    Row {
        name: name.into(),
        mutate: Box::new(mutate),
        code,
        fields: Vec::new(),
    }
}

/// The malformed forms of a present identifier (1 to 128 bytes of UTF-8, no control
/// characters, no surrounding whitespace). The long one is 129 bytes in 65 characters, so a
/// check that counted characters would let it through.
pub fn malformed_ids() -> Vec<(&'static str, String)> {
    vec![
        ("129 bytes", format!("{}x", "é".repeat(64))),
        ("a control character", "a\u{7}b".into()),
        ("leading whitespace", " a".into()),
        ("trailing whitespace", "a ".into()),
    ]
}

/// Rows for an identifier field `field` set by `set`: its malformed forms, and empty when
/// it is required.
pub fn id_rows<R: 'static>(
    field: &'static str,
    required: bool,
    set: fn(&mut R, String),
) -> Vec<Row<R>> {
    let mut forms = malformed_ids();
    if required {
        forms.insert(0, ("empty", String::new()));
    }
    forms
        .into_iter()
        .map(|(form, value)| {
            invalid(format!("{field} {form}"), &[field], move |r| {
                set(r, value.clone())
            })
        })
        .collect()
}

/// Free text over `max` bytes that is under `max` characters.
pub fn over_bytes(max: usize) -> String {
    format!("{}x", "é".repeat(max / 2))
}

/// The fields a status's `BadRequest` detail names (none without the detail).
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Sends every row's request through `call` and checks the answer. Returns the row count.
pub async fn check_table<R, T, F, Fut>(rpc: &str, base: &R, rows: Vec<Row<R>>, mut call: F) -> usize
where
    R: Clone,
    T: std::fmt::Debug,
    F: FnMut(R) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let count = rows.len();
    for row in rows {
        let mut request = base.clone();
        (row.mutate)(&mut request);
        let status = match call(request).await {
            Ok(response) => panic!(
                "{rpc} / {}: accepted: {:?}",
                row.name,
                response.into_inner()
            ),
            Err(status) => status,
        };
        assert_eq!(status.code(), row.code, "{rpc} / {}: {status:?}", row.name);
        let mut got = bad_request_fields(&status);
        got.sort();
        let mut want = row.fields.clone();
        want.sort();
        assert_eq!(got, want, "{rpc} / {}: {}", row.name, status.message());
    }
    eprintln!("{rpc}: {count} rows");
    count
}

/// [`check_table`] for a mutating RPC: every row's request gets a request_id of its own
/// (set by `set_request_id` before the row's mutation, so a row about the request_id keeps
/// its own). A refusal of a request that executed is remembered under its id (README,
/// Guarantees): rows sharing one id would be answered as a reused id instead.
pub async fn check_writes<R, T, F, Fut>(
    rpc: &str,
    base: &R,
    rows: Vec<Row<R>>,
    set_request_id: fn(&mut R, String),
    call: F,
) -> usize
where
    R: Clone + 'static,
    T: std::fmt::Debug,
    F: FnMut(R) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            let id = format!("{rpc}-row-{index}");
            let mutate = row.mutate;
            Row {
                mutate: Box::new(move |request: &mut R| {
                    set_request_id(request, id.clone());
                    mutate(request)
                }),
                ..row
            }
        })
        .collect();
    check_table(rpc, base, rows, call).await
}

/// A genuine page token with the hex digit at `index` changed.
pub fn flip(token: &str, index: usize) -> String {
    token
        .char_indices()
        .map(|(i, c)| match (i == index, c) {
            (false, c) => c,
            (true, '0') => '1',
            (true, _) => '0',
        })
        .collect()
}

/// The tampered forms of a genuine `token`, plus a token of another query.
pub fn tampered_tokens(token: &str, other_query: &str) -> Vec<(&'static str, String)> {
    vec![
        ("not hex", "zz".to_string()),
        ("odd length", "abc".to_string()),
        ("upper-case hex", token.to_uppercase()),
        ("first digit flipped", flip(token, 0)),
        ("middle digit flipped", flip(token, token.len() / 2)),
        ("last digit flipped", flip(token, token.len() - 1)),
        ("truncated", token[..token.len() - 2].to_string()),
        ("extended", format!("{token}00")),
        ("over 4 KiB", "ab".repeat(3000)),
        ("token of another query", other_query.to_string()),
    ]
}

/// A calendar date as the contracts carry it.
pub fn ymd(year: i32, month: i32, day: i32) -> Option<coldchain_proto::common::v1::Date> {
    Some(coldchain_proto::common::v1::Date { year, month, day })
}

/// Dates that are not valid proleptic Gregorian days of years 1 to 9999.
pub fn bad_dates() -> Vec<(&'static str, Option<coldchain_proto::common::v1::Date>)> {
    vec![
        ("month 13", ymd(2030, 13, 1)),
        ("month 0", ymd(2030, 0, 5)),
        ("february 30", ymd(2030, 2, 30)),
        ("february 29 of a common year", ymd(2031, 2, 29)),
        ("day 0", ymd(2030, 6, 0)),
        ("day 32", ymd(2030, 7, 32)),
        ("negative day", ymd(2030, 12, -1)),
        ("year 0", ymd(0, 6, 1)),
        ("year 10000", ymd(10000, 6, 1)),
    ]
}

/// The `first_day` and `last_day` of a request.
pub type DayRange<'a> = (
    &'a mut Option<coldchain_proto::common::v1::Date>,
    &'a mut Option<coldchain_proto::common::v1::Date>,
);

/// Rows for a `first_day`/`last_day` pair reached through `range`: each day missing (when
/// `required`) and each day invalid. Rules about the span itself (reversed, too long, in the
/// past) depend on the RPC and stay with its table.
pub fn day_range_rows<R: 'static>(
    required: bool,
    range: for<'a> fn(&'a mut R) -> DayRange<'a>,
) -> Vec<Row<R>> {
    let mut rows = Vec::new();
    if required {
        rows.push(invalid("no first_day", &["first_day"], move |r: &mut R| {
            *range(r).0 = None
        }));
        rows.push(invalid("no last_day", &["last_day"], move |r: &mut R| {
            *range(r).1 = None
        }));
    }
    for (name, day) in bad_dates() {
        rows.push(invalid(
            format!("first_day {name}"),
            &["first_day"],
            move |r: &mut R| *range(r).0 = day,
        ));
        rows.push(invalid(
            format!("last_day {name}"),
            &["last_day"],
            move |r: &mut R| *range(r).1 = day,
        ));
    }
    rows
}

/// Rows for a repeated enum filter `field` set by `set`: the `_UNSPECIFIED` zero,
/// `first_unknown` (one past the last value), and an unknown value after a valid one (the
/// violation names its index).
pub fn enum_list_rows<R: 'static>(
    field: &'static str,
    first_unknown: i32,
    set: fn(&mut R, Vec<i32>),
) -> Vec<Row<R>> {
    [
        (vec![0], 0),
        (vec![first_unknown], 0),
        (vec![1, -1], 1),
        (vec![1, 999], 1),
    ]
    .into_iter()
    .map(|(values, index)| {
        invalid(
            format!("{field} {values:?}"),
            &[format!("{field}[{index}]")],
            move |r: &mut R| set(r, values.clone()),
        )
    })
    .collect()
}
