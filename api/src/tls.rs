//! TLS on the api's own socket (optional: plain HTTP stays the default, for local use and
//! behind a TLS-terminating proxy). rustls, with ring as its cryptography (already the TLS of
//! the Postgres client, so no second implementation is built).
//!
//! - [`ServerTls`] (`server_certificate.rs`): the server's certificate and key, read from
//!   `TLS_CERT_PATH` and `TLS_KEY_PATH` and read again when the files change (no restart to
//!   renew), and, with `TLS_CLIENT_CA_PATH`, the CA that client certificates must chain to.
//!   Client certificates are optional: a client without one is served as before (its requests
//!   carry tokens); one with a certificate of another CA fails the handshake.
//! - `client_verifier.rs`: which client certificates a handshake accepts: those of
//!   `TLS_CLIENT_CA_PATH`'s CA, and those of tenants' issuing CAs ([`TenantClientCas`],
//!   `tenant_client_cas.rs`, read again from the CAs' events while the api runs).
//! - [`TlsListener`] (`listener.rs`): the connection bound's listener with the handshake done
//!   on the connection's own task (a slow client never holds the accept loop up), within
//!   `HANDSHAKE_TIMEOUT`; the verified client certificate reaches handlers as
//!   `ConnectInfo<ClientCertificate>`.
//!
//! Must not: decide what a client certificate allows (that is the routes' business), or log
//! key material.

mod client_verifier;
mod listener;
mod server_certificate;
mod tenant_client_cas;

pub use listener::{ClientCertificate, TlsListener};
pub use server_certificate::{ServerTls, TlsLoadError, TlsSettings};
pub use tenant_client_cas::{refresh_tenant_client_cas, TenantClientCas};
