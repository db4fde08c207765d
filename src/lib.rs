//! wsusfix: apply Microsoft KB 954960 to every server of a WSUS 3.0 hierarchy, top-down, over WinRM.
//!
//! Layers (arrows point one way):
//! - [`core`]: pure model and algorithms (inventory, hierarchy, playbook, plan, log parsers). No I/O, no async.
//! - effects: [`winrm`] (WS-Man client), [`wsus`] (typed operations and their PowerShell 2.0 scripts),
//!   [`journal`], [`exec`] (scheduler), [`report`], [`cli`].
//! - [`sim`]: a simulated WSUS fleet behind a real WinRM endpoint; depends on nothing of the executor.

pub mod cli;
pub mod core;
pub mod exec;
pub mod exit;
pub mod journal;
pub mod report;
pub mod sim;
pub mod util;
pub mod winrm;
pub mod wsus;
