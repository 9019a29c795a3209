//! What folding one batch of events did, as the worker's projector consumers count it.

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub applied: usize,
    /// Already reflected in the read model.
    pub skipped: usize,
    /// Read from the event store to fill gaps.
    pub gap_filled: usize,
}

impl BatchReport {
    /// Events folded into the read model: the applied ones and those that filled gaps.
    pub fn folded(&self) -> usize {
        self.applied + self.gap_filled
    }
}
