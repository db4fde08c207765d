//! Small shared building blocks with no domain knowledge.

pub mod prng;
pub mod secret;
