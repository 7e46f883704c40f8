//! HMAC-SHA256 (RFC 2104): the keyed hash behind `sensei_hash` (the PII
//! policy) and the tickets a cluster's head signs for its nodes.
//!
//! ```
//! // RFC 4231, test case 2.
//! let mac = sensei_runtime::mac::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
//! assert_eq!(
//!     hex::encode(mac),
//!     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
//! );
//! ```

use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}
