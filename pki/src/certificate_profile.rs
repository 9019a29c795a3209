//! What a device certificate carries besides its subject (CN = serial number), the device's
//! key and its validity: `clientAuth`, `digitalSignature`, not a CA, where its status is
//! published (a CRL distribution point and an Authority Information Access OCSP URL under
//! `PUBLIC_BASE_URL`, naming the issuing CA: `app::pki`), and optionally the device's URI.

use app::pki::{IssuingCaId, PublicBaseUrl};
use app::CertificateRequest;
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
};

/// What issued certificates contain besides the subject (CN = serial number), the device's
/// key, the validity and `clientAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateProfile {
    #[default]
    Standard,
    /// Also a subjectAltName URI `urn:uuid:<device id>`, so relying parties can map a client
    /// certificate to its device without a lookup. Behind the `cert-profile-device-uri`
    /// feature flag: relying parties with strict SAN checks must be ready for it first.
    DeviceUri,
}

/// The CRL distribution point and the AIA extension (OCSP) written into every certificate.
pub(crate) struct StatusLocations {
    crl_url: String,
    authority_info_access: CustomExtension,
}

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const OID_ACCESS_OCSP: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

impl StatusLocations {
    pub(crate) fn new(base: &PublicBaseUrl, ca: &IssuingCaId) -> Self {
        use der::Encode;
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
        let ocsp = der::asn1::Ia5String::new(&base.ocsp_url(ca)).expect("a PublicBaseUrl is ASCII");
        let syntax = AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: OID_ACCESS_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(ocsp),
        }]);
        let content = syntax.to_der().expect("an AIA of one URI encodes");
        Self {
            crl_url: base.crl_url(ca),
            authority_info_access: CustomExtension::from_oid_content(
                OID_AUTHORITY_INFO_ACCESS,
                content,
            ),
        }
    }
}

impl CertificateProfile {
    /// The certificate's fields for `request`, all but validity and serial.
    pub(crate) fn params(
        self,
        request: &CertificateRequest,
        status_locations: Option<&StatusLocations>,
    ) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, request.serial_number.as_str());
        params.distinguished_name = subject;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        if let Some(locations) = status_locations {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![locations.crl_url.clone()],
            }];
            params.custom_extensions = vec![locations.authority_info_access.clone()];
        }
        if self == CertificateProfile::DeviceUri {
            let uri = Ia5String::try_from(format!("urn:uuid:{}", request.device_id))
                .expect("a UUID URN is ASCII");
            params.subject_alt_names = vec![SanType::URI(uri)];
        }
        params
    }
}
