//! Integration tests of the load generator: real runs against HTTP stubs on 127.0.0.1.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod answers;
mod artillery;
mod checks;
mod e2e;
mod helpers;
mod input;
mod mock_slack;
mod omission;
mod pacing;
mod profile_compat;
mod rate;
mod scrape;
mod signing;
mod thresholds;
mod tls;
