//! The base URL relying parties reach the api's public PKI routes at (`PUBLIC_BASE_URL`),
//! from which the CRL distribution point and the OCSP URL written into every certificate
//! are built.

use super::{IssuingCaId, CRL_ROUTE, OCSP_ROUTE};

/// An `http://` or `https://` URL with a host, without a query, fragment or trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an http(s) URL with a host and no query or fragment (e.g. https://pki.example.com)")]
pub struct InvalidBaseUrl(pub String);

impl PublicBaseUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidBaseUrl> {
        let invalid = || InvalidBaseUrl(raw.to_owned());
        let trimmed = raw.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let host = rest.split('/').next().unwrap_or("");
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/[]%".contains(&b);
        if host.is_empty() || !rest.bytes().all(allowed) {
            return Err(invalid());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where `ca`'s CRL is fetched (the certificates' CRL distribution point).
    pub fn crl_url(&self, ca: &IssuingCaId) -> String {
        format!("{}{}", self.0, CRL_ROUTE.replace("{ca}", ca.as_str()))
    }

    /// Where `ca`'s OCSP responder answers (the certificates' AIA OCSP access location).
    pub fn ocsp_url(&self, ca: &IssuingCaId) -> String {
        format!("{}{}", self.0, OCSP_ROUTE.replace("{ca}", ca.as_str()))
    }
}

impl std::str::FromStr for PublicBaseUrl {
    type Err = InvalidBaseUrl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_ca_under_the_base() {
        let base = PublicBaseUrl::parse("https://pki.example.com:8443/device/").unwrap();
        let ca = IssuingCaId::parse("00112233445566ff").unwrap();
        assert_eq!(
            base.crl_url(&ca),
            "https://pki.example.com:8443/device/pki/00112233445566ff/crl"
        );
        assert_eq!(
            base.ocsp_url(&ca),
            "https://pki.example.com:8443/device/pki/00112233445566ff/ocsp"
        );
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        for raw in [
            "",
            "pki.example.com",
            "ftp://x",
            "https://",
            "https://x/?q=1",
            "https://x/#f",
            "http://a b",
        ] {
            assert!(PublicBaseUrl::parse(raw).is_err(), "{raw}");
        }
        assert!(PublicBaseUrl::parse("http://127.0.0.1:8080").is_ok());
    }
}
