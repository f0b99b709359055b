//! [`ReportError`]: why `chatops report` could not produce its files (exit code 2). A run
//! that failed its thresholds is not an error here: the report shows it.

use std::io;
use std::path::PathBuf;

use chatops_analyze::{CompareError, ResultsError};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading results file {path}")]
    Results {
        path: PathBuf,
        #[source]
        source: ResultsError,
    },
    #[error("reading metrics summary {path}")]
    Metrics {
        path: PathBuf,
        #[source]
        source: ResultsError,
    },
    #[error("comparing with baseline {path}")]
    Baseline {
        path: PathBuf,
        #[source]
        source: CompareError,
    },
    #[error("writing {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Rasterising the PNG failed (the SVG did not parse, or the image could not be encoded).
    #[error("rendering the PNG: {0}")]
    Png(String),
}
