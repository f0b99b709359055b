//! Queue conformance tests: every behaviour the router and workers rely on, run against a
//! real engine: a SQLite file in a temp dir, and NATS JetStream on a `nats-server` the test
//! starts (`chatops_testkit::NatsServer`).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod approvals;
mod audit;
mod conformance;
mod effects;
mod fixture;
mod nats_only;
mod sqlite_only;
