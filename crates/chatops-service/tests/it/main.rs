//! Integration tests of chatops-service's standalone parts: the `exec` runner against real
//! bash scripts (`tests/fixtures/`), the `webhook` runner against a local HTTP server that
//! plays GitHub's API.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod exec;
mod webhook;
