//! Small shared building blocks with no domain knowledge.

pub mod credentials;
pub mod outfile;
pub mod platform;
pub mod prng;
pub mod secret;
pub mod terminal;
