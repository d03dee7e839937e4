//! Reliability: the kill test, the fault soak and the secret-leak audit (docs/RELIABILITY.md).

mod kill;
mod leak_audit;
mod soak;
