//! The worker: hosts the commit-order relay (one active per database) and the consumers of
//! its registry (`consumer_registry`): the provisioners (check CSRs and issue certificates
//! with the CA, off the async runtime) and a projector per registered read model, each a
//! durable JetStream consumer shared by every worker process; and carries out the
//! dead-letter retries operators request. `worker ocsp-signer` certifies the api's delegated
//! OCSP signing key (`ocsp_signer`).
//!
//! It serves only its health and metrics over HTTP, and decides nothing the domain decides: outcomes go back to the
//! aggregate as internal commands through `app`.

pub mod certificate_authority;
pub mod config;
mod consumer_lag;
mod consumer_loop;
pub mod consumer_registry;
pub mod crl_publisher;
mod dead_letter_retrier;
mod delivery;
pub mod dev_ca;
mod intake;
mod message_handler;
pub mod ocsp_signer;
mod projector;
mod provisioner;
pub mod replay_command;
pub mod startup;
