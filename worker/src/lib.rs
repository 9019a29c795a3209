//! The worker: hosts the commit-order relay (one active per database), the provisioner
//! (checks CSRs and issues certificates with the CA, off the async runtime) and the device
//! projector, each a durable JetStream consumer shared by every worker process, and carries
//! out the dead-letter retries operators request.
//!
//! It serves only its health and metrics over HTTP, and decides nothing the domain decides: outcomes go back to the
//! aggregate as internal commands through `app`.

pub mod certificate_authority;
pub mod config;
mod dead_letter_retrier;
mod delivery;
mod intake;
mod projector;
mod provisioner;
pub mod startup;
