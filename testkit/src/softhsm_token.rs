//! A SoftHSM2 token of a test's own: a SoftHSM configuration (`SOFTHSM2_CONF`) whose token
//! directory is in the test's temporary folder, one token initialised with `softhsm2-util`,
//! and its user PIN in a file, as a deployment gives it (`PKCS11_PIN_FILE`). SoftHSM2 is
//! Debian's `softhsm2`, which `scripts/test-clients` installs. A test can take the token's
//! store away and bring it back, as an HSM stops and starts answering.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SoftHsmToken {
    /// The token's label (`pkcs11:token=<label>`).
    pub label: String,
    pub conf: PathBuf,
    pub pin_file: PathBuf,
    store: PathBuf,
}

impl SoftHsmToken {
    /// A new token labelled `label`, its files under `dir`.
    pub fn new(dir: &Path, label: &str) -> Self {
        let root = dir.join(format!("softhsm-{label}"));
        let store = root.join("tokens");
        std::fs::create_dir_all(&store).unwrap();
        let conf = root.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                store.display()
            ),
        )
        .unwrap();
        let pin = format!("pin-{}", uuid::Uuid::new_v4().simple());
        let initialised = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", &format!("so-{pin}"), "--pin", &pin])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util is installed (scripts/test-clients installs SoftHSM2)");
        assert!(
            initialised.status.success(),
            "{}",
            String::from_utf8_lossy(&initialised.stderr)
        );
        let pin_file = root.join("pin");
        std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
        Self {
            label: label.to_owned(),
            conf,
            pin_file,
            store,
        }
    }

    /// Debian's SoftHSM2 module, or `TEST_PKCS11_MODULE`.
    pub fn module_path() -> PathBuf {
        std::env::var_os("TEST_PKCS11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into())
    }

    /// The RFC 7512 URI of the key labelled `object` in this token.
    pub fn uri(&self, object: &str) -> String {
        format!("pkcs11:token={};object={object}", self.label)
    }

    /// What a process needs to use this token: `SOFTHSM2_CONF`, `PKCS11_MODULE_PATH`,
    /// `PKCS11_PIN_FILE`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SOFTHSM2_CONF", self.conf.display().to_string()),
            (
                "PKCS11_MODULE_PATH",
                Self::module_path().display().to_string(),
            ),
            ("PKCS11_PIN_FILE", self.pin_file.display().to_string()),
        ]
    }

    /// Moves the token's store away: SoftHSM then fails every use of the token.
    pub fn take_away(&self) {
        std::fs::rename(&self.store, self.away()).unwrap();
    }

    /// Puts the store back.
    pub fn bring_back(&self) {
        std::fs::rename(self.away(), &self.store).unwrap();
    }

    fn away(&self) -> PathBuf {
        self.store.with_file_name("tokens-away")
    }
}
