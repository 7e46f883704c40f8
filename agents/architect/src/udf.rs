//! SQL functions the generated transformations call for PII policies,
//! registered in every DataFusion session that runs mapping SQL (Workers and
//! the Validator's replay alike, so both compute the same values):
//!
//! - `sensei_mask(text)`: e-mail addresses keep their first character and
//!   domain (`j***@example.com`); other values keep their first and last
//!   character (`J***n`), values of two characters or fewer become `**`.
//! - `sensei_hash(text)`: HMAC-SHA256 of the value under the key in
//!   `transformation.pii_hash_key_file`, hex; the same value always gives the
//!   same hash (joins still work), and without the key it cannot be reversed
//!   by hashing guesses.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;

/// Masks one value.
pub fn mask(v: &str) -> String {
    if let Some((local, domain)) = v.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = v.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 | 2 => "**".into(),
        n => format!("{}***{}", chars[0], chars[n - 1]),
    }
}

/// HMAC-SHA256 of `message` under `key`, hex (the runtime's, shared with
/// the cluster's signed tickets).
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    hex::encode(sensei_runtime::mac::hmac_sha256(key, message))
}

fn map_text(
    args: &[ColumnarValue],
    f: &dyn Fn(&str) -> String,
) -> Result<ColumnarValue, DataFusionError> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let input = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
    let input = input.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(input.len(), input.len() * 16);
    for i in 0..input.len() {
        if input.is_null(i) {
            out.append_null();
        } else {
            out.append_value(f(input.value(i)));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

/// Registers `sensei_mask` and `sensei_hash` (with `key`, when given).
pub fn register(session: &SessionContext, key: Option<Arc<Vec<u8>>>) {
    session.register_udf(create_udf(
        "sensei_mask",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| map_text(args, &mask)),
    ));
    session.register_udf(create_udf(
        "sensei_hash",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args| match &key {
            Some(k) => map_text(args, &|v| hmac_hex(k, v.as_bytes())),
            None => Err(DataFusionError::Execution(
                "sensei_hash needs a key: set transformation.pii_hash_key_file to a file only its owner can read".into(),
            )),
        }),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_keyed_hashes() {
        assert_eq!(mask("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask("Jonathan"), "J***n");
        assert_eq!(mask("Al"), "**");
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
