//! The executor: a tokio scheduler that rolls a plan down the hierarchy (docs/architecture.md).
//! One dispatcher owns the run's state and is the only writer of the journal and the output;
//! each server is an async unit that reports to it.

pub mod events;
pub mod retry;
