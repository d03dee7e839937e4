//! The integration tests, one binary (it links the crate once instead of once per file): a
//! module per command or area, the shared harnesses under `support`.
//!
//! Run one area with a filter on the module path: `cargo test --test it rotate`,
//! `cargo test --test it reliability::soak`.

mod apply;
mod bad_inputs;
mod completions;
mod drift;
mod emulator;
mod explain;
mod export;
mod graph;
mod manifest;
mod new;
mod props;
mod reliability;
mod render;
mod rotate;
mod schema;
mod secrets;
mod support;
mod tenants;
mod vault;
mod vault_cli;
mod verify;
