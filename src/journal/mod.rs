//! The run journal: append-only JSON lines, each record on disk before the action it announces;
//! the reader that tolerates a torn last line and replays a run; the inventory lock; where runs
//! live. Format: docs/journal-format.md.

pub mod lock;
pub mod paths;
pub mod reader;
pub mod record;
pub mod writer;
