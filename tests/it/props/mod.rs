//! Property tests: drift and the tunnel-config merge (docs/RELIABILITY.md).

mod drift;
mod merge;
