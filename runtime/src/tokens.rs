//! Access tokens for the listeners a person or a program calls: the public
//! Flight endpoint (and, as they gain it, the dashboard and the control
//! plane).
//!
//! A token is `sensei_<id>_<secret>`: `id` is 16 hex digits that name the
//! token in lists and logs, `secret` 64 hex digits from the operating
//! system's random source. The token file (`tokens.json`, mode 0600) keeps
//! per token its id, name, role and the SHA-256 of the whole token, never the
//! token itself: whoever reads the file cannot call with it. The token is
//! printed once, when it is created.
//!
//! A [`ClusterSecret`] is the other kind of credential: the one secret every
//! process of a cluster holds (a file of mode 0600 beside the cluster's
//! state), which workers present to the head's control plane and to each
//! other's Flight services. People and programs outside the cluster get
//! tokens instead.
//!
//! Roles are ordered: a `reader` lists and streams verified data, a
//! `reviewer` may also decide on mapping entries, an `operator` may also
//! submit and stop migrations. A call needs a role at least as high as the
//! one it asks for.
//!
//! ```
//! use sensei_runtime::tokens::{Role, TokenStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = TokenStore::new(dir.path().join("tokens.json"));
//! let (record, token) = store.create(Role::Reader, "notebook").unwrap();
//! assert_eq!(store.authenticate(&token).unwrap().unwrap().id, record.id);
//! assert!(store.authenticate("sensei_0000000000000000_00").unwrap().is_none());
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};

/// What a token may do; later roles include the earlier ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Lists and streams verified datasets, reads status.
    Reader,
    /// Also approves, rejects and edits mapping entries.
    Reviewer,
    /// Also submits, restarts and stops migrations.
    Operator,
}

impl Role {
    /// Parses `reader`, `reviewer` or `operator`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "reviewer" => Some(Role::Reviewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
        }
    }
}

/// One token as stored: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// The token's public id (16 hex digits, part of the token).
    pub id: String,
    /// Who or what holds it, for lists and logs.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    /// When it was created (seconds since the Unix epoch).
    pub created_s: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TokenFile {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// The token file of a cluster (or a working folder).
///
/// Every call reads the file again, so a token created or revoked by
/// `sensei-cluster token` takes effect on a running head at its next call;
/// the file is small and calls that need a token are not on a hot path.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

const PREFIX: &str = "sensei_";

impl TokenStore {
    /// The store kept in `path` (created on the first token).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TokenStore { path: path.into() }
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
        move |source| RuntimeError::Io {
            what,
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<TokenFile> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Config {
                origin: self.path.display().to_string(),
                message: format!("not a token file: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(self.io("reading token file")(e)),
        }
    }

    /// Writes the file whole under a temporary name, mode 0600, then renames
    /// it: a reader sees the old file or the new one, never half of one.
    fn write(&self, file: &TokenFile) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(self.io("creating token folder"))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(self.io("writing token file"))?;
        f.write_all(&serde_json::to_vec_pretty(file)?)
            .and_then(|_| f.sync_all())
            .map_err(self.io("writing token file"))?;
        std::fs::rename(&tmp, &self.path).map_err(self.io("writing token file"))
    }

    /// Creates a token; returns its record and the token, which is shown
    /// this once and stored only as its hash.
    pub fn create(&self, role: Role, name: &str) -> Result<(TokenRecord, String)> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id)
            .and_then(|_| getrandom::fill(&mut secret))
            .map_err(|e| RuntimeError::Io {
                what: "drawing a random token for",
                path: self.path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let id = hex::encode(id);
        let token = format!("{PREFIX}{id}_{}", hex::encode(secret));
        let record = TokenRecord {
            id,
            name: name.to_string(),
            role,
            sha256: hex::encode(Sha256::digest(token.as_bytes())),
            created_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let mut file = self.read()?;
        file.version = 1;
        file.tokens.push(record.clone());
        self.write(&file)?;
        Ok((record, token))
    }

    /// Every token's record.
    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.read()?.tokens)
    }

    /// Removes a token by id; whether it was there.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens.retain(|t| t.id != id);
        if file.tokens.len() == before {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }

    /// The record of `token` when it is a valid token of this store.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>> {
        let Some(id) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
        else {
            return Ok(None);
        };
        let hash = Sha256::digest(token.as_bytes());
        Ok(self.read()?.tokens.into_iter().find(|t| {
            t.id == id
                && hex::decode(&t.sha256)
                    .map(|stored| constant_time_eq(&stored, &hash))
                    .unwrap_or(false)
        }))
    }
}

/// The secret shared by the processes of one cluster (or by the node and the
/// head inside one `sensei migrate`): 32 random bytes, sent as
/// `authorization: Bearer <64 hex digits>` on every internal call. Debug
/// output masks it. When the cluster's listeners speak TLS, the secret
/// carries the cluster's [`ClusterTls`](crate::tls::ClusterTls) too
/// ([`ClusterSecret::with_tls`]): what a process needs to serve and to call
/// the others travels as one value.
#[derive(Clone)]
pub struct ClusterSecret(String, Option<crate::tls::ClusterTls>);

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for ClusterSecret {}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

impl ClusterSecret {
    /// A new random secret, kept in memory only.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| RuntimeError::Io {
            what: "drawing a random cluster secret for",
            path: PathBuf::from("(memory)"),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(ClusterSecret(hex::encode(bytes), None))
    }

    /// The secret in `path`, created (mode 0600) when the file is missing.
    /// A file that others may read is refused: whoever reads it can act as
    /// any worker of the cluster.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if path.exists() {
            return Self::load(path);
        }
        let secret = Self::generate()?;
        let io = |source| RuntimeError::Io {
            what: "writing the cluster secret",
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(secret.0.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io)?;
        Ok(secret)
    }

    /// The secret in `path` (an owner-only file of 64 hex digits).
    pub fn load(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let bad = |message: String| RuntimeError::Config {
            origin: path.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|source| RuntimeError::Io {
            what: "reading the cluster secret",
            path: path.to_path_buf(),
            source,
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(format!(
                "the cluster secret may be read by others (mode {:o}); run `chmod 600 {}`",
                meta.permissions().mode() & 0o777,
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            what: "reading the cluster secret",
            path: path.to_path_buf(),
            source,
        })?;
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not a cluster secret (64 hex digits expected)".into()));
        }
        Ok(ClusterSecret(text.to_ascii_lowercase(), None))
    }

    /// The same secret, with the cluster's TLS: listeners serve with its
    /// certificate, clients trust its root.
    pub fn with_tls(mut self, tls: crate::tls::ClusterTls) -> Self {
        self.1 = Some(tls);
        self
    }

    /// The cluster's TLS, when its listeners speak it.
    pub fn tls(&self) -> Option<&crate::tls::ClusterTls> {
        self.1.as_ref()
    }

    /// HMAC-SHA256 of `message` under the secret: what the head signs for
    /// the other processes of its cluster (node tickets).
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        crate::mac::hmac_sha256(self.0.as_bytes(), message)
    }

    /// The value of the `authorization` header that carries it.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether an `authorization` header carries this secret (compared in
    /// constant time).
    pub fn admits(&self, header: Option<&str>) -> bool {
        header
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), self.0.as_bytes()))
    }

    /// The gate of an internal gRPC listener (the scheduler's control plane,
    /// a node's Flight service): a call passes when it carries this secret,
    /// and is refused `Unauthenticated` otherwise.
    pub fn interceptor(&self) -> impl tonic::service::Interceptor + Clone + Send + Sync + 'static {
        let secret = self.clone();
        move |r: tonic::Request<()>| {
            let header = r
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if secret.admits(header) {
                Ok(r)
            } else {
                Err(tonic::Status::unauthenticated(NO_CLUSTER_SECRET))
            }
        }
    }
}

/// What an internal listener answers a call without the cluster secret.
pub const NO_CLUSTER_SECRET: &str =
    "this listener serves the processes of one cluster: the call must carry the cluster secret";

/// Compares two byte strings in time that depends on their length only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn tokens_are_stored_hashed_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("c/tokens.json"));
        let (rec, token) = store.create(Role::Reviewer, "alice").unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&token[PREFIX.len() + 17..]), "{text}");
        assert!(text.contains(&rec.sha256));
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let got = store.authenticate(&token).unwrap().unwrap();
        assert_eq!((got.name.as_str(), got.role), ("alice", Role::Reviewer));
    }

    #[test]
    fn a_changed_unknown_or_revoked_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("tokens.json"));
        assert!(store.authenticate("anything").unwrap().is_none());
        let (a, token_a) = store.create(Role::Reader, "a").unwrap();
        let (_, token_b) = store.create(Role::Operator, "b").unwrap();
        let mut changed = token_a.clone().into_bytes();
        let last = changed.len() - 1;
        changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(changed).unwrap();
        assert!(store.authenticate(&changed).unwrap().is_none());
        // Another token's secret under this token's id.
        let spliced = format!("{PREFIX}{}_{}", a.id, &token_b[PREFIX.len() + 17..]);
        assert!(store.authenticate(&spliced).unwrap().is_none());
        assert!(store.revoke(&a.id).unwrap());
        assert!(!store.revoke(&a.id).unwrap());
        assert!(store.authenticate(&token_a).unwrap().is_none());
        assert!(store.authenticate(&token_b).unwrap().is_some());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn the_cluster_secret_is_owner_only_and_admits_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let s = ClusterSecret::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(ClusterSecret::load_or_create(&path).unwrap(), s);
        assert!(s.admits(Some(&s.header())));
        assert!(!s.admits(None));
        assert!(!s.admits(Some("Bearer 00")));
        assert!(!s.admits(Some(&ClusterSecret::generate().unwrap().header())));
        assert!(!format!("{s:?}").contains(&s.0));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ClusterSecret::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn roles_are_ordered_and_parse_back() {
        assert!(Role::Reader < Role::Reviewer && Role::Reviewer < Role::Operator);
        for r in [Role::Reader, Role::Reviewer, Role::Operator] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
