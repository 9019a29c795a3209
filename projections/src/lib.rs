//! Read models and the projectors that maintain them.
//!
//! PLACEHOLDER: this crate is empty on purpose. The device read model, its idempotent
//! per-aggregate-version updates, gap filling from the event store and checkpoints arrive
//! with the async path (issue 3). It exists now so that the workspace already has the shape
//! ARCHITECTURE.md describes: read-model tables will be owned here, not by `store`.
