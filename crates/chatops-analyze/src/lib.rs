//! Log analysis and run comparison for chatops: `chatops analyze` turns the bot's JSON metric
//! lines (files, folders, gzip, stdin; this bot's format and the origin TypeScript bot's)
//! into per-stage statistics, a [`MetricsSummary`]; `chatops compare` puts two runs side by
//! side and gives a regression verdict. `chatops report` renders the summary; it lives in
//! `chatops-report` and computes nothing itself.
//!
//! Streaming with bounded memory: lines are parsed one at a time into borrowed fields
//! ([`mod@line`], with a hand-written fast path) and folded into distributions that are exact while small and HDR histograms
//! once large ([`dist`]). Without a join, the lines are parsed and aggregated on every core
//! ([`parallel`]), with the same result as on one.
//!
//! ```
//! use chatops_analyze::aggregate::{Aggregator, WindowNs};
//! use chatops_analyze::Metric;
//!
//! let mut agg = Aggregator::new(WindowNs::default(), None, None);
//! agg.feed(br#"{"message":"Router performance metrics","command":"/echo","statusCode":200,"duration":1.5,"success":true}"#);
//! agg.feed(br#"{"message":"Performance metrics","command":"/echo","component":"sr-worker","totalE2eMs":9.5,"queueWaitMs":2}"#);
//! agg.feed(b"not a metric line");
//! let out = agg.finish();
//! assert_eq!((out.lines.router, out.lines.worker, out.lines.not_json), (1, 1, 1));
//! let e2e = out.stages.iter().find(|s| s.metric == Metric::TotalE2e).unwrap();
//! assert_eq!(e2e.stats.p50, 9.5);
//! ```

pub mod aggregate;
pub mod analyze;
pub mod args;
pub mod artillery;
pub mod compare;
pub mod dist;
pub mod error;
mod fields;
pub mod input;
pub mod join;
pub mod line;
pub mod metric;
pub mod parallel;
mod scan;
pub mod summary;
pub mod table;

pub use analyze::{AnalyzeOutcome, run_analyze, run_analyze_to};
pub use args::{AnalyzeArgs, CompareArgs};
pub use compare::{CompareOutcome, Comparison, Rules, Run, compare, run_compare, run_compare_to};
pub use error::{AnalyzeError, CompareError, ResultsError};
pub use metric::Metric;
pub use summary::MetricsSummary;
