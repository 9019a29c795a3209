//! The device's credential on `simpleenroll`: HTTP Basic (RFC 7617, as RFC 7030 §3.2.3
//! allows), the serial number as the user and the key its enrollment group derives as the
//! password. Serial numbers may hold `:`, base64 keys never do, so the split is at the last
//! `:`.

use app::DeviceCredential;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use domain::SerialNumber;

use super::EstError;

/// The credential in `Authorization`, or [`EstError::Unauthenticated`] (the same for a
/// missing, malformed or wrong one: which part was wrong is not said).
pub fn basic_credential(headers: &HeaderMap) -> Result<DeviceCredential, EstError> {
    let value = headers
        .get(header::AUTHORIZATION)
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
    let (serial, key) = decoded.rsplit_once(':').ok_or(EstError::Unauthenticated)?;
    let serial = SerialNumber::parse(serial).map_err(|_| EstError::Unauthenticated)?;
    Ok(DeviceCredential {
        serial,
        key: key.to_owned(),
    })
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

    #[test]
    fn the_serial_is_the_user_and_the_key_the_password() {
        let credential = basic_credential(&basic("SN:12:34:a2V5/+w==")).unwrap();
        assert_eq!(credential.serial.as_str(), "SN:12:34");
        assert_eq!(credential.key, "a2V5/+w==");
        let lower = headers(&format!("basic {}", STANDARD.encode("SN-1:k")));
        assert_eq!(basic_credential(&lower).unwrap().serial.as_str(), "SN-1");
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        for bad in [
            HeaderMap::new(),
            headers("Bearer abc"),
            headers("Basic"),
            headers("Basic !!!"),
            basic("no-colon"),
            basic("bad serial!:key"),
        ] {
            assert!(matches!(
                basic_credential(&bad),
                Err(EstError::Unauthenticated)
            ));
        }
    }
}
