//! Guardrails: who may run what where ([`access`]), commands that wait for a second person
//! ([`approvals`]), and the durable record of what happened ([`audit`]).
//!
//! Access is checked at the router, before anything is stored, from settings and a cache
//! of user groups that Slack's Web API refreshes in the background (the ack never waits
//! for Slack). An approval request is stored durably beside the work queue, not in it; the
//! click that completes it enqueues the job in the same durable step. The audit trail gets
//! one record per command when its fate is known.

pub mod access;
pub mod approvals;
pub mod audit;
pub mod settings;
