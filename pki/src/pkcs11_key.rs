//! A [`SigningKey`] held in a PKCS#11 token (an HSM; SoftHSM2 in tests): the key is generated
//! in the token, sensitive and not extractable, and every signature is the token's. Keys are
//! named by RFC 7512 URIs (`pkcs11:token=<token label>;object=<key label>`); the module (the
//! token's PKCS#11 library) and the user PIN come from configuration, the PIN from a file.
//!
//! What tokens differ in, handled here: SoftHSM 2.6 offers raw `CKM_ECDSA` only, so the
//! message is hashed here (SHA-256 for P-256, SHA-384 for P-384) and the token signs the
//! digest; it answers `r‖s`, which becomes X.509's DER `Ecdsa-Sig-Value` (RustCrypto's
//! `ecdsa` types, no hand-written ASN.1); it gives `CKA_EC_POINT` wrapped in an OCTET
//! STRING. A PKCS#11 session may not be shared between threads, so each thread that signs
//! opens its own, once (the CA signs on Tokio's blocking pool, whose threads live on).
//!
//! An RSA-2048 key serves as the SCEP registration authority's (`generate_rsa`, `open_rsa`):
//! it signs (`CKM_SHA256_RSA_PKCS`, the token hashing) and decrypts the content-encryption
//! keys devices send it (`CKM_RSA_PKCS`, [`Pkcs11Key::decrypt_pkcs1v15`]), in the token, so
//! no RSA private-key operation runs in this process (the `rsa` crate's decryption is not
//! constant-time, RUSTSEC-2023-0071). Its public key is `CKA_MODULUS` and
//! `CKA_PUBLIC_EXPONENT` as PKCS#1's `RSAPublicKey` (RustCrypto's `pkcs1`).
//!
//! A token that does not answer is an outage ([`KeyUnavailable`]): nothing is refused because
//! of it, and the next signature opens a new session; when a new session fails too, the module
//! is initialised again (at most once a second), which a token that went away and came back
//! needs before it answers again.
//!
//! Must not: log or return the PIN (errors name the variable that holds it), or ask the token
//! for a private key's value.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rcgen::SignatureAlgorithm;
use sha2::{Digest, Sha256, Sha384};

use crate::signing_key::{KeyUnavailable, SigningKey};

/// The curves a CA key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaCurve {
    P256,
    P384,
}

/// prime256v1 (RFC 5480 §2.1.1.1).
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480 §2.1.1.1).
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

impl CaCurve {
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
        }
    }

    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// The digest the token signs, of `message`.
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256 => Sha256::digest(message).to_vec(),
            Self::P384 => Sha384::digest(message).to_vec(),
        }
    }

    /// The token's `r‖s` as DER `Ecdsa-Sig-Value`.
    fn der_signature(self, raw: &[u8]) -> Result<Vec<u8>, KeyUnavailable> {
        let malformed = |_| KeyUnavailable("the token's signature is not r‖s".into());
        match self {
            Self::P256 => Ok(p256::ecdsa::Signature::from_slice(raw)
                .map_err(malformed)?
                .to_der()
                .as_bytes()
                .to_vec()),
            Self::P384 => Ok(p384::ecdsa::Signature::from_slice(raw)
                .map_err(malformed)?
                .to_der()
                .as_bytes()
                .to_vec()),
        }
    }
}

/// What a key in a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKeyKind {
    /// A CA's signing key.
    Ec(CaCurve),
    /// An RSA-2048 key that signs and decrypts (the SCEP registration authority's).
    Rsa,
}

impl TokenKeyKind {
    fn key_type(self) -> KeyType {
        match self {
            Self::Ec(_) => KeyType::EC,
            Self::Rsa => KeyType::RSA,
        }
    }
}

/// The modulus size of the RSA keys made here.
const RSA_BITS: u64 = 2048;

/// A key named by an RFC 7512 URI: its token's label and its own label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: String,
    pub object: String,
}

/// Not a `pkcs11:` URI naming a token and an object. It does not repeat the URI, which may
/// hold a `pin-value`.
#[derive(Debug, thiserror::Error)]
#[error("not a PKCS#11 URI naming a key: pkcs11:token=<token label>;object=<key label>")]
pub struct NotAPkcs11Uri;

impl Pkcs11Uri {
    /// `pkcs11:token=…;object=…` (RFC 7512 §2.3: path attributes separated by `;`,
    /// percent-encoded values; others, such as `id` or `type`, are ignored).
    pub fn parse(uri: &str) -> Result<Self, NotAPkcs11Uri> {
        let refused = || NotAPkcs11Uri;
        let path = uri.strip_prefix("pkcs11:").ok_or_else(refused)?;
        let path = path.split('?').next().unwrap_or_default();
        let (mut token, mut object) = (None, None);
        for attribute in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attribute.split_once('=').ok_or_else(refused)?;
            let value = percent_decoded(value).ok_or_else(refused)?;
            match name {
                "token" => token = Some(value),
                "object" => object = Some(value),
                _ => {}
            }
        }
        match (token, object) {
            (Some(token), Some(object)) if !token.is_empty() && !object.is_empty() => {
                Ok(Self { token, object })
            }
            _ => Err(refused()),
        }
    }
}

/// `value` with its `%XX` escapes decoded, if it is UTF-8.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = value.get(at + 1..at + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The token's module and how to log in to it.
pub struct Pkcs11Module {
    loaded: Arc<LoadedModule>,
    pin: AuthPin,
}

/// A module as this process loaded it, shared by every key of the module: `C_Initialize` and
/// the library's state are process-wide.
struct LoadedModule {
    path: PathBuf,
    context: Pkcs11,
    /// Held shared by every call into the module and alone while it is initialised again.
    in_use: RwLock<()>,
    /// Counts the module's re-initialisations: a session opened before the latest one is
    /// gone (`C_Finalize` closed it) and its handle may now name another session.
    generation: AtomicU64,
    /// When the module was last initialised again, so a token that stays away costs one
    /// re-initialisation a second, not one a signature.
    last_recovery: Mutex<Option<Instant>>,
}

impl LoadedModule {
    /// Initialises the module again after a fresh session failed: a token that went away
    /// (an HSM that stopped answering, a token whose store vanished) is often usable again
    /// only through a new `C_Initialize`, which SoftHSM 2.6 needs too.
    fn recover(&self) {
        let _alone = self.in_use.write().unwrap_or_else(|e| e.into_inner());
        let mut last = self.last_recovery.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < RECOVERY_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let _ = self.context.clone().finalize();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = initialise(&self.context) {
            tracing::warn!(module = %self.path.display(), error = %e, "cannot initialise the PKCS#11 module again");
        }
    }
}

/// The least time between two re-initialisations of one module.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The module cannot be loaded or the PIN read. Never includes the PIN.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11SetupError {
    #[error("PKCS11_MODULE_PATH {path}: cannot load the PKCS#11 module: {source}")]
    Module { path: String, source: Pkcs11Error },
    #[error("PKCS11_PIN_FILE {path}: cannot read the PIN")]
    Pin {
        path: String,
        source: std::io::Error,
    },
    #[error("the token {token:?} is not present")]
    NoToken { token: String },
    #[error("the token {token:?} holds no key {object:?}")]
    NoKey { token: String, object: String },
    #[error("the token {token:?} already holds a key {object:?}")]
    KeyExists { token: String, object: String },
    #[error("the key {object:?} is not an ECDSA P-256 or P-384 key")]
    NotACaKey { object: String },
    #[error("the key {object:?} is not an RSA key whose public half the token gives")]
    NotAnRsaKey { object: String },
    #[error("the token refused: {0}")]
    Token(#[from] Pkcs11Error),
}

impl Pkcs11Module {
    /// Loads the module at `module_path` (`PKCS11_MODULE_PATH`) and reads the user PIN from
    /// `pin_file` (`PKCS11_PIN_FILE`; trailing whitespace is not part of it).
    pub fn load(module_path: &Path, pin_file: &Path) -> Result<Self, Pkcs11SetupError> {
        let pin = std::fs::read_to_string(pin_file).map_err(|source| Pkcs11SetupError::Pin {
            path: pin_file.display().to_string(),
            source,
        })?;
        let module_error = |source| Pkcs11SetupError::Module {
            path: module_path.display().to_string(),
            source,
        };
        let loaded = loaded_module(module_path).map_err(module_error)?;
        Ok(Self {
            loaded,
            pin: AuthPin::from(pin.trim_end().to_owned()),
        })
    }

    /// The slot of the token labelled `token`.
    fn slot(&self, token: &str) -> Result<Slot, Pkcs11SetupError> {
        self.find_slot(token)?
            .ok_or_else(|| Pkcs11SetupError::NoToken {
                token: token.to_owned(),
            })
    }

    fn find_slot(&self, token: &str) -> Result<Option<Slot>, Pkcs11Error> {
        let context = &self.loaded.context;
        for slot in context.get_slots_with_token()? {
            if context.get_token_info(slot)?.label().trim_end() == token {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// A session on `slot`, logged in as the user.
    fn session(&self, slot: Slot) -> Result<Session, Pkcs11Error> {
        let session = self.loaded.context.open_rw_session(slot)?;
        match session.login(UserType::User, Some(&self.pin)) {
            // Login is per application: another session of this process already did.
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    /// Generates a key on `curve` in the token, named by `uri`: private, sensitive, never
    /// extractable, for signing only; its public half beside it. Refused if the token already
    /// holds a key of that name.
    pub fn generate(&self, uri: &Pkcs11Uri, curve: CaCurve) -> Result<Pkcs11Key, Pkcs11SetupError> {
        let curve_der = curve.oid().to_der().expect("an OID encodes");
        self.generate_pair(
            uri,
            KeyType::EC,
            &Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(curve_der)],
            vec![],
        )?;
        self.open(uri)
    }

    /// Generates an RSA-2048 key in the token, named by `uri`: private, sensitive, never
    /// extractable, for signing and decrypting; its public half beside it. Refused if the
    /// token already holds an RSA key of that name.
    pub fn generate_rsa(&self, uri: &Pkcs11Uri) -> Result<Pkcs11Key, Pkcs11SetupError> {
        self.generate_pair(
            uri,
            KeyType::RSA,
            &Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::Encrypt(true),
                Attribute::ModulusBits(RSA_BITS.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
            vec![Attribute::Decrypt(true)],
        )?;
        self.open_rsa(uri)
    }

    /// A key pair of `key_type` made by `mechanism`, named by `uri`: the private key token
    /// resident, private, sensitive, never extractable, signing (and whatever `private`
    /// adds), its public half (with `public`'s attributes) verifying. Refused if the token
    /// already holds a key of that type and name (a label names one key: a second would make
    /// the URI ambiguous).
    fn generate_pair(
        &self,
        uri: &Pkcs11Uri,
        key_type: KeyType,
        mechanism: &Mechanism<'_>,
        public: Vec<Attribute>,
        private: Vec<Attribute>,
    ) -> Result<(), Pkcs11SetupError> {
        let _in_use = self.loaded.in_use.read().unwrap_or_else(|e| e.into_inner());
        let slot = self.slot(&uri.token)?;
        let session = self.session(slot)?;
        let label = uri.object.as_bytes().to_vec();
        if find_key(&session, ObjectClass::PRIVATE_KEY, key_type, &label)?.is_some() {
            return Err(Pkcs11SetupError::KeyExists {
                token: uri.token.clone(),
                object: uri.object.clone(),
            });
        }
        let public: Vec<Attribute> = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ]
        .into_iter()
        .chain(public)
        .collect();
        let private: Vec<Attribute> = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ]
        .into_iter()
        .chain(private)
        .collect();
        one_generation_at_a_time(|| session.generate_key_pair(mechanism, &public, &private))?;
        Ok(())
    }

    /// The RSA key `uri` names.
    pub fn open_rsa(&self, uri: &Pkcs11Uri) -> Result<Pkcs11Key, Pkcs11SetupError> {
        let _in_use = self.loaded.in_use.read().unwrap_or_else(|e| e.into_inner());
        let slot = self.slot(&uri.token)?;
        let session = self.session(slot)?;
        let no_key = || Pkcs11SetupError::NoKey {
            token: uri.token.clone(),
            object: uri.object.clone(),
        };
        let label = uri.object.as_bytes().to_vec();
        find_key(&session, ObjectClass::PRIVATE_KEY, KeyType::RSA, &label)?.ok_or_else(no_key)?;
        let public = find_key(&session, ObjectClass::PUBLIC_KEY, KeyType::RSA, &label)?
            .ok_or_else(no_key)?;
        let (mut modulus, mut exponent) = (None, None);
        for attribute in session.get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )? {
            match attribute {
                Attribute::Modulus(value) => modulus = Some(value),
                Attribute::PublicExponent(value) => exponent = Some(value),
                _ => {}
            }
        }
        let not_rsa = || Pkcs11SetupError::NotAnRsaKey {
            object: uri.object.clone(),
        };
        let (modulus, exponent) = modulus.zip(exponent).ok_or_else(not_rsa)?;
        let public_key = pkcs1::RsaPublicKey {
            modulus: pkcs1::UintRef::new(&modulus).map_err(|_| not_rsa())?,
            public_exponent: pkcs1::UintRef::new(&exponent).map_err(|_| not_rsa())?,
        }
        .to_der()
        .map_err(|_| not_rsa())?;
        drop(session);
        Ok(self.key(uri, label, TokenKeyKind::Rsa, public_key))
    }

    fn key(
        &self,
        uri: &Pkcs11Uri,
        label: Vec<u8>,
        kind: TokenKeyKind,
        public_key: Vec<u8>,
    ) -> Pkcs11Key {
        Pkcs11Key {
            module: Pkcs11Module {
                loaded: self.loaded.clone(),
                pin: self.pin.clone(),
            },
            token: uri.token.clone(),
            label,
            kind,
            public_key,
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The key `uri` names.
    pub fn open(&self, uri: &Pkcs11Uri) -> Result<Pkcs11Key, Pkcs11SetupError> {
        let _in_use = self.loaded.in_use.read().unwrap_or_else(|e| e.into_inner());
        let slot = self.slot(&uri.token)?;
        let session = self.session(slot)?;
        let no_key = || Pkcs11SetupError::NoKey {
            token: uri.token.clone(),
            object: uri.object.clone(),
        };
        let label = uri.object.as_bytes().to_vec();
        find_key(&session, ObjectClass::PRIVATE_KEY, KeyType::EC, &label)?.ok_or_else(no_key)?;
        let public =
            find_key(&session, ObjectClass::PUBLIC_KEY, KeyType::EC, &label)?.ok_or_else(no_key)?;
        let not_a_ca_key = || Pkcs11SetupError::NotACaKey {
            object: uri.object.clone(),
        };
        let (mut params, mut point) = (None, None);
        for attribute in
            session.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?
        {
            match attribute {
                Attribute::EcParams(value) => params = Some(value),
                Attribute::EcPoint(value) => point = Some(value),
                _ => {}
            }
        }
        let curve = match params
            .and_then(|der| ObjectIdentifier::from_der(&der).ok())
            .ok_or_else(not_a_ca_key)?
        {
            OID_P256 => CaCurve::P256,
            OID_P384 => CaCurve::P384,
            _ => return Err(not_a_ca_key()),
        };
        // CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 2.40 §2.3.3); some
        // tokens give the bare point.
        let point = point.ok_or_else(not_a_ca_key)?;
        let public_key = match OctetString::from_der(&point) {
            Ok(wrapped) => wrapped.as_bytes().to_vec(),
            Err(_) => point,
        };
        drop(session);
        Ok(self.key(uri, label, TokenKeyKind::Ec(curve), public_key))
    }
}

/// One key generation at a time in this process (keys are made rarely): SoftHSM 2.6 now and
/// then refuses a generation that runs beside other work on the token (CKR_GENERAL_ERROR,
/// CKR_TEMPLATE_INCONSISTENT); whoever makes a key must treat a refused generation as worth
/// trying again.
fn one_generation_at_a_time<T>(generate: impl FnOnce() -> T) -> T {
    static GENERATING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = GENERATING.lock().unwrap_or_else(|e| e.into_inner());
    generate()
}

/// The module at `path`, loaded and initialised once per process.
fn loaded_module(path: &Path) -> Result<Arc<LoadedModule>, Pkcs11Error> {
    static LOADED: Mutex<Vec<Arc<LoadedModule>>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(module) = loaded.iter().find(|module| module.path == path) {
        return Ok(module.clone());
    }
    let context = Pkcs11::new(path)?;
    initialise(&context)?;
    let module = Arc::new(LoadedModule {
        path: path.to_owned(),
        context,
        in_use: RwLock::new(()),
        generation: AtomicU64::new(0),
        last_recovery: Mutex::new(None),
    });
    loaded.push(module.clone());
    Ok(module)
}

/// `C_Initialize`, with the OS's locking (every thread may call in).
fn initialise(context: &Pkcs11) -> Result<(), Pkcs11Error> {
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The key of `class` and `key_type` labelled `label`, in `session`.
fn find_key(
    session: &Session,
    class: ObjectClass,
    key_type: KeyType,
    label: &[u8],
) -> Result<Option<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(label.to_vec()),
        ])
        .map(|found| found.first().copied())
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's session with each key's token and the key's handle in it, by key
    /// instance: a session may not be shared between threads, opening one per signature would
    /// cost a login each time, and a handle is good only while its session (some tokens: any
    /// session) is open, so each session finds the key itself.
    static SESSIONS: RefCell<HashMap<u64, OpenSession>> = RefCell::new(HashMap::new());
}

/// A session of this thread, the key's handle in it, and the module's generation it was
/// opened in.
struct OpenSession {
    session: ManuallyDrop<Session>,
    private: ObjectHandle,
    loaded: Arc<LoadedModule>,
    generation: u64,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        // Closed only if it still exists: after a re-initialisation its handle may name a newer
        // session (then it was closed by `C_Finalize` and is left alone; also while one runs).
        let Ok(_in_use) = self.loaded.in_use.try_read() else {
            return;
        };
        if self.loaded.generation.load(Ordering::Acquire) == self.generation {
            // SAFETY: dropped once, here; the field is never used again.
            unsafe { ManuallyDrop::drop(&mut self.session) };
        }
    }
}

/// A private key in a PKCS#11 token, signing there.
pub struct Pkcs11Key {
    module: Pkcs11Module,
    /// The token's label, by which its slot is found again after the module is initialised
    /// again.
    token: String,
    /// The key's label (`object=` of its URI), which each session finds it by.
    label: Vec<u8>,
    kind: TokenKeyKind,
    /// The SubjectPublicKeyInfo's bits: an EC key's uncompressed point, an RSA key's
    /// `RSAPublicKey`.
    public_key: Vec<u8>,
    /// Tells this key's sessions from another key's in [`SESSIONS`].
    instance: u64,
}

impl Pkcs11Key {
    /// `operation` with the private key on this thread's session, opening it first if
    /// needed. When a session opened for this very operation fails too, the token is treated
    /// as gone and the module is initialised again, so the key works again by itself once the
    /// token is back. `refusal` says which errors are the token's answer to the input (a
    /// ciphertext that does not decrypt), not a failed session.
    fn with_private_key<T>(
        &self,
        operation: impl FnOnce(&Session, ObjectHandle) -> Result<T, Pkcs11Error>,
        refusal: impl Fn(&Pkcs11Error) -> bool,
    ) -> Result<T, Pkcs11Error> {
        let loaded = &self.module.loaded;
        let (outcome, fresh) = {
            let _in_use = loaded.in_use.read().unwrap_or_else(|e| e.into_inner());
            let generation = loaded.generation.load(Ordering::Acquire);
            SESSIONS.with(|sessions| {
                let mut sessions = sessions.borrow_mut();
                let held = sessions
                    .remove(&self.instance)
                    .filter(|open| open.generation == generation);
                let fresh = held.is_none();
                let open = match held {
                    Some(open) => open,
                    None => match self.open_session(generation) {
                        Ok(open) => open,
                        Err(e) => return (Err(e), true),
                    },
                };
                let outcome = operation(&open.session, open.private);
                if outcome.as_ref().is_ok() || outcome.as_ref().is_err_and(&refusal) {
                    sessions.insert(self.instance, open);
                }
                // A failed session is dropped: the token may be gone or the session broken.
                (outcome, fresh)
            })
        };
        if outcome.as_ref().is_err_and(|e| !refusal(e)) && fresh {
            loaded.recover();
        }
        outcome
    }

    /// The plaintext of `ciphertext`, RSA PKCS#1 v1.5 (`CKM_RSA_PKCS`), decrypted in the
    /// token: what a device's content-encryption key is sent as (RFC 8894 §3.2.2). `Ok(None)`:
    /// the token says it does not decrypt (bad padding, wrong length); the caller must carry
    /// on as if it had (RFC 3218's random key), so that no one learns which.
    pub fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, KeyUnavailable> {
        if self.kind != TokenKeyKind::Rsa {
            return Err(KeyUnavailable("only an RSA key decrypts".into()));
        }
        // SoftHSM 2.6 answers CKR_GENERAL_ERROR to every ciphertext it cannot decrypt (a
        // value past the modulus, bad padding); a token that went away answers otherwise
        // (no session, no token, no device).
        let refused = |e: &Pkcs11Error| {
            matches!(
                e,
                Pkcs11Error::Pkcs11(
                    RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::GeneralError,
                    _
                )
            )
        };
        match self.with_private_key(
            |session, private| session.decrypt(&Mechanism::RsaPkcs, private, ciphertext),
            refused,
        ) {
            Ok(plaintext) => Ok(Some(plaintext)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(KeyUnavailable(format!(
                "the PKCS#11 token did not decrypt: {e}"
            ))),
        }
    }

    /// A new session of this thread, with the key found in it.
    fn open_session(&self, generation: u64) -> Result<OpenSession, Pkcs11Error> {
        let key_gone = Pkcs11Error::Pkcs11(
            RvError::KeyHandleInvalid,
            cryptoki::context::Function::FindObjects,
        );
        let slot = self
            .module
            .find_slot(&self.token)?
            .ok_or(Pkcs11Error::Pkcs11(
                RvError::TokenNotPresent,
                cryptoki::context::Function::GetSlotList,
            ))?;
        let session = self.module.session(slot)?;
        let private = find_key(
            &session,
            ObjectClass::PRIVATE_KEY,
            self.kind.key_type(),
            &self.label,
        )?
        .ok_or(key_gone)?;
        Ok(OpenSession {
            session: ManuallyDrop::new(session),
            private,
            loaded: self.module.loaded.clone(),
            generation,
        })
    }
}

impl SigningKey for Pkcs11Key {
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.kind {
            TokenKeyKind::Ec(curve) => curve.algorithm(),
            TokenKeyKind::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyUnavailable> {
        let unavailable = |e| KeyUnavailable(format!("the PKCS#11 token did not sign: {e}"));
        match self.kind {
            TokenKeyKind::Ec(curve) => {
                let digest = curve.digest(message);
                let raw = self
                    .with_private_key(
                        |session, private| session.sign(&Mechanism::Ecdsa, private, &digest),
                        |_| false,
                    )
                    .map_err(unavailable)?;
                curve.der_signature(&raw)
            }
            // PKCS#1 v1.5 with SHA-256, hashed by the token: the signature is its bytes.
            TokenKeyKind::Rsa => self
                .with_private_key(
                    |session, private| session.sign(&Mechanism::Sha256RsaPkcs, private, message),
                    |_| false,
                )
                .map_err(unavailable),
        }
    }
}

impl Drop for Pkcs11Key {
    fn drop(&mut self) {
        // Only this thread's session can be reached; the others close when their threads end.
        let _ = SESSIONS.try_with(|sessions| sessions.borrow_mut().remove(&self.instance));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rfc_7512_uri_names_its_token_and_object() {
        let uri =
            Pkcs11Uri::parse("pkcs11:token=fleet%20CAs;object=acme-root;type=private").unwrap();
        assert_eq!(uri.token, "fleet CAs");
        assert_eq!(uri.object, "acme-root");
        for refused in [
            "pkcs11:token=t",
            "pkcs11:object=o",
            "file:///ca.key",
            "pkcs11:token=t;object=%zz",
            "pkcs11:token=;object=o",
        ] {
            assert!(Pkcs11Uri::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_refused_uri_is_not_repeated_in_the_error() {
        let err = Pkcs11Uri::parse("pkcs11:token=t;pin-value=secret-1234").unwrap_err();
        assert!(!err.to_string().contains("secret-1234"), "{err}");
        assert!(err.to_string().contains("pkcs11:token="), "{err}");
    }
}
