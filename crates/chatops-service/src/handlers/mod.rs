//! The built-in handler kinds: `echo`, `help`, `check-status`, `simulate`, and the ones
//! with real effects, `exec`, `webhook`, `github-workflow`, `github-repository-dispatch`
//! (thin wrappers over the runners in [`crate::actions`]). The API they implement (the
//! trait, the context, the errors) lives in [`crate::handler`].

mod actions;
pub mod check_status;
pub mod echo;
pub mod exec;
pub mod help;
pub mod simulate;
pub mod webhook;
