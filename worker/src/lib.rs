//! The worker: hosts the commit-order relay (one active per database), the provisioner
//! (checks CSRs and issues certificates with the CA, off the async runtime) and the device
//! projector, each a durable JetStream consumer shared by every worker process.
//!
//! It must not serve HTTP or decide anything the domain decides: outcomes go back to the
//! aggregate as internal commands through `app`.

pub mod certificate_authority;
pub mod config;
mod delivery;
mod projector;
mod provisioner;
pub mod startup;
