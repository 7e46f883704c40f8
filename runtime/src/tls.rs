//! TLS (rustls, ring) for the listeners of a cluster: the head's control
//! plane, the nodes' Flight services, the public Flight endpoint and the
//! dashboard.
//!
//! A cluster has one certificate, its key and the certificate its clients
//! trust ([`TlsFiles`]): either configured (a certificate of the site's own
//! authority) or made by [`self_signed`] for a local cluster
//! (`sensei-cluster up --tls`), in which case the certificate is its own
//! trust root. Every process of the cluster serves with the certificate and
//! connects to the others trusting the root; a client outside the cluster is
//! given the root file (`cluster.json` names it).
//!
//! ```
//! use sensei_runtime::tls::{self_signed, ClusterTls};
//! let dir = tempfile::tempdir().unwrap();
//! let files = self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
//! let tls = ClusterTls::load(&files).unwrap();
//! assert!(tls.root_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Result, RuntimeError};

/// Where a cluster's certificate, its private key and the root its clients
/// trust are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// The certificate chain every listener presents.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1; an owner-only file).
    pub key: PathBuf,
    /// The certificate clients trust (the certificate itself when it is
    /// self-signed).
    pub ca: PathBuf,
}

/// A cluster's TLS material, loaded and checked.
#[derive(Clone)]
pub struct ClusterTls {
    files: TlsFiles,
    cert_pem: Arc<Vec<u8>>,
    key_pem: Arc<Vec<u8>>,
    ca_pem: Arc<Vec<u8>>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tls {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RuntimeError::Io {
        what: "reading TLS file",
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            path,
            "holds no certificate (PEM `BEGIN CERTIFICATE` expected)",
        ));
    }
    Ok(certs)
}

impl ClusterTls {
    /// Reads and checks the files: certificates that parse, a private key
    /// that parses, fits the certificate and only its owner may read (mode
    /// 0600), a root to trust.
    pub fn load(files: &TlsFiles) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let ca_pem = read(&files.ca)?;
        let mode = std::fs::metadata(&files.key)
            .map_err(|source| RuntimeError::Io {
                what: "reading TLS file",
                path: files.key.clone(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(bad(
                &files.key,
                format!(
                    "the private key may be read by others (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    files.key.display()
                ),
            ));
        }
        let tls = ClusterTls {
            files: files.clone(),
            cert_pem: Arc::new(cert_pem),
            key_pem: Arc::new(key_pem),
            ca_pem: Arc::new(ca_pem),
        };
        // Build the server configuration once: a key that does not match the
        // certificate is refused here, at start, not at the first handshake.
        tls.rustls_server()?;
        certificates(&files.ca, &tls.ca_pem)?;
        Ok(tls)
    }

    /// The files it was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The PEM of the root clients trust.
    pub fn root_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The configuration of a gRPC (tonic) listener.
    pub fn server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            self.cert_pem.as_slice(),
            self.key_pem.as_slice(),
        ))
    }

    /// The configuration of a gRPC (tonic) client of the cluster: trusts the
    /// root, checks the name the address gives.
    pub fn client(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new().ca_certificate(
            tonic::transport::Certificate::from_pem(self.ca_pem.as_slice()),
        )
    }

    /// A rustls server configuration (HTTP/1.1), for listeners that are not
    /// gRPC (the dashboard).
    pub fn rustls_server(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = certificates(&self.files.cert, &self.cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| bad(&self.files.key, format!("not a PEM private key: {e}")))?;
        // ring is the one crypto provider built in: rustls picks it.
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                bad(
                    &self.files.key,
                    format!("does not fit the certificate: {e}"),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Makes a self-signed certificate for `hosts` (names and IP addresses) in
/// `dir` (`cert.pem`, and `key.pem` of mode 0600), or keeps the pair already
/// there; the certificate is its own root.
pub fn self_signed(dir: &Path, hosts: &[String]) -> Result<TlsFiles> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("cert.pem"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Io {
            what: "writing TLS file",
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let made = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| bad(&files.cert, format!("cannot make a certificate: {e}")))?;
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&files.key)
        .map_err(io(&files.key))?;
    key.write_all(made.signing_key.serialize_pem().as_bytes())
        .and_then(|_| key.sync_all())
        .map_err(io(&files.key))?;
    std::fs::write(&files.cert, made.cert.pem()).map_err(io(&files.cert))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_key_and_a_key_of_another_certificate_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(&dir.path().join("a"), &["localhost".into()]).unwrap();
        let b = self_signed(&dir.path().join("b"), &["localhost".into()]).unwrap();
        ClusterTls::load(&a).unwrap();
        // Kept, not made again, when it exists.
        let before = std::fs::read(&a.cert).unwrap();
        self_signed(&dir.path().join("a"), &["localhost".into()]).unwrap();
        assert_eq!(std::fs::read(&a.cert).unwrap(), before);
        let mixed = TlsFiles {
            key: b.key.clone(),
            ..a.clone()
        };
        let e = ClusterTls::load(&mixed).unwrap_err().to_string();
        assert!(e.contains("does not fit the certificate"), "{e}");
        std::fs::set_permissions(&a.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ClusterTls::load(&a).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let not_pem = TlsFiles {
            cert: a.key.clone(),
            ..b.clone()
        };
        assert!(ClusterTls::load(&not_pem).is_err());
    }
}
