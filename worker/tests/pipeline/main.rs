//! End-to-end: api → Postgres → relay → JetStream → worker (provisioner, projector) → read
//! model → api, with real Postgres, real NATS and real worker processes.

mod cmp;
mod crl;
mod dead_letter_operations;
mod device_stats;
mod est;
mod forged_messages;
mod helpers;
mod hsm;
mod nats_authorization;
mod nats_cluster;
mod nginx;
mod ocsp;
mod openssl;
mod provisioning;
mod read_side;
mod rebuild;
mod relay_order;
mod replay;
mod resilience;
mod scale_out;
mod scep;
mod shutdown;
mod tenant_cas;
mod traces;
