//! Where a CA's private key is held, as configuration names it (`CA_KEY_PATH`), and opening
//! it as a [`SigningKey`]. The one place a key backend is chosen: a new backend is its module
//! (its `SigningKey`) and a variant here that its references parse to.
//!
//! Must not: read the key's content into an error or a log (errors name the variable).

use std::path::PathBuf;
use std::sync::Arc;

use crate::key_file::{KeyFile, KeyFileError};
use crate::signing_key::SigningKey;

/// A configured reference to a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReference {
    /// A PKCS#8 PEM file (mode 0600), read into this process.
    File {
        variable: &'static str,
        path: PathBuf,
    },
}

/// The key a reference names cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyOpenError {
    #[error(transparent)]
    File(#[from] KeyFileError),
}

impl KeyReference {
    /// The reference in the configuration variable `variable`: a key file's path.
    pub fn parse(variable: &'static str, value: &str) -> Self {
        Self::File {
            variable,
            path: PathBuf::from(value),
        }
    }

    /// The key, ready to sign.
    pub fn open(&self) -> Result<Arc<dyn SigningKey>, KeyOpenError> {
        match self {
            Self::File { variable, path } => Ok(Arc::new(KeyFile::read(variable, path)?)),
        }
    }
}
