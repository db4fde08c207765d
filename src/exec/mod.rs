//! The executor: a tokio DAG scheduler that rolls a plan down the hierarchy (see docs/architecture.md).
