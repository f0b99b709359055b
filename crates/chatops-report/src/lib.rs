//! `chatops report`: renders a load test's results ([`LoadTestResults`], from `chatops
//! loadtest`) and the bot's metrics summary ([`MetricsSummary`], from `chatops analyze`) as
//! one self-contained HTML page ([`render_html`]) and a one-page PNG of its charts
//! ([`render_png`]).
//!
//! **Architecture Invariant:** this crate computes nothing. Every figure it shows is a field
//! of the results, the summary or a [`Comparison`]; it picks, formats and converts units
//! (ms → s, ratio → percent, epoch ms → RFC 3339). The throughput card and the error count
//! come from `LoadTestResults::throughput` and `Counters::n_errors` in `chatops-core`, the
//! same definitions `chatops compare` uses.
//!
//! The charts are SVG written by hand ([`svg`]); the HTML page inlines them, and the PNG
//! rasterises the same markup with `resvg` and an embedded DejaVu Sans, so it needs neither a
//! browser nor any installed font. The time-axis charts ([`timeline`]) take points and phases
//! rather than a results file, so `chatops loadtest --dashboard` draws its live charts with
//! them too, and formats its numbers with [`fmt`].
//!
//! ```
//! use chatops_core::results::LoadTestResults;
//!
//! let json = include_str!("../tests/fixtures/run/results.json");
//! let results: LoadTestResults = serde_json::from_str(json).unwrap();
//! let html = chatops_report::render_html(&results, None, None);
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! assert!(html.contains("chatops analyze --from-results"), "says how to get the server side");
//! let png = chatops_report::render_png(&results, None, None).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```
//!
//! [`LoadTestResults`]: chatops_core::results::LoadTestResults
//! [`MetricsSummary`]: chatops_analyze::MetricsSummary
//! [`Comparison`]: chatops_analyze::Comparison

pub mod args;
mod charts;
pub mod error;
pub mod fmt;
pub mod html;
pub mod png;
pub mod run;
pub mod svg;
pub mod timeline;

pub use args::ReportArgs;
pub use error::ReportError;
pub use html::render_html;
pub use png::{PNG_HEIGHT, PNG_WIDTH, render_png};
pub use run::{ReportOutcome, run_report};
