//! The worker: hosts the commit-order relay (one active per database) and the consumers of
//! its registry (`consumer_registry`): the provisioners (check CSRs and issue certificates
//! with the CA, off the async runtime) and a projector per registered read model, each a
//! durable JetStream consumer shared by every worker process; and carries out the
//! dead-letter retries operators request; and makes, rotates and retires tenants' CAs
//! (`ca_steward`, one process at a time). The CA itself, and the certificates, CRLs and OCSP
//! signers it signs, are the `pki` crate's; `worker ocsp-signer` and `worker dev-ca` are its
//! commands here. Its consumers' handlers see decoded events and answer with an outcome;
//! their messages (intake, acks, redelivery, dead letters) are `nats`'s, and nothing here
//! uses async-nats.
//!
//! It serves only its health and metrics over HTTP, and decides nothing the domain decides: outcomes go back to the
//! aggregate as internal commands through `app`.

mod ca_steward;
pub mod config;
mod consumer_handler;
pub mod consumer_registry;
mod consumer_span;
pub mod crl_publisher;
mod dead_letter_retrier;
mod projector;
mod provisioner;
pub mod replay_command;
pub mod startup;
mod tenant_crl_publisher;
