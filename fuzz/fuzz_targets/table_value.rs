#![no_main]
#![forbid(unsafe_code)]
//! Stored rows as the store reads them back: a table's raw key and its value bytes.
//!
//! - `Value::from_bytes` of arbitrary bytes is a value or a `StoreError::Corrupt`, never a
//!   panic, for plain types and for the records the telemetry service stores; a value that
//!   decodes re-encodes to bytes that decode to the same encoding (a fixpoint after one
//!   step, which also holds for NaN floats that `==` cannot compare).
//! - `Table::decode_key` of an arbitrary raw key is a key or `Corrupt`; a key that decodes
//!   is canonical (`raw_key` gives the raw bytes back) and `relative_key` is what follows the
//!   table's prefix.

use arbitrary::Arbitrary;
use coldchain_store::{StoreError, Table, Value};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Case {
    Value(Shape, Vec<u8>),
    Key(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Shape {
    Unit,
    U64,
    I64,
    Text,
    Bytes,
    Pair,
    OptionalText,
    List,
    SensorRecord,
    SensorState,
    AlarmRecord,
    OutboxEntry,
    WindowRecord,
    AppendState,
    SeriesState,
}

fn fixpoint<V: Value>(bytes: &[u8]) {
    match V::from_bytes(bytes) {
        Err(StoreError::Corrupt(_)) => {}
        Err(other) => panic!("corrupt bytes must be Corrupt, got {other:?}"),
        Ok(value) => {
            let once = value.to_bytes().expect("a decoded value encodes");
            let again = V::from_bytes(&once).expect("an encoded value decodes");
            assert_eq!(again.to_bytes().expect("encodes"), once);
        }
    }
}

fn key<K: coldchain_store::KeyCodec>(name: &'static str, raw: &[u8]) {
    let table: Table<K, ()> = Table::new(name);
    match table.decode_key(raw) {
        Err(StoreError::Corrupt(_)) => {}
        Err(other) => panic!("a bad key must be Corrupt, got {other:?}"),
        Ok(key) => {
            assert!(raw.starts_with(name.as_bytes()));
            assert_eq!(table.relative_key(raw), &raw[name.len() + 1..]);
            // decode_key does not look at the separator byte after the name (scans only
            // ever hand it keys under `name/`), so canonical means: under that prefix.
            if raw[name.len()] == b'/' {
                assert_eq!(table.raw_key(&key), raw);
            }
        }
    }
}

fuzz_target!(|case: Case| {
    use coldchain_telemetry::domain as t;
    match case {
        Case::Value(shape, bytes) => match shape {
            Shape::Unit => fixpoint::<()>(&bytes),
            Shape::U64 => fixpoint::<u64>(&bytes),
            Shape::I64 => fixpoint::<i64>(&bytes),
            Shape::Text => fixpoint::<String>(&bytes),
            Shape::Bytes => fixpoint::<Vec<u8>>(&bytes),
            Shape::Pair => fixpoint::<(String, u64)>(&bytes),
            Shape::OptionalText => fixpoint::<Option<String>>(&bytes),
            Shape::List => fixpoint::<Vec<(String, i64, Option<f64>)>>(&bytes),
            Shape::SensorRecord => fixpoint::<t::SensorRecord>(&bytes),
            Shape::SensorState => fixpoint::<t::SensorState>(&bytes),
            Shape::AlarmRecord => fixpoint::<t::alarm::AlarmRecord>(&bytes),
            Shape::OutboxEntry => fixpoint::<coldchain_telemetry::store::OutboxEntry>(&bytes),
            Shape::WindowRecord => fixpoint::<t::series::WindowRecord>(&bytes),
            Shape::AppendState => fixpoint::<t::codec::AppendState>(&bytes),
            Shape::SeriesState => fixpoint::<t::series::SeriesState>(&bytes),
        },
        Case::Key(raw) => {
            // The raw bytes are read as a key of each table shape; prefixes are the names a
            // real table has, so the fuzzer can reach the key decoder behind them.
            key::<String>("sensors", &raw);
            key::<(String, i64)>("windows", &raw);
            key::<(String, i64, u32)>("parts", &raw);
            key::<(i64, String)>("by_time", &raw);
            key::<(String, i32, String)>("by_customer", &raw);
            key::<(String, String, String)>("positions", &raw);
        }
    }
});
