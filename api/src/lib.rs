//! The HTTP face of the provisioning service.
//!
//! - [`http`]: routes, extractors and the one place where errors become problem+json.
//!   Handlers parse input into domain types, call one `app::DeviceCommandService` method and
//!   map its outcome to a response; they hold no business rules.
//! - [`auth`]: JWT bearer tokens (HS256), who they speak for (a tenant or a platform operator,
//!   never both) and the scopes they grant.
//! - [`config`]: the `api serve` configuration, from the environment.
//! - [`est`]: EST (RFC 7030) for devices: the device's HTTP Basic credential, EST's own error
//!   responses (the PKCS#7 and CSR-attribute bodies are `pki::est_wire_format`'s).
//! - [`cmp`] and [`scep`]: CMP (RFC 9483) and SCEP (RFC 8894) for devices, each translating
//!   its messages into the enrollment service's calls (the formats are `pki`'s).
//! - [`device_certificates`]: which certificates this service issued to devices, for EST's
//!   mutual TLS and CMP's and SCEP's signed requests.
//! - [`cas_cli`]: `api cas …`, tenants' certificate authorities from a shell.
//! - [`dead_letters_cli`]: `api dead-letters …`, listing, retrying and discarding them.
//! - [`projections_cli`]: `api projections …`, the operators' read-model commands.
//! - [`startup`]: wiring the adapters into the services and serving until shutdown.
//! - `tenant_ocsp_responders`: the OCSP responder's signers for tenants' CAs, refreshed while
//!   the api runs.
//! - [`tls`]: optional TLS on the api's socket (rustls), client certificates included.

pub mod auth;
pub mod cas_cli;
pub mod cmp;
pub mod config;
pub mod dead_letters_cli;
pub mod device_certificates;
pub mod est;
pub mod http;
mod operator_session;
pub mod projections_cli;
pub mod scep;
pub mod startup;
mod tenant_ocsp_responders;
pub mod tls;
