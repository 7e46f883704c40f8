//! Arrow cell to SQLite value.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt8Type,
};
use rusqlite::types::Value;

/// The SQLite value of `array[row]`. Types without a SQLite counterpart are
/// stored as their Arrow display text.
pub fn to_sqlite(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int8 => Value::Integer(array.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Integer(array.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Integer(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Integer(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Integer(array.as_primitive::<UInt8Type>().value(row) as i64),
        DataType::UInt16 => Value::Integer(array.as_primitive::<UInt16Type>().value(row) as i64),
        DataType::UInt32 => Value::Integer(array.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::Float32 => Value::Real(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::Real(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Integer(array.as_boolean().value(row) as i64),
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::Text(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::Text(array.as_string_view().value(row).to_string()),
        DataType::Binary => Value::Blob(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Blob(array.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Value::Blob(array.as_binary_view().value(row).to_vec()),
        // Timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), which the source
        // reader parses back to the same microseconds.
        DataType::Timestamp(_, _) => {
            let us = match array.data_type() {
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => array
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(row),
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _) => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                        .value(row)
                        * 1_000
                }
                DataType::Timestamp(arrow::datatypes::TimeUnit::Second, _) => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampSecondType>()
                        .value(row)
                        * 1_000_000
                }
                _ => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                        .value(row)
                        / 1_000
                }
            };
            Value::Text(format_micros(us))
        }
        _ => {
            let opts = arrow::util::display::FormatOptions::default();
            match arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &opts) {
                Ok(f) => Value::Text(f.value(row).to_string()),
                Err(_) => Value::Null,
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of microseconds since the epoch, UTC.
pub fn format_micros(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::convert::civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac == 0 {
        base
    } else {
        format!("{base}.{frac:06}")
    }
}
