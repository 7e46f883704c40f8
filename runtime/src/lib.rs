//! # sensei-runtime
//!
//! What every Sensei process stands on, below the scheduler and the agents:
//!
//! - [`config`]: the typed, layered migration configuration (defaults < TOML
//!   file < `SENSEI_<SECTION>__<KEY>` environment < flags);
//! - [`secret`]: values that never print, and URL redaction;
//! - [`topic`]: the [`topic::EventLog`] trait over the six topics of the
//!   specification, and its default embedded backend (append-only, CRC-checked,
//!   consumer offsets that survive restarts); [`kafka`]: the same topics on a
//!   Kafka cluster (`runtime.topics = "kafka://HOST:PORT"`), and [`topic::open`]
//!   picks the backend a setting names;
//! - [`store`]: the artifact store (`object_store`, a local folder by default);
//! - [`signing`]: the Ed25519 certificate key, kept in a 0600 file;
//! - [`tokens`]: access tokens with roles, stored hashed, for the listeners
//!   people and programs call (the public Flight endpoint, the dashboard),
//!   and the cluster secret its processes share; [`tls`]: the cluster's
//!   certificate (configured, or self-signed for a local cluster);
//! - [`supervise`]: the work pool where agents run heavy work, turning panics
//!   into crashes their supervisor restarts them from;
//! - [`metrics`]: the names of every metric; [`mac`]: HMAC-SHA256.
//!
//! ```
//! use sensei_runtime::topic::{EmbeddedLog, EventLog, Topic};
//! let dir = tempfile::tempdir().unwrap();
//! let log = EmbeddedLog::open(dir.path()).unwrap();
//! let offset = log.append(Topic::MigrationEvents, "retail", b"{\"started\":true}").unwrap();
//! assert_eq!(log.read(Topic::MigrationEvents, offset, 1).unwrap()[0].key, "retail");
//! ```

pub mod config;
pub mod error;
pub mod kafka;
pub mod mac;
pub mod metrics;
pub mod secret;
pub mod signing;
pub mod store;
pub mod supervise;
pub mod tls;
pub mod tokens;
pub mod topic;

pub use error::{ErrorClass, Result, RuntimeError};
