//! The chatops bot: the Slack ingress ([`ingress`]), the worker pools and handlers
//! ([`worker`]), the command [`registry`], configuration ([`config`]) and the wiring that
//! runs them ([`startup`]).
//!
//! A command flows: `POST /slack/commands` → verify → parse → durable enqueue → 200 ack;
//! then a worker of the command's quadrant leases the job, runs its handler under a
//! timeout, the handler answers through `response_url`, and the attempt ends as completed,
//! retried or dead-lettered, with one "Performance metrics" log line.

pub mod actions;
pub mod config;
pub mod ingress;
pub mod metrics;
pub mod probe;
pub mod registry;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod tracing_context;
pub mod worker;

pub use config::Settings;
pub use startup::Application;
