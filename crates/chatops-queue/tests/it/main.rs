//! Queue conformance tests: every behaviour the router and workers rely on, run against a
//! real engine (a SQLite file in a temp dir; NATS JetStream joins with issue 5).

mod conformance;
mod nats_only;
mod sqlite_only;
