//! The development CA (`worker dev-ca --out DIR [--force]`, `scripts/dev`, tests): a new
//! self-signed ECDSA P-256 CA, written into a directory (`ca.pem`, and `ca.key` with mode
//! 0600) for the key-file backend, or only `ca.pem` for a key made in a PKCS#11 token
//! (`--key pkcs11:…`). Never used for a deployment's CA unless its operator
//! chooses to.
//!
//! Why it refuses to replace an existing CA unless forced: every certificate the worker issued
//! chains to that CA, its CRLs and OCSP answers are signed under it, and its key exists
//! nowhere else. Overwriting it silently would leave every enrolled device with a certificate
//! nobody can verify or revoke any more, so replacing it must be asked for by name.
//!
//! Nothing here logs or reports key material.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::signing_key::{RcgenKey, SigningKey};
use crate::x509_time::to_time;

/// The files `worker dev-ca` writes into its `--out` directory.
pub const CERT_FILE: &str = "ca.pem";
pub const KEY_FILE: &str = "ca.key";

/// A new self-signed ECDSA P-256 CA for local development. Returns (certificate PEM, private
/// key PEM).
pub fn generate_dev_ca(common_name: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let certificate = dev_ca_params(common_name)?.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// A new self-signed CA for `key`, a key held elsewhere (a PKCS#11 token); its certificate's
/// PEM.
pub fn dev_ca_for_key(common_name: &str, key: Arc<dyn SigningKey>) -> Result<String, rcgen::Error> {
    Ok(dev_ca_params(common_name)?
        .self_signed(&RcgenKey(key))?
        .pem())
}

fn dev_ca_params(common_name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = Utc::now();
    params.not_before = to_time(now - chrono::Duration::minutes(5))?;
    params.not_after = to_time(now + chrono::Duration::days(3650))?;
    Ok(params)
}

#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    #[error(
        "{path} already exists: refusing to replace a CA (certificates it issued would no longer \
         verify); pass --force to replace it"
    )]
    Exists { path: String },
    #[error("cannot make the development CA: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Writes a new development CA named `common_name` into `dir` (created if needed) and returns
/// the paths of its certificate and key. Unless `force`, neither file may exist yet: the check
/// is the file's creation itself (`create_new`), so two runs at once cannot both write.
pub fn write_dev_ca(
    dir: &Path,
    common_name: &str,
    force: bool,
) -> Result<(PathBuf, PathBuf), DevCaError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if !force {
        // Both checked before anything is written, so a refusal leaves no half-written CA.
        for path in [&cert_path, &key_path] {
            if path.symlink_metadata().is_ok() {
                return Err(DevCaError::Exists {
                    path: path.display().to_string(),
                });
            }
        }
    }
    let (cert, key) = generate_dev_ca(common_name)?;
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    // The key first: a run that fails between the two files leaves no certificate whose key
    // is missing.
    write_file(&key_path, key.as_bytes(), 0o600, force)?;
    write_file(&cert_path, cert.as_bytes(), 0o644, force)?;
    Ok((cert_path, key_path))
}

/// Writes a new development CA named `common_name`, whose key is `key` (held elsewhere), into
/// `dir` as its certificate alone, and returns its path; refuses to replace one unless `force`.
pub fn write_dev_ca_for_key(
    dir: &Path,
    common_name: &str,
    key: Arc<dyn SigningKey>,
    force: bool,
) -> Result<PathBuf, DevCaError> {
    let cert_path = dir.join(CERT_FILE);
    let cert = dev_ca_for_key(common_name, key)?;
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    write_file(&cert_path, cert.as_bytes(), 0o644, force)?;
    Ok(cert_path)
}

fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), DevCaError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            DevCaError::Exists {
                path: path.display().to_string(),
            }
        } else {
            write_error(path)(source)
        }
    })?;
    // `mode` applies only to a new file: a replaced key file may have been looser.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write_error(path))?;
    file.write_all(contents).map_err(write_error(path))
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> DevCaError {
    let path = path.display().to_string();
    move |source| DevCaError::Write { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir() -> PathBuf {
        std::env::temp_dir().join(format!("dp-dev-ca-{}", uuid::Uuid::new_v4().simple()))
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn writes_a_ca_whose_key_only_its_owner_reads() {
        let dir = fresh_dir();
        let (cert, key) = write_dev_ca(&dir, "t", false).unwrap();
        assert!(read(&cert).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&key).contains("PRIVATE KEY"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_to_replace_an_existing_ca_naming_the_file() {
        let dir = fresh_dir();
        let (cert, key) = write_dev_ca(&dir, "t", false).unwrap();
        let (cert_before, key_before) = (read(&cert), read(&key));

        let error = write_dev_ca(&dir, "t", false).unwrap_err();
        assert!(
            matches!(&error, DevCaError::Exists { path } if *path == cert.display().to_string())
        );
        assert!(error.to_string().contains("--force"), "{error}");
        assert_eq!(read(&cert), cert_before);
        assert_eq!(read(&key), key_before);

        // Only the key left (the certificate deleted by hand): still refused, and no
        // certificate is written next to a key it does not match.
        std::fs::remove_file(&cert).unwrap();
        let error = write_dev_ca(&dir, "t", false).unwrap_err();
        assert!(
            matches!(&error, DevCaError::Exists { path } if *path == key.display().to_string())
        );
        assert!(!cert.exists());
        assert_eq!(read(&key), key_before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn force_replaces_both_files_and_tightens_the_key() {
        let dir = fresh_dir();
        let (cert, key) = write_dev_ca(&dir, "t", false).unwrap();
        let (cert_before, key_before) = (read(&cert), read(&key));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

        write_dev_ca(&dir, "t", true).unwrap();
        assert_ne!(read(&cert), cert_before);
        assert_ne!(read(&key), key_before);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
