//! The simulator: a world of WSUS servers and client computers behind a real WinRM endpoint on
//! loopback. It depends on nothing of the executor; the executor never knows it talks to it.

pub mod dispatch;
pub mod endpoint;
pub mod fleet;
pub mod logs;
pub mod scenario;
pub mod timing;
pub mod world;

#[cfg(test)]
mod world_tests;
