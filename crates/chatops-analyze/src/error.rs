//! Errors of `analyze` and `compare`: anything that stops a run (exit code 2). Bad log lines
//! are not errors; they are skipped and counted in the summary.

use std::io;
use std::path::PathBuf;

use crate::artillery::ArtilleryError;

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
    #[error(
        "no input: {path} is Artillery's results, which name no bot log; give the bot's log files or folders as \
         well (`chatops analyze --from-results {path} BOT_LOG`)"
    )]
    NoInputBesideArtillery { path: PathBuf },
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
    #[error("the JSON ends before it is complete: the file is truncated (or still being written)")]
    Truncated(#[source] serde_json::Error),
    #[error(
        "neither a chatops results file (`schemaVersion`, `test`) nor Artillery's `--output` JSON (`aggregate`, \
         `intermediate`)"
    )]
    UnknownKind,
    #[error(transparent)]
    Artillery(#[from] ArtilleryError),
    #[error("schema version {found} is newer than this tool understands ({supported}); upgrade chatops")]
    NewerSchema { found: u32, supported: u32 },
    #[error("file is larger than the {} MiB limit ({max} bytes); refusing to read it", max >> 20)]
    TooLarge { max: u64 },
}

impl ResultsError {
    /// A JSON error, telling a file that ends early (truncated, or read while being written)
    /// from one that is malformed.
    pub fn from_json(e: serde_json::Error) -> Self {
        if e.is_eof() { Self::Truncated(e) } else { Self::Json(e) }
    }
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
    #[error(
        "{path} is neither a load-test results file (chatops' or Artillery's `--output` JSON) nor a metrics summary"
    )]
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
