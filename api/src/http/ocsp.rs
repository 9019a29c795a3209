//! `POST /pki/{ca}/ocsp` (body: a DER OCSPRequest, `Content-Type: application/ocsp-request`)
//! and `GET /pki/{ca}/ocsp/{request}` (the request in base64, percent-encoded in the path;
//! URL-safe base64 and missing padding are tolerated): RFC 6960 over HTTP as RFC 5019
//! profiles it. Public (no token: relying parties are not our clients) and outside the
//! OpenAPI document (a binary protocol of its own).
//!
//! Every answer is `200 application/ocsp-response`, whatever its OCSP status: a request we
//! cannot read (a wrong content type included) is an OCSP `malformedRequest`, an unknown CA
//! `unauthorized`. GET answers without a nonce may be cached by shared caches until their
//! nextUpdate; everything else is `no-store`.

use app::pki::OCSP_ROUTE;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::AppState;
use pki::ocsp::OcspAnswer;

const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(OCSP_ROUTE, post(ocsp_post).get(ocsp_get_without_request))
        .route(&format!("{OCSP_ROUTE}/"), get(ocsp_get_without_request))
        // A wildcard: unencoded base64 may hold `/`.
        .route(&format!("{OCSP_ROUTE}/{{*request}}"), get(ocsp_get))
}

async fn ocsp_post(
    State(state): State<AppState>,
    ca: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = match (ca, body) {
        (Ok(Path(ca)), Ok(body)) if is_ocsp_request(&headers) => {
            state.ocsp.respond(&ca, &body).await
        }
        _ => state.ocsp.malformed(),
    };
    ocsp_response(answer, Cacheable::No)
}

async fn ocsp_get(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let answer = match path {
        Ok(Path((ca, encoded))) => match decode_base64(&encoded) {
            Some(request) => state.ocsp.respond(&ca, &request).await,
            None => state.ocsp.malformed(),
        },
        Err(_) => state.ocsp.malformed(),
    };
    ocsp_response(answer, Cacheable::UntilNextUpdate)
}

/// `GET /pki/{ca}/ocsp` (or `…/ocsp/`) without a request.
async fn ocsp_get_without_request(State(state): State<AppState>) -> Response {
    ocsp_response(state.ocsp.malformed(), Cacheable::No)
}

fn is_ocsp_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(OCSP_REQUEST))
}

/// Standard base64 as RFC 6960 Appendix A asks; URL-safe characters and missing padding
/// too, which some clients send. (The path was percent-decoded already.)
fn decode_base64(encoded: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let standard: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            // A `+` turned into a space by a form-style encoder on the way.
            ' ' => '+',
            c => c,
        })
        .collect();
    LENIENT.decode(standard).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cacheable {
    No,
    UntilNextUpdate,
}

fn ocsp_response(answer: OcspAnswer, cacheable: Cacheable) -> Response {
    let cache_control = match (cacheable, answer.cacheable_for) {
        (Cacheable::UntilNextUpdate, Some(max_age)) => HeaderValue::try_from(format!(
            "max-age={}, public, no-transform",
            max_age.as_secs()
        ))
        .expect("a number is a header value"),
        _ => HeaderValue::from_static("no-store"),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(OCSP_RESPONSE),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        answer.der,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_read_standard_or_url_safe_padded_or_not() {
        let bytes = vec![0xfb, 0xff, 0xfe, 0x00, 0x01];
        let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(standard, "+//+AAE=");
        for encoded in ["+//+AAE=", "+//+AAE", "-__-AAE=", "-__-AAE", " //+AAE="] {
            assert_eq!(decode_base64(encoded), Some(bytes.clone()), "{encoded}");
        }
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn only_the_ocsp_request_media_type_is_read() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_ocsp_request(&headers)
        };
        assert!(with("application/ocsp-request"));
        assert!(with("Application/OCSP-Request; charset=binary"));
        assert!(!with("application/octet-stream"));
        assert!(!is_ocsp_request(&HeaderMap::new()));
    }
}
