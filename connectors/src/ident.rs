//! Identifier quoting, once per dialect: the SQL standard's double quotes
//! (SQLite, PostgreSQL, DataFusion) and MySQL's backticks. A quote inside
//! the name is doubled, so any name (spaces, keywords, quotes) is safe.

/// `"name"`: SQLite, PostgreSQL and DataFusion SQL.
pub fn ansi(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `` `name` ``: MySQL and MariaDB.
pub fn mysql(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_inside_names_are_doubled() {
        assert_eq!(super::ansi("a\"b c"), "\"a\"\"b c\"");
        assert_eq!(super::mysql("a`b"), "`a``b`");
    }
}
