//! The Graph client: requests and `$batch`, logs, retries.

mod client;
mod logs;
mod retry;
mod support;
