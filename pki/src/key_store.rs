//! Where the worker makes the keys of tenants' CAs (`CA_KEY_STORE`): a directory of key files
//! (development: `scripts/dev`; each PKCS#8 PEM, mode 0600) or a PKCS#11 token (an HSM; the
//! key generated there, sensitive and never extractable). A key is made under a name the
//! caller derives from the CA's creation events, so a creation that crashed after making the
//! key finds it again instead of making a second; it is recorded in the CA's events by its
//! reference (`file:<name>` or `pkcs11:token=<label>;object=<name>`), never its material.
//!
//! Must not: log or return key material or the PIN; make a key for a name it already holds.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use domain::{CaKeyCurve, CaKeyReference};

use crate::key_file::{KeyFile, KeyFileError};
use crate::key_reference::Pkcs11Access;
use crate::pkcs11_key::{CaCurve, Pkcs11Module, Pkcs11SetupError, Pkcs11Uri};
use crate::signing_key::SigningKey;

const FILE_PREFIX: &str = "file:";

/// A configured key store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStore {
    Directory(PathBuf),
    Token { access: Pkcs11Access, token: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// `CA_KEY_STORE` cannot be used. Never repeats a `pkcs11:` value (it may hold a PIN).
    #[error("CA_KEY_STORE: {0}")]
    Configuration(&'static str),
    #[error("the key name {0:?} is not one this store makes (lowercase letters, digits, '-')")]
    BadName(String),
    /// A reference recorded in an event that this store cannot resolve.
    #[error("the CA key {0:?} is not in the configured CA_KEY_STORE")]
    Elsewhere(String),
    #[error("cannot write the CA key file {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot make a CA key: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error("the CA key's token: {0}")]
    Token(#[from] Pkcs11SetupError),
}

impl KeyStore {
    /// `CA_KEY_STORE`: `pkcs11:token=<label>` (reached through `pkcs11`), or a directory.
    pub fn parse(value: &str, pkcs11: Option<&Pkcs11Access>) -> Result<Self, KeyStoreError> {
        let Some(path) = value.strip_prefix("pkcs11:") else {
            if value.is_empty() {
                return Err(KeyStoreError::Configuration("is empty"));
            }
            return Ok(Self::Directory(PathBuf::from(value)));
        };
        let token = path
            .split(';')
            .find_map(|attribute| attribute.strip_prefix("token="))
            .filter(|token| !token.is_empty())
            .ok_or(KeyStoreError::Configuration(
                "a PKCS#11 key store is pkcs11:token=<token label>",
            ))?;
        // The label as RFC 7512 percent-decodes it, through the URI parser.
        let token = Pkcs11Uri::parse(&format!("pkcs11:token={token};object=x"))
            .map_err(|_| {
                KeyStoreError::Configuration("a PKCS#11 key store is pkcs11:token=<token label>")
            })?
            .token;
        let access = pkcs11.cloned().ok_or(KeyStoreError::Configuration(
            "a PKCS#11 key store needs PKCS11_MODULE_PATH and PKCS11_PIN_FILE",
        ))?;
        Ok(Self::Token { access, token })
    }

    /// The key named `name`, made on `curve` if the store does not hold it yet; its reference
    /// as events record it.
    pub fn make_or_open(
        &self,
        name: &str,
        curve: CaKeyCurve,
    ) -> Result<(CaKeyReference, Arc<dyn SigningKey>), KeyStoreError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(KeyStoreError::BadName(name.to_owned()));
        }
        match self {
            Self::Directory(dir) => {
                let path = dir.join(format!("{name}.key"));
                if !path.exists() {
                    write_new_key(&path, curve)?;
                }
                let key = KeyFile::read("CA_KEY_STORE", &path)?;
                let reference = CaKeyReference::recorded(format!("{FILE_PREFIX}{name}"));
                Ok((reference, Arc::new(key)))
            }
            Self::Token { access, token } => {
                let module = Pkcs11Module::load(&access.module_path, &access.pin_file)?;
                let uri = Pkcs11Uri {
                    token: token.clone(),
                    object: name.to_owned(),
                };
                let key = match module.open(&uri) {
                    Ok(key) => key,
                    Err(Pkcs11SetupError::NoKey { .. }) => module.generate(&uri, curve.into())?,
                    Err(e) => return Err(e.into()),
                };
                let reference =
                    CaKeyReference::recorded(format!("pkcs11:token={token};object={name}"));
                Ok((reference, Arc::new(key)))
            }
        }
    }

    /// The key a CA's events name.
    pub fn open(&self, reference: &CaKeyReference) -> Result<Arc<dyn SigningKey>, KeyStoreError> {
        let elsewhere = || KeyStoreError::Elsewhere(reference.as_str().to_owned());
        match self {
            Self::Directory(dir) => {
                let name = reference
                    .as_str()
                    .strip_prefix(FILE_PREFIX)
                    .filter(|name| !name.contains('/') && !name.starts_with('.'))
                    .ok_or_else(elsewhere)?;
                let key = KeyFile::read("CA_KEY_STORE", &dir.join(format!("{name}.key")))?;
                Ok(Arc::new(key))
            }
            Self::Token { access, token } => {
                let uri = Pkcs11Uri::parse(reference.as_str()).map_err(|_| elsewhere())?;
                if uri.token != *token {
                    return Err(elsewhere());
                }
                let module = Pkcs11Module::load(&access.module_path, &access.pin_file)?;
                Ok(Arc::new(module.open(&uri)?))
            }
        }
    }
}

impl From<CaKeyCurve> for CaCurve {
    fn from(curve: CaKeyCurve) -> Self {
        match curve {
            CaKeyCurve::P256 => Self::P256,
            CaKeyCurve::P384 => Self::P384,
        }
    }
}

/// A new key on `curve` at `path`, mode 0600, written only if no file is there: two makers
/// racing for one name both end up reading the one key written.
fn write_new_key(path: &std::path::Path, curve: CaKeyCurve) -> Result<(), KeyStoreError> {
    let algorithm = match curve {
        CaKeyCurve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CaKeyCurve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    let pem = rcgen::KeyPair::generate_for(algorithm)?.serialize_pem();
    let failed = |source| KeyStoreError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    // Written under a temporary name, then linked into place: a crash never leaves a
    // half-written key under the real name, and `hard_link` fails if one is there already.
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("dp-key-store-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn a_directory_makes_a_key_once_and_finds_it_again_by_name() {
        let dir = dir();
        let store = KeyStore::parse(dir.to_str().unwrap(), None).unwrap();
        let (reference, key) = store.make_or_open("ca-1234-1", CaKeyCurve::P384).unwrap();
        assert_eq!(reference.as_str(), "file:ca-1234-1");
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P384_SHA384);
        let mode = std::fs::metadata(dir.join("ca-1234-1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, same) = store.make_or_open("ca-1234-1", CaKeyCurve::P384).unwrap();
        assert_eq!(again, reference);
        assert_eq!(same.public_key(), key.public_key());
        assert_eq!(
            store.open(&reference).unwrap().public_key(),
            key.public_key()
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no partial files left");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_and_references_outside_the_store_are_refused() {
        let store = KeyStore::Directory(dir());
        for name in ["../etc/passwd", "", "CA", "a/b"] {
            assert!(
                store.make_or_open(name, CaKeyCurve::P256).is_err(),
                "{name}"
            );
        }
        for reference in ["file:../x", "pkcs11:token=t;object=o", "x"] {
            let reference = CaKeyReference::recorded(reference.into());
            assert!(matches!(
                store.open(&reference),
                Err(KeyStoreError::Elsewhere(_))
            ));
        }
    }

    #[test]
    fn a_token_store_needs_the_module_and_names_its_token() {
        assert!(KeyStore::parse("pkcs11:token=fleet", None).is_err());
        assert!(KeyStore::parse("pkcs11:object=x", None).is_err());
        let access = Pkcs11Access {
            module_path: "/m.so".into(),
            pin_file: "/pin".into(),
        };
        assert_eq!(
            KeyStore::parse("pkcs11:token=fleet%20CAs", Some(&access)).unwrap(),
            KeyStore::Token {
                access,
                token: "fleet CAs".into()
            }
        );
    }
}
