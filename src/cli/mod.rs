//! Command-line definitions and one file per command.

pub mod diagnose;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::exit::OK
}
