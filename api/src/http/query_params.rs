//! `QueryParams`: the query string as a list of (name, value) pairs, decoded once, with
//! typed accessors that answer 400 naming the parameter. Unknown parameters are refused, so
//! a typo (`?staus=failed`) is an error rather than a silently unfiltered list.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiError;

pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw).map_err(|_| {
            ApiError::InvalidField {
                field: "query".into(),
                detail: "the query string is not valid percent-encoded UTF-8".into(),
            }
        })?;
        // No text anywhere in the system may hold NUL (Postgres refuses it): a 400 here, not
        // a failed query later.
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(invalid(name, "must not contain NUL characters"));
        }
        Ok(Self(pairs))
    }
}

impl QueryParams {
    /// Refuses any parameter not in `known`.
    pub fn allow_only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .0
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) => Err(ApiError::InvalidField {
                field: name.clone(),
                detail: format!(
                    "unknown query parameter; expected one of: {}",
                    known.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }

    /// The single value of `name`, if present (given twice is an error).
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(name, "must be given at most once"));
        }
        Ok(first)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number within `range`.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.one(name)? else {
            return Ok(None);
        };
        match raw.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(invalid(
                name,
                &format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

pub fn invalid(name: &str, detail: &str) -> ApiError {
    ApiError::InvalidField {
        field: name.to_owned(),
        detail: detail.to_owned(),
    }
}
