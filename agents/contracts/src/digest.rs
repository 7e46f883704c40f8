//! The canonical row encoding and the order-independent table digest.
//!
//! One logical row encodes to the same bytes whatever engine it was read from.
//! Columns are taken in the target schema's order; each cell is written as
//!
//! | value | bytes |
//! | --- | --- |
//! | NULL | `0x00` |
//! | signed or unsigned integer that fits i64 | `0x01 'i'` + i64 big-endian |
//! | unsigned integer above i64::MAX | `0x01 'u'` + u64 big-endian |
//! | float | `0x01 'f'` + f64 bits big-endian (`-0.0` as `0.0`, one NaN) |
//! | decimal | `0x01 'd'` + scale (i8) + scaled i128 big-endian |
//! | string (any Arrow string type) | `0x01 's'` + u64 byte length + UTF-8 bytes |
//! | binary | `0x01 'b'` + u64 length + bytes |
//! | boolean | `0x01 't'` + `0x00`/`0x01` |
//! | date | `0x01 'D'` + days since 1970-01-01 (i32) |
//! | timestamp | `0x01 'T'` + UTC microseconds (i64) |
//! | anything else | `0x01 'x'` + u64 length + Arrow's display text |
//!
//! A row's hash is the SHA-256 of its encoding. A table's digest is the row
//! count and the sum of its row hashes modulo 2^256: independent of row order,
//! and, unlike XOR, a duplicated row changes it instead of cancelling out.
//!
//! A table's Merkle root ([`MerkleDigest`]) splits the rows into 256 buckets
//! by the first byte of the SHA-256 of the row's key (its primary-key cells'
//! encoding; the whole row without a key), keeps one digest per bucket, and
//! hashes the buckets pairwise: leaf = SHA-256(0x00 ‖ rows as u64 big-endian ‖
//! bucket sum, 32 bytes big-endian), node = SHA-256(0x01 ‖ left ‖ right). It is
//! as order-independent as the digest, computable in one pass over any
//! reading of the rows (staged partitions, a target read back), and two
//! tables that differ can be compared bucket by bucket to find where.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;
use sha2::{Digest, Sha256};

/// An order-independent digest of a multiset of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableDigest {
    /// Rows added.
    pub rows: u64,
    sum: [u64; 4],
}

impl TableDigest {
    /// Adds one row hash.
    pub fn add_hash(&mut self, hash: &[u8; 32]) {
        // Little-endian limbs of a 256-bit accumulator; the hash is read big-endian.
        let mut carry = 0u128;
        for limb in 0..4 {
            let start = 32 - (limb + 1) * 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(&hash[start..start + 8]);
            let v = self.sum[limb] as u128 + u64::from_be_bytes(word) as u128 + carry;
            self.sum[limb] = v as u64;
            carry = v >> 64;
        }
        self.rows += 1;
    }

    /// Adds every row of a batch.
    pub fn add_batch(&mut self, batch: &RecordBatch) {
        let columns = batch.columns();
        let mut buf = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            buf.clear();
            for col in columns {
                encode_cell(col, row, &mut buf);
            }
            let h: [u8; 32] = Sha256::digest(&buf).into();
            self.add_hash(&h);
        }
    }

    /// Combines two digests (of disjoint row sets).
    pub fn merge(&mut self, other: &TableDigest) {
        let mut carry = 0u128;
        for limb in 0..4 {
            let v = self.sum[limb] as u128 + other.sum[limb] as u128 + carry;
            self.sum[limb] = v as u64;
            carry = v >> 64;
        }
        self.rows += other.rows;
    }

    /// The sum as 64 hex digits.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for limb in self.sum.iter().rev() {
            out.push_str(&format!("{limb:016x}"));
        }
        out
    }

    /// Parses [`TableDigest::hex`] back, with its row count.
    pub fn from_hex(rows: u64, hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut sum = [0u64; 4];
        for (i, limb) in sum.iter_mut().rev().enumerate() {
            *limb = u64::from_str_radix(&hex[i * 16..(i + 1) * 16], 16).ok()?;
        }
        Some(TableDigest { rows, sum })
    }
}

/// Buckets of a [`MerkleDigest`].
pub const MERKLE_BUCKETS: usize = 256;

/// The bucketed Merkle root of a table's rows (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleDigest {
    buckets: Vec<TableDigest>,
}

impl Default for MerkleDigest {
    fn default() -> Self {
        MerkleDigest {
            buckets: vec![TableDigest::default(); MERKLE_BUCKETS],
        }
    }
}

impl MerkleDigest {
    /// Adds every row of a batch, bucketed by the cells of the `key` columns
    /// (by the whole row when a key column is missing or there is none).
    pub fn add_batch(&mut self, batch: &RecordBatch, key: &[String]) {
        self.add_batch_also(batch, key, None);
    }

    /// [`MerkleDigest::add_batch`], each row's hash also added to `table`
    /// (the table's order-independent digest: one hash per row for both).
    pub fn add_batch_also(
        &mut self,
        batch: &RecordBatch,
        key: &[String],
        mut table: Option<&mut TableDigest>,
    ) {
        let schema = batch.schema();
        let mut key_cols: Vec<usize> = key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
        if key_cols.is_empty() || key_cols.len() != key.len() {
            key_cols = (0..batch.num_columns()).collect();
        }
        let (mut row, mut kb) = (Vec::with_capacity(256), Vec::with_capacity(64));
        for r in 0..batch.num_rows() {
            row.clear();
            kb.clear();
            for col in batch.columns() {
                encode_cell(col, r, &mut row);
            }
            for &c in &key_cols {
                encode_cell(batch.column(c), r, &mut kb);
            }
            let h: [u8; 32] = Sha256::digest(&row).into();
            let bucket = Sha256::digest(&kb)[0] as usize;
            self.buckets[bucket].add_hash(&h);
            if let Some(t) = table.as_deref_mut() {
                t.add_hash(&h);
            }
        }
    }

    /// Combines with the digest of a disjoint set of rows.
    pub fn merge(&mut self, other: &MerkleDigest) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            a.merge(b);
        }
    }

    /// The root, 64 hex digits.
    pub fn root(&self) -> String {
        let mut level: Vec<[u8; 32]> = self
            .buckets
            .iter()
            .map(|b| {
                let mut h = Sha256::new();
                h.update([0u8]);
                h.update(b.rows.to_be_bytes());
                h.update(hex::decode(b.hex()).unwrap_or_default());
                h.finalize().into()
            })
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(pair[0]);
                    h.update(pair.get(1).unwrap_or(&pair[0]));
                    h.finalize().into()
                })
                .collect();
        }
        hex::encode(level[0])
    }
}

fn put_len_bytes(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(1);
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_i64(v: i64, out: &mut Vec<u8>) {
    out.push(1);
    out.push(b'i');
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_f64(v: f64, out: &mut Vec<u8>) {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = if v.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        v.to_bits()
    };
    out.push(1);
    out.push(b'f');
    out.extend_from_slice(&bits.to_be_bytes());
}

fn put_micros(v: i64, out: &mut Vec<u8>) {
    out.push(1);
    out.push(b'T');
    out.extend_from_slice(&v.to_be_bytes());
}

/// A 128-bit hash of row `r`'s cells in `cols` (their canonical encoding,
/// `buf` reused between calls): equal values hash equal, different ones
/// collide with negligible probability. Not a commitment (the certificate
/// uses SHA-256): a fast key for sets and samples within one run.
pub fn cells_hash(cols: &[&ArrayRef], r: usize, buf: &mut Vec<u8>) -> u128 {
    use std::hash::{Hash, Hasher};
    buf.clear();
    for c in cols {
        encode_cell(c, r, buf);
    }
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        buf.hash(&mut h);
        h.finish()
    };
    ((half(0) as u128) << 64) | half(1) as u128
}

/// Appends the canonical encoding of `array[row]` to `out`.
pub fn encode_cell(array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    if array.is_null(row) {
        out.push(0);
        return;
    }
    match array.data_type() {
        DataType::Int8 => put_i64(array.as_primitive::<Int8Type>().value(row) as i64, out),
        DataType::Int16 => put_i64(array.as_primitive::<Int16Type>().value(row) as i64, out),
        DataType::Int32 => put_i64(array.as_primitive::<Int32Type>().value(row) as i64, out),
        DataType::Int64 => put_i64(array.as_primitive::<Int64Type>().value(row), out),
        DataType::UInt8 => put_i64(array.as_primitive::<UInt8Type>().value(row) as i64, out),
        DataType::UInt16 => put_i64(array.as_primitive::<UInt16Type>().value(row) as i64, out),
        DataType::UInt32 => put_i64(array.as_primitive::<UInt32Type>().value(row) as i64, out),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            match i64::try_from(v) {
                Ok(v) => put_i64(v, out),
                Err(_) => {
                    out.push(1);
                    out.push(b'u');
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        DataType::Float16 => put_f64(array.as_primitive::<Float16Type>().value(row).to_f64(), out),
        DataType::Float32 => put_f64(array.as_primitive::<Float32Type>().value(row) as f64, out),
        DataType::Float64 => put_f64(array.as_primitive::<Float64Type>().value(row), out),
        DataType::Decimal128(_, scale) => {
            out.push(1);
            out.push(b'd');
            out.push(*scale as u8);
            out.extend_from_slice(
                &array
                    .as_primitive::<Decimal128Type>()
                    .value(row)
                    .to_be_bytes(),
            );
        }
        DataType::Utf8 => put_len_bytes(b's', array.as_string::<i32>().value(row).as_bytes(), out),
        DataType::LargeUtf8 => {
            put_len_bytes(b's', array.as_string::<i64>().value(row).as_bytes(), out)
        }
        DataType::Utf8View => {
            put_len_bytes(b's', array.as_string_view().value(row).as_bytes(), out)
        }
        DataType::Binary => put_len_bytes(b'b', array.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => put_len_bytes(b'b', array.as_binary::<i64>().value(row), out),
        DataType::BinaryView => put_len_bytes(b'b', array.as_binary_view().value(row), out),
        DataType::Boolean => {
            out.push(1);
            out.push(b't');
            out.push(array.as_boolean().value(row) as u8);
        }
        DataType::Date32 => {
            out.push(1);
            out.push(b'D');
            out.extend_from_slice(&array.as_primitive::<Date32Type>().value(row).to_be_bytes());
        }
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1_000),
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000
                }
            };
            put_micros(micros, out)
        }
        _ => {
            let opts = arrow::util::display::FormatOptions::default();
            let text = arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &opts)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            put_len_bytes(b'x', text.as_bytes(), out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_batch(rows: &[(i64, Option<String>)]) -> RecordBatch {
        use arrow::array::{Int64Array, StringArray};
        use std::sync::Arc;
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The canonical encoding: any order and any batching of the same
        /// rows give the same digest and Merkle root; changing one cell,
        /// dropping or duplicating a row changes both.
        #[test]
        fn digests_see_rows_not_their_order(
            rows in proptest::collection::vec(
                (proptest::prelude::any::<i64>(), proptest::option::of("[a-zé\\x00-\\x7f]{0,12}")),
                1..40,
            ),
            split in 0usize..40,
            change in 0usize..40,
        ) {
            let key = ["id".to_string()];
            let whole = |rs: &[(i64, Option<String>)]| {
                let mut d = TableDigest::default();
                let mut m = MerkleDigest::default();
                d.add_batch(&rows_batch(rs));
                m.add_batch(&rows_batch(rs), &key);
                (d.hex(), m.root())
            };
            let expected = whole(&rows);
            let mut reversed = rows.clone();
            reversed.reverse();
            let cut = split % rows.len();
            let (mut d, mut m) = (TableDigest::default(), MerkleDigest::default());
            for part in [&reversed[..cut], &reversed[cut..]] {
                if !part.is_empty() {
                    let mut dp = TableDigest::default();
                    dp.add_batch(&rows_batch(part));
                    d.merge(&dp);
                    m.add_batch(&rows_batch(part), &key);
                }
            }
            proptest::prop_assert_eq!((d.hex(), m.root()), expected.clone());
            let i = change % rows.len();
            let mut changed = rows.clone();
            changed[i].1 = match &changed[i].1 {
                Some(s) => Some(format!("{s}!")),
                None => Some(String::new()),
            };
            let c = whole(&changed);
            proptest::prop_assert_ne!(&c.0, &expected.0);
            proptest::prop_assert_ne!(&c.1, &expected.1);
            let mut duplicated = rows.clone();
            duplicated.push(rows[i].clone());
            proptest::prop_assert_ne!(whole(&duplicated).0, expected.0.clone());
            let mut dropped = rows.clone();
            dropped.remove(i);
            if !dropped.is_empty() {
                proptest::prop_assert_ne!(whole(&dropped).0, expected.0);
            }
        }
    }

    #[test]
    fn merkle_roots_ignore_order_and_batching_and_see_any_change() {
        use arrow::array::{Int64Array, StringArray};
        use std::sync::Arc;
        let batch = |ids: Vec<i64>, names: Vec<&str>| {
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
                ("name", Arc::new(StringArray::from(names)) as ArrayRef),
            ])
            .unwrap()
        };
        let key = ["id".to_string()];
        let mut a = MerkleDigest::default();
        a.add_batch(&batch(vec![1, 2, 3], vec!["a", "b", "c"]), &key);
        let mut b = MerkleDigest::default();
        b.add_batch(&batch(vec![3], vec!["c"]), &key);
        let mut b2 = MerkleDigest::default();
        b2.add_batch(&batch(vec![2, 1], vec!["b", "a"]), &key);
        b.merge(&b2);
        assert_eq!(a.root(), b.root());
        let mut c = MerkleDigest::default();
        c.add_batch(&batch(vec![1, 2, 3], vec!["a", "B", "c"]), &key);
        assert_ne!(a.root(), c.root());
        let mut d = MerkleDigest::default();
        d.add_batch(&batch(vec![1, 2, 3, 3], vec!["a", "b", "c", "c"]), &key);
        assert_ne!(a.root(), d.root(), "a duplicate changes the root");
    }
    use arrow::array::{Int32Array, Int64Array, StringArray, StringViewArray};
    use std::sync::Arc;

    fn batch(ids: Vec<i64>, names: Vec<Option<&str>>) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
        ])
        .unwrap()
    }

    fn digest(b: &RecordBatch) -> TableDigest {
        let mut d = TableDigest::default();
        d.add_batch(b);
        d
    }

    #[test]
    fn order_independent_but_duplicates_count() {
        let a = digest(&batch(vec![1, 2, 3], vec![Some("a"), None, Some("c")]));
        let b = digest(&batch(vec![3, 1, 2], vec![Some("c"), Some("a"), None]));
        assert_eq!(a, b);
        let dup = digest(&batch(
            vec![1, 1, 2, 2],
            vec![Some("a"), Some("a"), None, None],
        ));
        let none = digest(&batch(vec![], vec![]));
        assert_ne!(dup.hex(), none.hex(), "duplicates must not cancel out");
        let changed = digest(&batch(vec![1, 2, 3], vec![Some("a"), Some(""), Some("c")]));
        assert_ne!(a, changed, "NULL differs from the empty string");
    }

    #[test]
    fn engine_independent_encoding() {
        let narrow = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int32Array::from(vec![7])) as ArrayRef),
            (
                "name",
                Arc::new(StringViewArray::from(vec!["x"])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(digest(&narrow), digest(&batch(vec![7], vec![Some("x")])));
    }

    #[test]
    fn merge_and_hex_round_trip() {
        let a = digest(&batch(vec![1], vec![Some("a")]));
        let b = digest(&batch(vec![2], vec![Some("b")]));
        let mut m = a;
        m.merge(&b);
        assert_eq!(m, digest(&batch(vec![1, 2], vec![Some("a"), Some("b")])));
        assert_eq!(TableDigest::from_hex(m.rows, &m.hex()), Some(m));
    }
}
