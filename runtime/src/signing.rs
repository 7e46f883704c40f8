//! The Ed25519 key that signs certificates: generated once, kept in a file of
//! mode 0600 (a key readable by others is refused), identified by a key id.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, Verifier as _};

use crate::error::{Result, RuntimeError};

/// A loaded signing key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    crate::store::sha256_hex(public_key)[..16].to_string()
}

impl SigningKey {
    /// Loads the key at `path`, or generates one there (mode 0600) when absent.
    /// The public key is written beside it as `<path>.pub` (hex).
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.exists() {
            Self::load(path)
        } else {
            Self::generate(path)
        }
    }

    /// Generates a new key into a new file of mode 0600.
    pub fn generate(path: &Path) -> Result<Self> {
        let err = |message: String| RuntimeError::Key {
            path: path.to_path_buf(),
            message,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| err(format!("cannot create folder: {e}")))?;
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| err(format!("no randomness: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(format!("cannot create: {e}")))?;
        f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let pub_path = public_key_path(path);
        std::fs::write(
            &pub_path,
            format!("{}\n", hex::encode(key.verifying_key().to_bytes())),
        )
        .map_err(|e| {
            err(format!(
                "cannot write public key {}: {e}",
                pub_path.display()
            ))
        })?;
        Ok(SigningKey {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Loads a key, refusing a file that anyone but its owner can read.
    pub fn load(path: &Path) -> Result<Self> {
        let err = |message: String| RuntimeError::Key {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "mode is {mode:o}; a signing key must be readable by its owner alone (chmod 600 {})",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| err("is not a hex-encoded Ed25519 seed".into()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("must hold a 32-byte Ed25519 seed".into()))?;
        Ok(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            path: path.to_path_buf(),
        })
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key's id.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Where the public key of a key file is written.
pub fn public_key_path(key_path: &Path) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Checks an Ed25519 signature (strict verification: no malleable signatures).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    vk.verify_strict(message, &sig).is_ok() && vk.verify(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.key");
        let k = SigningKey::load_or_generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(k.public_key(), again.public_key());
        let sig = k.sign(b"payload");
        assert!(verify(&k.public_key(), b"payload", &sig));
        assert!(!verify(&k.public_key(), b"payloaD", &sig));
        let pubhex = std::fs::read_to_string(public_key_path(&path)).unwrap();
        assert_eq!(pubhex.trim(), hex::encode(k.public_key()));
    }

    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        SigningKey::generate(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
