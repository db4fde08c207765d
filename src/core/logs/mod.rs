//! Log parsing for KB 954960: the client's `WindowsUpdate.log` and the server's
//! `SoftwareDistribution.log`, their typed events, and the per-detection verdict.
//!
//! Everything here takes text and returns data; reading, gunzipping and decoding files is the
//! caller's job. Line numbers are 1-based and count every line of the text given.
//!
//! A whole log file is read strictly (`windowsupdate::parse`, `softdist::parse`); text pasted
//! from a ticket, a forum or a web page is read leniently (`paste`, then `read_pasted`), and
//! `kind::examine` tells which reading a text needs.

pub mod client;
pub mod detection;
pub mod hresult;
pub mod kind;
pub mod line;
pub mod paste;
pub mod server;
pub mod softdist;
pub mod windowsupdate;
