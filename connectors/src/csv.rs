//! CSV files as a source: encoding detected (or given), types inferred from
//! every value, malformed records rejected or quarantined, partitions split
//! at record boundaries so that Scouts read them in parallel.
//!
//! Discovery reads each file once, streaming: it feeds the bytes to the
//! encoding [`Detector`](crate::encoding::Detector), parses records on the raw
//! bytes (delimiters, quotes and newlines are ASCII in every encoding this
//! reads), checks each record, narrows each column's type, and notes the byte
//! offset of every [`CHUNK_ROWS`]-th record so that partitions start on a
//! record. A file whose encoding confidence is below the configured minimum is
//! refused with sample offending bytes; under `bad_rows = "reject"` the first
//! malformed record stops discovery, so nothing is extracted from a file that
//! would be refused.
//!
//! Types, from every non-empty value of a column (an empty field is NULL):
//!
//! | all values are | Arrow type |
//! | --- | --- |
//! | integers without leading zeros, fitting 64 bits | Int64 |
//! | plain decimals (`12.50`), at most 38 digits | Decimal128(p, s), exact |
//! | numbers (`1e5`; `NaN`, `inf` beside real numbers) | Float64 |
//! | `true` / `false` (any case) | Boolean |
//! | `YYYY-MM-DD` | Date32 |
//! | ISO 8601 date-times without offset | Timestamp(µs) |
//! | ISO 8601 date-times with `Z` or an offset | Timestamp(µs, UTC) |
//! | anything else (`00123` stays text: leading zeros matter in codes) | Utf8 |
//!
//! Malformed records: a record with another number of fields than the header,
//! or a field holding a NUL byte (no SQL text type stores it portably).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::array::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use encoding_rs::Encoding;

use crate::batch::Batcher;
use crate::convert::{parse_date_days, parse_decimal, parse_timestamp_micros};
use crate::encoding::Detector;
use crate::error::{ConnectorError, Result};
use crate::files::{list, stamp, BadRows, FileInfo, SourceOptions, Split};
use crate::source::{KeyRange, Sink};
use crate::table::{ColumnInfo, TableInfo};

/// Records between two possible partition starts.
pub const CHUNK_ROWS: u64 = 1_024;

/// A folder of CSV files (or one file), each a table.
pub struct CsvSource {
    files: Vec<(String, PathBuf)>,
    options: SourceOptions,
    quarantine: Option<(PathBuf, Option<::csv::Writer<File>>)>,
    quarantined: u64,
    /// Sampling for profiles: malformed records are skipped, not set aside.
    sampling: bool,
    /// Values changed on the way in by the last read (empty fields read as NULL).
    changes: crate::source::Changes,
}

/// An empty CSV field read as NULL (CSV has no other way to say NULL).
pub const EMPTY_AS_NULL: &str = "empty field read as NULL";

/// Reads everything `inner` yields into the encoding detector as well.
struct Tee<'a, R> {
    inner: R,
    detector: &'a mut Detector,
}

/// UTF-16 text decoded to UTF-8 as it is read, so that the byte-level CSV
/// parser sees ASCII delimiters, quotes and newlines; offsets (partition
/// splits) are offsets in the decoded text. A byte order mark is removed;
/// an unpaired surrogate is an error naming its position, never replaced.
struct Utf16ToUtf8<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    eof: bool,
    consumed: u64,
}

impl<R: Read> Utf16ToUtf8<R> {
    fn new(inner: R, encoding: &'static Encoding) -> Self {
        Utf16ToUtf8 {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            raw: vec![0; 1 << 16],
            out: Vec::new(),
            pos: 0,
            eof: false,
            consumed: 0,
        }
    }
}

impl<R: Read> Read for Utf16ToUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.out.len() {
            if self.eof {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.raw)?;
            self.eof = n == 0;
            let room = self
                .decoder
                .max_utf8_buffer_length_without_replacement(n)
                .unwrap_or(n * 3 + 16);
            self.out.clear();
            self.out.resize(room, 0);
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.raw[..n],
                &mut self.out,
                self.eof,
            );
            if let encoding_rs::DecoderResult::Malformed(_, _) = result {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "not valid UTF-16 near byte {} (an unpaired surrogate or an odd byte count)",
                        self.consumed + read as u64
                    ),
                ));
            }
            self.consumed += read as u64;
            self.out.truncate(written);
            self.pos = 0;
        }
        let k = buf.len().min(self.out.len() - self.pos);
        buf[..k].copy_from_slice(&self.out[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

/// The UTF-16 flavour of a file, if it is one: named by `source.encoding`,
/// by a byte order mark, or by the zero bytes ASCII text has in every other
/// position when written as UTF-16 without a mark.
fn utf16_of(path: &Path, forced: Option<&'static Encoding>) -> Result<Option<&'static Encoding>> {
    if let Some(e) = forced {
        return Ok((e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE).then_some(e));
    }
    let mut head = vec![0u8; 4096];
    let n = open(path)?
        .read(&mut head)
        .map_err(|e| unreadable(path, e))?;
    let head = &head[..n - n % 2];
    if head.starts_with(&[0xFF, 0xFE]) {
        return Ok(Some(encoding_rs::UTF_16LE));
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return Ok(Some(encoding_rs::UTF_16BE));
    }
    if head.len() < 8 {
        return Ok(None);
    }
    let pairs = head.len() / 2;
    let zero_odd = head.chunks(2).filter(|p| p[1] == 0 && p[0] != 0).count();
    let zero_even = head.chunks(2).filter(|p| p[0] == 0 && p[1] != 0).count();
    // Half the characters ASCII or Latin-1 is plenty; the other position
    // almost never zero.
    Ok(if zero_odd * 2 >= pairs && zero_even * 20 <= pairs {
        Some(encoding_rs::UTF_16LE)
    } else if zero_even * 2 >= pairs && zero_odd * 20 <= pairs {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    })
}

/// The file as text the parser reads: its bytes, or UTF-16 decoded to UTF-8.
fn open_text(path: &Path, utf16: Option<&'static Encoding>) -> Result<Box<dyn Read>> {
    let file = open(path)?;
    Ok(match utf16 {
        Some(e) => Box::new(Utf16ToUtf8::new(file, e)),
        None => Box::new(file),
    })
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.detector.feed(&buf[..n]);
        Ok(n)
    }
}

const INT: u8 = 1;
const DEC: u8 = 2;
const FLOAT: u8 = 4;
const BOOL: u8 = 8;
const DATE: u8 = 16;
const TS: u8 = 32;
const TSZ: u8 = 64;

/// What one column's values allow so far.
#[derive(Clone)]
struct Infer {
    mask: u8,
    seen: bool,
    real_number: bool,
    int_digits: u8,
    scale: u8,
}

impl Infer {
    fn new() -> Self {
        Infer {
            mask: 0xFF,
            seen: false,
            real_number: false,
            int_digits: 1,
            scale: 0,
        }
    }

    fn add(&mut self, v: &[u8]) {
        if v.is_empty() {
            return;
        }
        self.seen = true;
        let mut m = 0u8;
        if let Some((int_digits, scale)) = plain_decimal(v) {
            m |= DEC | FLOAT;
            self.real_number = true;
            if scale == 0
                && std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some()
            {
                m |= INT;
            }
            self.int_digits = self.int_digits.max(int_digits);
            self.scale = self.scale.max(scale);
        } else if let Ok(s) = std::str::from_utf8(v) {
            let lower = s.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "nan" | "inf" | "-inf" | "+inf" | "infinity" | "-infinity"
            ) {
                m |= FLOAT;
            } else if !leading_zero(v)
                && v.iter().all(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                && s.parse::<f64>().is_ok_and(f64::is_finite)
                && v.iter().any(u8::is_ascii_digit)
            {
                m |= FLOAT;
                self.real_number = true;
            }
            if lower == "true" || lower == "false" {
                m |= BOOL;
            }
            if v.len() == 10 && parse_date_days(s).is_some() {
                m |= DATE;
            }
            if v.len() > 10
                && (v[10] == b'T' || v[10] == b' ')
                && parse_timestamp_micros(s).is_some()
            {
                let rest = &s[11..];
                if rest.ends_with('Z') || rest.contains('+') || rest.contains('-') {
                    m |= TSZ;
                } else {
                    m |= TS;
                }
            }
        }
        self.mask &= m;
    }

    fn arrow_type(&self) -> DataType {
        let m = self.mask;
        if !self.seen {
            return DataType::Utf8;
        }
        if m & INT != 0 {
            DataType::Int64
        } else if m & DEC != 0 && self.int_digits as u32 + self.scale as u32 <= 38 {
            DataType::Decimal128(self.int_digits + self.scale, self.scale as i8)
        } else if m & FLOAT != 0 && self.real_number {
            DataType::Float64
        } else if m & BOOL != 0 {
            DataType::Boolean
        } else if m & DATE != 0 {
            DataType::Date32
        } else if m & TS != 0 {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        } else if m & TSZ != 0 {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        } else {
            DataType::Utf8
        }
    }
}

/// Whether a number-looking value starts with a superfluous zero (`007`,
/// `-01.5`): codes, not quantities.
fn leading_zero(v: &[u8]) -> bool {
    let body = v
        .strip_prefix(b"-")
        .or_else(|| v.strip_prefix(b"+"))
        .unwrap_or(v);
    body.len() > 1 && body[0] == b'0' && body[1].is_ascii_digit()
}

/// `[-+]digits[.digits]` without superfluous leading zeros: (integer digits, scale).
fn plain_decimal(v: &[u8]) -> Option<(u8, u8)> {
    let body = match v.first()? {
        b'-' | b'+' => &v[1..],
        _ => v,
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || (int.len() > 1 && int[0] == b'0') {
        return None;
    }
    let scale = match frac {
        Some(f) if f.is_empty() || !f.iter().all(u8::is_ascii_digit) => return None,
        Some(f) => f.len(),
        None => 0,
    };
    if int.len() > 38 || scale > 38 {
        return None;
    }
    Some((int.len() as u8, scale as u8))
}

fn sniff_delimiter(path: &Path, utf16: Option<&'static Encoding>) -> Result<u8> {
    let mut head = Vec::with_capacity(64 * 1024);
    open_text(path, utf16)?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| unreadable(path, e))?;
    let n = head.len();
    let first = head[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let mut quoted = false;
        let count = first
            .iter()
            .filter(|&&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                !quoted && b == d
            })
            .count();
        if count > best.1 {
            best = (d, count);
        }
    }
    Ok(best.0)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn malformed(record: &::csv::ByteRecord, fields: usize) -> Option<String> {
    // A quote never closed swallows the following lines into one field.
    if record.len() < fields {
        if let Some((i, f)) = record
            .iter()
            .enumerate()
            .find(|(_, f)| f.iter().filter(|&&b| b == b'\n').count() >= 2)
        {
            let lines = f.iter().filter(|&&b| b == b'\n').count() + 1;
            return Some(format!(
                "the quote opening field {} is never closed: the field runs over {lines} lines; close the quote, or double a quote inside a quoted field (\"\")",
                i + 1
            ));
        }
    }
    if record.len() != fields {
        return Some(format!(
            "{} fields where the header has {fields}",
            record.len()
        ));
    }
    record
        .iter()
        .position(|f| f.contains(&0))
        .map(|i| format!("field {} holds a NUL byte", i + 1))
}

fn reader<R: Read>(inner: R, delimiter: u8) -> ::csv::Reader<R> {
    ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(inner)
}

impl CsvSource {
    /// Lists the CSV files of `location` (a `.csv`/`.tsv` file or a folder of them).
    pub fn open(location: &Path, options: SourceOptions) -> Result<Self> {
        let files = list(location, &["csv", "tsv", "txt"])?;
        Ok(CsvSource {
            files,
            options,
            quarantine: None,
            quarantined: 0,
            sampling: false,
            changes: Default::default(),
        })
    }

    /// Sets where malformed records read from now on are set aside (created on the first one).
    pub fn quarantine_to(&mut self, path: PathBuf) {
        self.quarantine = Some((path, None));
        self.quarantined = 0;
    }

    /// Records set aside since [`CsvSource::quarantine_to`].
    pub fn quarantined(&self) -> u64 {
        self.quarantined
    }

    /// Discovers every file: encoding, columns, types, rows, partition points.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        self.files
            .iter()
            .map(|(name, path)| self.scan(name, path))
            .collect()
    }

    fn scan(&self, name: &str, path: &Path) -> Result<TableInfo> {
        let shown = path.display().to_string();
        let (bytes, modified_ns) = stamp(path)?;
        let forced = match self.options.encoding.as_str() {
            "auto" => None,
            label => Some(Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                ConnectorError::Unreadable {
                    path: shown.clone(),
                    message: format!("source.encoding = {label:?} is not an encoding label (utf-8, latin1, windows-1252, ...)"),
                }
            })?),
        };
        let utf16 = utf16_of(path, forced)?;
        let delimiter = match self.options.delimiter.as_str() {
            "auto" => sniff_delimiter(path, utf16)?,
            "\\t" | "tab" => b'\t',
            d if d.len() == 1 => d.as_bytes()[0],
            d => {
                return Err(ConnectorError::Unreadable {
                    path: shown,
                    message: format!(
                        "source.csv_delimiter = {d:?} must be one character, \"tab\" or \"auto\""
                    ),
                })
            }
        };
        let mut detector = Detector::new();
        let pass = self.first_pass(path, utf16, delimiter, &mut detector)?;
        let detection = detector.finish();
        // `text` is what the fields are decoded from: UTF-16 was decoded to
        // UTF-8 on the way into the parser.
        let (encoding, confidence, text) = match (utf16, forced) {
            (Some(e), _) => (e, 1.0, encoding_rs::UTF_8),
            (None, Some(e)) => (e, 1.0, e),
            (None, None) => {
                if detection.confidence < self.options.min_confidence {
                    return Err(ConnectorError::Encoding {
                        what: shown,
                        encoding: detection.encoding.name().to_string(),
                        confidence: detection.confidence,
                        minimum: self.options.min_confidence,
                        samples: detection.describe_samples(),
                    });
                }
                (detection.encoding, detection.confidence, detection.encoding)
            }
        };
        let Some(header) = &pass.header else {
            return Err(ConnectorError::Unreadable {
                path: shown,
                message: "the file is empty: no header line, no records; add the header (and the rows), or move the file out of the source".into(),
            });
        };
        let columns = header_columns(&shown, header, &pass.infer, text)?;
        Ok(TableInfo {
            name: name.to_string(),
            columns,
            rows: pass.rows,
            rowid_range: None,
            qualified: None,
            range_column: None,
            splits: Some(pass.splits),
            file: Some(FileInfo {
                format: "csv".into(),
                path: path.to_path_buf(),
                bytes,
                modified_ns,
                encoding: encoding.name().to_string(),
                encoding_confidence: confidence,
                delimiter,
                header: self.options.header,
                bad_records: pass.bad,
                bad_rows: self.options.bad_rows,
            }),
        })
    }

    /// Reads the whole file once: the header, each column's inferred type,
    /// the partition points, the record counts; every byte also goes
    /// through `detector`.
    fn first_pass(
        &self,
        path: &Path,
        utf16: Option<&'static Encoding>,
        delimiter: u8,
        detector: &mut Detector,
    ) -> Result<FirstPass> {
        let mut pass = FirstPass::default();
        let tee = Tee {
            inner: BufReader::with_capacity(1 << 20, open_text(path, utf16)?),
            detector,
        };
        let mut rdr = reader(tee, delimiter);
        let mut record = ::csv::ByteRecord::new();
        while rdr
            .read_byte_record(&mut record)
            .map_err(|e| unreadable(path, e))?
        {
            let pos = record
                .position()
                .cloned()
                .unwrap_or_else(::csv::Position::new);
            if pass.header.is_none() {
                let fields = record.len();
                pass.infer = vec![Infer::new(); fields];
                if self.options.header {
                    pass.header = Some(record.clone());
                    continue;
                }
                pass.header = Some(::csv::ByteRecord::from(
                    (1..=fields)
                        .map(|i| format!("column_{i}"))
                        .collect::<Vec<_>>(),
                ));
            }
            if let Some(reason) = malformed(&record, pass.infer.len()) {
                if self.options.bad_rows == BadRows::Reject {
                    return Err(ConnectorError::Unreadable {
                        path: path.display().to_string(),
                        message: format!(
                            "line {}: malformed record ({reason}); fix the file, or set source.bad_rows = \"quarantine\" to set such records aside",
                            pos.line()
                        ),
                    });
                }
                pass.bad += 1;
                continue;
            }
            if pass.rows.is_multiple_of(CHUNK_ROWS) {
                pass.splits.push(Split {
                    key: pos.byte() as i64,
                    rows_before: pass.rows,
                    line: pos.line(),
                });
            }
            for (col, value) in pass.infer.iter_mut().zip(record.iter()) {
                col.add(value);
            }
            pass.rows += 1;
        }
        let end = rdr.position();
        pass.splits.push(Split {
            key: end.byte() as i64,
            rows_before: pass.rows,
            line: end.line(),
        });
        Ok(pass)
    }

    /// The values changed on the way in by the last read, taken.
    pub fn take_changes(&mut self) -> crate::source::Changes {
        std::mem::take(&mut self.changes)
    }

    /// Streams the records whose first byte lies in `range` (inclusive byte
    /// offsets from the table's splits), or the whole file.
    pub fn read(
        &mut self,
        table: &TableInfo,
        range: Option<(i64, i64)>,
        limit: Option<u64>,
        batch_rows: usize,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let info = crate::files::unchanged_file(table, "csv")?;
        self.changes.clear();
        let splits = table.splits.as_deref().unwrap_or(&[]);
        let (start, end) = match range {
            Some(r) => r,
            None => (splits.first().map(|s| s.key).unwrap_or(0), i64::MAX),
        };
        let line_base = splits
            .iter()
            .find(|s| s.key == start)
            .map(|s| s.line)
            .unwrap_or(1);
        let declared = Encoding::for_label(info.encoding.as_bytes()).unwrap_or(encoding_rs::UTF_8);
        let utf16 = (declared == encoding_rs::UTF_16LE || declared == encoding_rs::UTF_16BE)
            .then_some(declared);
        let (encoding, input): (&'static Encoding, Box<dyn Read>) = match utf16 {
            // Offsets are in the decoded text: decode up to the start.
            Some(e) => {
                let mut text = open_text(&info.path, Some(e))?;
                std::io::copy(&mut (&mut text).take(start as u64), &mut std::io::sink())
                    .map_err(|e| unreadable(&info.path, e))?;
                (encoding_rs::UTF_8, text)
            }
            None => {
                let mut file = open(&info.path)?;
                file.seek(SeekFrom::Start(start as u64))
                    .map_err(|e| unreadable(&info.path, e))?;
                (declared, Box::new(file))
            }
        };
        let mut rdr = reader(BufReader::with_capacity(1 << 20, input), info.delimiter);
        let schema = table.schema();
        let mut batcher = Batcher::new(schema.clone(), batch_rows, sink);
        let types = batcher.types();
        let mut record = ::csv::ByteRecord::new();
        let fields = table.columns.len();
        // Empty fields read as NULL, per column position.
        let mut empty = vec![0u64; fields];
        while rdr
            .read_byte_record(&mut record)
            .map_err(|e| unreadable(&info.path, e))?
        {
            let pos = record
                .position()
                .cloned()
                .unwrap_or_else(::csv::Position::new);
            if start as u64 + pos.byte() > end as u64 {
                break;
            }
            if limit.is_some_and(|l| batcher.total >= l) {
                break;
            }
            let line = line_base + pos.line() - 1;
            if let Some(reason) = malformed(&record, fields) {
                self.set_aside(info, &record, line, &reason)?;
                continue;
            }
            for (i, value) in record.iter().enumerate() {
                if value.is_empty() {
                    empty[i] += 1;
                }
                append(&mut batcher, i, &types[i], value, encoding).map_err(|expected| {
                    let (text, _) = encoding.decode_without_bom_handling(value);
                    ConnectorError::Value {
                        table: table.name.clone(),
                        column: table.columns[i].name.clone(),
                        row: format!("line {line}"),
                        value: text.chars().take(60).collect(),
                        expected,
                    }
                })?;
            }
            batcher.row_done()?;
        }
        crate::source::add_changes(&mut self.changes, table, &empty, EMPTY_AS_NULL);
        batcher.close()
    }

    fn set_aside(
        &mut self,
        info: &FileInfo,
        record: &::csv::ByteRecord,
        line: u64,
        reason: &str,
    ) -> Result<()> {
        if info.bad_rows == BadRows::Reject {
            return Err(ConnectorError::Unreadable {
                path: info.path.display().to_string(),
                message: format!("line {line}: malformed record ({reason})"),
            });
        }
        if self.sampling {
            return Ok(());
        }
        let Some((path, writer)) = self.quarantine.as_mut() else {
            return Err(ConnectorError::Unreadable {
                path: info.path.display().to_string(),
                message: format!("line {line}: malformed record ({reason}) and no quarantine file to set it aside in"),
            });
        };
        if writer.is_none() {
            let file = File::create(&*path).map_err(|e| unreadable(path, e))?;
            let mut w = ::csv::WriterBuilder::new()
                .flexible(true)
                .delimiter(info.delimiter)
                .from_writer(file);
            w.write_record(["_line", "_reason", "_record"])
                .map_err(|e| unreadable(path, e))?;
            *writer = Some(w);
        }
        let w = writer.as_mut().expect("writer created above");
        let mut out = ::csv::ByteRecord::new();
        out.push_field(line.to_string().as_bytes());
        out.push_field(reason.as_bytes());
        for f in record.iter() {
            out.push_field(f);
        }
        w.write_byte_record(&out)
            .and_then(|_| w.flush().map_err(Into::into))
            .map_err(|e| unreadable(path, e))?;
        self.quarantined += 1;
        Ok(())
    }

    /// The first `n` rows (CSV files have no cheaper deterministic sample).
    pub fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.sampling = true;
        let r = self.read(table, None, Some(n), 8192, |b| {
            out.push(b);
            Ok(())
        });
        self.sampling = false;
        r.map(|_| out)
    }
}

/// What one pass over a CSV file found.
#[derive(Default)]
struct FirstPass {
    /// The header's fields as read (or `column_N` without a header line);
    /// None for an empty file.
    header: Option<::csv::ByteRecord>,
    /// Each column's type inference.
    infer: Vec<Infer>,
    /// Partition points every [`CHUNK_ROWS`] records, and the end.
    splits: Vec<Split>,
    rows: u64,
    /// Malformed records set aside.
    bad: u64,
}

/// The columns the header names, decoded from `text`, with their inferred
/// types; an empty or repeated name is refused, naming the field.
fn header_columns(
    shown: &str,
    header: &::csv::ByteRecord,
    infer: &[Infer],
    text: &'static Encoding,
) -> Result<Vec<ColumnInfo>> {
    let refuse = |message: String| ConnectorError::Unreadable {
        path: shown.to_string(),
        message,
    };
    let mut columns: Vec<ColumnInfo> = Vec::new();
    for (i, (raw, inf)) in header.iter().zip(infer).enumerate() {
        let mut raw = raw;
        if i == 0 {
            raw = raw.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(raw);
        }
        let (decoded, _) = text.decode_without_bom_handling(raw);
        let name = decoded.trim().to_string();
        if name.is_empty() {
            return Err(refuse(format!(
                "header field {} is empty; name the column",
                i + 1
            )));
        }
        if let Some(j) = columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(&name))
        {
            return Err(refuse(format!(
                "header names column {name:?} twice (fields {} and {}); rename one",
                j + 1,
                i + 1
            )));
        }
        let arrow = inf.arrow_type();
        columns.push(ColumnInfo {
            name,
            source_type: format!("csv {}", csv_type_name(&arrow)),
            arrow_type: arrow.to_string(),
            nullable: true,
            primary_key: 0,
        });
    }
    Ok(columns)
}

fn csv_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "integer",
        DataType::Decimal128(..) => "decimal",
        DataType::Float64 => "float",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        _ => "text",
    }
}

fn append<F: FnMut(RecordBatch) -> Result<()>>(
    batcher: &mut Batcher<F>,
    i: usize,
    ty: &DataType,
    value: &[u8],
    encoding: &'static Encoding,
) -> std::result::Result<(), String> {
    let b = batcher.builders[i].as_any_mut();
    let null = value.is_empty();
    let ascii = || std::str::from_utf8(value).map_err(|_| ty.to_string());
    macro_rules! put {
        ($builder:ty, $parse:expr) => {{
            let b = b.downcast_mut::<$builder>().ok_or_else(|| ty.to_string())?;
            if null {
                b.append_null();
            } else {
                let s = ascii()?;
                b.append_value($parse(s).ok_or_else(|| ty.to_string())?);
            }
        }};
    }
    match ty {
        DataType::Int64 => put!(Int64Builder, |s: &str| s.parse::<i64>().ok()),
        DataType::Float64 => put!(Float64Builder, |s: &str| parse_float(s)),
        DataType::Boolean => put!(
            BooleanBuilder,
            |s: &str| match s.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        ),
        DataType::Date32 => put!(Date32Builder, parse_date_days),
        DataType::Timestamp(..) => put!(TimestampMicrosecondBuilder, parse_timestamp_micros),
        DataType::Decimal128(_, s) => put!(Decimal128Builder, |v: &str| parse_decimal(
            v.trim_start_matches('+'),
            *s
        )),
        _ => {
            let b = b
                .downcast_mut::<StringBuilder>()
                .ok_or_else(|| ty.to_string())?;
            if null {
                b.append_null();
            } else {
                let (text, _) = encoding.decode_without_bom_handling(value);
                b.append_value(text);
            }
        }
    }
    Ok(())
}

fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

impl crate::source::SourceEngine for CsvSource {
    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        CsvSource::tables(self)
    }
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64> {
        CsvSource::read(self, t, range, None, rows, sink)
    }
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        CsvSource::sample(self, table, n)
    }
    fn take_changes(&mut self) -> crate::source::Changes {
        CsvSource::take_changes(self)
    }
    fn quarantine_to(&mut self, path: PathBuf) {
        CsvSource::quarantine_to(self, path)
    }
    fn quarantined(&self) -> u64 {
        CsvSource::quarantined(self)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};

    /// What discovery of a file refused, as the user reads it.
    fn discovery_error(p: &Path) -> String {
        CsvSource::open(p, SourceOptions::default())
            .unwrap()
            .tables()
            .unwrap_err()
            .to_string()
    }

    /// The second field of the first row of a file read with `encoding` set.
    fn second_field_told(p: &Path, encoding: &str) -> String {
        let told = SourceOptions {
            encoding: encoding.into(),
            ..SourceOptions::default()
        };
        let mut src = CsvSource::open(p, told).unwrap();
        let t = src.tables().unwrap().remove(0);
        let b = &read_all(&mut src, &t)[0];
        b.column(1).as_string::<i32>().value(0).to_string()
    }

    fn read_all(src: &mut CsvSource, t: &TableInfo) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        src.read(t, None, None, 1000, |b| {
            out.push(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn types_are_inferred_from_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("items.csv");
        std::fs::write(
            &p,
            "id;code;price;ratio;ok;day;at;at_utc;note\n\
             1;00123;12.50;1e3;true;2024-02-29;2024-01-01 10:00:00;2024-01-01T10:00:00Z;\"two\nlines\"\n\
             2;00007;3;NaN;FALSE;1999-12-31;2024-01-01T10:00:00.5;2024-01-01 11:00:00+01:00;\n\
             -3;42;-0.125;-2.5;true;2000-01-01;2024-06-30 23:59:59;2024-06-30T23:59:59Z;x\n",
        )
        .unwrap();
        let mut src = CsvSource::open(&p, SourceOptions::default()).unwrap();
        let tables = src.tables().unwrap();
        let t = &tables[0];
        assert_eq!(t.name, "items");
        assert_eq!(t.rows, 3);
        let types: Vec<&str> = t.columns.iter().map(|c| c.arrow_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "Int64",
                "Utf8",
                "Decimal128(5, 3)",
                "Float64",
                "Boolean",
                "Date32",
                "Timestamp(µs)",
                "Timestamp(µs, \"UTC\")",
                "Utf8"
            ]
        );
        let b = &read_all(&mut src, t)[0];
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(2), -3);
        assert_eq!(b.column(1).as_string::<i32>().value(0), "00123");
        assert_eq!(
            b.column(2).as_primitive::<Decimal128Type>().value(0),
            12_500
        );
        assert!(b.column(3).as_primitive::<Float64Type>().value(1).is_nan());
        assert_eq!(b.column(8).as_string::<i32>().value(0), "two\nlines");
        assert!(b.column(8).is_null(1));
        // The two zoned values are the same instant.
        let z = b
            .column(7)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(z.value(0), z.value(1));
    }

    #[test]
    fn partitions_start_on_records_and_cover_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.csv");
        let mut text = String::from("id,comment\n");
        for i in 0..5000 {
            text.push_str(&format!("{i},\"line one\nline, two of {i}\"\n"));
        }
        std::fs::write(&p, text).unwrap();
        let mut src = CsvSource::open(&p, SourceOptions::default()).unwrap();
        let t = src.tables().unwrap().remove(0);
        let splits = t.splits.clone().unwrap();
        assert_eq!(splits.len(), 6, "5 chunks of 1024 and the end");
        let mut ids = Vec::new();
        for w in splits.windows(2) {
            src.read(&t, Some((w[0].key, w[1].key - 1)), None, 700, |b| {
                ids.extend(
                    b.column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(ids, (0..5000).collect::<Vec<i64>>());
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big_endian {
                [0xFE, 0xFF]
            } else {
                [0xFF, 0xFE]
            });
        }
        for u in text.encode_utf16() {
            out.extend(if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_files_read_with_or_without_a_byte_order_mark_in_every_partition() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("id;name\n");
        for i in 0..2500 {
            text.push_str(&format!("{i};Zoë 日本 {i}\n"));
        }
        for (name, be, bom) in [("le.csv", false, true), ("be.csv", true, false)] {
            let p = dir.path().join(name);
            std::fs::write(&p, utf16(&text, be, bom)).unwrap();
            let mut src = CsvSource::open(&p, SourceOptions::default()).unwrap();
            let t = src.tables().unwrap().remove(0);
            assert_eq!(
                t.columns[0].name, "id",
                "{name}: the mark is not in the name"
            );
            assert_eq!(t.columns[1].name, "name");
            let f = t.file.as_ref().unwrap();
            assert_eq!(f.encoding, if be { "UTF-16BE" } else { "UTF-16LE" });
            assert_eq!(
                f.delimiter, b';',
                "{name}: delimiter found in the decoded text"
            );
            let splits = t.splits.clone().unwrap();
            assert!(splits.len() >= 3, "{name}: several partitions");
            let mut rows = Vec::new();
            for w in splits.windows(2) {
                src.read(&t, Some((w[0].key, w[1].key - 1)), None, 700, |b| {
                    let ids = b.column(0).as_primitive::<Int64Type>();
                    let names = b.column(1).as_string::<i32>();
                    for r in 0..b.num_rows() {
                        rows.push((ids.value(r), names.value(r).to_string()));
                    }
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(rows.len(), 2500, "{name}");
            for (i, (id, n)) in rows.iter().enumerate() {
                assert_eq!(
                    (*id, n.as_str()),
                    (i as i64, format!("Zoë 日本 {i}").as_str())
                );
            }
        }
        // Named by the setting, a file without a mark reads too.
        let p = dir.path().join("told.csv");
        std::fs::write(&p, utf16("a,b\n1,x\n", false, false)).unwrap();
        assert_eq!(second_field_told(&p, "utf-16le"), "x");
        // An unpaired surrogate is named, not replaced.
        let p = dir.path().join("broken.csv");
        let mut bytes = utf16("a,b\n1,", false, true);
        bytes.extend([0x00, 0xD8, b'x', 0x00, b'\n', 0x00]);
        std::fs::write(&p, bytes).unwrap();
        let err = discovery_error(&p);
        assert!(
            err.contains("not valid UTF-16") && err.contains("broken.csv"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_named_not_turned_into_a_table_without_columns() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("empty.csv", &b""[..]), ("blank.csv", &b"\n\n"[..])] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let err = discovery_error(&p);
            assert!(
                err.contains(name) && err.contains("the file is empty"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_unterminated_quote_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.csv");
        std::fs::write(
            &p,
            "id,note,n\n1,fine,1\n2,\"never closed,2\n3,x,3\n4,y,4\n",
        )
        .unwrap();
        let err = discovery_error(&p);
        assert!(
            err.contains("line 3")
                && err.contains("quote opening field 2 is never closed")
                && err.contains("notes.csv"),
            "{err}"
        );
    }

    #[test]
    fn malformed_records_are_rejected_or_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("people.csv");
        std::fs::write(&p, b"id,name\n1,Ann\n2,Bob,extra\n3,C\x00d\n4,Dee\n").unwrap();
        let err = discovery_error(&p);
        assert!(
            err.contains("people.csv") && err.contains("line 3") && err.contains("3 fields"),
            "{err}"
        );

        let options = SourceOptions {
            bad_rows: BadRows::Quarantine,
            ..SourceOptions::default()
        };
        let mut src = CsvSource::open(&p, options).unwrap();
        let t = src.tables().unwrap().remove(0);
        assert_eq!(t.rows, 2);
        assert_eq!(t.file.as_ref().unwrap().bad_records, 2);
        let q = dir.path().join("rejects.csv");
        src.quarantine_to(q.clone());
        let rows: usize = read_all(&mut src, &t).iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        assert_eq!(src.quarantined(), 2);
        let kept = std::fs::read(&q).unwrap();
        let text = String::from_utf8_lossy(&kept);
        assert!(
            text.contains("\n3,3 fields where the header has 2,2,Bob,extra\n"),
            "{text}"
        );
        assert!(
            kept.windows(3).any(|w| w == b"C\x00d"),
            "NUL record kept as it was: {text}"
        );
    }

    #[test]
    fn latin1_files_decode_and_ambiguous_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clients.csv");
        let mut text = String::from("id,name\n");
        for (i, n) in [
            "Zoë Müller",
            "José Muñoz",
            "Françoise Lefèvre",
            "Jürgen Weiß",
            "Åsa Öberg",
        ]
        .iter()
        .cycle()
        .take(25)
        .enumerate()
        {
            text.push_str(&format!("{i},{n}\n"));
        }
        std::fs::write(&p, encoding_rs::WINDOWS_1252.encode(&text).0).unwrap();
        let mut src = CsvSource::open(&p, SourceOptions::default()).unwrap();
        let t = src.tables().unwrap().remove(0);
        assert_eq!(t.file.as_ref().unwrap().encoding, "windows-1252");
        let b = &read_all(&mut src, &t)[0];
        assert_eq!(b.column(1).as_string::<i32>().value(0), "Zoë Müller");

        let q = dir.path().join("one.csv");
        std::fs::write(&q, b"id,name\n1,Ren\xe9e\n").unwrap();
        let err = discovery_error(&q);
        assert!(
            err.contains("one.csv") && err.contains("confidence") && err.contains("e9"),
            "{err}"
        );
        // Told the encoding, the same file reads.
        assert_eq!(second_field_told(&q, "latin1"), "Renée");
    }

    #[test]
    fn a_file_changed_after_discovery_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "a\n1\n").unwrap();
        let mut src = CsvSource::open(&p, SourceOptions::default()).unwrap();
        let t = src.tables().unwrap().remove(0);
        std::fs::write(&p, "a\n1\n2\n").unwrap();
        let err = src
            .read(&t, None, None, 10, |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed after discovery"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever bytes a CSV file holds (broken quotes, NUL bytes, mixed
        /// encodings, ragged rows), discovery and reading answer rows or an
        /// error naming the file, never a panic.
        #[test]
        fn any_csv_bytes_are_read_or_refused_by_name(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b"a,b,c\n".to_vec()),
                    proptest::strategy::Just(b"1,2.5,x\n".to_vec()),
                    proptest::strategy::Just(b"\"".to_vec()),
                    proptest::strategy::Just(b";".to_vec()),
                    proptest::strategy::Just(b"\t".to_vec()),
                    proptest::strategy::Just(b"\r\n".to_vec()),
                    proptest::strategy::Just(vec![0u8]),
                    proptest::strategy::Just(vec![0xe9, 0xff]),
                    proptest::strategy::Just("é😀".as_bytes().to_vec()),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..8),
                ],
                0..40,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("any.csv");
            std::fs::write(&p, parts.concat()).unwrap();
            let shown = p.display().to_string();
            let named = |e: ConnectorError| {
                let m = e.to_string();
                m.contains(&shown) || m.contains("any")
            };
            match CsvSource::open(&p, SourceOptions::default()) {
                Err(e) => proptest::prop_assert!(named(e)),
                Ok(mut src) => match src.tables() {
                    Err(e) => proptest::prop_assert!(named(e)),
                    Ok(tables) => {
                        for t in &tables {
                            if let Err(e) = src.read(t, None, None, 64, |_| Ok(())) {
                                proptest::prop_assert!(named(e));
                            }
                        }
                    }
                },
            }
        }
    }
}
