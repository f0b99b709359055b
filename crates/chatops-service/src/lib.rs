//! The chatops bot: the Slack ingress ([`ingress`]), the worker pools and built-in handlers
//! ([`worker`]), the handler API ([`handler`]), the command [`registry`], configuration
//! ([`config`], over the shared shapes in [`spec`]), the wiring that runs them ([`startup`])
//! and the way in for a Rust user ([`app::App`]).
//!
//! Imports point one way: `spec` and `status` are leaves; `handler` uses them and the
//! response client; the built-in handlers use `handler`; `registry` uses the handlers;
//! `config` uses only `spec`; `startup` and `app` use everything.
//!
//! A command flows: `POST /slack/commands` → verify → parse → durable enqueue → 200 ack;
//! then a worker of the command's quadrant leases the job, runs its handler under a
//! timeout, the handler answers through `response_url`, and the attempt ends as completed,
//! retried or dead-lettered, with one "Performance metrics" log line.

pub mod app;
pub mod config;
pub mod handler;
pub mod ingress;
pub mod metrics;
pub mod probe;
pub mod registry;
pub mod spec;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod tracing_context;
pub mod worker;

pub use app::App;
pub use config::Settings;
pub use startup::Application;
