//! Command-line definitions and one file per command.

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::exit::OK
}
