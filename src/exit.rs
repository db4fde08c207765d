//! The documented exit codes (docs/exit-codes.md). Few, stable, and the same for every command.

/// Everything asked for was done (or, for `plan --detailed-exitcode`, nothing needs doing).
pub const OK: i32 = 0;
/// An unexpected runtime error (I/O, a bug); the message says what.
pub const ERROR: i32 = 1;
/// Findings: `plan --detailed-exitcode` has changes to make, `diagnose` found the symptom, `verify`
/// saw a client fail, `apply` had servers fail or blocked while every restore was done.
pub const FINDINGS: i32 = 2;
/// Invalid input or usage: inventory, playbook, plan file, arguments, unreadable files.
pub const INVALID: i32 = 3;
/// A replica may still be held autonomous: run `wsusfix restore`.
pub const RESTORES_PENDING: i32 = 4;
/// Another run holds the inventory's lock.
pub const LOCKED: i32 = 5;
/// The plan or journal no longer matches the inventory, playbook or tool version.
pub const STALE: i32 = 6;
/// The operator declined the confirmation: nothing was done.
pub const DECLINED: i32 = 7;
/// Interrupted by Ctrl-C after every restore was done (128 + SIGINT); SIGTERM gives 143 and
/// SIGHUP 129 (128 + the signal's number).
pub const INTERRUPTED: i32 = 130;
