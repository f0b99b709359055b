//! Black-box tests of the `chatops` bot over real HTTP, a real SQLite file and, where a
//! process must die, the real binary.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

mod support;

mod arguments;
mod artillery;
mod cli;
mod custom_command;
mod dashboard;
mod durability;
mod guardrails;
mod hostile;
mod ingress;
mod limits;
mod loadtest;
mod not_queued;
mod private_data;
mod queue_options;
mod real_commands;
mod retries;
mod scale_out;
mod tidy;
mod toolkit;
mod tracing;
mod web_api;
