//! Typed WSUS 3.0 operations and the PowerShell 2.0 scripts that carry them out over WinRM.
//!
//! The contract between the scripts, this module and the simulator is docs/script-contract.md;
//! what each operation does on Windows is docs/operations.md.
//!
//! - [`arg`] validates every argument and [`quote`] turns it into a single-quoted literal: no
//!   inventory or playbook value reaches a script any other way.
//! - [`op`] names the operations and renders their scripts (pure).
//! - [`output`] reads a script's output, [`outcome`] its typed results, [`error`] its failures.
//! - [`remote`] is the transport this layer runs scripts through; [`ops`] ties it together.
//!
//! This module does not open connections itself and knows nothing of WinRM.

pub mod arg;
pub mod error;
pub mod op;
pub mod ops;
pub mod outcome;
pub mod output;
pub mod quote;
pub mod remote;

pub use error::{ErrorKind, Malformed, OpError};
pub use op::{Connection, Op, OpName, render, render_via};
pub use ops::WsusOps;
pub use outcome::*;
pub use output::{Keys, parse_output};
pub use remote::{Remote, RemoteOutput};
