//! Run with `scripts/fuzz.sh log_line 60`.
//!
//! The analyzer's log-line parser (a hand-written fast path with a serde_json fallback)
//! on arbitrary bytes: it classifies every line without panicking.
#![no_main]

use chatops_analyze::line::LineParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parser = LineParser::new();
    let _ = parser.parse(data);
});
