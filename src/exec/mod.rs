//! The executor: a tokio scheduler that rolls a plan down the hierarchy (docs/architecture.md).
//! One dispatcher ([`run`]) owns the run's state and is the only writer of the output; each
//! server is an async unit ([`unit`]) that journals its steps and reports events to it.
//!
//! The read-only commands live here too: live facts for `plan --facts` ([`facts`]), the canary
//! clients' detection for `verify` ([`detect`]) and the hierarchy walk of `discover` ([`walk`]).

pub mod connect;
pub mod detect;
pub mod events;
pub mod facts;
pub mod ready;
pub mod recorder;
pub mod retry;
pub mod run;
pub mod session;
pub mod signals;
pub mod unit;
pub mod walk;
