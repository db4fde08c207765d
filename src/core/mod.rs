//! The pure core: inventory, hierarchy, playbook, plan, rendering and log parsing.
//!
//! Nothing here performs I/O or uses async: callers read files and pass text in. A test checks
//! that no file under `src/core` names tokio, reqwest, indicatif or `std::fs`.

pub mod assess;
pub mod diag;
pub mod diagnose;
pub mod discovered;
pub mod hierarchy;
pub mod hosts;
pub mod inventory;
pub mod logs;
pub mod plan;
pub mod playbook;
pub mod record;
pub mod render;
pub mod replay;
pub mod resume;
pub mod synthetic;
pub mod yaml;
