//! The executor: a tokio scheduler that rolls a plan down the hierarchy (docs/architecture.md).
//! One dispatcher ([`run`]) owns the run's state and is the only writer of the output; each
//! server is an async unit ([`unit`]) that journals its steps and reports events to it.

pub mod connect;
pub mod events;
pub mod retry;
pub mod run;
pub mod unit;
