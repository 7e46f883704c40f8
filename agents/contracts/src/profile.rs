//! What the Scout learns of a table from a sample: column profiles and PII
//! flags. The types live here, with the other artifacts, because the
//! manifest carries them; the code that computes them is `sensei-scout`.

use serde::{Deserialize, Serialize};

/// One bucket of a numeric histogram: `[lo, hi)`, the last one closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Values in the bucket.
    pub count: u64,
}

/// One period of a date histogram: a day (`2024-03-05`), a month
/// (`2024-03`) or a year (`2024`), whichever fits the sample's span (within
/// one month: days; up to five years: months; beyond: years). Empty periods
/// are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateBucket {
    /// The period.
    pub period: String,
    /// Values in it.
    pub count: u64,
}

/// Lengths of text values, in characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lengths {
    /// Shortest.
    pub min: u64,
    /// Longest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// The profile of one column over a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub column: String,
    /// Rows sampled.
    pub sampled: u64,
    /// NULLs among them.
    pub nulls: u64,
    /// nulls / sampled.
    pub null_ratio: f64,
    /// Distinct non-null values in the sample.
    pub distinct: u64,
    /// distinct / non-null values.
    pub distinct_ratio: f64,
    /// Smallest value (numbers compared as numbers, the rest as text).
    pub min: Option<String>,
    /// Largest value.
    pub max: Option<String>,
    /// Lengths of text values.
    pub lengths: Option<Lengths>,
    /// Ten equal-width buckets, for numeric columns.
    pub histogram: Option<Vec<Bucket>>,
    /// The ten most frequent values with their counts, for non-numeric columns.
    pub top_values: Vec<(String, u64)>,
    /// The five most frequent value shapes: letters as `A`/`a`, digits as `9`.
    pub patterns: Vec<(String, u64)>,
    /// The date format most text values follow (at least 90% of them), if any.
    pub date_format: Option<String>,
    /// Calendar histogram of date and timestamp columns (and of text columns
    /// whose values are at least 90% dates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_histogram: Option<Vec<DateBucket>>,
}

/// The kinds of PII recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// E-mail address.
    Email,
    /// Telephone number.
    Phone,
    /// A person's name (first, last or full).
    PersonName,
    /// Street address line.
    StreetAddress,
    /// Postal or ZIP code.
    PostalCode,
    /// Date of birth.
    DateOfBirth,
    /// US Social Security number.
    Ssn,
    /// Payment card number.
    CreditCard,
    /// International bank account number.
    Iban,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// A person's age in years (or an age band).
    Age,
    /// Gender or sex.
    Gender,
    /// Driving licence number.
    DrivingLicence,
    /// Vehicle identification number (ISO 3779).
    Vin,
    /// Passport number.
    Passport,
    /// SWIFT/BIC bank identifier code (ISO 9362).
    SwiftBic,
    /// MAC (hardware) address.
    MacAddress,
    /// Geographic coordinates (latitude, longitude or both).
    Coordinates,
    /// Race or ethnic group.
    Ethnicity,
    /// A national identity or taxpayer number other than a US SSN (Spanish
    /// DNI/NIE, Brazilian CPF, UK National Insurance number, ...).
    NationalId,
}

impl PiiKind {
    /// All kinds.
    pub const ALL: [PiiKind; 20] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::PersonName,
        PiiKind::StreetAddress,
        PiiKind::PostalCode,
        PiiKind::DateOfBirth,
        PiiKind::Ssn,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::IpAddress,
        PiiKind::Age,
        PiiKind::Gender,
        PiiKind::DrivingLicence,
        PiiKind::Vin,
        PiiKind::Passport,
        PiiKind::SwiftBic,
        PiiKind::MacAddress,
        PiiKind::Coordinates,
        PiiKind::Ethnicity,
        PiiKind::NationalId,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::PersonName => "person_name",
            PiiKind::StreetAddress => "street_address",
            PiiKind::PostalCode => "postal_code",
            PiiKind::DateOfBirth => "date_of_birth",
            PiiKind::Ssn => "ssn",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Iban => "iban",
            PiiKind::IpAddress => "ip_address",
            PiiKind::Age => "age",
            PiiKind::Gender => "gender",
            PiiKind::DrivingLicence => "driving_licence",
            PiiKind::Vin => "vin",
            PiiKind::Passport => "passport",
            PiiKind::SwiftBic => "swift_bic",
            PiiKind::MacAddress => "mac_address",
            PiiKind::Coordinates => "coordinates",
            PiiKind::Ethnicity => "ethnicity",
            PiiKind::NationalId => "national_id",
        }
    }

    /// Parses a snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One flag on a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiFlag {
    /// Kind of PII.
    pub kind: PiiKind,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Why.
    pub reasons: Vec<String>,
}

/// Profile and PII flags of a table, computed on a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProfile {
    /// Rows in the sample.
    pub sampled_rows: u64,
    /// One profile per column.
    pub columns: Vec<ColumnProfile>,
    /// PII flags per column (columns without flags are left out).
    pub pii: std::collections::BTreeMap<String, Vec<PiiFlag>>,
}
