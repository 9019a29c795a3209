//! `JsonBody<T>`: a JSON request body, with the errors our contract promises: 415 for another
//! content type, 413 past the body limit, 400 naming the field for anything malformed.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = body_limit_hint(&request);
        // Refuse a declared oversize body at once, instead of reading up to the limit.
        let declared = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if limit > 0 && declared.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::MalformedBody("the request body could not be read".into())
                }
            })?;
        let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return ApiError::MalformedBody(format!("the body is not valid JSON: {inner}"));
            }
            let message = inner.to_string();
            let field = if path == "." {
                // Missing and unknown fields are reported on the parent; name them.
                backticked(&message).unwrap_or_else(|| "body".to_owned())
            } else {
                path
            };
            ApiError::InvalidField {
                field,
                detail: strip_position(&message),
            }
        })?;
        Ok(Self(value))
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The limit itself is enforced by `DefaultBodyLimit`; this only recovers its value for the
/// error message when the router put it in the request's extensions.
fn body_limit_hint(request: &Request) -> usize {
    request
        .extensions()
        .get::<BodyLimitBytes>()
        .map_or(0, |l| l.0)
}

/// The configured body limit, carried in request extensions for error messages.
#[derive(Clone, Copy)]
pub struct BodyLimitBytes(pub usize);

/// "missing field `csr`" → "csr".
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// serde_json appends " at line 1 column 42", which means nothing to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(Some(&HeaderValue::from_static(ok))), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            assert!(!is_json(Some(&HeaderValue::from_static(bad))), "{bad}");
        }
        assert!(!is_json(None));
    }

    #[test]
    fn names_missing_fields() {
        assert_eq!(backticked("missing field `csr`").as_deref(), Some("csr"));
        assert_eq!(
            strip_position("invalid type: integer at line 1 column 9"),
            "invalid type: integer"
        );
    }
}
