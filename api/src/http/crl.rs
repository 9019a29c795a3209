//! `GET /pki/{ca}/crl`: the CA's current CRL (DER, `application/pkix-crl`), public like every
//! CRL. The worker signs it; the api only serves what it published (`app::pki`), with an
//! `ETag` naming the CRL number (`If-None-Match` answers 304 from memory) and caching bounded
//! by its `nextUpdate`.

use app::pki::{IssuingCaId, PublishedCrl};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(crl))
}

/// Relying parties re-check at least this often, however far `nextUpdate` is: a revocation
/// reaches the CRL within about a second, so a day-long cache would hide it.
const MAX_AGE_SECONDS: i64 = 60;

/// The CA's current certificate revocation list (RFC 5280 v2, DER). Public: no token.
#[utoipa::path(get, path = "/pki/{ca}/crl", tag = "pki",
    params(("ca" = String, Path, description = "The issuing CA's identifier, as the certificates' CRL distribution point names it (16 hex digits)")),
    responses(
        (status = 200, description = "The CRL, DER", content_type = "application/pkix-crl", body = Vec<u8>,
            headers(("ETag" = String, description = "The CRL number, quoted"),
                    ("Cache-Control" = String, description = "public, at most 60 s and never past nextUpdate"))),
        (status = 304, description = "The CRL named by If-None-Match is still current"),
        (status = 404, description = "`not-found`: no such CA, or it has not published a CRL yet"),
    ))]
async fn crl(
    State(state): State<AppState>,
    Path(ca): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ca = IssuingCaId::parse(&ca).map_err(|_| ApiError::NotFound)?;
    let crl = state.crls.current(&ca).await?.ok_or(ApiError::NotFound)?;
    let etag = etag_of(&crl);
    let cache = cache_headers(&crl, &etag);
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let body = axum::body::Bytes::from_owner(crl.der.clone());
    let mut response = (cache, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-crl"),
    );
    Ok(response)
}

fn etag_of(crl: &PublishedCrl) -> String {
    format!("\"{}-{}\"", crl.ca, crl.header.number)
}

fn cache_headers(crl: &PublishedCrl, etag: &str) -> [(header::HeaderName, String); 3] {
    let until_next = (crl.header.next_update - Utc::now()).num_seconds();
    let max_age = until_next.clamp(0, MAX_AGE_SECONDS);
    [
        (header::ETAG, etag.to_owned()),
        (
            header::CACHE_CONTROL,
            format!("public, max-age={max_age}, no-transform"),
        ),
        (
            header::LAST_MODIFIED,
            crl.header
                .this_update
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        ),
    ]
}

/// `If-None-Match` holds `etag` (or `*`); weak comparison, as RFC 9110 §13.1.2 asks.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}
