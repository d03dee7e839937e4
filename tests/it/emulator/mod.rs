//! The emulator: its CLI, its Graph routes, its login endpoints, several tenants.

mod cli;
mod graph;
mod login;
mod support;
mod tenants;
