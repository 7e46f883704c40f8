//! Typed, layered configuration: defaults < TOML file < environment < flags.
//!
//! Every key lives in [`MigrationConfig`]; `docs/architecture.md` lists them
//! with their defaults (a test checks the two agree). Environment variables are
//! named `SENSEI_<SECTION>__<KEY>` (for example `SENSEI_DELIVERY__BATCH_ROWS`);
//! flags arrive as `section.key=value` pairs. Each layer is validated on its own
//! so that an error names where the bad value came from: the file with its line
//! and key, the variable, or the flag.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::secret::redact_url;

/// A whole migration's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// Naming of the migration.
    pub migration: MigrationSection,
    /// Where the data comes from.
    pub source: SourceSection,
    /// Where the data goes.
    pub target: TargetSection,
    /// Phase 1 settings.
    pub ingestion: IngestionSection,
    /// Phase 2 settings.
    pub transformation: TransformationSection,
    /// Phase 3 settings.
    pub verification: VerificationSection,
    /// Phase 4 settings.
    pub delivery: DeliverySection,
    /// Leases, heartbeats and retries.
    pub scheduler: SchedulerSection,
    /// Local process settings.
    pub runtime: RuntimeSection,
    /// The certificate signing key.
    pub signing: SigningSection,
    /// Topics on a Kafka cluster (`runtime.topics = "kafka://..."`).
    pub topics: TopicsSection,
}

/// `[migration]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationSection {
    /// Name of the migration; with the source and target it determines the migration id.
    pub name: String,
}

impl Default for MigrationSection {
    fn default() -> Self {
        MigrationSection {
            name: "migration".into(),
        }
    }
}

/// `[source]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSection {
    /// Source URL: `sqlite://PATH`, `postgresql://...`, `mysql://...`,
    /// `csv://PATH`, `parquet://PATH`, `file://PATH.csv|parquet`.
    pub url: String,
    /// Text encoding of CSV files: `auto` to detect, or a label (`utf-8`, `latin1`, ...).
    pub encoding: String,
    /// Detected encodings below this confidence are refused, naming the file and bytes.
    pub encoding_min_confidence: f64,
    /// CSV field delimiter: `auto`, `tab`, or one character.
    pub csv_delimiter: String,
    /// Whether the first CSV record names the columns.
    pub csv_header: bool,
    /// Malformed CSV records: `reject` (stop before any work) or `quarantine` (set aside, counted).
    pub bad_rows: String,
    /// MySQL/MariaDB: `lock` holds a global read lock while partitions start
    /// their snapshots (one consistent extraction; writers wait), `session`
    /// lets each partition read its own snapshot.
    pub mysql_consistency: String,
    /// Database sources: a file holding the password (mode 0600 or 0400), used
    /// when the URL carries none; empty reads `PGPASSWORD` / `MYSQL_PWD`.
    pub password_file: String,
    /// Database sources: `disable`, `prefer`, `require` (encrypted, certificate
    /// not checked) or `verify-full`.
    pub ssl_mode: String,
    /// Database sources: seconds to wait for a connection.
    pub connect_timeout_s: u64,
    /// Source sessions open at once for extraction across the cluster (one
    /// per running ingestion task; the head's discovery session is extra); 0: no limit.
    pub max_sessions: u32,
}

impl Default for SourceSection {
    fn default() -> Self {
        SourceSection {
            url: String::new(),
            encoding: "auto".into(),
            encoding_min_confidence: 0.9,
            csv_delimiter: "auto".into(),
            csv_header: true,
            bad_rows: "reject".into(),
            mysql_consistency: "lock".into(),
            password_file: String::new(),
            ssl_mode: "prefer".into(),
            connect_timeout_s: 30,
            max_sessions: 8,
        }
    }
}

/// `[target]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSection {
    /// Target URL, same forms as the source.
    pub url: String,
    /// Optional DDL file applied to the target before delivery; `@target` maps
    /// onto the tables the target database already holds; empty mirrors the source.
    pub schema: String,
    /// PostgreSQL: the schema (namespace) every write stays inside, created
    /// when absent; empty: the session's default (`public`).
    pub namespace: String,
    /// Database targets: a file holding the password (mode 0600 or 0400),
    /// used when the URL carries none; empty reads `PGPASSWORD` / `MYSQL_PWD`.
    pub password_file: String,
    /// Database targets: `disable`, `prefer`, `require` or `verify-full`.
    pub ssl_mode: String,
    /// Database targets: seconds to wait for a connection.
    pub connect_timeout_s: u64,
    /// MySQL/MariaDB targets: load batches with `LOAD DATA LOCAL INFILE`;
    /// false (or a server that refuses it) writes multi-row INSERTs.
    pub mysql_local_infile: bool,
}

impl Default for TargetSection {
    fn default() -> Self {
        TargetSection {
            url: String::new(),
            schema: String::new(),
            namespace: String::new(),
            password_file: String::new(),
            ssl_mode: "prefer".into(),
            connect_timeout_s: 30,
            mysql_local_infile: true,
        }
    }
}

/// `[ingestion]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestionSection {
    /// Maximum rows per staged partition.
    pub partition_rows: u64,
    /// Maximum bytes per staged partition, estimated from the Arrow size of a
    /// sample of each table; 0 turns the byte limit off.
    pub partition_bytes: u64,
    /// Rows sampled per table for profiling.
    pub profile_sample_rows: u64,
    /// Integer columns to split tables on instead of their primary key:
    /// `table.column, other_table.column` (empty: primary keys, SQLite rowids).
    pub partition_key: String,
    /// Milliseconds each Scout session pauses after every batch it reads,
    /// to leave a busy source breathing room (0: no pause).
    pub batch_pause_ms: u64,
}

impl Default for IngestionSection {
    fn default() -> Self {
        IngestionSection {
            partition_rows: 100_000,
            partition_bytes: 268_435_456,
            profile_sample_rows: 10_000,
            partition_key: String::new(),
            batch_pause_ms: 0,
        }
    }
}

/// `[transformation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformationSection {
    /// Mappings at or above this confidence are approved without review.
    pub auto_approval_threshold: f64,
    /// More abbreviations for schema matching: `abbr=expansion, abbr2=expansion two`.
    pub abbreviations: String,
    /// Approve every mapping entry that waits for review (`--approve-all`);
    /// the certificate says so.
    pub approve_all: bool,
    /// A review file kept with the migration (TOML: `reviewed_by` and
    /// `[[entry]]` tables naming `column = "table.column"`, `decision` =
    /// approve, reject or expression, and `why`), applied to the mapping
    /// spec when it is planned, as `sensei review` would.
    pub review_file: String,
    /// What becomes of columns flagged as PII: `keep`, `mask`, `hash` (keyed) or `drop`.
    pub pii_policy: String,
    /// Per PII kind, overriding `pii_policy`: `email=mask, ssn=drop, phone=hash`.
    pub pii_policy_by_kind: String,
    /// Key file of the keyed hash (first line; mode 0600 or 0400).
    pub pii_hash_key_file: String,
    /// Refuse, instead of count, values changed on the way in (an empty CSV
    /// field read as NULL, a MySQL zero date, ...): the migration halts
    /// before any transformation, naming each table, column, change and
    /// count (`sensei migrate --strict`).
    pub strict: bool,
}

impl Default for TransformationSection {
    fn default() -> Self {
        TransformationSection {
            auto_approval_threshold: 0.92,
            abbreviations: String::new(),
            approve_all: false,
            review_file: String::new(),
            pii_policy: "keep".into(),
            pii_policy_by_kind: String::new(),
            pii_hash_key_file: String::new(),
            strict: false,
        }
    }
}

/// `[verification]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationSection {
    /// Relative tolerance of floating-point and decimal values in row comparisons.
    pub numeric_tolerance: f64,
    /// Tolerance of timestamps in row comparisons, milliseconds.
    pub timestamp_tolerance_ms: u64,
    /// Folder of Great Expectations suites, one `<target table>.json` per table.
    pub expectations_dir: String,
    /// Queries of the generated replay suite per table at most (0 turns it off).
    pub max_queries: u64,
    /// How strings compare: `exact`, `normalized` or `semantic`.
    pub string_mode: String,
    /// Per column: `table.column=normalized, table.other=semantic`.
    pub string_modes: String,
    /// Classes of equivalent values for the semantic mode: `Y|yes|true, N|no|false`.
    pub equivalences: String,
    /// Largest Kolmogorov-Smirnov statistic allowed between expected and
    /// transformed numbers, dates and timestamps of a column.
    pub ks_threshold: f64,
    /// Largest total variation distance allowed between the value frequencies
    /// of a text or boolean column.
    pub tvd_threshold: f64,
    /// Rows per table the distribution tests compare at most: a sample by
    /// key hash, the same rows on both sides (0: every row).
    pub stats_sample_rows: u64,
    /// The undecidable band around each tolerance, as a fraction of it: a
    /// difference within it of the tolerance makes the check INCONCLUSIVE.
    pub inconclusive_band: f64,
    /// A file of SQL queries written against the source schema, separated
    /// by `;`: each is run on the source snapshot and, rewritten through the
    /// mapping, on the transformed rows, and the results compared.
    pub queries_file: String,
    /// Seconds between checkpoints `sensei checkpoint take --count N` records
    /// (0: one after another).
    pub checkpoint_interval_s: u64,
    /// Semantic checks derived from the target schema (e-mail columns hold
    /// e-mail addresses, ...): `fail` (a broken rule fails the certificate),
    /// `warn` (reported only) or `off`.
    pub semantic_checks: String,
}

impl Default for VerificationSection {
    fn default() -> Self {
        VerificationSection {
            semantic_checks: "fail".into(),
            numeric_tolerance: 0.0001,
            timestamp_tolerance_ms: 1_000,
            expectations_dir: String::new(),
            max_queries: 1_000,
            string_mode: "exact".into(),
            string_modes: String::new(),
            equivalences: String::new(),
            ks_threshold: 0.05,
            tvd_threshold: 0.01,
            stats_sample_rows: 200_000,
            inconclusive_band: 0.1,
            queries_file: String::new(),
            checkpoint_interval_s: 0,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// Rows per delivered batch (one target transaction with its ledger row).
    pub batch_rows: u64,
    /// After delivery, check the rows read back from the target: their
    /// digests and Merkle roots against the certificate and, per
    /// [`DeliverySection::post_replay`], the query suite (the user's source
    /// queries, foreign-key coverage, per-table counts and per-column
    /// aggregates) replayed on them against the source snapshot.
    pub post_validation: bool,
    /// When the post-delivery query suite is replayed on the rows read
    /// back: `on_difference` (only when a table read back differs from the
    /// certificate, to say which queries and columns the difference
    /// reaches: rows whose digest and Merkle root are the certificate's
    /// are the certified rows, on which verification already replayed the
    /// suite) or `always`.
    pub post_replay: PostReplay,
    /// Re-sync a target whose source changed since an earlier delivery of
    /// the same migration: before the first batch, every target table of the
    /// mapping is emptied and its ledger rows forgotten (`sensei migrate
    /// --resync` sets it and starts over).
    pub resync: bool,
    /// Milliseconds each delivery session pauses after every batch it
    /// commits, to leave a busy target breathing room (0: no pause).
    pub batch_pause_ms: u64,
    /// Stage the delivery where the target allows it (PostgreSQL or
    /// MySQL/MariaDB, a user who may create a schema or database, a target
    /// holding none of the delivery's tables): loaded into a staging area
    /// while verification runs,
    /// published in one transaction after the certificate and the checks
    /// on the staged rows pass. Off: written in place after the certificate.
    pub staging: bool,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            batch_rows: 10_000,
            post_validation: true,
            post_replay: PostReplay::OnDifference,
            resync: false,
            batch_pause_ms: 0,
            staging: true,
        }
    }
}

/// When the post-delivery query suite runs (`delivery.post_replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostReplay {
    /// Only when a table read back differs from the certificate.
    OnDifference,
    /// After every delivery.
    Always,
}

/// `[scheduler]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSection {
    /// Lease length; a task whose lease is not renewed within it is reassigned.
    pub lease_ms: u64,
    /// How often agents renew their leases.
    pub heartbeat_ms: u64,
    /// Attempts per task before the migration halts.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Largest retry delay.
    pub backoff_max_ms: u64,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        SchedulerSection {
            lease_ms: 10_000,
            heartbeat_ms: 1_000,
            max_attempts: 4,
            backoff_base_ms: 250,
            backoff_max_ms: 10_000,
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSection {
    /// Folder for state, artifacts, staging and the event log.
    pub workdir: String,
    /// Worker agents started by `sensei migrate`.
    pub workers: u32,
    /// Topic backend: `embedded` (files in the working folder) or
    /// `kafka://HOST:PORT[,HOST:PORT]` (a Kafka cluster's bootstrap servers).
    #[serde(alias = "event_log")]
    pub topics: String,
    /// `HOST:PORT` where the process serves its metrics at `/metrics`
    /// (Prometheus text format); empty: not served.
    pub metrics_addr: String,
    /// `HOST:PORT` where `sensei migrate` serves the web dashboard while it
    /// runs (and, when mapping entries wait for review, until they are
    /// decided there); empty: not served.
    pub dashboard_addr: String,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            workdir: ".sensei".into(),
            workers: 2,
            topics: "embedded".into(),
            metrics_addr: String::new(),
            dashboard_addr: String::new(),
        }
    }
}

/// `[topics]`: how the Kafka backend creates its topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsSection {
    /// Replication factor of new topics (the cluster's broker count when it
    /// has fewer, with a warning).
    pub replication: u32,
    /// `min.insync.replicas` of new topics (at most the replication).
    pub min_insync_replicas: u32,
    /// How long a record stays after it was written (`retention.ms`): a
    /// migration's events outlive it by this grace period. A number and a
    /// unit: `7d`, `36h`, `90m`, `600s`.
    pub retention_grace: String,
    /// How long to wait for the cluster (connecting, acknowledgements, reads).
    pub timeout_ms: u64,
}

impl Default for TopicsSection {
    fn default() -> Self {
        TopicsSection {
            replication: 3,
            min_insync_replicas: 2,
            retention_grace: "7d".into(),
            timeout_ms: 10_000,
        }
    }
}

/// A duration written as a number and a unit (`7d`, `36h`, `90m`, `600s`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let secs = match unit {
        'd' => n.checked_mul(86_400)?,
        'h' => n.checked_mul(3_600)?,
        'm' => n.checked_mul(60)?,
        's' => n,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// `[signing]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSection {
    /// Ed25519 key file (mode 0600); empty means `<workdir>/keys/signing.key`, created on first use.
    pub key_file: String,
}

/// Every configuration key with its default, in `section.key` form, for docs and checks.
pub fn documented_keys() -> Vec<(String, String)> {
    let value =
        toml::Value::try_from(MigrationConfig::default()).unwrap_or(toml::Value::Boolean(false));
    let mut out = Vec::new();
    if let toml::Value::Table(sections) = value {
        for (section, body) in sections {
            if let toml::Value::Table(keys) = body {
                for (key, v) in keys {
                    out.push((format!("{section}.{key}"), v.to_string()));
                }
            }
        }
    }
    out
}

/// Builds a configuration from its layers.
#[derive(Debug, Default)]
pub struct ConfigLoader {
    file: Option<PathBuf>,
    env: Vec<(String, String)>,
    flags: Vec<(String, String)>,
}

impl ConfigLoader {
    /// Starts from the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TOML file layer.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Adds the `SENSEI_<SECTION>__<KEY>` variables of the process environment.
    pub fn process_env(self) -> Self {
        let vars = std::env::vars().collect::<Vec<_>>();
        self.env(vars)
    }

    /// Adds environment variables (only those named `SENSEI_<SECTION>__<KEY>` count).
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("SENSEI_") && k.contains("__"))
            .collect();
        self
    }

    /// Adds a flag override, `key` in `section.key` form.
    pub fn flag(mut self, key: &str, value: impl Into<String>) -> Self {
        self.flags.push((key.to_string(), value.into()));
        self
    }

    /// Merges the layers and validates the result.
    pub fn load(self) -> Result<MigrationConfig> {
        let file = self.file.clone();
        let config = self.merged()?;
        config.validate(file.as_deref())?;
        Ok(config)
    }

    /// Merges the layers without asking for a complete migration (no source
    /// or target needed): the settings of a process that serves many
    /// migrations, like a cluster's head.
    pub fn merged(self) -> Result<MigrationConfig> {
        let mut merged = toml::Value::try_from(MigrationConfig::default()).map_err(|e| {
            RuntimeError::Config {
                origin: "defaults".into(),
                message: e.to_string(),
            }
        })?;
        let mut base_dir = None;
        if let Some(path) = &self.file {
            let text =
                std::fs::read_to_string(path).map_err(|source| RuntimeError::ConfigRead {
                    path: path.clone(),
                    source,
                })?;
            // Deserialise the file alone first: toml's errors then carry the
            // file's own line, column and key.
            toml::from_str::<MigrationConfig>(&text).map_err(|e| RuntimeError::Config {
                origin: path.display().to_string(),
                message: e.to_string().trim_end().to_string(),
            })?;
            let mut table: toml::Table =
                toml::from_str(&text).map_err(|e| RuntimeError::Config {
                    origin: path.display().to_string(),
                    message: e.to_string(),
                })?;
            // The older name of `runtime.topics`.
            if let Some(toml::Value::Table(runtime)) = table.get_mut("runtime") {
                if let Some(v) = runtime.remove("event_log") {
                    runtime.entry("topics").or_insert(v);
                }
            }
            merge(&mut merged, toml::Value::Table(table));
            base_dir = path.parent().map(Path::to_path_buf);
        }
        for (name, value) in &self.env {
            let key = name["SENSEI_".len()..]
                .to_ascii_lowercase()
                .replacen("__", ".", 1);
            set_key(
                &mut merged,
                &key,
                value,
                &format!("environment variable {name}"),
            )?;
        }
        for (key, value) in &self.flags {
            set_key(&mut merged, key, value, &format!("flag {key}"))?;
        }
        let mut config: MigrationConfig =
            merged
                .try_into()
                .map_err(|e: toml::de::Error| RuntimeError::Config {
                    origin: "merged configuration".into(),
                    message: e.to_string(),
                })?;
        if let Some(dir) = base_dir {
            config.resolve_relative_to(&dir);
        }
        Ok(config)
    }
}

impl MigrationConfig {
    /// Makes relative `sqlite://` / `file://` paths and file settings relative to `dir`
    /// (the configuration file's folder), as a user reading the file expects.
    pub fn resolve_relative_to(&mut self, dir: &Path) {
        for url in [&mut self.source.url, &mut self.target.url] {
            for scheme in ["sqlite://", "file://", "csv://", "parquet://"] {
                if let Some(rest) = url.strip_prefix(scheme) {
                    if !rest.is_empty() && Path::new(rest).is_relative() {
                        *url = format!("{scheme}{}", dir.join(rest).display());
                    }
                }
            }
        }
        for file in [
            &mut self.source.password_file,
            &mut self.target.password_file,
            &mut self.transformation.pii_hash_key_file,
            &mut self.transformation.review_file,
            &mut self.verification.expectations_dir,
            &mut self.verification.queries_file,
            &mut self.target.schema,
            &mut self.signing.key_file,
            &mut self.runtime.workdir,
        ] {
            if !file.is_empty() && !file.starts_with('@') && Path::new(file.as_str()).is_relative()
            {
                *file = dir.join(file.as_str()).display().to_string();
            }
        }
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self, file: Option<&Path>) -> Result<()> {
        let problem = self
            .endpoint_problem()
            .or_else(|| self.phase_problem())
            .or_else(|| self.runtime_problem());
        match problem {
            Some(message) => Err(RuntimeError::Config {
                origin: file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "flags".to_string()),
                message,
            }),
            None => Ok(()),
        }
    }

    /// What is wrong with the source and target keys and the comparison modes.
    fn endpoint_problem(&self) -> Option<String> {
        if self.source.url.is_empty() {
            return Some(
                "key source.url is missing: set `url` under [source] or pass --source URL".into(),
            );
        }
        if self.target.url.is_empty() {
            return Some(
                "key target.url is missing: set `url` under [target] or pass --target URL".into(),
            );
        }
        if !matches!(self.source.bad_rows.as_str(), "reject" | "quarantine") {
            return Some(format!(
                "key source.bad_rows = {:?} must be \"reject\" or \"quarantine\"",
                self.source.bad_rows
            ));
        }
        for (key, mode) in [
            ("source.ssl_mode", &self.source.ssl_mode),
            ("target.ssl_mode", &self.target.ssl_mode),
        ] {
            if !matches!(
                mode.as_str(),
                "disable" | "prefer" | "require" | "verify-full"
            ) {
                return Some(format!(
                    "key {key} = {mode:?} must be one of disable, prefer, require, verify-full"
                ));
            }
        }
        if !matches!(
            self.verification.string_mode.as_str(),
            "exact" | "normalized" | "semantic"
        ) {
            return Some(format!(
                "key verification.string_mode = {:?} must be exact, normalized or semantic",
                self.verification.string_mode
            ));
        }
        if !(0.0..1.0).contains(&self.verification.inconclusive_band) {
            return Some(format!(
                "key verification.inconclusive_band = {} must lie in [0, 1) (a fraction of each tolerance)",
                self.verification.inconclusive_band
            ));
        }
        None
    }

    /// What is wrong with the files and limits of the phases.
    fn phase_problem(&self) -> Option<String> {
        if !self.transformation.review_file.is_empty()
            && !Path::new(&self.transformation.review_file).is_file()
        {
            return Some(format!(
                "key transformation.review_file = {:?}: no such file; write the review decisions there (see docs/architecture.md) or remove the key",
                self.transformation.review_file
            ));
        }
        if !self.verification.queries_file.is_empty()
            && !Path::new(&self.verification.queries_file).is_file()
        {
            return Some(format!(
                "key verification.queries_file = {:?}: no such file; write the queries against the source schema, separated by ';'",
                self.verification.queries_file
            ));
        }
        if !matches!(
            self.verification.semantic_checks.as_str(),
            "fail" | "warn" | "off"
        ) {
            return Some(format!(
                "key verification.semantic_checks = {:?} must be fail, warn or off",
                self.verification.semantic_checks
            ));
        }
        if !matches!(self.source.mysql_consistency.as_str(), "lock" | "session") {
            return Some(format!(
                "key source.mysql_consistency = {:?} must be \"lock\" or \"session\"",
                self.source.mysql_consistency
            ));
        }
        if !(0.0..=1.0).contains(&self.source.encoding_min_confidence) {
            return Some(format!(
                "key source.encoding_min_confidence = {} must lie between 0 and 1",
                self.source.encoding_min_confidence
            ));
        }
        if self.ingestion.partition_rows == 0 {
            return Some("key ingestion.partition_rows must be at least 1".into());
        }
        if self.delivery.batch_rows == 0 {
            return Some("key delivery.batch_rows must be at least 1".into());
        }
        if self.scheduler.max_attempts == 0 {
            return Some("key scheduler.max_attempts must be at least 1".into());
        }
        None
    }

    /// What is wrong with the scheduler, topics and migration keys.
    fn runtime_problem(&self) -> Option<String> {
        if self.scheduler.heartbeat_ms * 2 > self.scheduler.lease_ms {
            return Some(format!(
                "key scheduler.heartbeat_ms ({}) must be at most half of scheduler.lease_ms ({}), or leases lapse between heartbeats",
                self.scheduler.heartbeat_ms, self.scheduler.lease_ms
            ));
        }
        if self.runtime.topics != "embedded"
            && crate::kafka::brokers_of(&self.runtime.topics).is_none_or(str::is_empty)
        {
            return Some(format!(
                "key runtime.topics = {:?} is not a known backend (known: \"embedded\", \"kafka://HOST:PORT[,HOST:PORT]\")",
                self.runtime.topics
            ));
        }
        if parse_duration(&self.topics.retention_grace).is_none() {
            return Some(format!(
                "key topics.retention_grace = {:?} is not a duration: a number and a unit, d, h, m or s (\"7d\")",
                self.topics.retention_grace
            ));
        }
        if self.topics.replication == 0 || self.topics.min_insync_replicas == 0 {
            return Some(
                "keys topics.replication and topics.min_insync_replicas must be at least 1".into(),
            );
        }
        if self.migration.name.is_empty()
            || !self
                .migration
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(format!(
                "key migration.name = {:?} must be non-empty and use only letters, digits, '-' and '_'",
                self.migration.name
            ));
        }
        None
    }

    /// A stable id: the name plus a short hash of source and target, so rerunning
    /// the same migration resumes it and a different one never collides with it.
    pub fn migration_id(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.source.url.as_bytes());
        h.update([0]);
        h.update(self.target.url.as_bytes());
        let digest = h.finalize();
        format!("{}-{}", self.migration.name, &hex::encode(digest)[..8])
    }

    /// The configuration as JSON with URL passwords redacted, for manifests and events.
    pub fn redacted(&self) -> serde_json::Value {
        let mut c = self.clone();
        c.source.url = redact_url(&c.source.url);
        c.target.url = redact_url(&c.target.url);
        serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
    }

    /// The `section.key`s whose values differ from `other`'s, in order
    /// (URLs compared with their passwords redacted, as stored).
    pub fn changed_keys(&self, other: &MigrationConfig) -> Vec<String> {
        let (a, b) = (self.redacted(), other.redacted());
        let mut out = Vec::new();
        for (section, keys) in a.as_object().into_iter().flatten() {
            for (key, value) in keys.as_object().into_iter().flatten() {
                if b[section][key] != *value {
                    out.push(format!("{section}.{key}"));
                }
            }
        }
        out
    }
}

fn merge(base: &mut toml::Value, layer: toml::Value) {
    match (base, layer) {
        (toml::Value::Table(b), toml::Value::Table(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, l) => *b = l,
    }
}

fn set_key(root: &mut toml::Value, key: &str, raw: &str, origin: &str) -> Result<()> {
    let bad = |message: String| RuntimeError::Config {
        origin: origin.to_string(),
        message,
    };
    let (section, field) = key
        .split_once('.')
        .ok_or_else(|| bad(format!("key {key:?} must have the form section.key")))?;
    let defaults =
        toml::Value::try_from(MigrationConfig::default()).map_err(|e| bad(e.to_string()))?;
    let default = defaults
        .get(section)
        .and_then(|s| s.get(field))
        .ok_or_else(|| bad(format!("unknown key {section}.{field}")))?;
    let value = match default {
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
            bad(format!(
                "key {section}.{field} expects an integer, got {raw:?}"
            ))
        })?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| {
            bad(format!(
                "key {section}.{field} expects a number, got {raw:?}"
            ))
        })?),
        toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
            bad(format!(
                "key {section}.{field} expects true or false, got {raw:?}"
            ))
        })?),
        _ => toml::Value::String(raw.to_string()),
    };
    if let Some(table) = root.get_mut(section).and_then(|s| s.as_table_mut()) {
        table.insert(field.to_string(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever a configuration file holds, the loader answers a
        /// configuration or an error that names the file; it never panics.
        #[test]
        fn any_file_loads_or_is_refused_naming_it(text in "(\\[[a-z]{1,12}\\]\n|[a-z_]{1,16} = (\"[^\"\\\\]{0,20}\"|[0-9]{1,6}|true|false|\\[\\])\n|[^\\x00]{0,20}\n){0,8}") {
            let dir = tempfile::tempdir().unwrap();
            let p = write(dir.path(), &text);
            if let Err(e) = ConfigLoader::new().file(&p).load() {
                let m = e.to_string();
                proptest::prop_assert!(m.contains("m.toml"), "{m}");
            }
        }

        /// A loaded configuration written back as TOML loads to the same
        /// configuration: every key the loader accepts round-trips.
        #[test]
        fn a_configuration_round_trips_through_toml(
            rows in 1u64..1_000_000,
            name in "[a-z][a-z0-9_]{0,12}",
            strict in proptest::prelude::any::<bool>(),
            threshold in 0.5f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = write(
                dir.path(),
                &format!(
                    "[migration]\nname = \"{name}\"\n[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite:///tmp/b.db\"\n[delivery]\nbatch_rows = {rows}\n[transformation]\nstrict = {strict}\nauto_approval_threshold = {threshold}\n"
                ),
            );
            let c = ConfigLoader::new().file(&p).load().unwrap();
            let q = write(dir.path(), &toml::to_string(&c).unwrap());
            let again = ConfigLoader::new().file(&q).load().unwrap();
            proptest::prop_assert_eq!(c, again);
        }
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("m.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite:///tmp/b.db\"\n[delivery]\nbatch_rows = 500\n[ingestion]\npartition_rows = 7\n",
        );
        let c = ConfigLoader::new()
            .file(&p)
            .env(vec![
                ("SENSEI_DELIVERY__BATCH_ROWS".to_string(), "600".to_string()),
                (
                    "SENSEI_SCHEDULER__MAX_ATTEMPTS".to_string(),
                    "9".to_string(),
                ),
                ("HOME".to_string(), "/root".to_string()),
            ])
            .flag("scheduler.max_attempts", "2")
            .load()
            .unwrap();
        assert_eq!(c.ingestion.partition_rows, 7, "file over default");
        assert_eq!(c.delivery.batch_rows, 600, "env over file");
        assert_eq!(c.scheduler.max_attempts, 2, "flag over env");
        assert_eq!(c.scheduler.lease_ms, 10_000, "default kept");
        assert_eq!(
            c.source.url,
            format!("sqlite://{}", dir.path().join("a.db").display())
        );
        assert_eq!(c.target.url, "sqlite:///tmp/b.db");
    }

    /// `runtime.topics` from the file, the environment or a flag (and the
    /// older `runtime.event_log` spelling); a backend or a grace period
    /// that means nothing is refused naming the key.
    #[test]
    fn the_topic_backend_is_one_key_in_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite://b.db\"\n";
        let load = |text: &str, env: Vec<(String, String)>, flags: &[(&str, &str)]| {
            let p = write(dir.path(), &format!("{base}{text}"));
            let mut l = ConfigLoader::new().file(&p).env(env);
            for (k, v) in flags {
                l = l.flag(k, *v);
            }
            l.load()
        };
        let file = load(
            "[runtime]\ntopics = \"kafka://k1:9092,k2:9092\"\n",
            vec![],
            &[],
        )
        .unwrap();
        assert_eq!(file.runtime.topics, "kafka://k1:9092,k2:9092");
        let old = load("[runtime]\nevent_log = \"embedded\"\n", vec![], &[]).unwrap();
        assert_eq!(old.runtime.topics, "embedded");
        let env = vec![(
            "SENSEI_RUNTIME__TOPICS".to_string(),
            "kafka://e:9092".to_string(),
        )];
        assert_eq!(
            load("", env.clone(), &[]).unwrap().runtime.topics,
            "kafka://e:9092"
        );
        let flag = load(
            "",
            env,
            &[
                ("runtime.topics", "kafka://f:9092"),
                ("topics.retention_grace", "36h"),
            ],
        )
        .unwrap();
        assert_eq!(flag.runtime.topics, "kafka://f:9092");
        assert_eq!(
            parse_duration(&flag.topics.retention_grace),
            Some(std::time::Duration::from_secs(36 * 3600))
        );
        assert_eq!(MigrationConfig::default().topics.replication, 3);
        assert_eq!(MigrationConfig::default().topics.min_insync_replicas, 2);
        assert_eq!(
            parse_duration("7d"),
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        for (flags, key) in [
            (vec![("runtime.topics", "kafka:/x")], "runtime.topics"),
            (vec![("runtime.topics", "kafka://")], "runtime.topics"),
            (
                vec![("topics.retention_grace", "a week")],
                "topics.retention_grace",
            ),
            (vec![("topics.replication", "0")], "topics.replication"),
        ] {
            let err = load("", vec![], &flags).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[source]\nurl = \"sqlite://a.db\"\n[delivery]\nbatch_size = 5\n",
        );
        let err = ConfigLoader::new().file(&p).load().unwrap_err().to_string();
        assert!(err.contains("m.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn wrong_type_and_missing_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[delivery]\nbatch_rows = \"many\"\n");
        let err = ConfigLoader::new().file(&p).load().unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("batch_rows"),
            "{err}"
        );
        let p = write(dir.path(), "[delivery]\nbatch_rows = 5\n");
        let err = ConfigLoader::new().file(&p).load().unwrap_err().to_string();
        assert!(err.contains("source.url"), "{err}");
        let err = ConfigLoader::new()
            .env(vec![("SENSEI_DELIVERY__BATCH_ROWS".into(), "x".into())])
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("SENSEI_DELIVERY__BATCH_ROWS"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = ConfigLoader::new()
            .file("/nonexistent/x.toml")
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }

    #[test]
    fn changed_keys_are_named_by_section() {
        let a = MigrationConfig::default();
        let mut b = a.clone();
        b.source.encoding = "latin1".into();
        b.verification.semantic_checks = "warn".into();
        assert_eq!(
            a.changed_keys(&b),
            ["source.encoding", "verification.semantic_checks"]
        );
        assert!(a.changed_keys(&a.clone()).is_empty());
    }

    #[test]
    fn every_key_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/architecture.md"
        ))
        .unwrap();
        for (key, default) in documented_keys() {
            let row = doc.lines().find(|l| l.starts_with(&format!("| `{key}` |")));
            let row = row.unwrap_or_else(|| panic!("docs/architecture.md lacks a row for `{key}`"));
            assert!(row.contains(&format!("`{default}`")), "docs/architecture.md gives another default for {key}: {row} (expected `{default}`)");
        }
    }
}
