//! EST (RFC 7030) for devices, under `/.well-known/est/` and, with a label naming an
//! enrollment group, `/.well-known/est/{label}/`: `cacerts` and `csrattrs` (public),
//! `simpleenroll` (the device's group-derived credential, HTTP Basic) and `simplereenroll`
//! (the device's current certificate, TLS client authentication). Requests and responses are
//! base64 DER, as the RFC says; every failure is EST's own `text/plain` error (`EstError`).
//! Outside the OpenAPI document and the bearer tokens: EST is a protocol of its own.
//!
//! Each handler: parse the request into domain values, call the enrollment service, map where
//! the enrollment stands: 202 with `Retry-After` while pending, 200 with the certificate as
//! certs-only PKCS#7 once issued.
//!
//! The order is the point: **the device is authenticated first** (its group credential, or
//! its TLS client certificate), **then its body is read** (bounded by
//! `REQUEST_BODY_LIMIT_BYTES`), **and only then is a command slot taken**
//! (`COMMAND_MAX_IN_FLIGHT`, shared with every tenant's commands), so that no client without
//! a credential, nor one still sending its body, holds a slot that others' commands need.

use std::sync::Arc;

use app::{Correlation, EnrollmentProgress, EnrollmentProtocol};
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use domain::{CertificateSigningRequest, EnrollmentGroupName};

use super::in_flight::InFlight;
use super::{current_request_id, current_traceparent, record_device, record_tenant, AppState};
use crate::est::{basic_credential, EstError, EstServer};
use crate::tls::ClientCertificate;
use pki::est_wire_format as wire_format;

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/.well-known/est", "/.well-known/est/{label}"] {
        router = router
            .route(&format!("{prefix}/cacerts"), get(cacerts))
            .route(&format!("{prefix}/csrattrs"), get(csr_attributes))
            .route(&format!("{prefix}/simpleenroll"), post(simple_enroll))
            .route(&format!("{prefix}/simplereenroll"), post(simple_reenroll));
    }
    router
}

const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
const CSR_ATTRIBUTES: &str = "application/csrattrs";
const PKCS10: &str = "application/pkcs10";

fn server(state: &AppState) -> Result<&Arc<EstServer>, EstError> {
    state.est.as_ref().ok_or(EstError::NotEnabled)
}

/// The optional `{label}` segment: an enrollment group's name.
fn label(path: Option<Path<String>>) -> Result<Option<EnrollmentGroupName>, EstError> {
    path.map(|Path(raw)| EnrollmentGroupName::parse(&raw).map_err(|e| EstError::InvalidLabel(e.0)))
        .transpose()
}

/// A base64 body, `Content-Transfer-Encoding: base64` as RFC 7030 (and RFC 8951) says.
fn base64_response(content_type: &'static str, body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    response
}

/// The CA certificates the group's devices chain to (RFC 7030 §4.1): its tenant's own chain
/// when the tenant has CAs, else the platform CA's certificate.
async fn cacerts(
    State(state): State<AppState>,
    path: Option<Path<String>>,
) -> Result<Response, EstError> {
    let label = label(path)?;
    let server = server(&state)?;
    if let Some(label) = label {
        if let Some(body) = server.tenant_cacerts(&label).await? {
            return Ok(base64_response(PKCS7_CERTS_ONLY, body));
        }
    }
    Ok(base64_response(PKCS7_CERTS_ONLY, server.cacerts.clone()))
}

/// What the CA wants in a request (RFC 7030 §4.5): an ECDSA P-256 or P-384 key, signed with
/// SHA-256.
async fn csr_attributes(
    State(state): State<AppState>,
    path: Option<Path<String>>,
) -> Result<Response, EstError> {
    label(path)?;
    let server = server(&state)?;
    Ok(base64_response(
        CSR_ATTRIBUTES,
        server.csr_attributes.clone(),
    ))
}

/// Registers the device through its enrollment group (RFC 7030 §4.2.1).
async fn simple_enroll(
    State(state): State<AppState>,
    path: Option<Path<String>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let outcome = async {
        let label = label(path)?;
        let server = server(&state)?;
        let credential = basic_credential(&headers)?;
        let device = server
            .enrollment
            .authenticate(label.as_ref(), &credential)
            .await?;
        let csr = certificate_request(&state, &headers, request).await?;
        let _admitted = admitted(&state)?;
        let progress = server
            .enrollment
            .enroll(EnrollmentProtocol::Est, device, csr.into(), correlation())
            .await?;
        Ok::<_, EstError>(answer(server, progress))
    }
    .await;
    counted("simpleenroll", outcome)
}

/// Renews the certificate of the device whose current certificate authenticated the TLS
/// connection (RFC 7030 §4.2.2).
async fn simple_reenroll(
    State(state): State<AppState>,
    path: Option<Path<String>>,
    connection: Option<axum::Extension<ConnectInfo<ClientCertificate>>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let outcome = async {
        label(path)?;
        let server = server(&state)?;
        let presented = connection
            .as_ref()
            .and_then(|info| info.0 .0.der().map(|der| der.to_vec()))
            .ok_or(EstError::NoClientCertificate)?;
        let presented = server.presented(&presented)?;
        let csr = certificate_request(&state, &headers, request).await?;
        let _admitted = admitted(&state)?;
        let progress = server
            .enrollment
            .reenroll(
                EnrollmentProtocol::Est,
                &presented,
                csr.into(),
                correlation(),
            )
            .await?;
        Ok::<_, EstError>(answer(server, progress))
    }
    .await;
    counted("simplereenroll", outcome)
}

/// A command slot (`COMMAND_MAX_IN_FLIGHT`), taken once the device is authenticated and its
/// body is in; or, all taken, 503 with `Retry-After` at once (counted in
/// `requests_shed_total{bound="commands"}`).
fn admitted(state: &AppState) -> Result<InFlight, EstError> {
    state
        .in_flight_commands
        .try_enter()
        .map_err(|_| EstError::Unavailable)
}

/// The body as a CSR: `application/pkcs10`, base64 of the DER (line breaks allowed), read
/// only when the content type is right, up to `REQUEST_BODY_LIMIT_BYTES`.
async fn certificate_request(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
) -> Result<CertificateSigningRequest, EstError> {
    let is_pkcs10 = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(PKCS10));
    if !is_pkcs10 {
        return Err(EstError::UnsupportedMediaType);
    }
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|_| EstError::TooLarge)?;
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(compact).map_err(|_| EstError::NotBase64)?;
    CertificateSigningRequest::from_der(&der).map_err(EstError::NotPkcs10)
}

fn correlation() -> Correlation {
    Correlation {
        request_id: current_request_id().unwrap_or_default(),
        traceparent: current_traceparent(),
    }
}

/// 202 with `Retry-After` while pending; 200 with the certificate once issued.
fn answer(server: &EstServer, progress: EnrollmentProgress) -> Response {
    match progress {
        EnrollmentProgress::Pending { device_id, tenant } => {
            record_device(device_id);
            record_tenant(tenant.as_str());
            let mut response = (
                StatusCode::ACCEPTED,
                "the certificate is being issued: repeat this request after Retry-After seconds\n",
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(server.retry_after.as_secs()),
            );
            response
        }
        EnrollmentProgress::Issued {
            device_id,
            tenant,
            certificate,
        } => {
            record_device(device_id);
            record_tenant(tenant.as_str());
            let der = ::pem::parse(&certificate.pem)
                .ok()
                .and_then(|block| wire_format::certs_only(&[block.contents()]).ok());
            match der {
                Some(der) => base64_response(PKCS7_CERTS_ONLY, wire_format::base64_body(&der)),
                None => {
                    tracing::error!(%device_id, "the device's certificate does not encode as PKCS#7");
                    EstError::Internal.into_response()
                }
            }
        }
    }
}

/// Counts the request in `est_requests_total{operation, outcome}` and answers it.
fn counted(operation: &'static str, outcome: Result<Response, EstError>) -> Response {
    let (label, response) = match outcome {
        Ok(response) if response.status() == StatusCode::ACCEPTED => ("pending", response),
        Ok(response) => ("issued", response),
        Err(error) => (error.outcome(), error.into_response()),
    };
    metrics::counter!("est_requests_total", "operation" => operation, "outcome" => label)
        .increment(1);
    response
}
