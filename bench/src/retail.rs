//! The legacy retail database generator.

use std::path::Path;

use rusqlite::{params, Connection};

/// Sizes of the generated database.
#[derive(Debug, Clone, Copy)]
pub struct RetailSize {
    /// Customers.
    pub customers: u64,
    /// Products.
    pub products: u64,
    /// Orders (each with 1 to 5 lines).
    pub orders: u64,
}

impl RetailSize {
    /// The default: a few thousand rows in all.
    pub fn small() -> Self {
        RetailSize {
            customers: 500,
            products: 120,
            orders: 1_000,
        }
    }

    /// Scales the default by `factor`.
    pub fn scaled(factor: u64) -> Self {
        let s = Self::small();
        RetailSize {
            customers: s.customers * factor,
            products: s.products * factor.min(100),
            orders: s.orders * factor,
        }
    }
}

/// SplitMix64: a tiny, fully specified PRNG, so a seed gives the same data on
/// every platform and version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances", "Donald", "Radia",
    "José", "Zoë", "Søren", "Aiko",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Dijkstra", "Allen",
    "Knuth", "Perlman", "Núñez", "O'Brien", "Müller", "Tanaka",
];
const CITIES: &[&str] = &[
    "Lyon", "Porto", "Leeds", "Austin", "Osaka", "Graz", "Bergen", "Quito",
];
const STATUS: &[&str] = &[
    "NEW",
    "PAID",
    "SHIPPED",
    "DELIVERED",
    "RETURNED",
    "CANCELLED",
];
const WORDS: &[&str] = &[
    "Steel", "Oak", "Linen", "Copper", "Wool", "Glass", "Cedar", "Clay",
];
const THINGS: &[&str] = &[
    "Kettle", "Chair", "Lamp", "Blanket", "Mug", "Shelf", "Vase", "Rug",
];

/// The retail schema (SQLite).
const SCHEMA: &str = "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
CREATE TABLE customers (
    cust_id INTEGER PRIMARY KEY,
    cust_fname VARCHAR(40) NOT NULL,
    cust_lname VARCHAR(40) NOT NULL,
    cust_email VARCHAR(120),
    cust_dob DATE,
    cust_phone VARCHAR(20),
    cust_city VARCHAR(40),
    created_ts DATETIME NOT NULL
);
CREATE TABLE products (
    prod_id INTEGER PRIMARY KEY,
    prod_sku CHAR(8) NOT NULL,
    prod_name VARCHAR(80) NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL,
    qty_on_hand INTEGER NOT NULL,
    discontinued BOOLEAN NOT NULL DEFAULT 0
);
CREATE TABLE orders (
    ord_id INTEGER PRIMARY KEY,
    cust_id INTEGER NOT NULL REFERENCES customers(cust_id),
    ord_ts DATETIME NOT NULL,
    ord_status VARCHAR(12) NOT NULL,
    ord_total NUMERIC(12,2) NOT NULL,
    ord_note TEXT
);
CREATE TABLE order_lines (
    ord_id INTEGER NOT NULL REFERENCES orders(ord_id),
    line_no INTEGER NOT NULL,
    prod_id INTEGER NOT NULL REFERENCES products(prod_id),
    qty INTEGER NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL,
    PRIMARY KEY (ord_id, line_no)
);";

/// Writes the retail database to `path` (replacing it). Returns rows written.
pub fn generate(path: &Path, size: RetailSize, seed: u64) -> rusqlite::Result<u64> {
    let _ = std::fs::remove_file(path);
    let mut conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    let mut rng = Rng(seed);
    let tx = conn.transaction()?;
    let mut rows = customers(&tx, size, &mut rng)?;
    let prices = products(&tx, size, &mut rng)?;
    rows += prices.len() as u64;
    rows += orders(&tx, size, &prices, &mut rng)?;
    tx.commit()?;
    Ok(rows)
}

/// The customers, with their optional e-mail, birth date and phone.
fn customers(tx: &Connection, size: RetailSize, rng: &mut Rng) -> rusqlite::Result<u64> {
    let mut ins = tx.prepare("INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
    for id in 1..=size.customers {
        let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
        let email = (rng.below(10) != 0).then(|| {
            format!(
                "{}.{}{}@example.com",
                f.to_lowercase(),
                l.to_lowercase().replace('\'', ""),
                id
            )
        });
        let dob = (rng.below(8) != 0).then(|| {
            format!(
                "{}-{:02}-{:02}",
                1940 + rng.below(65),
                1 + rng.below(12),
                1 + rng.below(28)
            )
        });
        let phone = (rng.below(4) != 0)
            .then(|| format!("+1-555-{:03}-{:04}", rng.below(1000), rng.below(10_000)));
        let created = format!(
            "20{:02}-{:02}-{:02} {:02}:{:02}:{:02}",
            10 + rng.below(15),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        );
        ins.execute(params![
            id as i64,
            f,
            l,
            email,
            dob,
            phone,
            rng.pick(CITIES),
            created
        ])?;
    }
    Ok(size.customers)
}

/// The products; returns each one's price in cents.
fn products(tx: &Connection, size: RetailSize, rng: &mut Rng) -> rusqlite::Result<Vec<i64>> {
    let mut ins = tx.prepare("INSERT INTO products VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut prices = Vec::with_capacity(size.products as usize);
    for id in 1..=size.products {
        let cents = 199 + rng.below(50_000) as i64;
        prices.push(cents);
        ins.execute(params![
            id as i64,
            format!("SKU{:05}", id),
            format!("{} {}", rng.pick(WORDS), rng.pick(THINGS)),
            cents as f64 / 100.0,
            rng.below(500) as i64,
            (rng.below(10) == 0) as i64
        ])?;
    }
    Ok(prices)
}

/// The orders and their lines, each order's total the sum of its lines.
fn orders(
    tx: &Connection,
    size: RetailSize,
    prices: &[i64],
    rng: &mut Rng,
) -> rusqlite::Result<u64> {
    let mut rows = 0u64;
    let mut ord = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut line = tx.prepare("INSERT INTO order_lines VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for id in 1..=size.orders {
        let n = 1 + rng.below(5);
        let mut total = 0i64;
        let mut lines = Vec::new();
        for no in 1..=n {
            let prod = 1 + rng.below(size.products);
            let qty = 1 + rng.below(9) as i64;
            let cents = prices[(prod - 1) as usize];
            total += cents * qty;
            lines.push((no, prod, qty, cents));
        }
        let ts = format!(
            "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}",
            18 + rng.below(7),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        );
        let note = (rng.below(6) == 0).then(|| "leave at the door — ring twice".to_string());
        ord.execute(params![
            id as i64,
            (1 + rng.below(size.customers)) as i64,
            ts,
            rng.pick(STATUS),
            total as f64 / 100.0,
            note
        ])?;
        rows += 1;
        for (no, prod, qty, cents) in lines {
            line.execute(params![
                id as i64,
                no as i64,
                prod as i64,
                qty,
                cents as f64 / 100.0
            ])?;
            rows += 1;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let n = generate(&a, RetailSize::small(), 7).unwrap();
        assert_eq!(generate(&b, RetailSize::small(), 7).unwrap(), n);
        assert!(n > 2_000, "a few thousand rows: {n}");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
}
