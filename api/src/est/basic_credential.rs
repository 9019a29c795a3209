//! The device's credential on `simpleenroll`: HTTP Basic (RFC 7617, as RFC 7030 §3.2.3
//! allows), the serial number as the user (or `<serial>@<group>`, naming the device's
//! enrollment group, for clients that cannot put a label in the URL) and the key its
//! enrollment group derives as the password. Serial numbers may hold `:`, base64 keys never
//! do, so the split is at the last `:`.
//!
//! The header is bounded before it is decoded: no credential is longer than the longest
//! user name, a `:` and a key's 44 characters of base64, so a longer one is refused at once.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use domain::{DeviceCredential, DeviceKey};

use super::EstError;

/// The longest `user:password` of a credential.
const MAX_DECODED_LEN: usize = DeviceCredential::MAX_USER_LEN + 1 + DeviceKey::BASE64_LEN;

/// The longest `Authorization` value of a credential: `Basic`, spaces and the base64 of the
/// longest `user:password`.
const MAX_HEADER_LEN: usize = "Basic".len() + 8 + MAX_DECODED_LEN.div_ceil(3) * 4;

/// The credential in `Authorization`, or [`EstError::Unauthenticated`] (the same for a
/// missing, malformed or wrong one: which part was wrong is not said).
pub fn basic_credential(headers: &HeaderMap) -> Result<DeviceCredential, EstError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .filter(|v| v.len() <= MAX_HEADER_LEN)
        .and_then(|v| v.to_str().ok())
        .ok_or(EstError::Unauthenticated)?;
    let (scheme, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or(EstError::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(EstError::Unauthenticated);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(EstError::Unauthenticated)?;
    let (user, key) = decoded.rsplit_once(':').ok_or(EstError::Unauthenticated)?;
    DeviceCredential::parse(user, key).map_err(|_| EstError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic(user_and_password: &str) -> HeaderMap {
        headers(&format!("Basic {}", STANDARD.encode(user_and_password)))
    }

    /// A key as a device presents it (base64 of 32 bytes).
    const KEY: &str = "zG7O8zL2T/j1//39gM6WPiEGpEP9QcjglQxmRcWcS6o=";

    #[test]
    fn the_serial_is_the_user_and_the_key_the_password() {
        let credential = basic_credential(&basic(&format!("SN:12:34:{KEY}"))).unwrap();
        assert_eq!(credential.serial.as_str(), "SN:12:34");
        assert_eq!(credential.group, None);
        let lower = headers(&format!("basic {}", STANDARD.encode(format!("SN-1:{KEY}"))));
        assert_eq!(basic_credential(&lower).unwrap().serial.as_str(), "SN-1");
    }

    #[test]
    fn the_user_may_name_the_group() {
        let credential = basic_credential(&basic(&format!("SN:1@line-7:{KEY}"))).unwrap();
        assert_eq!(credential.serial.as_str(), "SN:1");
        assert_eq!(credential.group.unwrap().as_str(), "line-7");
        // The longest credential fits the bound.
        let longest = format!("{}@{}:{KEY}", "S".repeat(64), "g".repeat(63));
        assert_eq!(longest.len(), MAX_DECODED_LEN);
        assert!(basic_credential(&basic(&longest)).is_ok());
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        for bad in [
            HeaderMap::new(),
            headers("Bearer abc"),
            headers("Basic"),
            headers("Basic !!!"),
            basic("no-colon"),
            basic(&format!("bad serial!:{KEY}")),
            basic(&format!("SN-1@Bad_Group:{KEY}")),
            basic(&format!("SN-1@a@b:{KEY}")),
            basic("SN-1:a2V5/+w=="),
            basic(&format!("SN-1:{KEY}{KEY}")),
            // Longer than any credential: refused before it is decoded.
            basic(&format!("SN-1:{}", "A".repeat(60_000))),
            headers(&format!(
                "Basic {}{}",
                " ".repeat(300),
                STANDARD.encode(format!("SN-1:{KEY}"))
            )),
        ] {
            assert!(
                matches!(basic_credential(&bad), Err(EstError::Unauthenticated)),
                "{bad:?}"
            );
        }
    }
}
