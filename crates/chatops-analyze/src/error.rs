//! Errors of `analyze` and `compare`: anything that stops a run (exit code 2). Bad log lines
//! are not errors; they are skipped and counted in the summary.

use std::io;
use std::path::PathBuf;

/// Why `chatops analyze` could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("reading input {path}")]
    Input {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading results file {path}")]
    Results {
        path: PathBuf,
        #[source]
        source: ResultsError,
    },
    #[error("reading requests file {path}")]
    Requests {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the table")]
    Stdout(#[source] io::Error),
    #[error("no input: give log files, folders or `-`, or --from-results with a results file naming the bot log")]
    NoInput,
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error(
        "the results file's `{key}` ({name:?}) is refused: {reason}; it must name a file in the results \
         file's own folder (or pass the log files and --requests explicitly)"
    )]
    UnsafeResultsPath { key: &'static str, name: String, reason: String },
}

/// Why a results or metrics file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    #[error("schema version {found} is newer than this tool understands ({supported}); upgrade chatops")]
    NewerSchema { found: u32, supported: u32 },
    #[error("file is larger than {max} bytes")]
    TooLarge { max: u64 },
}

/// Why `chatops compare` could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: ResultsError,
    },
    #[error("{path} is neither a load-test results file nor a metrics summary")]
    UnknownFile { path: PathBuf },
    #[error("cannot compare a results file with a metrics summary: give two of the same kind")]
    MixedKinds,
    #[error("writing {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the table")]
    Stdout(#[source] io::Error),
}
