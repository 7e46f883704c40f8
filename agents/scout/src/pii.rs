//! PII detection per column, from three kinds of evidence:
//!
//! - **values**: each value-based kind has a validator, not a bare pattern
//!   (Luhn for card numbers, ISO 13616 mod 97 for IBANs, SSA rules for US SSNs,
//!   octet ranges for IPv4 and the standard parser for IPv6, plausible birth
//!   years for dates of birth);
//! - **the column name**, split into tokens (`cust_dob` → `cust`, `dob`) and
//!   matched against words for each kind, and against words that rule a kind
//!   out (`order_no` is not a card even when its digits pass Luhn);
//! - **context**: the table's name and the neighbouring columns (a person-like
//!   table, other PII columns beside it).
//!
//! Each kind gets a confidence in [0, 1]; flags at or above
//! [`FLAG_THRESHOLD`] are reported, strongest first.

use serde::{Deserialize, Serialize};

use crate::profile::parse_date;

/// Confidence at which a column is flagged.
pub const FLAG_THRESHOLD: f64 = 0.5;

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
}

impl PiiKind {
    /// All kinds.
    pub const ALL: [PiiKind; 10] = [
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
        }
    }

    /// Parses a snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Words in a column name that point to this kind (after token expansion).
    fn name_words(self) -> &'static [&'static str] {
        match self {
            PiiKind::Email => &["email", "mail", "login", "contact"],
            PiiKind::Phone => &[
                "phone",
                "tel",
                "telephone",
                "mobile",
                "cell",
                "fax",
                "ph",
                "msisdn",
            ],
            PiiKind::PersonName => &[
                "name", "fname", "lname", "fnm", "lnm", "first", "last", "surname", "given",
                "holder", "forename", "middle", "fullname", "naam", "nombre", "apellido", "nom",
                "prenom", "vorname", "nachname", "cognome",
            ],
            PiiKind::StreetAddress => &[
                "address",
                "addr",
                "street",
                "line1",
                "line2",
                "ln1",
                "ln2",
                "residence",
                "strasse",
                "straße",
                "direccion",
                "adresse",
                "indirizzo",
                "endereco",
                "anschrift",
                "morada",
                "adres",
            ],
            PiiKind::PostalCode => &["zip", "postal", "postcode", "zipcode", "plz", "cp"],
            PiiKind::DateOfBirth => &["dob", "birth", "born", "birthday", "bday", "birthdate"],
            PiiKind::Ssn => &[
                "ssn", "social", "socsec", "tax", "taxid", "tin", "sin", "nin",
            ],
            PiiKind::CreditCard => &["card", "cc", "pan", "ccnum", "cardnumber", "creditcard"],
            PiiKind::Iban => &["iban", "bank", "account", "acct"],
            PiiKind::IpAddress => &["ip", "ipaddr", "ipv4", "ipv6", "remote", "client", "host"],
        }
    }

    /// Words in a column name that rule this kind out.
    fn negative_words(self) -> &'static [&'static str] {
        match self {
            PiiKind::CreditCard | PiiKind::Ssn | PiiKind::Phone | PiiKind::Iban => &[
                "order",
                "invoice",
                "tracking",
                "shipment",
                "sku",
                "part",
                "batch",
                "serial",
                "product",
                "item",
                "ref",
                "reference",
                "barcode",
                "ean",
                "upc",
                "isbn",
                "store",
                "qty",
                "quantity",
                "amount",
                "total",
                "version",
                "lot",
                "sequence",
                "seq",
                "ticket",
                "confirmation",
            ],
            PiiKind::IpAddress => &["version", "ver", "firmware", "build", "release", "revision"],
            PiiKind::DateOfBirth => &[
                "order", "created", "updated", "modified", "ship", "shipped", "due", "invoice",
                "paid", "expiry", "expires", "start", "end", "hire", "hired", "login", "last",
                "ts", "at", "event", "delivery",
            ],
            PiiKind::PersonName => &[
                "product",
                "company",
                "city",
                "country",
                "street",
                "file",
                "filename",
                "user",
                "username",
                "host",
                "brand",
                "category",
                "status",
                "store",
                "org",
                "organisation",
                "organization",
                "vendor",
                "supplier",
                "table",
                "column",
                "item",
                "region",
                "state",
                "department",
                "dept",
                "team",
                "project",
                "title",
            ],
            PiiKind::PostalCode => &[
                "store",
                "qty",
                "quantity",
                "count",
                "id",
                "amount",
                "code_type",
            ],
            _ => &[],
        }
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

/// What the detector looks at for one column.
#[derive(Debug, Clone)]
pub struct ColumnEvidence<'a> {
    /// Table name.
    pub table: &'a str,
    /// Column name.
    pub column: &'a str,
    /// The other columns of the table.
    pub neighbours: &'a [String],
    /// Sample values (None for NULL).
    pub samples: &'a [Option<String>],
}

/// Abbreviations expanded when tokenising names.
const EXPANSIONS: &[(&str, &str)] = &[
    ("cust", "customer"),
    ("prod", "product"),
    ("qty", "quantity"),
    ("emp", "employee"),
    ("nm", "name"),
    ("no", "number"),
    ("nbr", "number"),
    ("num", "number"),
    ("dt", "date"),
    ("cd", "code"),
    ("zipcode", "zip"),
];

/// Splits a name into lower-case tokens: snake_case, camelCase, digits apart
/// (`addrLn1` → `addr`, `ln1`; `e_mail` → `email`).
pub fn tokens(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = c == '_' || c == '-' || c == ' ' || c == '.';
        let camel = c.is_uppercase() && i > 0 && chars[i - 1].is_lowercase();
        if boundary || camel {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if boundary {
                continue;
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // Join split spellings: e_mail -> email, first_name stays two tokens.
    let mut joined = Vec::new();
    let mut i = 0;
    while i < out.len() {
        if i + 1 < out.len() && out[i] == "e" && out[i + 1] == "mail" {
            joined.push("email".to_string());
            i += 2;
            continue;
        }
        joined.push(out[i].clone());
        i += 1;
    }
    joined
        .into_iter()
        .map(|t| {
            EXPANSIONS
                .iter()
                .find(|(a, _)| *a == t)
                .map(|(_, b)| b.to_string())
                .unwrap_or(t)
        })
        .collect()
}

fn name_score(kind: PiiKind, toks: &[String], column: &str) -> f64 {
    let lower = column.to_ascii_lowercase();
    let words = kind.name_words();
    let soc_sec =
        kind == PiiKind::Ssn && toks.iter().any(|t| t == "soc") && toks.iter().any(|t| t == "sec");
    let hit = soc_sec
        || toks.iter().any(|t| words.contains(&t.as_str()))
        || words.iter().any(|w| w.len() >= 4 && lower.contains(w));
    if !hit {
        return 0.0;
    }
    // Weak words only count alongside a specific one.
    match kind {
        PiiKind::PersonName => {
            let specific = [
                "fname", "lname", "fnm", "lnm", "surname", "forename", "fullname", "holder",
                "given", "middle", "naam", "nombre", "apellido", "prenom", "vorname", "nachname",
                "cognome",
            ];
            let person_qualified = toks.iter().any(|t| specific.contains(&t.as_str()))
                || (toks.iter().any(|t| t == "name")
                    && (toks.len() == 1
                        || toks.iter().any(|t| {
                            [
                                "first", "last", "full", "contact", "customer", "employee",
                                "person", "display", "legal", "patient", "member",
                            ]
                            .contains(&t.as_str())
                        })));
            if person_qualified {
                1.0
            } else {
                0.4
            }
        }
        PiiKind::Iban => {
            if toks.iter().any(|t| t == "iban") || lower.contains("iban") {
                1.0
            } else {
                0.5
            }
        }
        PiiKind::Email if toks.iter().any(|t| t == "contact" || t == "login") => 0.5,
        PiiKind::IpAddress if !toks.iter().any(|t| t.starts_with("ip")) => 0.5,
        PiiKind::Ssn if toks.iter().any(|t| t == "tax" || t == "tin") => 0.8,
        PiiKind::Ssn
            if toks.iter().any(|t| t == "social" || t == "soc")
                && !toks
                    .iter()
                    .any(|t| t == "sec" || t == "security" || t == "ssn") =>
        {
            0.5
        }
        _ => 1.0,
    }
}

fn negative(kind: PiiKind, toks: &[String]) -> bool {
    toks.iter()
        .any(|t| kind.negative_words().contains(&t.as_str()))
}

/// Luhn checksum.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    let mut double = false;
    for c in digits.chars().rev() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum % 10 == 0
}

fn digits_only(v: &str, allowed: &[char]) -> Option<String> {
    let mut out = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if !allowed.contains(&c) {
            return None;
        }
    }
    Some(out)
}

/// A payment card number: 13 to 19 digits (spaces or dashes allowed), a known
/// issuer prefix, and a valid Luhn check digit.
pub fn is_card(v: &str) -> bool {
    let Some(d) = digits_only(v.trim(), &[' ', '-']) else {
        return false;
    };
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let issuer = matches!(d.as_bytes()[0], b'3' | b'4' | b'5' | b'6' | b'2');
    issuer && luhn(&d)
}

/// An IBAN: country code, check digits, and a mod-97 remainder of 1.
pub fn is_iban(v: &str) -> bool {
    let s: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if !(15..=34).contains(&s.len()) || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let b = s.as_bytes();
    if !(b[0].is_ascii_alphabetic()
        && b[1].is_ascii_alphabetic()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit())
    {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let n = if c.is_ascii_digit() {
            c as u64 - '0' as u64
        } else {
            c as u64 - 'A' as u64 + 10
        };
        rem = if n >= 10 {
            (rem * 100 + n) % 97
        } else {
            (rem * 10 + n) % 97
        };
    }
    rem == 1
}

/// A US SSN: `AAA-GG-SSSS` (or nine digits), area not 000, 666 or 900-999,
/// group not 00, serial not 0000. Returns (valid, formatted with dashes).
pub fn ssn(v: &str) -> (bool, bool) {
    let v = v.trim();
    let dashed = v.len() == 11 && v.as_bytes()[3] == b'-' && v.as_bytes()[6] == b'-';
    let Some(d) = digits_only(v, &['-']) else {
        return (false, false);
    };
    if d.len() != 9 || (!dashed && v.len() != 9) {
        return (false, false);
    }
    let area: u32 = d[..3].parse().unwrap_or(0);
    let group: u32 = d[3..5].parse().unwrap_or(0);
    let serial: u32 = d[5..].parse().unwrap_or(0);
    let ok = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    (ok, dashed)
}

/// An e-mail address: one `@`, a non-empty local part, a dotted domain with a
/// top-level label of letters.
pub fn is_email(v: &str) -> bool {
    let v = v.trim();
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') || v.contains(' ') || local.len() > 64 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A telephone number: 7 to 15 digits with phone punctuation, not a date,
/// written the way phones are: a leading `+`, `00` or `(`; or at least ten
/// digits in separated groups or as a national number starting with 0; or a
/// local `999-9999`. Returns (valid, unambiguous); `lenient` also accepts a
/// bare run of 10 to 15 digits (used when the column name says phone).
pub fn phone(v: &str, lenient: bool) -> (bool, bool) {
    let v = v.trim();
    let Some(d) = digits_only(v, &['+', '-', ' ', '(', ')', '.', '/']) else {
        return (false, false);
    };
    if !(7..=15).contains(&d.len()) || parse_date(v).is_some() {
        return (false, false);
    }
    let groups: Vec<&str> = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let international = v.starts_with('+') || v.starts_with("00") || v.starts_with('(');
    let separated =
        groups.len() >= 2 && d.len() >= 10 && groups.last().is_some_and(|g| g.len() >= 2);
    let national = groups.len() == 1 && d.len() == 10 && v.starts_with('0');
    let local = groups.len() == 2 && groups[0].len() == 3 && groups[1].len() == 4;
    let bare = groups.len() == 1 && (10..=15).contains(&d.len());
    let valid = international || separated || national || local || (lenient && bare);
    (valid, international || separated)
}

/// An IPv4 or IPv6 address.
pub fn is_ip(v: &str) -> bool {
    v.trim().parse::<std::net::IpAddr>().is_ok()
}

/// A postal code of a common format. Returns (valid, unambiguous): a plain
/// five-digit number is valid but also looks like many other things.
pub fn postal(v: &str) -> (bool, bool) {
    let v = v.trim().to_ascii_uppercase();
    let b = v.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit());
    let alpha = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphabetic());
    // ZIP+4
    if v.len() == 10 && (0..5).all(digit) && b[5] == b'-' && (6..10).all(digit) {
        return (true, true);
    }
    // Canada A1A 1A1
    if v.len() == 7
        && alpha(0)
        && digit(1)
        && alpha(2)
        && b[3] == b' '
        && digit(4)
        && alpha(5)
        && digit(6)
    {
        return (true, true);
    }
    // UK: outward (A9, A99, AA9, AA99, A9A, AA9A) space inward (9AA)
    if let Some((out, inw)) = v.split_once(' ') {
        let ib = inw.as_bytes();
        let inward = ib.len() == 3
            && ib[0].is_ascii_digit()
            && ib[1].is_ascii_alphabetic()
            && ib[2].is_ascii_alphabetic();
        let ob = out.as_bytes();
        let outward = (2..=4).contains(&ob.len())
            && ob[0].is_ascii_alphabetic()
            && ob.iter().any(|c| c.is_ascii_digit())
            && ob.iter().all(|c| c.is_ascii_alphanumeric());
        if inward && outward {
            return (true, true);
        }
    }
    // Netherlands 9999 AA
    if v.len() == 7 && (0..4).all(digit) && b[4] == b' ' && alpha(5) && alpha(6) {
        return (true, true);
    }
    if v.len() == 5 && (0..5).all(digit) {
        return (true, false);
    }
    (false, false)
}

const STREET_WORDS: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "boulevard",
    "blvd",
    "lane",
    "ln",
    "way",
    "drive",
    "dr",
    "pkwy",
    "parkway",
    "court",
    "ct",
    "place",
    "pl",
    "square",
    "sq",
    "terrace",
    "highway",
    "hwy",
    "calle",
    "rue",
    "via",
    "strasse",
    "straße",
    "str",
    "weg",
    "plaza",
    "avenida",
    "rua",
    "circle",
    "cir",
    "trail",
    "row",
    "close",
    "crescent",
    "gasse",
    "platz",
    "laan",
    "straat",
    "viale",
    "piazza",
    "corso",
    "allee",
    "rambla",
    "paseo",
    "am",
    "an",
];

/// A street address line: a house number and a street word, in either order.
pub fn is_street(v: &str) -> bool {
    let lower = v.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
        .filter(|w| !w.is_empty())
        .collect();
    let has_number = words
        .iter()
        .any(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.len() <= 6);
    let has_street = words.iter().any(|w| {
        STREET_WORDS.contains(w)
            || w.starts_with("c/")
            || [
                "straße", "strasse", "gasse", "weg", "platz", "allee", "straat", "laan", "steeg",
            ]
            .iter()
            .any(|s| w.len() > s.len() && w.ends_with(s))
    });
    has_number && has_street && words.len() >= 2
}

const FIRST_NAMES: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "maria",
    "jose",
    "juan",
    "ana",
    "luis",
    "carlos",
    "sofia",
    "lucia",
    "mohammed",
    "ahmed",
    "fatima",
    "ali",
    "wei",
    "li",
    "yuki",
    "hiroshi",
    "aiko",
    "kenji",
    "olga",
    "ivan",
    "anna",
    "peter",
    "paul",
    "emma",
    "olivia",
    "noah",
    "liam",
    "ada",
    "grace",
    "linus",
    "margaret",
    "ken",
    "edsger",
    "frances",
    "donald",
    "radia",
    "zoë",
    "søren",
    "françois",
    "josé",
    "chloé",
    "lars",
    "ingrid",
    "priya",
    "raj",
    "arjun",
    "chen",
    "mei",
    "daniel",
    "laura",
    "marco",
    "giulia",
    "hans",
    "greta",
];

const NAME_PARTICLES: &[&str] = &[
    "de", "van", "der", "den", "da", "di", "du", "von", "le", "la", "del", "dos", "bin", "al", "y",
];

/// A person-name-like value: one to five words of letters (apostrophes,
/// hyphens, periods and accents allowed), capitalised or all in capitals,
/// with lower-case particles (`van der`, `de`) and `Last, First` allowed.
pub fn is_name_like(v: &str) -> bool {
    let words: Vec<&str> = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    (1..=5).contains(&words.len())
        && v.matches(',').count() <= 1
        && words
            .iter()
            .any(|w| w.chars().next().is_some_and(char::is_uppercase))
        && words.iter().all(|w| {
            let letters = w
                .chars()
                .all(|c| c.is_alphabetic() || c == '\'' || c == '-' || c == '.');
            let capital = w.chars().next().is_some_and(char::is_uppercase);
            letters && (capital || NAME_PARTICLES.contains(&w.to_lowercase().as_str()))
        })
}

fn known_first_name(v: &str) -> bool {
    v.split(|c: char| c.is_whitespace() || c == ',').any(|w| {
        FIRST_NAMES.contains(
            &w.trim_matches(|c: char| !c.is_alphabetic())
                .to_lowercase()
                .as_str(),
        )
    })
}

/// A plausible date of birth: a date whose year makes an age of 0 to 120.
pub fn is_birth_date(v: &str) -> bool {
    parse_date(v).is_some_and(|(y, _, _)| (1900..=2026).contains(&y))
}

const PERSON_TABLE_WORDS: &[&str] = &[
    "customer",
    "client",
    "employee",
    "person",
    "people",
    "user",
    "member",
    "patient",
    "contact",
    "staff",
    "student",
    "account",
    "hr",
    "applicant",
    "passenger",
    "guest",
    "subscriber",
    "owner",
    "holder",
    "payroll",
];

/// Scores one column.
pub fn detect(e: &ColumnEvidence<'_>) -> Vec<PiiFlag> {
    let toks = tokens(e.column);
    let table_toks = tokens(e.table);
    let values: Vec<&str> = e
        .samples
        .iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let n = values.len().max(1) as f64;
    let frac = |f: &dyn Fn(&str) -> bool| values.iter().filter(|v| f(v)).count() as f64 / n;
    // Table names are often plural: `customers` is a person-like table too.
    let person_table = table_toks.iter().any(|t| {
        PERSON_TABLE_WORDS.contains(&t.as_str())
            || PERSON_TABLE_WORDS.contains(&t.trim_end_matches('s'))
    });
    let neighbour_pii = e
        .neighbours
        .iter()
        .filter(|c| {
            let t = tokens(c);
            PiiKind::ALL.iter().any(|k| name_score(*k, &t, c) >= 1.0)
        })
        .count();
    let context = (if person_table { 0.6 } else { 0.0 }) + (neighbour_pii.min(2) as f64 * 0.2);
    let mut flags = Vec::new();
    for kind in PiiKind::ALL {
        let name = name_score(kind, &toks, e.column);
        let neg = negative(kind, &toks);
        // (fraction of values the validator accepts, whether those values are
        // unambiguous on their own)
        let (value, strong) = match kind {
            PiiKind::Email => (frac(&|v| is_email(v)), true),
            PiiKind::CreditCard => (frac(&|v| is_card(v)), true),
            PiiKind::Iban => (frac(&|v| is_iban(v)), true),
            PiiKind::IpAddress => (frac(&|v| is_ip(v)), true),
            PiiKind::Ssn => {
                let dashed = frac(&|v| ssn(v).0 && ssn(v).1);
                (frac(&|v| ssn(v).0), dashed >= 0.8)
            }
            PiiKind::Phone => {
                let lenient = name >= 1.0;
                let styled = frac(&|v| phone(v, lenient).1);
                (frac(&|v| phone(v, lenient).0), styled >= 0.8)
            }
            PiiKind::PostalCode => {
                let unambiguous = frac(&|v| postal(v).1);
                (frac(&|v| postal(v).0), unambiguous >= 0.5)
            }
            PiiKind::DateOfBirth => (frac(&|v| is_birth_date(v)), false),
            PiiKind::StreetAddress => (frac(&|v| is_street(v)), true),
            PiiKind::PersonName => {
                let known = frac(&|v| known_first_name(v));
                (frac(&|v| is_name_like(v)), known >= 0.3)
            }
        };
        let mut reasons = Vec::new();
        let mut c = if value >= 0.8 {
            reasons.push(format!(
                "{:.0}% of sampled values are valid {}",
                value * 100.0,
                kind.as_str()
            ));
            if strong {
                0.7 + 0.25 * name + 0.05 * context.min(1.0)
            } else {
                0.3 + 0.5 * name + 0.15 * context.min(1.0)
            }
        } else if value >= 0.5 {
            reasons.push(format!(
                "{:.0}% of sampled values are valid {}",
                value * 100.0,
                kind.as_str()
            ));
            (if strong { 0.45 } else { 0.25 }) + 0.4 * name + 0.1 * context.min(1.0)
        } else if name >= 1.0 && values.is_empty() {
            reasons.push("column name, no values sampled".into());
            0.55
        } else {
            // Masked or malformed values with a telling name still count a little.
            0.35 * name
        };
        if name > 0.0 {
            reasons.push(format!(
                "column name `{}` suggests {}",
                e.column,
                kind.as_str()
            ));
        }
        if neg {
            reasons.push(format!(
                "column name `{}` suggests something other than {}",
                e.column,
                kind.as_str()
            ));
            c -= 0.45;
        }
        if context > 0.0 && c > 0.0 {
            reasons.push(format!(
                "context: {}{} neighbouring PII columns",
                if person_table {
                    "a person-like table, "
                } else {
                    ""
                },
                neighbour_pii
            ));
        }
        let c = c.clamp(0.0, 1.0);
        if c >= FLAG_THRESHOLD {
            flags.push(PiiFlag {
                kind,
                confidence: (c * 1000.0).round() / 1000.0,
                reasons,
            });
        }
    }
    flags.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.kind.cmp(&b.kind))
    });
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(table: &str, column: &str, samples: &[&str]) -> Vec<PiiFlag> {
        let s: Vec<Option<String>> = samples.iter().map(|v| Some(v.to_string())).collect();
        detect(&ColumnEvidence {
            table,
            column,
            neighbours: &[],
            samples: &s,
        })
    }

    #[test]
    fn validators() {
        assert!(luhn("4111111111111111"));
        assert!(!luhn("4111111111111112"));
        assert!(is_card("4111 1111 1111 1111"));
        assert!(is_iban("DE89 3704 0044 0532 0130 00"));
        assert!(is_iban("GB82WEST12345698765432"));
        assert!(!is_iban("GB82WEST12345698765433"));
        assert_eq!(ssn("123-45-6789"), (true, true));
        assert!(!ssn("666-45-6789").0);
        assert!(!ssn("123-00-6789").0);
        assert!(is_email("ada.lovelace@example.com"));
        assert!(!is_email("not an email"));
        assert!(is_ip("10.0.0.1") && is_ip("2001:db8::1") && !is_ip("300.1.1.1"));
        assert_eq!(postal("SW1A 1AA"), (true, true));
        assert_eq!(postal("K1A 0B1"), (true, true));
        assert_eq!(postal("90210"), (true, false));
        assert!(is_street("221B Baker Street"));
        assert!(is_street("1600 Amphitheatre Pkwy"));
        assert_eq!(tokens("custDOB"), vec!["customer", "dob"]);
        assert_eq!(tokens("e_mail"), vec!["email"]);
        assert_eq!(tokens("addr_ln1"), vec!["addr", "ln1"]);
    }

    #[test]
    fn order_numbers_that_pass_luhn_are_not_cards() {
        let luhn_ok = ["4111111111111111", "5500000000000004", "340000000000009"];
        let f = flags("tbl_orders", "order_no", &luhn_ok);
        assert!(f.iter().all(|f| f.kind != PiiKind::CreditCard), "{f:?}");
        let f = flags("payments", "card_no", &luhn_ok);
        assert_eq!(f[0].kind, PiiKind::CreditCard);
        assert!(f[0].confidence >= 0.9);
    }

    #[test]
    fn birth_dates_need_more_than_a_date() {
        let dates = ["1984-03-12", "1990-07-01", "1975-11-30"];
        assert_eq!(
            flags("customer", "cust_dob", &dates)[0].kind,
            PiiKind::DateOfBirth
        );
        assert!(flags("orders", "order_date", &dates)
            .iter()
            .all(|f| f.kind != PiiKind::DateOfBirth));
    }
}
