//! The DER bodies that the EST endpoints send, built with RustCrypto's
//! typed ASN.1 crates (`cms`, `x509-cert`, `der`) instead of hand-written bytes.
//!
//! * [`certs_only`]: the "certs-only" CMS message (a degenerate SignedData,
//!   RFC 7030 §4.1.3 and RFC 5751 §3.2.2) used by `/cacerts`, `/simpleenroll`
//!   and `/simplereenroll` to return certificates.
//! * [`csr_attributes`]: the `CsrAttrs` body of `/csrattrs` (RFC 7030 §4.5.2),
//!   telling clients to send an ECDSA P-256 or P-384 key signed with SHA-256.
//! * [`base64_body`]: the base64 encoding of these `application/pkcs7-mime`
//!   and `application/csrattrs` bodies, as RFC 8951 §3 (updating RFC 7030
//!   §4) says: RFC 4648 base64, one line.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode};
// The OID database comes through der's `oid` re-export of const-oid; its `db`
// feature is switched on by `cms`, which needs it itself, so no extra crate.
use der::oid::db::{rfc5911, rfc5912};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

/// Encodes `certificates_der` (each one X.509 certificate in DER) as a
/// DER `ContentInfo` holding a certs-only `SignedData`.
///
/// The message is the degenerate form of RFC 5652 SignedData that carries
/// certificates and nothing else: version 1, no digest algorithms, an
/// `id-data` encapsulated content with no content, no CRLs and no signers.
///
/// `certificates` is a DER `SET OF`, so the certificates come out sorted by
/// their encoding, not in the order given (clients build the chain from
/// issuer and subject names, not from the order). A certificate given twice
/// is sent once, as a DER set may not hold duplicates.
///
/// # Errors
///
/// Returns the decoding error of the first input that is not a DER X.509
/// certificate, or an encoding error (only for absurd sizes).
pub fn certs_only(certificates_der: &[&[u8]]) -> Result<Vec<u8>, der::Error> {
    let mut choices: Vec<CertificateChoices> = Vec::with_capacity(certificates_der.len());
    for der in certificates_der {
        let choice = CertificateChoices::Certificate(Certificate::from_der(der)?);
        // SetOfVec rejects duplicates with an error; a CA that appears twice
        // (say as the issuer and again in the chain) is not the caller's fault.
        if !choices.contains(&choice) {
            choices.push(choice);
        }
    }

    let signed_data = SignedData {
        // RFC 5652 §5.1: v1 when there are no attribute certificates,
        // no "other" formats, no v3 signers and the content type is id-data.
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            // Absent eContent: nothing is signed, the message only carries certificates.
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices)?)),
        // Omitted rather than an empty [1]: the brief's "no CRLs", and what
        // RFC 5751's certs-only example shows; OpenSSL reads either form.
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };

    ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()
}

/// Encodes the `CsrAttrs` that this server returns from `/csrattrs`.
///
/// ```text
/// CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
/// AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
/// ```
///
/// It holds the OID `ecdsa-with-SHA256` (sign the CSR with it) and the
/// attribute `id-ecPublicKey` whose values are the curves `secp256r1` and
/// `secp384r1` (the key types the CA will certify), as in the example of
/// RFC 7030 §4.5.2.
///
/// # Errors
///
/// Only an encoding error, which these fixed values do not produce.
pub fn csr_attributes() -> Result<Vec<u8>, der::Error> {
    let curves = [rfc5912::SECP_256_R_1, rfc5912::SECP_384_R_1]
        .iter()
        .map(Any::encode_from)
        .collect::<Result<Vec<Any>, der::Error>>()?;
    let ec_public_key = Attribute {
        oid: rfc5912::ID_EC_PUBLIC_KEY,
        // try_from sorts the values into DER SET OF order.
        values: SetOfVec::try_from(curves)?,
    };

    // A CHOICE of untagged alternatives is encoded as the chosen alternative
    // itself, so a SEQUENCE OF Any, each holding an OBJECT IDENTIFIER or an
    // Attribute SEQUENCE, is exactly CsrAttrs; Vec<Any> encodes as SEQUENCE OF.
    let signature_algorithm: ObjectIdentifier = rfc5912::ECDSA_WITH_SHA_256;
    let attrs: Vec<Any> = vec![
        Any::encode_from(&signature_algorithm)?,
        Any::encode_from(&ec_public_key)?,
    ];
    attrs.to_der()
}

/// Encodes `der` as RFC 4648 base64 (the standard alphabet, with `=`
/// padding) on one line: no line break anywhere, none at the end; an empty
/// input gives `""`.
///
/// RFC 8951 §3 (which updates RFC 7030 §4, as erratum 5904 asks) moved
/// EST's bodies from MIME's base64, wrapped at 76 characters, to RFC 4648's,
/// which has no line breaks. Some clients decode one line only: strongSwan's
/// `pki --est` cannot parse a wrapped body. Requests are still accepted with
/// line breaks (RFC 8951 §3.1: older clients, `openssl base64`). With
/// OpenSSL, decode these bodies with `openssl base64 -d -A`: without `-A` it
/// expects MIME's short lines and silently decodes nothing from a long one.
pub fn base64_body(der: &[u8]) -> String {
    STANDARD.encode(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::path::PathBuf;
    use std::process::{Command, Output, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A self-signed certificate (fresh P-256 key) whose subject CN is `cn`.
    fn self_signed(cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// A file in the temp dir, unique to this process and call, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(contents: &[u8]) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("est_encoding-{}-{n}.der", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs `openssl args…` with `stdin` on its standard input.
    fn openssl(args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the openssl command line must be installed");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Stdout of a successful openssl run; panics with its stderr otherwise.
    fn stdout_of(output: Output) -> String {
        assert!(
            output.status.success(),
            "openssl failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn assert_both_subjects(printed: &str) {
        assert!(printed.contains("CN = EST Test Root One"), "{printed}");
        assert!(printed.contains("CN = EST Test Root Two"), "{printed}");
        assert_eq!(
            printed.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{printed}"
        );
    }

    #[test]
    fn certs_only_is_read_by_openssl_pkcs7() {
        let (one, two) = (
            self_signed("EST Test Root One"),
            self_signed("EST Test Root Two"),
        );
        let p7 = certs_only(&[&one, &two]).unwrap();
        let file = TempFile::with(&p7);
        let path = file.0.to_str().unwrap();

        let printed = stdout_of(openssl(
            &["pkcs7", "-inform", "DER", "-in", path, "-print_certs"],
            b"",
        ));
        println!("openssl pkcs7 -print_certs:\n{printed}");
        assert_both_subjects(&printed);

        let parsed = stdout_of(openssl(
            &["pkcs7", "-inform", "DER", "-in", path, "-print"],
            b"",
        ));
        println!("openssl pkcs7 -print:\n{parsed}");
        // Compare with whitespace squashed: openssl's indentation is not an interface.
        let flat = parsed.split_whitespace().collect::<Vec<_>>().join(" ");
        for shape in [
            "type: pkcs7-signedData (1.2.840.113549.1.7.2) d.sign: version: 1 md_algs: <EMPTY>",
            "type: pkcs7-data (1.2.840.113549.1.7.1) d.data: <ABSENT>",
            "crl: <ABSENT> signer_info: <EMPTY>",
        ] {
            assert!(flat.contains(shape), "no {shape:?} in {parsed}");
        }
    }

    #[test]
    fn certs_only_has_the_degenerate_signed_data_shape() {
        let (one, two) = (
            self_signed("EST Test Root One"),
            self_signed("EST Test Root Two"),
        );
        let p7 = certs_only(&[&one, &two, &one]).unwrap();

        let info = ContentInfo::from_der(&p7).unwrap();
        assert_eq!(info.content_type, rfc5911::ID_SIGNED_DATA);
        let sd: SignedData = info.content.decode_as().unwrap();
        assert_eq!(sd.version, CmsVersion::V1);
        assert!(sd.digest_algorithms.is_empty());
        assert_eq!(sd.encap_content_info.econtent_type, rfc5911::ID_DATA);
        assert!(sd.encap_content_info.econtent.is_none());
        assert!(sd.crls.is_none());
        assert!(sd.signer_infos.0.is_empty());
        // The duplicate went; each certificate is carried byte for byte.
        let mut carried: Vec<Vec<u8>> = sd
            .certificates
            .unwrap()
            .0
            .iter()
            .map(|c| c.to_der().unwrap())
            .collect();
        carried.sort();
        let mut given = vec![one, two];
        given.sort();
        assert_eq!(carried, given);
    }

    #[test]
    fn base64_body_decodes_through_openssl_into_pkcs7() {
        let (one, two) = (
            self_signed("EST Test Root One"),
            self_signed("EST Test Root Two"),
        );
        let p7 = certs_only(&[&one, &two]).unwrap();
        let body = base64_body(&p7);
        println!("base64 body:\n{body}");

        let decoded = openssl(&["base64", "-d", "-A"], body.as_bytes());
        assert!(
            decoded.status.success(),
            "{}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        assert_eq!(decoded.stdout, p7);

        let printed = stdout_of(openssl(
            &["pkcs7", "-inform", "DER", "-print_certs"],
            &decoded.stdout,
        ));
        println!("openssl base64 -d -A | openssl pkcs7 -print_certs:\n{printed}");
        assert_both_subjects(&printed);

        // Why every recipe says -A: without it, OpenSSL reads nothing from a line this long,
        // and says nothing either.
        let silent = openssl(&["base64", "-d"], body.as_bytes());
        assert!(silent.stdout.is_empty(), "{:?}", silent.stdout);
    }

    #[test]
    fn base64_body_is_rfc_4648_base64_on_one_line() {
        assert_eq!(base64_body(b""), "");
        assert_eq!(base64_body(b"est"), "ZXN0");
        assert_eq!(
            base64_body(&[0xFB, 0xFF]),
            "+/8=",
            "the standard alphabet, padded"
        );
        let body = base64_body(&[0xA5; 100]);
        assert_eq!(body.len(), 136, "no line breaks: {body:?}");
        assert!(!body.contains(['\n', '\r', ' ']), "{body:?}");
        assert!(body.ends_with("=="));
        assert_eq!(STANDARD.decode(&body).unwrap(), [0xA5; 100]);
    }

    #[test]
    fn csr_attributes_are_read_by_openssl_asn1parse() {
        let attrs = csr_attributes().unwrap();
        let file = TempFile::with(&attrs);
        let path = file.0.to_str().unwrap();
        let parsed = stdout_of(openssl(&["asn1parse", "-inform", "DER", "-in", path], b""));
        println!("openssl asn1parse:\n{parsed}");

        // Every line is "offset:d=depth hl=.. l=.. cons|prim: TYPE [:value]".
        let objects: Vec<(&str, &str)> = parsed
            .lines()
            .filter(|l| l.contains("OBJECT"))
            .map(|l| {
                let depth = l
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .split(':')
                    .nth(1)
                    .unwrap();
                (depth, l.rsplit(':').next().unwrap())
            })
            .collect();
        assert_eq!(
            objects,
            [
                ("d=1", "ecdsa-with-SHA256"),
                ("d=2", "id-ecPublicKey"),
                // DER sorts SET OF by encoding: the shorter secp384r1 OID comes first.
                ("d=3", "secp384r1"),
                ("d=3", "prime256v1"),
            ],
            "{parsed}"
        );
        // The outer SEQUENCE spans the whole body: nothing trails it.
        let first: Vec<&str> = parsed.lines().next().unwrap().split_whitespace().collect();
        let number = |key: &str| -> usize {
            let at = first.iter().position(|w| w.starts_with(key)).unwrap();
            let inline = &first[at][key.len()..];
            // "l=  40" splits into "l=" and "40"; "hl=2" stays one word.
            if inline.is_empty() {
                first[at + 1]
            } else {
                inline
            }
            .parse()
            .unwrap()
        };
        assert!(first.contains(&"SEQUENCE"), "{parsed}");
        assert_eq!(number("hl=") + number("l="), attrs.len(), "{parsed}");
    }

    #[test]
    fn certs_only_rejects_input_that_is_not_a_certificate() {
        let good = self_signed("EST Test Root One");
        assert!(certs_only(&[b"not a certificate"]).is_err());
        assert!(certs_only(&[&good, &[0x30, 0x03, 0x02, 0x01, 0x01]]).is_err());
        assert!(certs_only(&[&good[..good.len() - 1]]).is_err());
        assert!(certs_only(&[&[]]).is_err());
    }
}
