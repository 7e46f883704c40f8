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

use crate::profile::parse_date;

/// Confidence at which a column is flagged.
pub const FLAG_THRESHOLD: f64 = 0.5;

pub use sensei_contracts::profile::{PiiFlag, PiiKind};

/// Per kind, the words in a column name that point to it.
const NAME_WORDS: &[(&[PiiKind], &[&str])] = &[
    (&[PiiKind::Email], &["email", "mail", "login", "contact"]),
    (
        &[PiiKind::Phone],
        &[
            "phone",
            "tel",
            "telephone",
            "mobile",
            "cell",
            "fax",
            "ph",
            "msisdn",
            "telefono",
            "teléfono",
            "telefone",
            "telefon",
            "téléphone",
            "telephon",
            "celular",
            "movil",
            "móvil",
            "handy",
            "tlf",
            "tfno",
            "portable",
            "cellulare",
        ],
    ),
    (
        &[PiiKind::PersonName],
        &[
            "name", "fname", "lname", "fnm", "lnm", "first", "last", "surname", "given", "holder",
            "forename", "middle", "fullname", "naam", "nombre", "apellido", "nom", "prenom",
            "vorname", "nachname", "cognome", "person",
        ],
    ),
    (
        &[PiiKind::StreetAddress],
        &[
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
    ),
    (
        &[PiiKind::PostalCode],
        &["zip", "postal", "postcode", "zipcode", "plz", "cp"],
    ),
    (
        &[PiiKind::DateOfBirth],
        &["dob", "birth", "born", "birthday", "bday", "birthdate"],
    ),
    (
        &[PiiKind::Ssn],
        &[
            "ssn", "social", "socsec", "tax", "taxid", "tin", "sin", "nin",
        ],
    ),
    (
        &[PiiKind::CreditCard],
        &["card", "cc", "pan", "ccnum", "cardnumber", "creditcard"],
    ),
    (&[PiiKind::Iban], &["iban", "bank", "account", "acct"]),
    (
        &[PiiKind::IpAddress],
        &["ip", "ipaddr", "ipv4", "ipv6", "remote", "client", "host"],
    ),
    (
        &[PiiKind::Age],
        &["age", "edad", "alter", "âge", "età", "idade", "leeftijd"],
    ),
    (
        &[PiiKind::Gender],
        &[
            "gender",
            "sex",
            "geschlecht",
            "sexo",
            "genre",
            "sesso",
            "geslacht",
            "género",
            "genero",
        ],
    ),
    (
        &[PiiKind::DrivingLicence],
        &[
            "dl",
            "driver",
            "drivers",
            "driving",
            "licence",
            "license",
            "lic",
            "führerschein",
            "fuhrerschein",
        ],
    ),
    (&[PiiKind::Vin], &["vin", "chassis", "vehicle"]),
    (
        &[PiiKind::Passport],
        &[
            "passport",
            "pasaporte",
            "passeport",
            "reisepass",
            "passaporto",
            "paspoort",
        ],
    ),
    (
        &[PiiKind::SwiftBic],
        &["swift", "bic", "swiftcode", "biccode"],
    ),
    (
        &[PiiKind::MacAddress],
        &["mac", "macaddr", "macaddress", "hwaddr", "bssid"],
    ),
    (
        &[PiiKind::Coordinates],
        &[
            "lat",
            "latitude",
            "lon",
            "lng",
            "long",
            "longitude",
            "coord",
            "coords",
            "coordinate",
            "coordinates",
            "geo",
            "geolocation",
            "gps",
            "latlon",
            "latlng",
            "easting",
            "northing",
            "latitud",
            "longitud",
            "breitengrad",
            "längengrad",
        ],
    ),
    (
        &[PiiKind::Ethnicity],
        &["race", "ethnicity", "ethnic", "ethnie", "etnia", "raza"],
    ),
    (
        &[PiiKind::NationalId],
        &[
            "national",
            "nationalid",
            "dni",
            "nie",
            "nif",
            "cpf",
            "curp",
            "rut",
            "pesel",
            "bsn",
            "nino",
            "insee",
            "aadhaar",
            "personnummer",
            "fiscal",
            "codicefiscale",
            "identity",
            "cedula",
            "cédula",
            "identification",
            "citizen",
            "idcard",
            "taxpayer",
        ],
    ),
];

/// Words in a column name that point to this kind (after token expansion).
fn name_words(kind: PiiKind) -> &'static [&'static str] {
    NAME_WORDS
        .iter()
        .find(|(kinds, _)| kinds.contains(&kind))
        .map_or(&[], |(_, words)| words)
}

/// Per kind, the words in a column name that rule it out.
const NEGATIVE_WORDS: &[(&[PiiKind], &[&str])] = &[
    (
        &[
            PiiKind::CreditCard,
            PiiKind::Ssn,
            PiiKind::Phone,
            PiiKind::Iban,
        ],
        &[
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
            "session",
            "uuid",
            "guid",
            "hash",
            "token",
            "timestamp",
            "ts",
            "transaction",
            "txn",
        ],
    ),
    (
        &[PiiKind::IpAddress],
        &["version", "ver", "firmware", "build", "release", "revision"],
    ),
    (
        &[PiiKind::DateOfBirth],
        &[
            "order", "created", "updated", "modified", "ship", "shipped", "due", "invoice", "paid",
            "expiry", "expires", "start", "end", "hire", "hired", "login", "last", "ts", "at",
            "event", "delivery",
        ],
    ),
    (
        &[PiiKind::PersonName],
        &[
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
            "business",
            "county",
            "location",
            "facility",
            "school",
            "insurer",
            "area",
            "entity",
            "district",
            "community",
            "agency",
            "firm",
            "bank",
            "hospital",
            "clinic",
            "site",
            "venue",
            "formation",
            "field",
            "type",
            "municipality",
            "municipio",
            "departamento",
            "razon",
            "empresa",
            "program",
            "event",
            "course",
            "street",
            "road",
        ],
    ),
    (
        &[PiiKind::PostalCode],
        &[
            "store",
            "qty",
            "quantity",
            "count",
            "id",
            "amount",
            "code_type",
        ],
    ),
    (
        &[PiiKind::Age],
        &[
            "account",
            "vehicle",
            "car",
            "building",
            "property",
            "house",
            "home",
            "asset",
            "equipment",
            "loan",
            "debt",
            "inventory",
            "tree",
            "record",
            "file",
            "data",
            "stock",
            "company",
            "policy",
        ],
    ),
    (
        &[PiiKind::DrivingLicence],
        &[
            "plate", "business", "software", "liquor", "key", "url", "name", "type", "class",
            "status",
        ],
    ),
    (
        &[PiiKind::Gender],
        &["ratio", "count", "total", "percent", "pct", "share"],
    ),
];

/// Words in a column name that rule this kind out.
fn negative_words(kind: PiiKind) -> &'static [&'static str] {
    NEGATIVE_WORDS
        .iter()
        .find(|(kinds, _)| kinds.contains(&kind))
        .map_or(&[], |(_, words)| words)
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
    // Other languages' words for the kinds, read as their English token.
    ("nome", "name"),
    ("namn", "name"),
    ("navn", "name"),
    ("nimi", "name"),
    ("imie", "name"),
    ("imię", "name"),
    ("jmeno", "name"),
    ("jméno", "name"),
    ("isim", "name"),
    ("fornamn", "forename"),
    ("förnamn", "forename"),
    ("fornavn", "forename"),
    ("etunimi", "forename"),
    ("voornaam", "forename"),
    ("keresztnev", "forename"),
    ("keresztnév", "forename"),
    ("prénom", "forename"),
    ("efternamn", "surname"),
    ("etternavn", "surname"),
    ("efternavn", "surname"),
    ("sukunimi", "surname"),
    ("nazwisko", "surname"),
    ("prijmeni", "surname"),
    ("příjmení", "surname"),
    ("achternaam", "surname"),
    ("sobrenome", "surname"),
    ("apelido", "surname"),
    ("soyad", "surname"),
    ("soyadi", "surname"),
    ("soyadı", "surname"),
    ("vezeteknev", "surname"),
    ("vezetéknév", "surname"),
    ("födelsedatum", "birthdate"),
    ("fodelsedatum", "birthdate"),
    ("fødselsdato", "birthdate"),
    ("fodselsdato", "birthdate"),
    ("geburtsdatum", "birthdate"),
    ("geboortedatum", "birthdate"),
    ("syntymäaika", "birthdate"),
    ("syntymaaika", "birthdate"),
    ("nacimiento", "birth"),
    ("nascimento", "birth"),
    ("nascita", "birth"),
    ("naissance", "birth"),
    ("urodzenia", "birth"),
    ("narozeni", "birth"),
    ("narození", "birth"),
    ("dogum", "birth"),
    ("doğum", "birth"),
    ("postnummer", "postcode"),
    ("postnr", "postcode"),
    ("postleitzahl", "postcode"),
    ("postinumero", "postcode"),
    ("pocztowy", "postcode"),
    ("iranyitoszam", "postcode"),
    ("irányítószám", "postcode"),
    ("adresa", "address"),
    ("osoite", "address"),
    ("ulica", "address"),
    ("gatuadress", "address"),
    ("gateadresse", "address"),
    ("straat", "address"),
    ("rua", "address"),
    ("logradouro", "address"),
    ("domicilio", "address"),
    ("utca", "address"),
    ("puhelin", "phone"),
    ("mobil", "phone"),
    ("mobiel", "phone"),
    ("mobilnummer", "phone"),
    ("telefonnummer", "phone"),
    ("komorka", "phone"),
    ("correo", "email"),
    ("courriel", "email"),
    ("epost", "email"),
    ("eposta", "email"),
    ("sahkoposti", "email"),
    ("sähköposti", "email"),
    ("kjønn", "gender"),
    ("kjonn", "gender"),
    ("køn", "gender"),
    ("kön", "gender"),
    ("sukupuoli", "gender"),
    ("płeć", "gender"),
    ("plec", "gender"),
    ("pohlavi", "gender"),
    ("pohlaví", "gender"),
    ("cinsiyet", "gender"),
    ("alder", "age"),
    ("ålder", "age"),
    ("wiek", "age"),
    ("yaş", "age"),
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
        if i + 1 < out.len()
            && out[i] == "e"
            && matches!(out[i + 1].as_str(), "mail" | "post" | "posta")
        {
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

/// Last words of a column name that make it a column about a kind of
/// personal data (its type, state or count) rather than one holding it.
const DESCRIPTORS: &[&str] = &[
    "type",
    "types",
    "kind",
    "status",
    "verified",
    "confirmed",
    "validated",
    "valid",
    "flag",
    "count",
    "cnt",
    "format",
    "consent",
    "optin",
    "preference",
    "preferences",
    "visibility",
    "visible",
    "enabled",
    "allowed",
    "required",
    "provided",
    "missing",
];

fn name_score(kind: PiiKind, toks: &[String], column: &str) -> f64 {
    let lower = column.to_ascii_lowercase();
    let words = name_words(kind);
    let soc_sec =
        kind == PiiKind::Ssn && toks.iter().any(|t| t == "soc") && toks.iter().any(|t| t == "sec");
    // Words written apart: `post_code` is `postcode`, `e_mail` is `email`.
    let joined = toks
        .windows(2)
        .any(|w| words.contains(&format!("{}{}", w[0], w[1]).as_str()));
    let hit = soc_sec
        || joined
        || toks.iter().any(|t| words.contains(&t.as_str()))
        || words.iter().any(|w| w.len() >= 4 && lower.contains(w));
    if !hit {
        return 0.0;
    }
    // `phone_type`, `email_verified`, `address_status`, `cell_count`: a
    // column about the data, not the data.
    if toks.len() > 1
        && toks
            .last()
            .is_some_and(|t| DESCRIPTORS.contains(&t.as_str()))
    {
        return 0.3;
    }
    // Weak words only count alongside a specific one.
    match kind {
        PiiKind::PersonName => {
            let specific = [
                "fname", "lname", "fnm", "lnm", "surname", "forename", "fullname", "holder",
                "given", "middle", "naam", "nombre", "apellido", "prenom", "vorname", "nachname",
                "cognome", "person",
            ];
            let person_qualified = toks.iter().any(|t| specific.contains(&t.as_str()))
                || (toks.iter().any(|t| t == "name")
                    && (toks.len() == 1
                        || toks.iter().any(|t| {
                            [
                                "first",
                                "last",
                                "full",
                                "contact",
                                "customer",
                                "employee",
                                "person",
                                "display",
                                "legal",
                                "patient",
                                "member",
                                "passenger",
                                "pax",
                                "guest",
                                "client",
                                "student",
                                "applicant",
                                "traveler",
                                "traveller",
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
        // `license` alone is as often a business's or a product's.
        PiiKind::DrivingLicence
            if !toks.iter().any(|t| {
                [
                    "dl",
                    "driver",
                    "drivers",
                    "driving",
                    "führerschein",
                    "fuhrerschein",
                ]
                .contains(&t.as_str())
            }) =>
        {
            0.3
        }
        // `long` and `geo` alone say little (long_name, geo_id).
        PiiKind::Coordinates
            if !toks
                .iter()
                .any(|t| words.contains(&t.as_str()) && t != "long" && t != "geo") =>
        {
            0.3
        }
        PiiKind::Vin if !toks.iter().any(|t| t == "vin" || t == "chassis") => 0.5,
        // `identity`, `identification`, `national`, `citizen` alone name many
        // things; the specific acronyms do not.
        PiiKind::NationalId
            if !(toks.iter().any(|t| {
                words.contains(&t.as_str())
                    && !matches!(
                        t.as_str(),
                        "identity" | "identification" | "national" | "citizen" | "taxpayer"
                    )
            }) || (toks.iter().any(|t| t == "national")
                && toks.iter().any(|t| t == "id"))) =>
        {
            0.5
        }
        // `sex` or `gender` as one word of many (`ExchangeForSex`,
        // `gender_pay_gap_ratio`) is a question about it, not the attribute.
        PiiKind::Gender | PiiKind::Age | PiiKind::Ethnicity if toks.len() > 3 => 0.3,
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
        .any(|t| negative_words(kind).contains(&t.as_str()))
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
    // An extension after the number: `4377777 Ext 7178`, `555-1234 x12`.
    let lower = v.to_ascii_lowercase();
    let v = match ["ext.", "ext", " x"].iter().find_map(|m| lower.find(m)) {
        Some(i) if i > 0 => v[..i].trim(),
        _ => v,
    };
    let Some(d) = digits_only(v, &['+', '-', ' ', '(', ')', '.', '/']) else {
        return (false, false);
    };
    if !(7..=15).contains(&d.len()) || parse_date(v).is_some() || is_ip(v) {
        return (false, false);
    }
    // A decimal number (`208.4397503`) is a measurement, not a phone.
    if v.matches('.').count() == 1 && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
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
    let bare = groups.len() == 1 && (7..=15).contains(&d.len());
    let valid = international || separated || national || local || (lenient && bare);
    (valid, international || separated)
}

/// A whole number exported as a float (`8801819404601.0`, as spreadsheets
/// and dataframes write integer columns with gaps) without its `.0`.
fn whole_number(v: &str) -> &str {
    match v.strip_suffix(".0") {
        Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) => d,
        _ => v,
    }
}

/// A date with a two-digit year (`04/01/83`, `1-5-09`).
fn short_date(v: &str) -> bool {
    let parts: Vec<&str> = v.trim().split(['/', '-', '.']).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
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
    // Canada without its space: A1A1A1
    if v.len() == 6 && alpha(0) && digit(1) && alpha(2) && digit(3) && alpha(4) && digit(5) {
        return (true, true);
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
    "av",
    "avda",
    "alameda",
    "travessa",
    "estrada",
    "rodovia",
    "carrera",
    "cra",
    "vei",
    "veien",
    "gate",
    "gata",
    "gatan",
    "vägen",
    "väg",
    "vej",
    "utca",
    "út",
    "tér",
    "ulica",
    "ul",
    "jl",
    "jalan",
    "dong",
    "lu",
    "quai",
    "chemin",
    "impasse",
    "cours",
    "ruelle",
    "vicolo",
    "largo",
    "strada",
    "steeg",
    "kade",
    "gracht",
    "plein",
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
    // Free text mentions numbers and street words without being an address;
    // `am`/`an` are street words in German only in a short line.
    if words.len() > 10 {
        return false;
    }
    let has_street = words.iter().any(|w| {
        (STREET_WORDS.contains(w) && (!matches!(*w, "am" | "an") || words.len() <= 4))
            || w.starts_with("c/")
            || [
                "straße", "strasse", "gasse", "weg", "platz", "allee", "straat", "laan", "steeg",
                "veien", "vegen", "gatan", "vägen", "gade", "vej",
            ]
            .iter()
            .any(|s| w.len() > s.len() && w.ends_with(s))
    });
    // Chinese and Japanese addresses: a number and a road or block character.
    let cjk = v.chars().any(|c| c.is_ascii_digit())
        && v.chars().any(|c| {
            matches!(
                c,
                '路' | '街' | '號' | '号' | '巷' | '弄' | '丁' | '番' | '道'
            )
        });
    (has_number && has_street && words.len() >= 2) || cjk
}

/// A line of words with a house number (`Klanova 9/506`, `Jl. Bina Asih 2`),
/// the shape of an address in any language.
fn address_like(v: &str) -> bool {
    let lower = v.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > 12 {
        return false;
    }
    let number = |w: &&str| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.len() <= 8;
    let numbered = words.iter().any(number);
    // The second line of an address: `Suite 216`, `APT 210`, `Unit B`, `#1`.
    let unit = words.iter().any(|w| {
        UNIT_WORDS.contains(&w.trim_end_matches('.')) || (w.starts_with('#') && w.len() > 1)
    });
    // US grid addresses: `9450 S 1300 E`.
    let grid = numbered
        && words
            .iter()
            .any(|w| matches!(*w, "n" | "s" | "e" | "w" | "ne" | "nw" | "se" | "sw"));
    let street = words
        .iter()
        .any(|w| STREET_WORDS.contains(&w.trim_end_matches('.')));
    unit || grid
        || street
        || (numbered
            && words.len() >= 2
            && words
                .iter()
                .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3))
}

/// Words of an address's second line.
const UNIT_WORDS: &[&str] = &[
    "suite",
    "ste",
    "apt",
    "apartment",
    "unit",
    "spc",
    "space",
    "floor",
    "fl",
    "room",
    "rm",
    "bldg",
    "building",
    "box",
    "po",
    "piso",
    "depto",
    "dpto",
    "etage",
    "étage",
    "wohnung",
];

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
    if matches!(
        v.trim().to_lowercase().as_str(),
        "yes" | "no" | "true" | "false" | "none" | "null" | "unknown" | "other" | "n/a"
    ) {
        return false;
    }
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

/// One part of a date kept in its own column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DatePart {
    Day,
    Month,
    Year,
}

impl DatePart {
    fn accepts(self, v: &str) -> bool {
        let n = v.trim().parse::<i32>().ok();
        match self {
            DatePart::Day => n.is_some_and(|d| (1..=31).contains(&d)),
            DatePart::Month => {
                n.is_some_and(|m| (1..=12).contains(&m)) || month_name(&v.trim().to_lowercase())
            }
            DatePart::Year => n.is_some_and(|y| (1900..=2026).contains(&y)),
        }
    }
}

/// The date part a column name ends in (`birth_day`, `dobMonth`,
/// `birth_yyyy`), if any.
fn date_part(toks: &[String]) -> Option<DatePart> {
    match toks.last()?.as_str() {
        "day" | "dd" => Some(DatePart::Day),
        "month" | "mm" | "mon" => Some(DatePart::Month),
        "year" | "yr" | "yyyy" | "yy" => Some(DatePart::Year),
        _ => None,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// A month's English name or its abbreviation (`mar`, `March`, `sept`).
fn month_name(w: &str) -> bool {
    w.len() >= 3 && w.chars().all(char::is_alphabetic) && MONTHS.iter().any(|m| w.starts_with(m))
}

/// A plausible date of birth: a date whose year makes an age of 0 to 120.
pub fn is_birth_date(v: &str) -> bool {
    let year = parse_date(v)
        .map(|(y, _, _)| y)
        .or_else(|| written_date_year(v));
    year.is_some_and(|y| (1900..=2026).contains(&y))
}

/// The year of a date written with its month's name: `March 12, 1984`,
/// `12 Mar 1984`, `1984 March 12`.
fn written_date_year(v: &str) -> Option<i32> {
    let words: Vec<String> = v
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.len() != 3 {
        return None;
    }
    let month = words.iter().any(|w| month_name(w));
    let numbers: Vec<u32> = words
        .iter()
        .filter_map(|w| {
            w.trim_end_matches(['s', 't', 'n', 'd', 'r', 'h'])
                .parse()
                .ok()
        })
        .collect();
    let year = numbers.iter().find(|n| (1000..=9999).contains(*n))?;
    let day = numbers.iter().any(|n| (1..=31).contains(n));
    (month && day).then_some(*year as i32)
}

/// A card-shaped number whatever its checksum: 13 to 19 digits (spaces or
/// dashes allowed) starting with an issuer digit. Test data often fails Luhn.
pub fn is_card_shaped(v: &str) -> bool {
    let Some(d) = digits_only(v.trim(), &[' ', '-']) else {
        return false;
    };
    (13..=19).contains(&d.len()) && matches!(d.as_bytes()[0], b'2'..=b'6')
}

/// An age in years: a whole number from 0 to 120 (a trailing `.0` allowed),
/// or an age band (`25-34`, `65+`, `18 to 24`).
pub fn is_age(v: &str) -> bool {
    let v = v.trim();
    let year = |s: &str| {
        let s = s.trim();
        let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
        !whole.is_empty()
            && whole.len() <= 3
            && frac.len() == 1
            && whole
                .chars()
                .chain(frac.chars())
                .all(|c| c.is_ascii_digit())
            && whole.parse::<u32>().is_ok_and(|n| n <= 120)
    };
    if year(v) {
        return true;
    }
    if let Some(lo) = v.strip_suffix('+') {
        return year(lo);
    }
    let lower = v.to_ascii_lowercase();
    for sep in ["-", " to ", "–"] {
        if let Some((a, b)) = lower.split_once(sep) {
            return year(a) && year(b);
        }
    }
    false
}

/// Values a gender or sex column holds, in several languages (lower case).
const GENDER_WORDS: &[&str] = &[
    "male",
    "female",
    "man",
    "woman",
    "men",
    "women",
    "boy",
    "girl",
    "non-binary",
    "nonbinary",
    "non binary",
    "genderqueer",
    "transgender",
    "trans",
    "intersex",
    "masculino",
    "femenino",
    "hombre",
    "mujer",
    "homme",
    "femme",
    "masculin",
    "féminin",
    "feminin",
    "männlich",
    "mannlich",
    "weiblich",
    "divers",
    "maschio",
    "femmina",
    "mannelijk",
    "vrouwelijk",
    "vrouw",
    "masculine",
    "feminine",
    "男",
    "女",
];

/// Codes and fillers a gender column holds beside its words.
const GENDER_CODES: &[&str] = &[
    "m",
    "f",
    "w",
    "d",
    "x",
    "u",
    "o",
    "nb",
    "h",
    "v",
    "other",
    "unknown",
    "diverse",
    "not specified",
    "unspecified",
    "prefer not to say",
    "n/a",
    "na",
    "none",
    "all",
    "both",
    "total",
    "overall",
    "all genders",
];

/// Gender evidence: (share of values in the vocabulary, share that are words
/// rather than one-letter codes).
fn gender_shares(values: &[&str]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mut known = 0;
    let mut words = 0;
    for v in values {
        let l = v.trim().to_lowercase();
        // `Male - M`, `F (female)`: a short value with a gender word in it.
        let inside = l.split(|c: char| !c.is_alphanumeric() && c != '-').count() <= 4
            && l.split(|c: char| !c.is_alphanumeric())
                .any(|w| w.len() > 1 && GENDER_WORDS.contains(&w));
        if GENDER_WORDS.contains(&l.as_str()) || inside {
            known += 1;
            words += 1;
        } else if GENDER_CODES.contains(&l.as_str()) {
            known += 1;
        }
    }
    (known as f64 / n, words as f64 / n)
}

/// A driving-licence-like identifier: 4 to 20 letters and digits (dashes and
/// spaces allowed) with at least four digits, as US states and most
/// countries write them. Only the column name tells it apart from other
/// identifiers.
pub fn is_licence_shaped(v: &str) -> bool {
    let v = v.trim();
    let core: String = v.chars().filter(|c| *c != '-' && *c != ' ').collect();
    (4..=20).contains(&core.len())
        && core.chars().all(|c| c.is_ascii_alphanumeric())
        && core.chars().filter(char::is_ascii_digit).count() >= 4
}

/// A national identifier whose checksum holds: Spanish DNI (8 digits and a
/// mod-23 letter) or NIE (X/Y/Z, 7 digits, letter), Brazilian CPF (11
/// digits, two mod-11 check digits), UK National Insurance number (two
/// letters, six digits, A-D).
pub fn is_national_id(v: &str) -> bool {
    let s: String = v
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '/'))
        .collect::<String>()
        .to_ascii_uppercase();
    let b = s.as_bytes();
    const DNI: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let dni = |digits: &str, letter: u8| {
        digits
            .parse::<u32>()
            .is_ok_and(|n| DNI[(n % 23) as usize] == letter)
    };
    if b.len() == 9 && b[..8].iter().all(u8::is_ascii_digit) && b[8].is_ascii_uppercase() {
        return dni(&s[..8], b[8]);
    }
    if b.len() == 9
        && matches!(b[0], b'X' | b'Y' | b'Z')
        && b[1..8].iter().all(u8::is_ascii_digit)
        && b[8].is_ascii_uppercase()
    {
        let lead = (b[0] - b'X').to_string();
        return dni(&format!("{lead}{}", &s[1..8]), b[8]);
    }
    if b.len() == 11 && b.iter().all(u8::is_ascii_digit) && b.iter().any(|&c| c != b[0]) {
        let d: Vec<u32> = b.iter().map(|c| (c - b'0') as u32).collect();
        let check = |n: usize| {
            let sum: u32 = (0..n).map(|i| d[i] * (n as u32 + 1 - i as u32)).sum();
            let r = (sum * 10) % 11;
            (if r == 10 { 0 } else { r }) == d[n]
        };
        return check(9) && check(10);
    }
    b.len() == 9
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && !b"DFIQUV".contains(&b[0])
        && !b"DFIOQUV".contains(&b[1])
        && b[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&b[8])
}

/// An identifier shaped like a national one: 5 to 20 letters and digits
/// (separators allowed), at least five digits.
pub fn is_id_shaped(v: &str) -> bool {
    let core: String = v
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '/'))
        .collect();
    (5..=20).contains(&core.len())
        && core.chars().all(|c| c.is_ascii_alphanumeric())
        && core.chars().filter(char::is_ascii_digit).count() >= 5
}

/// A passport-number-like value: 6 to 9 letters and digits, mostly digits.
pub fn is_passport_shaped(v: &str) -> bool {
    let v = v.trim();
    (6..=9).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric())
        && v.chars().filter(char::is_ascii_digit).count() >= 5
}

fn vin_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        'A'..='H' => Some(c as u32 - 'A' as u32 + 1),
        'J'..='N' => Some(c as u32 - 'J' as u32 + 1),
        'P' => Some(7),
        'R' => Some(9),
        'S'..='Z' => Some(c as u32 - 'S' as u32 + 2),
        _ => None,
    }
}

/// A vehicle identification number (ISO 3779): 17 characters, digits and
/// capitals without I, O and Q. Returns (shaped, check digit valid): the
/// check digit in position 9 is mandatory in North America only.
pub fn vin(v: &str) -> (bool, bool) {
    let v = v.trim().to_ascii_uppercase();
    if v.len() != 17
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"IOQ".contains(c))
    {
        return (false, false);
    }
    if v.chars().filter(char::is_ascii_digit).count() < 3 {
        return (false, false);
    }
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let mut sum = 0;
    for (c, w) in v.chars().zip(WEIGHTS) {
        match vin_value(c) {
            Some(n) => sum += n * w,
            None => return (false, false),
        }
    }
    let check = match sum % 11 {
        10 => 'X',
        d => char::from_digit(d, 10).unwrap_or('?'),
    };
    (true, v.as_bytes()[8] as char == check)
}

/// ISO 3166-1 alpha-2 country codes (SWIFT/BIC positions 5-6, IBAN prefixes).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// A SWIFT/BIC code (ISO 9362): four letters (bank), a country code, two
/// letters or digits (location), optionally three more (branch).
pub fn is_bic(v: &str) -> bool {
    let v = v.trim();
    let b = v.as_bytes();
    (b.len() == 8 || b.len() == 11)
        && b[..4].iter().all(u8::is_ascii_uppercase)
        && COUNTRIES.split(' ').any(|c| c.as_bytes() == &b[4..6])
        && b[6..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A MAC address: six hexadecimal pairs separated by `:` or `-`, or three
/// groups of four separated by `.`.
pub fn is_mac(v: &str) -> bool {
    let v = v.trim();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let parts: Vec<&str> = v.split(sep).collect();
        if parts.len() == 6 && parts.iter().all(|p| hex(p, 2)) {
            return true;
        }
    }
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| hex(p, 4))
}

/// A decimal degree with at least three decimals (a whole or coarse number
/// is far more often something else).
fn degree(s: &str, max: f64) -> bool {
    let s = s.trim();
    let Some((_, frac)) = s.split_once('.') else {
        return false;
    };
    frac.len() >= 3 && s.parse::<f64>().is_ok_and(|x| x.abs() <= max)
}

/// Coordinates: (one degree value, a latitude-longitude pair in one value
/// such as `40.7128, -74.0060`, `(40.71, -74.00)` or `POINT (-74.0 40.7)`).
pub fn coordinates(v: &str) -> (bool, bool) {
    let t = v.trim();
    if degree(t, 180.0) {
        return (true, false);
    }
    let inner = t
        .trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == ' ')
        .trim_matches(|c| c == '(' || c == ')' || c == '[' || c == ']');
    let parts: Vec<&str> = inner
        .split([',', ' ', ';'])
        .filter(|p| !p.is_empty())
        .collect();
    let pair = parts.len() == 2
        && ((degree(parts[0], 90.0) && degree(parts[1], 180.0))
            || (degree(parts[0], 180.0) && degree(parts[1], 90.0)));
    (pair, pair)
}

/// Values of a race or ethnicity column (lower case): (words only such a
/// column holds, words it shares with other columns such as colours).
const ETHNIC_DISTINCT: &[&str] = &[
    "hispanic",
    "latino",
    "latina",
    "latinx",
    "non-hispanic",
    "not hispanic",
    "caucasian",
    "african american",
    "african-american",
    "black or african american",
    "asian",
    "asian american",
    "pacific islander",
    "native hawaiian",
    "american indian",
    "alaska native",
    "native american",
    "multiracial",
    "multi-racial",
    "two or more races",
    "mixed race",
    "indigenous",
    "aboriginal",
    "middle eastern",
];
const ETHNIC_SHARED: &[&str] = &[
    "white",
    "black",
    "other",
    "unknown",
    "mixed",
    "hispanic or latino",
    "w",
    "b",
    "h",
    "a",
    "i",
    "u",
    "o",
];

fn ethnic_shares(values: &[&str]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mut distinct = 0;
    let mut known = 0;
    for v in values {
        let l = v.trim().to_lowercase();
        let hit = |list: &[&str]| {
            list.iter()
                .any(|w| l == *w || (w.len() > 4 && l.contains(w)))
        };
        if hit(ETHNIC_DISTINCT) {
            distinct += 1;
            known += 1;
        } else if hit(ETHNIC_SHARED) {
            known += 1;
        }
    }
    (known as f64 / n, distinct as f64 / n)
}

/// The first and last names of the 1990 US census (public domain): 5,163
/// first names, the 15,000 most common last names.
fn lexicon(text: &'static str) -> std::collections::HashSet<&'static str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

fn first_names() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| lexicon(include_str!("../data/first_names.txt")))
}

fn last_names() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| lexicon(include_str!("../data/last_names.txt")))
}

/// How a value reads as a person's name: (a known first or last name in
/// it, a full name: two to four words, the first a known first name and the
/// last a known last name, `Last, First` understood).
pub fn name_evidence(v: &str) -> (bool, bool) {
    let words: Vec<String> = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > 5 {
        return (false, false);
    }
    let first = first_names();
    let last = last_names();
    let known = words
        .iter()
        .any(|w| first.contains(w.as_str()) || last.contains(w.as_str()))
        || FIRST_NAMES.contains(&words[0].as_str());
    let (given, family) = if v.contains(',') {
        (words.get(1), words.first())
    } else {
        (words.first(), words.last())
    };
    // Two family names (`García Álvarez`): the first of them may be the known one.
    let second_family = (!v.contains(',') && words.len() >= 3)
        .then(|| &words[words.len() - 2])
        .is_some_and(|f| last.contains(f.as_str()));
    let given_known =
        given.is_some_and(|g| first.contains(g.as_str()) || FIRST_NAMES.contains(&g.as_str()));
    // The family-name lexicon holds the most common names only: a known
    // given name followed by one capitalised word (`Laurene Cordy`) is a
    // full name too.
    let unlisted_family = !v.contains(',')
        && words.len() == 2
        && v.split_whitespace().nth(1).is_some_and(|w| {
            let mut c = w.chars();
            c.next().is_some_and(char::is_uppercase)
                && w.chars().count() >= 3
                && c.all(|c| c.is_lowercase() || c == '\'' || c == '-')
        });
    let full = (2..=4).contains(&words.len())
        && given_known
        && (family.is_some_and(|f| last.contains(f.as_str())) || second_family || unlisted_family);
    (known, full)
}

/// Words that name a person by role; a column so named holds people's
/// names when its values read as names.
const ROLE_WORDS: &[&str] = &[
    "judge",
    "attorney",
    "prosecutor",
    "lawyer",
    "representative",
    "representante",
    "gerente",
    "manager",
    "officer",
    "agent",
    "doctor",
    "physician",
    "nurse",
    "teacher",
    "author",
    "reporter",
    "witness",
    "victim",
    "suspect",
    "defendant",
    "plaintiff",
    "beneficiary",
    "recipient",
    "signatory",
    "director",
    "president",
    "by",
    "contact",
    "buyer",
    "sender",
    "receiver",
    "spouse",
    "guardian",
    "parent",
    "mother",
    "father",
    "responsable",
    "titular",
];

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

/// Personal data inside free text: a column of sentences (six words or more
/// on average) or of documents (JSON objects and arrays) where values carry
/// e-mail addresses, telephone numbers, card numbers or IPv4 addresses is
/// flagged for that kind, at a confidence that grows with the share of
/// values that do.
fn free_text(values: &[&str], flags: &mut Vec<PiiFlag>) {
    if values.is_empty() {
        return;
    }
    let words: usize = values.iter().map(|v| v.split_whitespace().count()).sum();
    let documents = values
        .iter()
        .filter(|v| v.starts_with('{') || v.starts_with('['))
        .count();
    if (words as f64 / values.len() as f64) < 6.0 && documents * 2 < values.len() {
        return;
    }
    let runs = |v: &str| -> Vec<String> {
        // Maximal runs of phone/card characters, trimmed of separators.
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in v.chars().chain(std::iter::once('|')) {
            if c.is_ascii_digit() || "+-() ./".contains(c) {
                cur.push(c);
            } else {
                let t = cur.trim_matches(|c: char| !c.is_ascii_digit() && c != '+' && c != '(');
                if t.chars().filter(char::is_ascii_digit).count() >= 7 {
                    out.push(t.trim_end_matches(['(', ' ']).to_string());
                }
                cur.clear();
            }
        }
        out
    };
    let n = values.len() as f64;
    let share = |f: &dyn Fn(&str) -> bool| values.iter().filter(|v| f(v)).count() as f64 / n;
    let email = share(&|v| {
        v.split(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c))
            .any(|t| is_email(t.trim_end_matches('.')))
    });
    let phone_share = share(&|v| runs(v).iter().any(|r| phone(r, false).1));
    let card = share(&|v| runs(v).iter().any(|r| is_card(r)));
    // Dotted quads only: in prose and documents a bare `::` or `12:30`
    // is not an address.
    let ip = share(&|v| {
        v.split(|c: char| !c.is_ascii_digit() && c != '.')
            .any(|t| t.matches('.').count() == 3 && t.parse::<std::net::Ipv4Addr>().is_ok())
    });
    for (kind, s, what) in [
        (PiiKind::Email, email, "an e-mail address"),
        (PiiKind::Phone, phone_share, "a telephone number"),
        (PiiKind::CreditCard, card, "a card number"),
        (PiiKind::IpAddress, ip, "an IP address"),
    ] {
        if s < 0.2 || flags.iter().any(|f| f.kind == kind) {
            continue;
        }
        flags.push(PiiFlag {
            kind,
            confidence: ((0.5 + 0.4 * s).min(0.9) * 1000.0).round() / 1000.0,
            reasons: vec![format!(
                "free text: {:.0}% of sampled values contain {what}",
                s * 100.0
            )],
        });
    }
}

/// Scores one column.
pub fn detect(e: &ColumnEvidence<'_>) -> Vec<PiiFlag> {
    let names = TableNames::of(e.neighbours);
    let (pii, people) = names.around(None);
    detect_among(e, pii, people)
}

/// What the column names of a table say of each other, read once per
/// table: which names are a PII kind's, and which are a person's
/// (e-mail, phone, birth date, gender, age, first or last name). Asking it
/// for every column costs O(columns) where tokenising every neighbour for
/// every column cost O(columns²).
#[derive(Debug, Clone)]
pub struct TableNames {
    pii: Vec<bool>,
    people: Vec<bool>,
}

impl TableNames {
    /// Reads the names of a table's columns.
    pub fn of(columns: &[String]) -> TableNames {
        let (mut pii, mut people) = (Vec::new(), Vec::new());
        for c in columns {
            let t = tokens(c);
            pii.push(PiiKind::ALL.iter().any(|k| name_score(*k, &t, c) >= 1.0));
            people.push(
                [
                    PiiKind::Email,
                    PiiKind::Phone,
                    PiiKind::DateOfBirth,
                    PiiKind::Gender,
                    PiiKind::Age,
                ]
                .iter()
                .any(|k| name_score(*k, &t, c) >= 1.0)
                    || t.iter()
                        .any(|w| matches!(w.as_str(), "first" | "last" | "surname" | "forename")),
            );
        }
        TableNames { pii, people }
    }

    /// For the column at `index` (None: a column not among them), how many
    /// of the others are named like PII, and whether one is named like a
    /// person's.
    fn around(&self, index: Option<usize>) -> (usize, bool) {
        let others = |flags: &[bool]| {
            flags
                .iter()
                .enumerate()
                .filter(|(i, f)| **f && Some(*i) != index)
                .count()
        };
        (others(&self.pii), others(&self.people) > 0)
    }
}

/// [`detect`] for the column at `index` of a table whose names `names`
/// holds (`e.neighbours` is not read): what profiling calls per column.
pub fn detect_in(e: &ColumnEvidence<'_>, names: &TableNames, index: usize) -> Vec<PiiFlag> {
    let (pii, people) = names.around(Some(index));
    detect_among(e, pii, people)
}

/// What one column's name, table and sampled values say, computed once and
/// read by every kind's check.
struct ColumnFacts<'a> {
    toks: Vec<String>,
    values: Vec<&'a str>,
    /// How many values differ (case folded).
    distinct: usize,
    /// A categorical column written as codes (`1`, `2.0`, `F`, `HISP`): the
    /// name alone says what the codes stand for.
    coded: bool,
    person_table: bool,
    /// A column called just `name` names a person only beside person columns.
    people_around: bool,
    /// 0.0 to 1.0+: a person-like table and neighbouring PII columns.
    context: f64,
    neighbour_pii: usize,
    /// Shares of values that are known names, and known full names.
    known_names: f64,
    full_names: f64,
}

impl<'a> ColumnFacts<'a> {
    fn of(e: &ColumnEvidence<'a>, neighbour_pii: usize, people_named: bool) -> Self {
        let values: Vec<&str> = e
            .samples
            .iter()
            .flatten()
            .map(|s| whole_number(s.trim()))
            .filter(|s| !s.is_empty())
            .collect();
        let n = values.len().max(1) as f64;
        let distinct = values
            .iter()
            .map(|v| v.to_lowercase())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let coded = !values.is_empty()
            && distinct <= 12
            && values
                .iter()
                .all(|v| v.len() <= 8 && !v.contains(char::is_whitespace));
        // Table names are often plural: `customers` is a person-like table too.
        let person_table = tokens(e.table).iter().any(|t| {
            PERSON_TABLE_WORDS.contains(&t.as_str())
                || PERSON_TABLE_WORDS.contains(&t.trim_end_matches('s'))
        });
        let context = (if person_table { 0.6 } else { 0.0 }) + (neighbour_pii.min(2) as f64 * 0.2);
        let evidence: Vec<(bool, bool)> = values
            .iter()
            .filter(|v| is_name_like(v))
            .map(|v| name_evidence(v))
            .collect();
        let known_names = evidence.iter().filter(|e| e.0).count() as f64 / n;
        let full_names = evidence.iter().filter(|e| e.1).count() as f64 / n;
        ColumnFacts {
            toks: tokens(e.column),
            values,
            distinct,
            coded,
            person_table,
            people_around: person_table || people_named,
            context,
            neighbour_pii,
            known_names,
            full_names,
        }
    }

    /// The share of sampled values `f` accepts.
    fn frac(&self, f: impl Fn(&str) -> bool) -> f64 {
        let n = self.values.len().max(1) as f64;
        self.values.iter().filter(|v| f(v)).count() as f64 / n
    }

    /// How strongly the column's name says `kind` (0.0 to 1.0).
    fn name(&self, kind: PiiKind, column: &str) -> f64 {
        let name = name_score(kind, &self.toks, column);
        if kind == PiiKind::PersonName && self.toks == ["name"] && !self.people_around {
            return 0.2;
        }
        // People named by their role (`judge`, `representante_legal`,
        // `approved_by`) when the values are known names.
        if kind == PiiKind::PersonName
            && name == 0.0
            && self.known_names >= 0.5
            && self.toks.iter().any(|t| ROLE_WORDS.contains(&t.as_str()))
        {
            return 0.7;
        }
        name
    }
}

/// What the values say of `kind`: the share the kind's validator accepts,
/// whether such values are unambiguous on their own, and a note for the
/// reasons. `name` is how strongly the column's name says the kind.
fn value_evidence(kind: PiiKind, name: f64, f: &ColumnFacts<'_>) -> (f64, bool, Option<String>) {
    let named = name >= 1.0;
    let (value, strong) = match kind {
        PiiKind::Email => (f.frac(is_email), true),
        PiiKind::CreditCard => {
            let valid = f.frac(is_card);
            let shaped = f.frac(is_card_shaped);
            if valid < 0.5 && shaped >= 0.5 && named {
                let note = format!(
                    "{:.0}% of sampled values have card shapes but fail the Luhn checksum: test data?",
                    shaped * 100.0
                );
                return (shaped, false, Some(note));
            }
            (valid, true)
        }
        PiiKind::Iban => (f.frac(is_iban), true),
        PiiKind::IpAddress => (f.frac(is_ip), true),
        PiiKind::Ssn => (
            f.frac(|v| ssn(v).0),
            f.frac(|v| ssn(v).0 && ssn(v).1) >= 0.8,
        ),
        PiiKind::Phone => (
            f.frac(|v| phone(v, named).0),
            f.frac(|v| phone(v, named).1) >= 0.8,
        ),
        PiiKind::PostalCode => postal_evidence(named, f),
        PiiKind::DateOfBirth => {
            // A birth date kept in parts (`birthDay`, `birth_month`, `dob_yyyy`).
            if let Some(part) = named.then(|| date_part(&f.toks)).flatten() {
                return (f.frac(|v| part.accepts(v)), false, None);
            }
            let full = f.frac(is_birth_date);
            // `04/01/83`: a two-digit year only when the name says birth.
            if named && full < 0.5 {
                (f.frac(|v| is_birth_date(v) || short_date(v)), false)
            } else {
                (full, false)
            }
        }
        PiiKind::StreetAddress => {
            let street = f.frac(is_street);
            // Street words differ by country; when the name says
            // address, a line of words with a house number will do.
            if named && street < 0.8 {
                (f.frac(|v| is_street(v) || address_like(v)), street >= 0.5)
            } else {
                (street, true)
            }
        }
        PiiKind::PersonName => {
            // Full names are people on their own; single known names
            // (storms, places, products carry them too) need the
            // column's name or its table.
            let strong = f.full_names >= 0.5 || (f.known_names >= 0.5 && (named || f.person_table));
            (f.frac(is_name_like), strong)
        }
        PiiKind::Age => (f.frac(is_age), false),
        PiiKind::Gender => {
            let (known, words) = gender_shares(&f.values);
            let known = if named && f.coded { 1.0 } else { known };
            (known, words >= 0.5 && f.distinct <= 12)
        }
        PiiKind::DrivingLicence => (f.frac(is_licence_shaped), false),
        PiiKind::Passport => (f.frac(is_passport_shaped), false),
        PiiKind::Vin => (f.frac(|v| vin(v).0), f.frac(|v| vin(v).1) >= 0.5),
        PiiKind::SwiftBic => (f.frac(is_bic), false),
        PiiKind::MacAddress => (f.frac(is_mac), true),
        PiiKind::Coordinates => coordinate_evidence(f),
        PiiKind::NationalId => {
            let checked = f.frac(is_national_id);
            if checked >= 0.8 {
                (checked, true)
            } else {
                (f.frac(is_id_shaped), false)
            }
        }
        PiiKind::Ethnicity => {
            let (known, distinct_words) = ethnic_shares(&f.values);
            let known = if named && f.coded { 1.0 } else { known };
            (known, distinct_words >= 0.3)
        }
    };
    (value, strong, None)
}

/// Postal codes: ZIP and the unambiguous formats, and when the name says
/// postal code, four- and six-digit codes (Australia, Switzerland, India,
/// Colombia...) and ZIP+4 without its dash.
fn postal_evidence(named: bool, f: &ColumnFacts<'_>) -> (f64, bool) {
    let unambiguous = f.frac(|v| postal(v).1);
    let valid = f.frac(|v| postal(v).0);
    let numeric = |v: &str| {
        (3..=9).contains(&v.len())
            && v.len() != 7
            && v.len() != 8
            && v.chars().all(|c| c.is_ascii_digit())
    };
    if named && valid < 0.8 {
        (f.frac(|v| postal(v).0 || numeric(v)), unambiguous >= 0.5)
    } else {
        (valid, unambiguous >= 0.5)
    }
}

/// Latitude/longitude values or pairs, and projected coordinates (metres
/// east and north of an origin) when the name says easting or northing.
fn coordinate_evidence(f: &ColumnFacts<'_>) -> (f64, bool) {
    let pairs = f.frac(|v| coordinates(v).1);
    let projected_name = f.toks.iter().any(|t| t == "easting" || t == "northing");
    let projected = |v: &str| {
        v.replace(',', "")
            .parse::<f64>()
            .is_ok_and(|x| (100.0..1e8).contains(&x.abs()))
    };
    let value = if projected_name {
        f.frac(|v| coordinates(v).0 || projected(v))
    } else {
        f.frac(|v| coordinates(v).0)
    };
    (value, pairs >= 0.8)
}

/// The confidence that the column holds `kind`, and the reasons, from the
/// name's score, the values' evidence and the context.
fn score(kind: PiiKind, column: &str, name: f64, f: &ColumnFacts<'_>) -> (f64, Vec<String>) {
    let (value, strong, note) = value_evidence(kind, name, f);
    // One or two values prove little on their own (a 16-digit id passes
    // Luhn one time in ten).
    let numeric = matches!(kind, PiiKind::CreditCard | PiiKind::Ssn | PiiKind::Phone);
    let strong = strong && (f.values.len() >= 3 || name > 0.0 || !numeric);
    let context = f.context.min(1.0);
    let mut reasons: Vec<String> = note.into_iter().collect();
    let valid = || {
        format!(
            "{:.0}% of sampled values are valid {}",
            value * 100.0,
            kind.as_str()
        )
    };
    let mut c = if value >= 0.8 {
        reasons.push(valid());
        if strong {
            0.7 + 0.25 * name + 0.05 * context
        } else {
            0.3 + 0.5 * name + 0.15 * context
        }
    } else if value >= 0.5 {
        reasons.push(valid());
        (if strong { 0.45 } else { 0.25 }) + 0.4 * name + 0.1 * context
    } else if name >= 1.0 && f.values.is_empty() {
        reasons.push("column name, no values sampled".into());
        0.55
    } else {
        // Masked or malformed values with a telling name still count a little.
        0.35 * name
    };
    if name > 0.0 {
        reasons.push(format!("column name `{column}` suggests {}", kind.as_str()));
    }
    // Full names (a known first and last name) outweigh a name word
    // that usually means something else (`UserName` of full names).
    if negative(kind, &f.toks) && !(kind == PiiKind::PersonName && f.full_names >= 0.8) {
        reasons.push(format!(
            "column name `{column}` suggests something other than {}",
            kind.as_str()
        ));
        c -= 0.45;
    }
    if f.context > 0.0 && c > 0.0 {
        let table = if f.person_table {
            "a person-like table, "
        } else {
            ""
        };
        reasons.push(format!(
            "context: {table}{} neighbouring PII columns",
            f.neighbour_pii
        ));
    }
    // A bank's identifier is personal only in a person's record.
    if kind == PiiKind::SwiftBic && f.context < 0.4 {
        c = c.min(FLAG_THRESHOLD - 0.05);
    }
    (c.clamp(0.0, 1.0), reasons)
}

/// Generational and professional suffixes written after a person's name.
const NAME_SUFFIXES: &[&str] = &[
    "jr", "sr", "ii", "iii", "iv", "v", "vi", "vii", "esq", "md", "phd", "dds", "jnr", "snr",
];

/// The parts of a person's name kept in their own column beside the
/// person's other name columns: middle initials (`mi`, `mid_init` of single
/// letters) and suffixes (`suffix`, `suff` of `Jr`, `III`). Short codes on
/// their own say nothing; beside `first_name` and `last_name` they are part
/// of a person's name.
fn name_part(f: &ColumnFacts<'_>) -> Option<PiiFlag> {
    if !f.people_around || f.values.is_empty() {
        return None;
    }
    let named =
        |words: &[&str]| f.toks.len() <= 2 && f.toks.iter().any(|t| words.contains(&t.as_str()));
    let initial = |v: &str| {
        let t = v.trim_end_matches('.');
        t.chars().count() == 1 && t.chars().all(char::is_alphabetic)
    };
    let suffix = |v: &str| NAME_SUFFIXES.contains(&v.trim_end_matches('.').to_lowercase().as_str());
    let (share, what) = if named(&["mi", "minit", "mid", "initial", "init"]) {
        (f.frac(initial), "middle initials")
    } else if named(&["suffix", "suff", "sfx"]) {
        (f.frac(suffix), "name suffixes (Jr, III)")
    } else {
        return None;
    };
    (share >= 0.6).then(|| PiiFlag {
        kind: PiiKind::PersonName,
        confidence: ((0.5 + 0.3 * share) * 1000.0).round() / 1000.0,
        reasons: vec![format!(
            "{:.0}% of sampled values are {what}, beside a person's name columns",
            share * 100.0
        )],
    })
}

/// [`detect`] given how many neighbours are named like PII and whether one
/// is named like a person's.
fn detect_among(e: &ColumnEvidence<'_>, neighbour_pii: usize, people_named: bool) -> Vec<PiiFlag> {
    let facts = ColumnFacts::of(e, neighbour_pii, people_named);
    let mut flags = Vec::new();
    for kind in PiiKind::ALL {
        let name = facts.name(kind, e.column);
        let (c, reasons) = score(kind, e.column, name, &facts);
        if c >= FLAG_THRESHOLD {
            flags.push(PiiFlag {
                kind,
                confidence: (c * 1000.0).round() / 1000.0,
                reasons,
            });
        }
    }
    free_text(&facts.values, &mut flags);
    if flags.is_empty() {
        flags.extend(name_part(&facts));
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
    fn birth_dates_kept_in_parts() {
        let kinds = |column: &str, samples: &[&str]| -> Vec<PiiKind> {
            flags("players", column, samples)
                .iter()
                .map(|f| f.kind)
                .collect()
        };
        assert_eq!(
            kinds("birthDay", &["12", "10", "18", "5", "28"]),
            [PiiKind::DateOfBirth]
        );
        assert_eq!(
            kinds("birth_month", &["3", "11", "Jan", "12"]),
            [PiiKind::DateOfBirth]
        );
        assert_eq!(
            kinds("dob_year", &["1979", "1983", "1962"]),
            [PiiKind::DateOfBirth]
        );
        // Out of the part's range, or a birth place: not a date of birth.
        assert!(kinds("birthDay", &["45", "61", "90"]).is_empty());
        assert!(kinds("birthCity", &["Denver", "Havana", "Tokyo"]).is_empty());
        // Other dates in parts are not birth dates.
        assert!(kinds("hire_day", &["12", "10", "18"]).is_empty());
    }

    #[test]
    fn column_names_in_other_languages() {
        let kind = |table: &str, column: &str, samples: &[&str]| {
            flags(table, column, samples).first().map(|f| f.kind)
        };
        assert_eq!(
            kind(
                "asiakkaat",
                "syntymäaika",
                &["1984-03-12", "1990-11-02", "1975-07-30"]
            ),
            Some(PiiKind::DateOfBirth)
        );
        assert_eq!(
            kind(
                "musteriler",
                "dogum_tarihi",
                &["12.03.1984", "02.11.1990", "30.07.1975"]
            ),
            Some(PiiKind::DateOfBirth)
        );
        assert_eq!(
            kind(
                "zakaznici",
                "prijmeni",
                &["Novák", "Svoboda", "Dvořák", "Černý"]
            ),
            Some(PiiKind::PersonName)
        );
        assert_eq!(
            kind(
                "kunden",
                "postleitzahl",
                &["10115", "80331", "50667", "20095"]
            ),
            Some(PiiKind::PostalCode)
        );
        assert_eq!(
            kind("klienci", "e_posta", &["jan@example.pl", "ola@example.pl"]),
            Some(PiiKind::Email)
        );
        assert_eq!(
            kind("ansatte", "kjønn", &["K", "M", "K", "M"]),
            Some(PiiKind::Gender)
        );
        assert_eq!(
            kind(
                "asiakkaat",
                "puhelin",
                &["+358 40 1234567", "+358 50 7654321", "040 123 4567"]
            ),
            Some(PiiKind::Phone)
        );
    }

    #[test]
    fn initials_and_suffixes_beside_name_columns() {
        let people = ["first_name", "last_name", "hire_date"];
        let f = with("staff", "mi", &people, &["C", "J", "D.", "A", "S"]);
        assert_eq!(
            f.first().map(|f| f.kind),
            Some(PiiKind::PersonName),
            "{f:?}"
        );
        let f = with(
            "registry",
            "suffix",
            &people,
            &["JR", "III", "Sr.", "JR", "II"],
        );
        assert_eq!(
            f.first().map(|f| f.kind),
            Some(PiiKind::PersonName),
            "{f:?}"
        );
        // Without person columns around, the same codes are just codes.
        let f = with("catalog", "suffix", &["sku", "price"], &["JR", "III", "II"]);
        assert!(f.is_empty(), "{f:?}");
        let f = with("staff", "suffix", &people, &["x1", "b2", "c3"]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn addresses_inside_documents() {
        let docs = [
            r#"[{"name":null,"ip_address":"192.168.150.104","primary":true}]"#,
            r#"{"iface":"eth0","addr":"10.0.0.7"}"#,
            r#"{"iface":"eth1","addr":"10.0.3.9"}"#,
        ];
        let f = flags("configurations", "interfaces", &docs);
        assert_eq!(f.first().map(|f| f.kind), Some(PiiKind::IpAddress), "{f:?}");
        assert!(f[0].reasons[0].contains("IP address"), "{f:?}");
        // Version numbers have fewer parts; short labels are not documents.
        let f = flags(
            "packages",
            "manifest",
            &[r#"{"version":"1.2.3"}"#, r#"{"v":"10.4"}"#],
        );
        assert!(f.is_empty(), "{f:?}");
        assert!(flags("hosts", "note", &["see 10.0.0.1"]).is_empty());
    }

    #[test]
    fn columns_about_personal_data_are_not_flagged_by_name() {
        // Nothing sampled: only the name speaks, and it names a type or a state.
        let empty = |column: &str| {
            let s: Vec<Option<String>> = vec![None; 5];
            detect(&ColumnEvidence {
                table: "contacts",
                column,
                neighbours: &[],
                samples: &s,
            })
        };
        for column in [
            "phone_type",
            "cell_type",
            "email_verified",
            "address_status",
        ] {
            assert!(empty(column).is_empty(), "{column}: {:?}", empty(column));
        }
        for column in ["phone", "mobile_phone", "email", "home_address"] {
            assert!(!empty(column).is_empty(), "{column}");
        }
        // Values still speak: a column of addresses is one whatever its name.
        let f = flags(
            "contacts",
            "email_status",
            &["ann@example.com", "bo@example.org"],
        );
        assert_eq!(f.first().map(|f| f.kind), Some(PiiKind::Email), "{f:?}");
    }

    fn with(table: &str, column: &str, neighbours: &[&str], samples: &[&str]) -> Vec<PiiFlag> {
        let s: Vec<Option<String>> = samples.iter().map(|v| Some(v.to_string())).collect();
        let n: Vec<String> = neighbours.iter().map(|v| v.to_string()).collect();
        detect(&ColumnEvidence {
            table,
            column,
            neighbours: &n,
            samples: &s,
        })
    }

    /// Profiling reads a table's names once ([`TableNames`]) and asks
    /// per column; every column gets the flags [`detect`] gives it with its
    /// neighbours listed, including the ones context decides (a bare
    /// `name` beside person columns, a weak shape beside PII names).
    #[test]
    fn names_read_once_per_table_give_the_same_flags() {
        let columns: Vec<String> = ["id", "name", "email", "dob", "note", "zip", "name"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let samples: Vec<Vec<Option<String>>> = [
            vec!["1", "2", "3"],
            vec!["Mary Smith", "John Brown", "Linda Jones"],
            vec!["a@example.com", "b@example.org", "c@example.net"],
            vec!["1980-02-03", "1975-11-30", "1990-07-14"],
            vec!["called twice", "left a message", "ok"],
            vec!["02139", "10001", "94105"],
            vec!["Acme", "Globex", "Initech"],
        ]
        .iter()
        .map(|vs| vs.iter().map(|v| Some(v.to_string())).collect())
        .collect();
        let names = TableNames::of(&columns);
        let mut flagged = 0;
        for (i, c) in columns.iter().enumerate() {
            let neighbours: Vec<String> = columns
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| n.clone())
                .collect();
            let e = ColumnEvidence {
                table: "contacts",
                column: c,
                neighbours: &neighbours,
                samples: &samples[i],
            };
            let alone = detect(&e);
            assert_eq!(detect_in(&e, &names, i), alone, "{c}");
            flagged += usize::from(!alone.is_empty());
        }
        assert!(flagged >= 4, "the table has PII to flag: {flagged}");
    }

    #[test]
    fn validators_of_the_newer_kinds() {
        // VIN check digit (position 9) from the ISO 3779 weights.
        assert_eq!(vin("1M8GDM9AXKP042788"), (true, true));
        assert_eq!(vin("1M8GDM9A1KP042788"), (true, false));
        assert!(!vin("1M8GDM9AXKP04278").0, "16 characters");
        assert!(!vin("1M8GDM9AXKP04278O").0, "O is not used");
        assert!(
            is_mac("00:1A:2b:3C:4d:5E") && is_mac("00-1a-2b-3c-4d-5e") && is_mac("001a.2b3c.4d5e")
        );
        assert!(!is_mac("00:1A:2b:3C:4d"));
        assert!(is_bic("DEUTDEFF") && is_bic("NEDSZAJJXXX"));
        assert!(!is_bic("DEUTQQFF"), "QQ is no country");
        assert!(is_national_id("12345678Z"), "DNI letter");
        assert!(!is_national_id("12345678A"));
        assert!(is_national_id("X1234567L"), "NIE");
        assert!(is_national_id("529.982.247-25"), "CPF");
        assert!(!is_national_id("529.982.247-26"));
        assert!(!is_national_id("111.111.111-11"), "repeated digits");
        assert!(is_national_id("AB123456C"), "NINO");
        assert!(is_age("42") && is_age("21.5") && is_age("25-34") && is_age("65+"));
        assert!(!is_age("-500") && !is_age("130") && !is_age("1979"));
        assert_eq!(coordinates("40.7128, -74.0060"), (true, true));
        assert_eq!(coordinates("POINT (-74.0060 40.7128)"), (true, true));
        assert_eq!(coordinates("-73.98377"), (true, false));
        assert!(!coordinates("12").0, "a whole number is not a degree");
        assert!(is_street("牛埔東路260號"));
        assert!(!is_street(
            "we met an old friend at 5 in the afternoon and talked about the weather for hours"
        ));
        assert!(phone("4377777 Ext 7178", true).0);
        assert!(!phone("208.4397503", false).0, "a measurement");
        assert!(!phone("207.148.133.26", false).0, "an IPv4 address");
        assert_eq!(postal("L6T5M3"), (true, true));
        assert!(is_birth_date("March 12, 1984") && is_birth_date("12 Mar 1984"));
        assert!(is_birth_date("1st January 1990"));
        assert!(!is_birth_date("March 12, 1784"));
    }

    #[test]
    fn newer_kinds_from_names_and_values() {
        let top = |f: Vec<PiiFlag>| f.first().map(|f| f.kind);
        assert_eq!(
            top(flags("patients", "age", &["34", "71", "8", "45"])),
            Some(PiiKind::Age)
        );
        assert_eq!(
            top(flags("products", "stock_age", &["34", "71", "8", "45"])),
            None,
            "a number is an age only when the name says so"
        );
        assert_eq!(
            top(flags("t", "sex", &["M", "F", "F", "M"])),
            Some(PiiKind::Gender)
        );
        assert_eq!(
            top(flags("t", "x", &["Male", "Female", "Female", "Male"])),
            Some(PiiKind::Gender),
            "gender words need no name"
        );
        assert_eq!(
            top(flags("t", "sex", &["1.0", "2.0", "1.0"])),
            Some(PiiKind::Gender),
            "codes under a telling name"
        );
        assert_eq!(
            top(flags(
                "survey",
                "AskedOrForcedToExchangeForSex",
                &["0", "1", "0"]
            )),
            None,
            "a question about sex is not the attribute"
        );
        assert_eq!(
            top(flags(
                "fleet",
                "vin",
                &["1M8GDM9AXKP042788", "1HGCM82633A004352"]
            )),
            Some(PiiKind::Vin)
        );
        assert_eq!(
            top(flags(
                "customers",
                "dl_number",
                &["D1234567", "S5551234", "F9876543"]
            )),
            Some(PiiKind::DrivingLicence)
        );
        assert_eq!(
            top(flags(
                "brokers",
                "broker_license",
                &["5491919-PB00", "5483759-PB00"]
            )),
            None,
            "a business licence is not a driving licence"
        );
        assert_eq!(
            top(flags(
                "devices",
                "mac",
                &["00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5F"]
            )),
            Some(PiiKind::MacAddress)
        );
        assert_eq!(
            top(flags(
                "trips",
                "pickup",
                &["40.7128, -74.0060", "40.7306, -73.9352"]
            )),
            Some(PiiKind::Coordinates)
        );
        assert_eq!(
            top(flags(
                "stations",
                "lat",
                &["24.796454", "24.802579", "24.77279"]
            )),
            Some(PiiKind::Coordinates)
        );
        assert_eq!(
            top(flags("t", "race", &["White", "Black", "Asian", "Hispanic"])),
            Some(PiiKind::Ethnicity)
        );
        assert_eq!(
            top(flags(
                "products",
                "colour",
                &["White", "Black", "White", "Black"]
            )),
            None,
            "colours are not races"
        );
        assert_eq!(
            top(flags(
                "citizens",
                "dni",
                &["12345678Z", "X1234567L", "87654321X"]
            )),
            Some(PiiKind::NationalId)
        );
        let f = with(
            "customers",
            "swift",
            &["name", "email"],
            &["DEUTDEFF", "NEDSZAJJXXX"],
        );
        assert_eq!(top(f), Some(PiiKind::SwiftBic));
        assert_eq!(
            top(flags("banks", "bic", &["DEUTDEFF", "NEDSZAJJXXX"])),
            None,
            "a bank's own code is not personal"
        );
    }

    #[test]
    fn card_numbers_that_fail_luhn_are_still_cards_by_name() {
        let test_data = ["4111111111111112", "5500000000000005", "4000123412341235"];
        let f = flags("payments", "card_number", &test_data);
        assert_eq!(f[0].kind, PiiKind::CreditCard);
        assert!(f[0].confidence < 0.9, "lower confidence without checksums");
        assert!(
            f[0].reasons.iter().any(|r| r.contains("test data?")),
            "{:?}",
            f[0].reasons
        );
        assert!(
            flags("t", "reading", &test_data)
                .iter()
                .all(|f| f.kind != PiiKind::CreditCard),
            "shapes alone are not enough"
        );
    }

    #[test]
    fn people_storms_and_places() {
        let top = |f: Vec<PiiFlag>| f.first().map(|f| f.kind);
        assert_eq!(
            top(flags(
                "events",
                "Person",
                &["Maria Gonzalez", "James Smith", "Linda Brown"]
            )),
            Some(PiiKind::PersonName),
            "full names flag a column whatever it is called"
        );
        assert_eq!(
            top(flags(
                "storms",
                "name",
                &["Katrina", "Andrew", "Sandy", "Irene"]
            )),
            None,
            "single first names outside a person context are not people"
        );
        assert_eq!(
            top(with(
                "staff",
                "name",
                &["email", "phone"],
                &["Katrina", "Andrew", "Sandy", "Irene"]
            )),
            Some(PiiKind::PersonName)
        );
        assert_eq!(
            top(flags(
                "permits",
                "business_name",
                &["Acme Holdings LLC", "Steller LLC"]
            )),
            None
        );
        assert_eq!(
            top(flags(
                "cases",
                "judge",
                &["HOWARD M. MALTZ", "MARY SMITH", "JOHN A. DOE"]
            )),
            Some(PiiKind::PersonName),
            "a role word with names in it"
        );
        assert_eq!(
            top(flags("cases", "saw_doctor", &["YES", "NO", "YES"])),
            None
        );
    }

    #[test]
    fn free_text_with_contact_details() {
        let notes = [
            "Customer called about the late delivery, reach her at jane.doe@example.com please",
            "Left a voicemail, second attempt tomorrow morning at the usual time",
            "Asked for a refund by email to bob@example.org before the end of the month",
        ];
        let f = flags("tickets", "notes", &notes);
        assert_eq!(f[0].kind, PiiKind::Email, "{f:?}");
        assert!(f[0].reasons[0].contains("free text"));
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
