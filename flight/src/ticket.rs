//! Tickets the head signs for its nodes.
//!
//! The public endpoint on the head answers `GetFlightInfo` with one endpoint
//! per partition located on the node that holds it. The node does not keep
//! the token file or read certificates: the head, having checked the token
//! and the certificate, hands the client a [`NodeTicket`] naming the
//! partition, the file's certified SHA-256, the SHA-256 of the client's
//! token and an expiry, signed with HMAC-SHA256 under the cluster secret.
//! The node redeems it only for a caller presenting that same token, before
//! the expiry, and streams the file only if it still hashes to the
//! certified value. A revoked token's tickets stay valid until they expire
//! ([`TICKET_LIFETIME_MS`]); the head refuses it at once.
//!
//! ```
//! use sensei_flight::ticket::NodeTicket;
//! let secret = sensei_runtime::tokens::ClusterSecret::generate().unwrap();
//! let t = NodeTicket::new("m/transformation/t/0", "ab12", "sensei_x_y", 1_000, 0);
//! let raw = t.sign(&secret);
//! assert_eq!(NodeTicket::open(&raw, &secret), Some(t));
//! let other = sensei_runtime::tokens::ClusterSecret::generate().unwrap();
//! assert_eq!(NodeTicket::open(&raw, &other), None);
//! ```

use base64::Engine as _;
use sensei_runtime::tokens::{constant_time_eq, ClusterSecret};
use sha2::{Digest, Sha256};

/// How long a node ticket may be redeemed after the head issued it.
pub const TICKET_LIFETIME_MS: i64 = 15 * 60 * 1000;

const PREFIX: &str = "sensei-node-ticket-v1.";

/// What a signed ticket lets its holder fetch from a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeTicket {
    /// The partition id (the node's own ticket for it).
    pub partition: String,
    /// The partition file's SHA-256 as the certificate records it.
    pub sha256: String,
    /// SHA-256 (hex) of the token the head admitted.
    pub token_sha256: String,
    /// Redeemable until (ms since the epoch).
    pub expires_ms: i64,
}

/// SHA-256 (hex) of a token, as tickets bind it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl NodeTicket {
    /// A ticket for `partition` (certified hash `sha256`) bound to `token`,
    /// valid `lifetime_ms` from `now_ms`.
    pub fn new(partition: &str, sha256: &str, token: &str, now_ms: i64, lifetime_ms: i64) -> Self {
        NodeTicket {
            partition: partition.to_string(),
            sha256: sha256.to_string(),
            token_sha256: token_sha256(token),
            expires_ms: now_ms + lifetime_ms,
        }
    }

    /// The ticket's bytes: `sensei-node-ticket-v1.<base64url JSON>.<hex MAC>`.
    pub fn sign(&self, secret: &ClusterSecret) -> Vec<u8> {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default());
        let signed = format!("{PREFIX}{body}");
        let mac = hex::encode(secret.mac(signed.as_bytes()));
        format!("{signed}.{mac}").into_bytes()
    }

    /// Whether `raw` has the form of a node ticket (signed or not).
    pub fn looks_like(raw: &[u8]) -> bool {
        raw.starts_with(PREFIX.as_bytes())
    }

    /// The ticket in `raw` when its MAC is the cluster's; None otherwise.
    /// (Expiry and token are the redeemer's to check.)
    pub fn open(raw: &[u8], secret: &ClusterSecret) -> Option<NodeTicket> {
        let text = std::str::from_utf8(raw).ok()?;
        let (signed, mac) = text.rsplit_once('.')?;
        let body = signed.strip_prefix(PREFIX)?;
        let expected = hex::encode(secret.mac(signed.as_bytes()));
        if !constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_ticket_does_not_open() {
        let secret = ClusterSecret::generate().unwrap();
        let t = NodeTicket::new("p", "aa", "tok", 5, 10);
        assert_eq!(t.expires_ms, 15);
        assert_eq!(t.token_sha256, token_sha256("tok"));
        let raw = t.sign(&secret);
        assert!(NodeTicket::looks_like(&raw));
        // Another partition in the body, the MAC kept: refused.
        let forged = NodeTicket {
            partition: "q".into(),
            ..t.clone()
        }
        .sign(&secret);
        let text = String::from_utf8(raw.clone()).unwrap();
        let forged = String::from_utf8(forged).unwrap();
        let spliced = format!(
            "{}.{}",
            forged.rsplit_once('.').unwrap().0,
            text.rsplit_once('.').unwrap().1
        );
        assert_eq!(NodeTicket::open(spliced.as_bytes(), &secret), None);
        assert_eq!(NodeTicket::open(b"p", &secret), None);
        assert_eq!(NodeTicket::open(&raw, &secret), Some(t));
    }
}
