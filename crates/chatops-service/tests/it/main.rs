//! Integration tests of chatops-service's standalone parts: the `exec` runner against real
//! bash scripts (`tests/fixtures/`), the `webhook` runner against a local HTTP server that
//! plays GitHub's API.

mod exec;
mod webhook;
