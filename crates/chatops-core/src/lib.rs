//! Domain types of chatops, shared by the bot, the load generator and the analyzer.
//!
//! This crate does no IO and knows nothing of tokio, HTTP servers or queues: it owns what
//! the other crates must agree on. Slack's wire formats ([`slack`]), correlation ids, the
//! quadrants, the [`Job`] stored in the queue, the stage stamps and timings, the log
//! contract ([`contract`]) and the load-test results schema ([`results`]).
//!
//! ```
//! use chatops_core::slack::{SlackSigner, SlashCommand, SlackForm};
//!
//! let signer = SlackSigner::new(b"signing-secret");
//! let body = b"command=%2Fecho&text=hi&response_url=https%3A%2F%2Fhooks.slack.com%2Fx";
//! let sig = signer.sign("1700000000", body);
//! assert!(signer.verify(Some(b"1700000000"), Some(sig.as_bytes()), body, 1700000005).is_ok());
//! let SlackForm::Command(cmd) = SlashCommand::parse_form(body).unwrap() else { unreachable!() };
//! assert_eq!(cmd.text, "hi");
//! ```

pub mod args;
pub mod contract;
pub mod correlation;
pub mod job;
pub mod quadrant;
pub mod results;
pub mod slack;
pub mod stats;
pub mod time;

pub use contract::{Metric, Segment, Stage};
pub use correlation::CorrelationId;
pub use job::{Approval, Job, JobStamps, StageTimings};
pub use quadrant::Quadrant;
pub use slack::SlashCommand;
