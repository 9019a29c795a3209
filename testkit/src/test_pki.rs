//! Certificates for TLS tests: a CA that issues server and client certificates, as PEM files
//! in a directory of the test's own.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA and the directory its files go to.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    dir: PathBuf,
    name: String,
}

/// A certificate and its key, written as `<name>.pem` and `<name>.key`.
pub struct IssuedFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert_pem = params.self_signed(&key).unwrap().pem();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), &cert_pem).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            dir: dir.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for 127.0.0.1 and localhost, written as `file_name.{pem,key}`.
    pub fn issue_server(&self, file_name: &str) -> IssuedFiles {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} server", self.name));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, file_name)
    }

    /// A client certificate with `common_name`, written as `file_name.{pem,key}`.
    pub fn issue_client(&self, common_name: &str, file_name: &str) -> IssuedFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, file_name)
    }

    fn issue(&self, mut params: CertificateParams, file_name: &str) -> IssuedFiles {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = IssuedFiles {
            cert_path: self.dir.join(format!("{file_name}.pem")),
            key_path: self.dir.join(format!("{file_name}.key")),
        };
        std::fs::write(&files.cert_path, cert.pem()).unwrap();
        std::fs::write(&files.key_path, key.serialize_pem()).unwrap();
        files
    }
}
