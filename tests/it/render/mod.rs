//! `entraform render`: the CLI, the fragments, the merges.

mod cli;
mod fragments;
mod merge;
