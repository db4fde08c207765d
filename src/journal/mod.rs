//! The run journal: append-only JSON lines with fsync per record, the reader that tolerates a torn
//! last line, and the inventory lock.
