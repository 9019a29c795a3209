//! The OCSP responder (RFC 6960, over HTTP as RFC 5019 profiles it): decodes a request,
//! answers each CertID from the `certificate_status` read model (`good`, `revoked` with its
//! time and reason, or `unknown`) and signs the answer with the delegated signer, the api's
//! only key (`delegated_signer.rs`; the CA key never comes here). Every outcome is an OCSP
//! response: a request that cannot be answered gets an OCSP error status, never an HTTP
//! error.
//!
//! A response is signed per request, so the client's nonce is honoured. Per request: at
//! most one indexed read (none when no CertID names our CA, none when the statuses were read
//! within `OCSP_STATUS_CACHE_MS`: `app::pki::CachedStatusLookup`, which keeps a revocation's
//! delay well under a second) and one ECDSA P-256 signature (~25 µs with ring), made on the
//! async thread: a hop to the blocking pool would cost about as much as the signature.
//!
//! Must not: hold the CA key, keep statuses longer than the lookup it is given allows, or
//! know HTTP (`http/ocsp.rs` maps answers to responses).

mod delegated_signer;
mod request;
mod signed_response;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use app::pki::{
    CertificateSerialHex, CertificateStatusLookup, CertificateStatusRecord, IssuingCaId,
};
use app::StoreError;
use chrono::{DateTime, Utc};
use der::oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use domain::CaRevocationReason;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{CertId, CertStatus, OcspResponseStatus, RevokedInfo, SingleResponse};

pub use crate::signer_files::SignerLoadError;
pub use delegated_signer::DelegatedSigner;
pub use request::MAX_CERT_IDS;

use delegated_signer::IssuerHashes;

/// The responder: off (every request is `unauthorized`) until a delegated signer is
/// configured; then it answers for the platform's CA and for every tenant CA that certified
/// its key ([`OcspResponder::set_tenant_responders`], refreshed while it runs).
pub struct OcspResponder {
    configured: Option<Configured>,
}

struct Configured {
    /// The platform CA's signer (`OCSP_SIGNER_CERT_PATH`).
    platform: CaResponder,
    /// Tenants' CAs' signers, by CA: replaced as a whole when refreshed.
    tenants: RwLock<Arc<HashMap<IssuingCaId, CaResponder>>>,
    statuses: Arc<dyn CertificateStatusLookup>,
    /// nextUpdate − thisUpdate of every answer (`OCSP_NEXT_UPDATE_SECONDS`).
    next_update: Duration,
}

/// One CA's responder: its delegated signer, and what the CAs' events say of the CA.
pub struct CaResponder {
    signer: DelegatedSigner,
    /// The platform's CA also answers for certificates recorded before certificates named
    /// their issuer.
    with_unattributed: bool,
    /// A revoked CA: everything it issued is revoked from then on.
    revoked: Option<(DateTime<Utc>, CaRevocationReason)>,
}

impl CaResponder {
    /// A tenant CA's responder; `revoked`: the CA's revocation, if it is revoked.
    pub fn tenant(
        signer: DelegatedSigner,
        revoked: Option<(DateTime<Utc>, CaRevocationReason)>,
    ) -> Self {
        Self {
            signer,
            with_unattributed: false,
            revoked,
        }
    }

    /// Whether `record` is of a certificate this CA issued.
    fn issued(&self, record: &CertificateStatusRecord) -> bool {
        match &record.issuer {
            Some(issuer) => issuer == self.signer.ca(),
            None => self.with_unattributed,
        }
    }
}

/// What the responder answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    /// The OCSPResponse, DER.
    pub der: Vec<u8>,
    pub status: OcspResponseStatus,
    /// How long a shared cache may keep the answer: only a successful one to a request
    /// without a nonce (an answer with a nonce is for its own request only).
    pub cacheable_for: Option<Duration>,
}

impl OcspAnswer {
    fn error(status: OcspResponseStatus) -> Self {
        Self {
            der: signed_response::unsigned(status),
            status,
            cacheable_for: None,
        }
    }
}

impl OcspResponder {
    pub fn off() -> Self {
        Self { configured: None }
    }

    pub fn new(
        signer: DelegatedSigner,
        statuses: Arc<dyn CertificateStatusLookup>,
        next_update: Duration,
    ) -> Self {
        Self {
            configured: Some(Configured {
                platform: CaResponder {
                    signer,
                    with_unattributed: true,
                    revoked: None,
                },
                tenants: RwLock::new(Arc::new(HashMap::new())),
                statuses,
                next_update,
            }),
        }
    }

    /// The platform CA it answers for, when it is on.
    pub fn ca(&self) -> Option<&IssuingCaId> {
        self.configured.as_ref().map(|c| c.platform.signer.ca())
    }

    /// The platform signer's key as tenants' CAs certify it, when it is on.
    pub fn responder_key(&self) -> Option<(app::pki::ResponderKey, Arc<dyn crate::SigningKey>)> {
        self.configured
            .as_ref()
            .map(|c| (c.platform.signer.responder_key(), c.platform.signer.key()))
    }

    /// Answers for exactly these tenant CAs from now on.
    pub fn set_tenant_responders(&self, responders: Vec<CaResponder>) {
        let Some(configured) = &self.configured else {
            return;
        };
        let by_ca = responders
            .into_iter()
            .map(|responder| (responder.signer.ca().clone(), responder))
            .collect();
        *configured
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(by_ca);
    }

    /// The answer to a request that could not be read (e.g. a GET path that is not base64).
    pub fn malformed(&self) -> OcspAnswer {
        counted(OcspAnswer::error(OcspResponseStatus::MalformedRequest))
    }

    /// Answers `request` (DER) sent to the responder of `ca` (the URL's segment).
    pub async fn respond(&self, ca: &str, request: &[u8]) -> OcspAnswer {
        counted(self.answer(ca, request, Utc::now()).await)
    }

    async fn answer(&self, ca: &str, request: &[u8], now: DateTime<Utc>) -> OcspAnswer {
        let Some(configured) = &self.configured else {
            return OcspAnswer::error(OcspResponseStatus::Unauthorized);
        };
        let Ok(ca) = IssuingCaId::parse(ca) else {
            return OcspAnswer::error(OcspResponseStatus::Unauthorized);
        };
        let tenants;
        let responder = if &ca == configured.platform.signer.ca() {
            &configured.platform
        } else {
            tenants = configured
                .tenants
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match tenants.get(&ca) {
                Some(responder) => responder,
                None => return OcspAnswer::error(OcspResponseStatus::Unauthorized),
            }
        };
        let request = match request::decode(request) {
            Ok(request) => request,
            Err(problem) => {
                tracing::debug!(%problem, "malformed OCSP request");
                return OcspAnswer::error(OcspResponseStatus::MalformedRequest);
            }
        };
        let hashes = responder.signer.issuer_hashes();
        // `None`: a CertID that does not name our CA (or by a hash we do not answer for).
        let ours: Vec<Option<CertificateSerialHex>> = request
            .cert_ids
            .iter()
            .map(|id| {
                names_issuer(id, hashes)
                    .then(|| CertificateSerialHex::from_bytes(id.serial_number.as_bytes()))
            })
            .collect();
        let asked: Vec<CertificateSerialHex> = ours.iter().flatten().cloned().collect();
        let records = if asked.is_empty() {
            Vec::new()
        } else {
            match configured.statuses.statuses_of(&asked).await {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "certificate status lookup failed");
                    return OcspAnswer::error(match e {
                        StoreError::Unavailable(_) => OcspResponseStatus::TryLater,
                        StoreError::Corrupt(_) => OcspResponseStatus::InternalError,
                    });
                }
            }
        };
        let next_update =
            now + chrono::Duration::from_std(configured.next_update).expect("a bounded duration");
        let responses = match request
            .cert_ids
            .into_iter()
            .zip(&ours)
            .map(|(cert_id, serial)| {
                let status = match serial {
                    Some(serial) => status_of(
                        records
                            .iter()
                            .find(|r| &r.serial == serial && responder.issued(r)),
                        responder.revoked,
                    )?,
                    None => CertStatus::unknown(),
                };
                metrics::counter!("ocsp_certificate_statuses_total", "status" => status_name(&status))
                    .increment(1);
                Ok(SingleResponse {
                    cert_id,
                    cert_status: status,
                    this_update: signed_response::ocsp_time(now)?,
                    next_update: Some(signed_response::ocsp_time(next_update)?),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, der::Error>>()
        {
            Ok(responses) => responses,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an OCSP answer");
                return OcspAnswer::error(OcspResponseStatus::InternalError);
            }
        };
        let has_nonce = request.nonce.is_some();
        match signed_response::signed(&responder.signer, responses, request.nonce, now) {
            Ok(der) => OcspAnswer {
                der,
                status: OcspResponseStatus::Successful,
                cacheable_for: (!has_nonce).then_some(configured.next_update),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot sign an OCSP response");
                OcspAnswer::error(OcspResponseStatus::InternalError)
            }
        }
    }
}

/// Whether `id` names the CA by its name and key hashes, with a hash we answer for
/// (SHA-1, OpenSSL's default, or SHA-256).
fn names_issuer(id: &CertId, hashes: &IssuerHashes) -> bool {
    let (name, key) = match id.hash_algorithm.oid {
        ID_SHA_1 => &hashes.sha1,
        ID_SHA_256 => &hashes.sha256,
        _ => return false,
    };
    id.issuer_name_hash.as_bytes() == name.as_slice()
        && id.issuer_key_hash.as_bytes() == key.as_slice()
}

/// A CertID of our CA: `good`, `revoked` with time and reason, or `unknown` when the CA
/// never issued the serial (RFC 6960 §2.2). Everything a revoked CA issued is revoked, from
/// the CA's revocation on (or its own, if that came first).
fn status_of(
    record: Option<&CertificateStatusRecord>,
    ca_revoked: Option<(DateTime<Utc>, CaRevocationReason)>,
) -> Result<CertStatus, der::Error> {
    let Some(record) = record else {
        return Ok(CertStatus::unknown());
    };
    let own = record
        .revocation
        .as_ref()
        .map(|r| (r.revoked_at, crl_reason(r.reason)));
    let ca = ca_revoked.map(|(at, reason)| (at, ca_crl_reason(reason)));
    let earliest = match (own, ca) {
        (Some(own), Some(ca)) => Some(if ca.0 < own.0 { ca } else { own }),
        (own, ca) => own.or(ca),
    };
    let Some((revoked_at, reason)) = earliest else {
        return Ok(CertStatus::good());
    };
    Ok(CertStatus::Revoked(RevokedInfo {
        revocation_time: signed_response::ocsp_time(revoked_at)?,
        revocation_reason: Some(reason),
    }))
}

fn ca_crl_reason(reason: CaRevocationReason) -> CrlReason {
    match reason {
        CaRevocationReason::Unspecified => CrlReason::Unspecified,
        CaRevocationReason::CaCompromise => CrlReason::CaCompromise,
        CaRevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        CaRevocationReason::Superseded => CrlReason::Superseded,
        CaRevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
    }
}

fn crl_reason(reason: domain::RevocationReason) -> CrlReason {
    use domain::RevocationReason as R;
    match reason {
        R::Unspecified => CrlReason::Unspecified,
        R::KeyCompromise => CrlReason::KeyCompromise,
        R::AffiliationChanged => CrlReason::AffiliationChanged,
        R::Superseded => CrlReason::Superseded,
        R::CessationOfOperation => CrlReason::CessationOfOperation,
        R::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

fn status_name(status: &CertStatus) -> &'static str {
    match status {
        CertStatus::Good(_) => "good",
        CertStatus::Revoked(_) => "revoked",
        CertStatus::Unknown(_) => "unknown",
    }
}

/// Counts `answer` in `ocsp_responses_total{status}` (RFC 6960's names).
fn counted(answer: OcspAnswer) -> OcspAnswer {
    let status = match answer.status {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "malformedRequest",
        OcspResponseStatus::InternalError => "internalError",
        OcspResponseStatus::TryLater => "tryLater",
        OcspResponseStatus::SigRequired => "sigRequired",
        OcspResponseStatus::Unauthorized => "unauthorized",
    };
    metrics::counter!("ocsp_responses_total", "status" => status).increment(1);
    answer
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use async_trait::async_trait;
    use der::asn1::OctetString;
    use der::{Decode, Encode};
    use domain::{Revocation, RevocationReason};
    use sha2::{Digest, Sha256};
    use x509_ocsp::{BasicOcspResponse, OcspResponse, ResponderId};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::request::tests::{cert_id, nonce_extension, request_der};

    /// The read model, in memory; counts the lookups.
    #[derive(Default)]
    struct Statuses {
        records: Vec<CertificateStatusRecord>,
        fail: Option<fn() -> StoreError>,
        lookups: Mutex<Vec<Vec<CertificateSerialHex>>>,
    }

    #[async_trait]
    impl CertificateStatusLookup for Statuses {
        async fn statuses_of(
            &self,
            serials: &[CertificateSerialHex],
        ) -> Result<Vec<CertificateStatusRecord>, StoreError> {
            self.lookups.lock().unwrap().push(serials.to_vec());
            if let Some(fail) = self.fail {
                return Err(fail());
            }
            Ok(self
                .records
                .iter()
                .filter(|r| serials.contains(&r.serial))
                .cloned()
                .collect())
        }
    }

    const GOOD: [u8; 2] = [0x01, 0x01];
    const REVOKED: [u8; 2] = [0x01, 0x02];
    const NEVER_ISSUED: [u8; 2] = [0x01, 0x03];

    fn revoked_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 123_000).unwrap()
    }

    fn statuses() -> Statuses {
        Statuses {
            records: vec![
                CertificateStatusRecord {
                    serial: CertificateSerialHex::from_bytes(&GOOD),
                    device_id: domain::DeviceId::from_uuid(uuid::Uuid::nil()),
                    tenant: domain::TenantId::parse("acme").unwrap(),
                    issuer: None,
                    revocation: None,
                },
                CertificateStatusRecord {
                    serial: CertificateSerialHex::from_bytes(&REVOKED),
                    device_id: domain::DeviceId::from_uuid(uuid::Uuid::nil()),
                    tenant: domain::TenantId::parse("acme").unwrap(),
                    issuer: None,
                    revocation: Some(Revocation {
                        serial: "0102".into(),
                        reason: RevocationReason::KeyCompromise,
                        revoked_at: revoked_at(),
                    }),
                },
            ],
            ..Statuses::default()
        }
    }

    struct Fixture {
        responder: OcspResponder,
        statuses: Arc<Statuses>,
        ca: String,
        /// SHA-1 of the CA's name and key bits.
        hashes: (Vec<u8>, Vec<u8>),
        signer_der: Vec<u8>,
        /// The CA's subject Name, DER.
        ca_name: Vec<u8>,
    }

    fn fixture(statuses: Statuses) -> Fixture {
        let (chain, key) = delegated_signer::tests::valid_chain();
        let signer = DelegatedSigner::from_pem(&chain, &key, Utc::now()).unwrap();
        let ca = signer.ca().to_string();
        let hashes = signer.issuer_hashes().sha1.clone();
        let signer_der = signer.certificate_der();
        let ca_der = ::pem::parse_many(&chain).unwrap()[1].contents().to_vec();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        let ca_name = ca_cert.subject().as_raw().to_vec();
        let statuses = Arc::new(statuses);
        Fixture {
            responder: OcspResponder::new(signer, statuses.clone(), Duration::from_secs(60)),
            statuses,
            ca,
            hashes,
            signer_der,
            ca_name,
        }
    }

    impl Fixture {
        fn our(&self, serial: &[u8]) -> CertId {
            cert_id(&self.hashes.0, &self.hashes.1, serial)
        }

        async fn ask(&self, request: &[u8]) -> OcspAnswer {
            self.responder.respond(&self.ca, request).await
        }
    }

    /// The BasicOCSPResponse of a successful answer, its signature checked with the
    /// signer certificate's key.
    fn basic(answer: &OcspAnswer, signer_der: &[u8]) -> BasicOcspResponse {
        assert_eq!(answer.status, OcspResponseStatus::Successful);
        let response = OcspResponse::from_der(&answer.der).unwrap();
        assert_eq!(response.response_status, OcspResponseStatus::Successful);
        let bytes = response.response_bytes.unwrap();
        assert_eq!(bytes.response_type.to_string(), "1.3.6.1.5.5.7.48.1.1");
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
        let (_, signer) = X509Certificate::from_der(signer_der).unwrap();
        let algorithm_der = basic.signature_algorithm.to_der().unwrap();
        let (_, algorithm) =
            x509_parser::x509::AlgorithmIdentifier::from_der(&algorithm_der).unwrap();
        let signature_der = basic.signature.to_der().unwrap();
        let (_, signature) = x509_parser::asn1_rs::BitString::from_der(&signature_der).unwrap();
        x509_parser::verify::verify_signature(
            signer.public_key(),
            &algorithm,
            &signature,
            &basic.tbs_response_data.to_der().unwrap(),
        )
        .expect("the response verifies with the signer's key");
        basic
    }

    #[tokio::test]
    async fn answers_good_revoked_and_unknown_in_one_signed_response() {
        let f = fixture(statuses());
        let other_ca = cert_id(&[7; 20], &[8; 20], &GOOD);
        let ids = vec![
            f.our(&GOOD),
            f.our(&REVOKED),
            f.our(&NEVER_ISSUED),
            other_ca.clone(),
        ];
        let before = Utc::now().timestamp();
        let answer = f.ask(&request_der(ids.clone(), None)).await;
        let basic = basic(&answer, &f.signer_der);
        let data = &basic.tbs_response_data;

        let statuses: Vec<&CertStatus> = data.responses.iter().map(|r| &r.cert_status).collect();
        assert_eq!(
            statuses,
            [
                &CertStatus::good(),
                &CertStatus::Revoked(RevokedInfo {
                    revocation_time: signed_response::ocsp_time(
                        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
                    )
                    .unwrap(),
                    revocation_reason: Some(CrlReason::KeyCompromise),
                }),
                &CertStatus::unknown(),
                &CertStatus::unknown(),
            ]
        );
        let echoed: Vec<&CertId> = data.responses.iter().map(|r| &r.cert_id).collect();
        assert_eq!(echoed, ids.iter().collect::<Vec<_>>(), "CertIDs echoed");
        for single in &data.responses {
            let this = single.this_update.0.to_unix_duration().as_secs() as i64;
            let next = single.next_update.unwrap().0.to_unix_duration().as_secs() as i64;
            assert!(this >= before && this <= Utc::now().timestamp());
            assert_eq!(next - this, 60);
        }
        // One lookup, of our CA's serials only.
        let lookups = f.statuses.lookups.lock().unwrap().clone();
        assert_eq!(lookups.len(), 1);
        assert_eq!(lookups[0].len(), 3);
        // Named by key hash, the signer certificate enclosed, no nonce asked, none sent.
        let (_, signer) = X509Certificate::from_der(&f.signer_der).unwrap();
        let key_hash = sha1::Sha1::digest(&signer.public_key().subject_public_key.data);
        assert_eq!(
            data.responder_id,
            ResponderId::ByKey(OctetString::new(key_hash.to_vec()).unwrap())
        );
        assert_eq!(
            basic.certs.as_ref().unwrap()[0].to_der().unwrap(),
            f.signer_der
        );
        assert_eq!(data.response_extensions, None);
        assert_eq!(answer.cacheable_for, Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_nonce_is_echoed_and_makes_the_answer_uncacheable() {
        let f = fixture(statuses());
        let nonce = nonce_extension(&[0x5a; 16]);
        let answer = f
            .ask(&request_der(vec![f.our(&GOOD)], Some(nonce.clone())))
            .await;
        let basic = basic(&answer, &f.signer_der);
        assert_eq!(
            basic.tbs_response_data.response_extensions,
            Some(vec![nonce])
        );
        assert_eq!(answer.cacheable_for, None);
    }

    #[tokio::test]
    async fn sha256_cert_ids_are_answered_and_other_hashes_are_unknown() {
        let f = fixture(statuses());
        let hashes = f
            .responder
            .configured
            .as_ref()
            .unwrap()
            .platform
            .signer
            .issuer_hashes()
            .sha256
            .clone();
        assert_eq!(hashes.0, Sha256::digest(&f.ca_name).to_vec());
        let mut sha256 = cert_id(&hashes.0, &hashes.1, &REVOKED);
        sha256.hash_algorithm.oid = ID_SHA_256;
        let mut sha512 = sha256.clone();
        sha512.hash_algorithm.oid = der::oid::db::rfc5912::ID_SHA_512;
        let answer = f.ask(&request_der(vec![sha256, sha512], None)).await;
        let basic = basic(&answer, &f.signer_der);
        assert!(matches!(
            basic.tbs_response_data.responses[0].cert_status,
            CertStatus::Revoked(_)
        ));
        assert_eq!(
            basic.tbs_response_data.responses[1].cert_status,
            CertStatus::unknown()
        );
    }

    #[tokio::test]
    async fn nothing_is_looked_up_when_no_cert_id_names_our_ca() {
        let f = fixture(statuses());
        let answer = f
            .ask(&request_der(vec![cert_id(&[7; 20], &[8; 20], &GOOD)], None))
            .await;
        let basic = basic(&answer, &f.signer_der);
        assert_eq!(
            basic.tbs_response_data.responses[0].cert_status,
            CertStatus::unknown()
        );
        assert!(f.statuses.lookups.lock().unwrap().is_empty());
    }

    fn status_of_answer(answer: &OcspAnswer) -> OcspResponseStatus {
        let response = OcspResponse::from_der(&answer.der).unwrap();
        assert_eq!(response.response_status, answer.status);
        assert!(response.response_bytes.is_none());
        assert_eq!(answer.cacheable_for, None);
        answer.status
    }

    #[tokio::test]
    async fn garbage_is_malformed_and_other_cas_or_no_signer_are_unauthorized() {
        let f = fixture(statuses());
        let good = request_der(vec![f.our(&GOOD)], None);
        for garbage in [
            &b""[..],
            b"\x30\x03\x02\x01",
            b"random bytes",
            &good[..good.len() - 3],
        ] {
            assert_eq!(
                status_of_answer(&f.ask(garbage).await),
                OcspResponseStatus::MalformedRequest
            );
        }
        for ca in ["0011223344556677", "not-a-ca-id", ""] {
            assert_eq!(
                status_of_answer(&f.responder.respond(ca, &good).await),
                OcspResponseStatus::Unauthorized
            );
        }
        let off = OcspResponder::off();
        assert_eq!(
            status_of_answer(&off.respond(&f.ca, &good).await),
            OcspResponseStatus::Unauthorized
        );
    }

    #[tokio::test]
    async fn a_store_outage_is_try_later_and_corrupt_data_an_internal_error() {
        let unavailable = fixture(Statuses {
            fail: Some(|| StoreError::Unavailable("down".into())),
            ..Statuses::default()
        });
        let request = request_der(vec![unavailable.our(&GOOD)], None);
        assert_eq!(
            status_of_answer(&unavailable.ask(&request).await),
            OcspResponseStatus::TryLater
        );
        let corrupt = fixture(Statuses {
            fail: Some(|| StoreError::Corrupt("bad".into())),
            ..Statuses::default()
        });
        let request = request_der(vec![corrupt.our(&GOOD)], None);
        assert_eq!(
            status_of_answer(&corrupt.ask(&request).await),
            OcspResponseStatus::InternalError
        );
    }
}
