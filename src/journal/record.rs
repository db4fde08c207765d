//! The journal's records: defined in the pure core ([`crate::core::record`]), re-exported here
//! with the clock that stamps them.

pub use crate::core::record::*;

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
