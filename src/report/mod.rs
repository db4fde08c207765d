//! Reporting: one event vocabulary, three sinks (progress bars, plain lines, NDJSON).
