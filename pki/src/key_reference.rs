//! Where a CA's private key is held, as configuration names it (`CA_KEY_PATH`: a key file's
//! path, or an RFC 7512 `pkcs11:` URI with the token's module and PIN file beside it), and
//! opening it as a [`SigningKey`]. The one place a key backend is chosen: a new backend is its
//! module (its `SigningKey`) and a variant here that its references parse to.
//!
//! Must not: read the key's content or the PIN into an error or a log (errors name the
//! variable).

use std::path::PathBuf;
use std::sync::Arc;

use crate::key_file::{KeyFile, KeyFileError};
use crate::pkcs11_key::{NotAPkcs11Uri, Pkcs11Module, Pkcs11SetupError, Pkcs11Uri};
use crate::signing_key::SigningKey;

/// A configured reference to a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReference {
    /// A PKCS#8 PEM file (mode 0600), read into this process.
    File {
        variable: &'static str,
        path: PathBuf,
    },
    /// A key in a PKCS#11 token, which signs there.
    Pkcs11 {
        variable: &'static str,
        uri: Pkcs11Uri,
        access: Pkcs11Access,
    },
}

/// How this process reaches PKCS#11 tokens: the module (`PKCS11_MODULE_PATH`) and the file
/// holding the user PIN (`PKCS11_PIN_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Access {
    pub module_path: PathBuf,
    pub pin_file: PathBuf,
}

/// A configured key reference that cannot name a key. Never repeats the value.
#[derive(Debug, thiserror::Error)]
pub enum KeyReferenceError {
    #[error("{variable}: {source}")]
    NotAPkcs11Uri {
        variable: &'static str,
        source: NotAPkcs11Uri,
    },
    #[error(
        "{variable} names a key in a PKCS#11 token: set PKCS11_MODULE_PATH (the token's \
         module) and PKCS11_PIN_FILE (a file holding the user PIN)"
    )]
    NoPkcs11Access { variable: &'static str },
}

/// The key a reference names cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyOpenError {
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error("{variable}: {source}")]
    Pkcs11 {
        variable: &'static str,
        source: Pkcs11SetupError,
    },
}

impl KeyReference {
    /// The reference in the configuration variable `variable`: a `pkcs11:` URI, reached
    /// through `pkcs11` (which it then needs), or else a key file's path.
    pub fn parse(
        variable: &'static str,
        value: &str,
        pkcs11: Option<&Pkcs11Access>,
    ) -> Result<Self, KeyReferenceError> {
        if !value.starts_with("pkcs11:") {
            return Ok(Self::File {
                variable,
                path: PathBuf::from(value),
            });
        }
        let uri = Pkcs11Uri::parse(value)
            .map_err(|source| KeyReferenceError::NotAPkcs11Uri { variable, source })?;
        let access = pkcs11
            .cloned()
            .ok_or(KeyReferenceError::NoPkcs11Access { variable })?;
        Ok(Self::Pkcs11 {
            variable,
            uri,
            access,
        })
    }

    /// The key, ready to sign.
    pub fn open(&self) -> Result<Arc<dyn SigningKey>, KeyOpenError> {
        match self {
            Self::File { variable, path } => Ok(Arc::new(KeyFile::read(variable, path)?)),
            Self::Pkcs11 {
                variable,
                uri,
                access,
            } => {
                let in_token = |source| KeyOpenError::Pkcs11 { variable, source };
                let module =
                    Pkcs11Module::load(&access.module_path, &access.pin_file).map_err(in_token)?;
                Ok(Arc::new(module.open(uri).map_err(in_token)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Pkcs11Access {
        Pkcs11Access {
            module_path: "/usr/lib/softhsm/libsofthsm2.so".into(),
            pin_file: "/run/secrets/pin".into(),
        }
    }

    #[test]
    fn a_path_names_a_key_file_and_a_pkcs11_uri_a_key_in_a_token() {
        assert_eq!(
            KeyReference::parse("CA_KEY_PATH", "/etc/ca/ca.key", None).unwrap(),
            KeyReference::File {
                variable: "CA_KEY_PATH",
                path: "/etc/ca/ca.key".into()
            }
        );
        let in_token = KeyReference::parse(
            "CA_KEY_PATH",
            "pkcs11:token=fleet;object=ca",
            Some(&access()),
        )
        .unwrap();
        assert!(matches!(in_token, KeyReference::Pkcs11 { uri, .. } if uri.object == "ca"));
    }

    #[test]
    fn a_pkcs11_uri_needs_the_module_and_a_bad_one_is_not_repeated() {
        let err =
            KeyReference::parse("CA_KEY_PATH", "pkcs11:token=fleet;object=ca", None).unwrap_err();
        assert!(err.to_string().contains("PKCS11_MODULE_PATH"), "{err}");
        let err = KeyReference::parse("CA_KEY_PATH", "pkcs11:pin-value=1234", Some(&access()))
            .unwrap_err();
        assert!(err.to_string().starts_with("CA_KEY_PATH"), "{err}");
        assert!(!err.to_string().contains("1234"), "{err}");
    }
}
