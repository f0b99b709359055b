//! The chatops bot: the Slack ingress ([`ingress`]), the worker pools ([`worker`]), the
//! handler API ([`handler`]) and the built-in kinds ([`handlers`]), the command
//! [`registry`], configuration ([`config`], over the shared shapes in [`spec`]), the wiring
//! that runs them ([`startup`]) and the way in for a Rust user ([`app::App`]).
//!
//! Imports point one way: `spec` and `status` are leaves; `slack_api` (Slack's Web API
//! client) uses `spec`; `respond` (the `response_url` client) uses `spec`, `metrics` and
//! `slack_api`; `handler` and `progress` (a long command's progress, through either) use
//! those; the built-in `handlers` use `handler`; `registry` uses `handlers`; `worker` uses
//! `handler`, `registry` and `respond`; `config` uses only `spec`; `startup` and then `app`
//! use everything.
//!
//! A command flows: `POST /slack/commands` → verify → parse → durable enqueue → 200 ack;
//! then a worker of the command's quadrant leases the job, runs its handler under a
//! timeout, the handler answers through `response_url`, and the attempt ends as completed,
//! retried or dead-lettered, with one "Performance metrics" log line.

pub mod actions;
pub mod app;
pub mod config;
pub mod guard;
pub mod handler;
pub mod handlers;
pub mod ingress;
pub mod metrics;
pub mod probe;
pub mod progress;
pub mod registry;
pub mod respond;
pub mod slack_api;
pub mod spec;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod tracing_context;
pub mod worker;

pub use app::App;
pub use config::Settings;
pub use startup::Application;
