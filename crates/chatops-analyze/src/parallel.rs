//! Aggregation over several threads. The inputs are read in order as one stream of blocks
//! that end at line boundaries; each worker thread takes the next block, parses and
//! aggregates it into its own [`Aggregator`], and the parts are merged at the end. There is
//! no reading thread: a worker reads its block itself (into a buffer it reuses, under the
//! lock that keeps blocks in file order) and parses it after releasing the lock, so on two
//! cores one worker copies or decompresses while the other parses, and nothing is allocated
//! per block. Files, gzip files and stdin all go this way, so a pipe streams with bounded
//! memory (a few MiB per worker) as well.
//!
//! The merged result equals a single-threaded run to the bit (the tests compare whole
//! summaries): distributions and counts merge exactly, and sums are integers
//! ([`FixedSum`](crate::dist::FixedSum)). The one exception is the key caps: which keys are
//! kept once a dimension has more than [`MAX_KEYS`](crate::aggregate::MAX_KEYS) of them
//! depends on which lines came first, and each thread saw only its part. When a cap was hit
//! the caller re-reads the inputs on one thread (see [`ParallelRun::hit_caps`]).

use std::io::{self, Read};
use std::sync::{Mutex, PoisonError};

use crate::aggregate::{Aggregator, WindowNs};
use crate::error::AnalyzeError;
use crate::input::{self, Input};

/// Default size of a block: large enough that taking the lock is rare (a few thousand lines
/// per block), small enough to stay near the cache and to keep memory per worker small.
pub const BLOCK_BYTES: usize = 4 << 20;

/// How a parallel run is split.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Bytes of complete lines a worker takes at a time (a block grows past this by at most
    /// one line).
    pub block_bytes: usize,
    /// Longest line; longer ones are skipped and counted as oversized.
    pub max_line: usize,
}

/// What [`aggregate_parallel`] produced.
#[derive(Debug)]
pub struct ParallelRun {
    pub agg: Aggregator,
    /// One note per input whose reading stopped on an error.
    pub notes: Vec<String>,
    /// Some thread's key table overflowed, so the merged groups may differ from a
    /// single-threaded run's.
    pub hit_caps: bool,
}

/// Aggregates `inputs`, in order, on `split.workers` threads. An input that cannot be opened
/// stops the run with its error; a read error stops only that input (its complete lines
/// count) and is noted.
pub fn aggregate_parallel(
    inputs: &[Input],
    window: WindowNs,
    bin_ns: Option<i64>,
    split: Split,
) -> Result<ParallelRun, AnalyzeError> {
    let split = Split { workers: split.workers.max(1), block_bytes: split.block_bytes.max(1), ..split };
    let source = Mutex::new(BlockSource::new(inputs, split));
    let parts: Vec<Aggregator> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..split.workers).map(|_| scope.spawn(|| aggregate_blocks(&source, window, bin_ns, split))).collect();
        handles.into_iter().map(|h| h.join().expect("an aggregator thread panicked")).collect()
    });
    let source = source.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = source.failed {
        return Err(e);
    }
    let hit_caps = parts.iter().any(Aggregator::hit_caps);
    let mut parts = parts.into_iter();
    let mut agg = parts.next().unwrap_or_else(|| Aggregator::new(window, bin_ns, None));
    for part in parts {
        agg.merge(part);
    }
    agg.add_oversized(source.oversized);
    for _ in 0..source.read_errors {
        agg.add_read_error();
    }
    let hit_caps = hit_caps || agg.hit_caps();
    Ok(ParallelRun { agg, notes: source.notes, hit_caps })
}

/// One worker: takes blocks until the inputs are exhausted.
fn aggregate_blocks(
    source: &Mutex<BlockSource<'_>>,
    window: WindowNs,
    bin_ns: Option<i64>,
    split: Split,
) -> Aggregator {
    let mut agg = Aggregator::new(window, bin_ns, None);
    let mut block = Block::new(split);
    loop {
        let more = source.lock().unwrap_or_else(PoisonError::into_inner).fill(&mut block);
        if !more {
            return agg;
        }
        let mut rest = block.lines();
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let line = &rest[..nl];
            if line.len() > split.max_line {
                agg.add_oversized(1);
            } else {
                agg.feed(line);
            }
            rest = &rest[nl + 1..];
        }
    }
}

/// A worker's buffer, allocated (and zeroed) once: complete lines, each ending in `\n`.
struct Block {
    data: Box<[u8]>,
    len: usize,
}

impl Block {
    fn new(split: Split) -> Self {
        // A block of `block_bytes` plus one partial line of at most `max_line`, plus the
        // newline added to an input's last line.
        Block { data: vec![0u8; split.block_bytes + split.max_line + 1].into_boxed_slice(), len: 0 }
    }

    fn lines(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// The inputs as one ordered stream of blocks.
struct BlockSource<'a> {
    inputs: &'a [Input],
    next_input: usize,
    /// The input being read, and its index.
    current: Option<(input::Source, usize)>,
    /// The partial line the last block of the current input ended with (at most `max_line`).
    carry: Vec<u8>,
    /// Dropping the rest of an oversized line, up to its newline.
    skipping: bool,
    /// Lines of the current input handed out so far, for the note when its read fails.
    input_lines: u64,
    split: Split,
    oversized: u64,
    read_errors: u64,
    notes: Vec<String>,
    failed: Option<AnalyzeError>,
}

impl<'a> BlockSource<'a> {
    fn new(inputs: &'a [Input], split: Split) -> Self {
        BlockSource {
            inputs,
            next_input: 0,
            current: None,
            carry: Vec::new(),
            skipping: false,
            input_lines: 0,
            split,
            oversized: 0,
            read_errors: 0,
            notes: Vec::new(),
            failed: None,
        }
    }

    /// Fills `block` with the next complete lines (at least `block_bytes` of them unless the
    /// inputs end first). False when there is nothing left, or an input could not be opened.
    fn fill(&mut self, block: &mut Block) -> bool {
        block.len = 0;
        while block.len < self.split.block_bytes {
            if self.current.is_none() && !self.open_next() {
                break;
            }
            self.fill_from_current(block);
        }
        block.len > 0
    }

    fn open_next(&mut self) -> bool {
        if self.failed.is_some() || self.next_input == self.inputs.len() {
            return false;
        }
        let idx = self.next_input;
        self.next_input += 1;
        match input::open(&self.inputs[idx]) {
            Ok(r) => {
                self.current = Some((r, idx));
                self.carry.clear();
                self.skipping = false;
                self.input_lines = 0;
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// Reads the current input into `block` until it holds `block_bytes` of complete lines or
    /// the input ends (then `current` is cleared).
    fn fill_from_current(&mut self, block: &mut Block) {
        let Some((reader, idx)) = self.current.as_mut() else { return };
        let max_line = self.split.max_line;
        // `complete`: end of the last whole line; `len`: end of the data, a partial line after
        // `complete` (never longer than `max_line`).
        let start = block.len;
        let mut complete = start;
        let mut len = complete + self.carry.len();
        block.data[complete..len].copy_from_slice(&self.carry);
        self.carry.clear();
        // One byte stays free for the newline of an input's unterminated last line.
        let end = block.data.len() - 1;
        let mut eof = false;
        while complete < self.split.block_bytes {
            let n = match reader.read(&mut block.data[len..end]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.read_errors += 1;
                    // The partial line is lost with the rest of the input.
                    block.len = complete;
                    let lines = self.input_lines + count_lines(&block.data[start..complete]);
                    let name = self.inputs[*idx].display();
                    self.notes.push(format!("reading {name} stopped after {lines} lines: {e}"));
                    self.current = None;
                    return;
                }
            };
            let mut new = len..len + n;
            if self.skipping {
                match memchr::memchr(b'\n', &block.data[new.clone()]) {
                    Some(nl) => {
                        self.skipping = false;
                        block.data.copy_within(new.start + nl + 1..new.end, len);
                        new = len..new.end - nl - 1;
                    }
                    None => continue,
                }
            }
            if let Some(nl) = memchr::memrchr(b'\n', &block.data[new.clone()]) {
                complete = new.start + nl + 1;
            }
            len = new.end;
            if len - complete > max_line {
                self.oversized += 1;
                self.skipping = true;
                len = complete;
            }
        }
        if eof {
            // The input's last line, without a newline, is a line of its own.
            if len > complete {
                block.data[len] = b'\n';
                len += 1;
            }
            complete = len;
            self.current = None;
        } else {
            self.carry.extend_from_slice(&block.data[complete..len]);
        }
        self.input_lines += count_lines(&block.data[start..complete]);
        block.len = complete;
    }
}

/// Newlines in `data`, at memchr's speed (a few ms per GiB of log lines).
fn count_lines(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::input::{MAX_LINE_BYTES, for_each_line};

    /// A log of every kind of line: router and worker lines of several commands, statuses and
    /// error types (some with escapes, which take the slow parser), non-JSON and non-metric
    /// lines, malformed metric lines, invalid UTF-8, empty and `\r\n` lines, lines longer than
    /// `max_line`, and no newline after the last line.
    fn mixed_log(n: usize, max_line: usize) -> Vec<u8> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = Vec::new();
        for i in 0..n {
            let r = next();
            let ms = (r % 5_000_000) as f64 / 1000.0 + 0.0005;
            let ts = 1_764_331_200_000_000i64 + (i as i64) * 997 + (r % 1000) as i64;
            let ts = format!("{}{:03}Z", &chatops_core::time::format_rfc3339_ms(ts / 1000)[..23], ts % 1000);
            let cmd = ["/echo", "/deploy", "/report", "/scale", "/e\\u0063ho"][(r >> 8) as usize % 5];
            match (r >> 16) % 16 {
                0 => out.extend_from_slice(b"thread 'main' panicked at src/x.rs:1:1"),
                1 => out.extend_from_slice(br#"{"timestamp":"2026-01-01T00:00:00Z","message":"slash command received"}"#),
                2 => out.extend_from_slice(br#"{"message":"Router performance metrics","duration":"#),
                3 => out.extend_from_slice(b"{\"message\":\"Router performance metrics\",\"command\":\"\xc3\x28\",\"duration\":1}"),
                4 => {}
                5 => write!(out, "{{\"message\":\"Performance metrics\",\"pad\":\"{}\"}}", "x".repeat(max_line)).unwrap(),
                6..=10 => write!(
                    out,
                    r#"{{"timestamp":"{ts}","message":"Router performance metrics","command":"{cmd}","statusCode":{},"duration":{ms},"success":{},"errorType":"E{}","enqueueMs":{}}}"#,
                    [200, 200, 503, 404][(r >> 24) as usize % 4],
                    (r >> 24) % 4 < 2,
                    (r >> 28) % 3,
                    ms / 7.0
                )
                .unwrap(),
                _ => write!(
                    out,
                    r#"{{"timestamp":"{ts}","message":"Performance metrics","command":"{cmd}","component":"w{}","totalE2eMs":{},"routerMs":{},"queueWaitMs":{ms},"workerDurationMs":{},"approvalWaitMs":{},"success":{},"attempt":{}}}"#,
                    (r >> 24) % 3,
                    ms * 3.0,
                    ms / 3.0,
                    ms / 2.0,
                    (r >> 30) % 2,
                    (r >> 32) % 10 != 0,
                    1 + (r >> 36) % 2
                )
                .unwrap(),
            }
            out.extend_from_slice(if (r >> 40) % 10 == 0 { b"\r\n" } else { b"\n" });
        }
        out.extend_from_slice(br#"{"message":"Router performance metrics","command":"/last","duration":3.25}"#);
        out
    }

    /// Everything a summary is made of, as JSON, to compare runs whole.
    fn summary_json(agg: Aggregator) -> String {
        let a = agg.finish();
        serde_json::to_string_pretty(&(
            a.lines,
            a.router,
            a.worker,
            a.stages,
            a.e2e_breakdown,
            a.groups,
            a.bins,
            a.first_ms,
            a.last_ms,
        ))
        .unwrap()
    }

    /// The single-threaded reference: the line reader and one aggregator, as `analyze` does
    /// with `--threads 1`.
    fn sequential(inputs: &[Input], window: WindowNs, bin_ns: Option<i64>, max_line: usize) -> String {
        let mut agg = Aggregator::new(window, bin_ns, None);
        for inp in inputs {
            let mut r = input::open(inp).unwrap();
            let (stats, err) = for_each_line(&mut *r, max_line, |l| agg.feed(l));
            assert!(err.is_none());
            agg.add_oversized(stats.oversized);
        }
        summary_json(agg)
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> Input {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        Input::File(p)
    }

    #[test]
    fn parallel_runs_equal_the_single_threaded_run_for_any_block_size() {
        let max_line = 600;
        let dir = tempfile::tempdir().unwrap();
        let log = mixed_log(6000, max_line);
        let inputs = [write(dir.path(), "a.log", &log)];
        let (window, bin) = (WindowNs::default(), Some(1_000_000_000));
        let want = sequential(&inputs, window, bin, max_line);
        assert!(want.contains("\"oversized\": "), "{want}");
        let counts: serde_json::Value = serde_json::from_str(&want).unwrap();
        let lines = &counts[0];
        for kind in ["oversized", "notJson", "notMetric", "malformed", "router", "worker"] {
            assert!(lines[kind].as_u64().unwrap() > 0, "the log has {kind} lines: {lines}");
        }
        // Blocks of 1 byte end after every line; 97 and 1000 cut most lines in the middle.
        for block_bytes in [1, 97, 1000, 4096, 65_536, BLOCK_BYTES] {
            for workers in [1, 2, 3] {
                let run = aggregate_parallel(&inputs, window, bin, Split { workers, block_bytes, max_line }).unwrap();
                assert!(!run.hit_caps && run.notes.is_empty());
                assert_eq!(summary_json(run.agg), want, "{workers} workers, {block_bytes}-byte blocks");
            }
        }
    }

    #[test]
    fn several_inputs_stay_apart_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&mixed_log(500, MAX_LINE_BYTES)).unwrap();
        let inputs = [
            // Each file ends without a newline: its last line must not run into the next file's.
            write(dir.path(), "a.log", &mixed_log(700, 400)),
            write(dir.path(), "b.log.gz", &gz.finish().unwrap()),
            write(dir.path(), "empty.log", b""),
            write(dir.path(), "c.log", b"{\"message\":\"Router performance metrics\",\"duration\":1}"),
        ];
        let window = WindowNs {
            start: chatops_core::time::parse_rfc3339_ns("2025-11-28T12:00:00.2Z"),
            end: chatops_core::time::parse_rfc3339_ns("2025-11-28T12:00:00.5Z"),
        };
        for (window, bin) in [(WindowNs::default(), None), (window, Some(50_000_000))] {
            let want = sequential(&inputs, window, bin, 1000);
            for block_bytes in [1, 333, 50_000] {
                let run = aggregate_parallel(&inputs, window, bin, Split { workers: 2, block_bytes, max_line: 1000 })
                    .unwrap();
                assert_eq!(summary_json(run.agg), want, "{block_bytes}-byte blocks");
            }
        }
    }

    #[test]
    fn a_huge_line_without_a_newline_in_sight_is_skipped_with_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = b"{\"message\":\"Router performance metrics\",\"duration\":1}\n".to_vec();
        log.extend(std::iter::repeat_n(b'x', 5 << 20));
        log.extend_from_slice(b"\n{\"message\":\"Router performance metrics\",\"duration\":2}\n");
        log.extend(std::iter::repeat_n(b'y', 3 << 20));
        let inputs = [write(dir.path(), "huge.log", &log)];
        let split = Split { workers: 2, block_bytes: 64 << 10, max_line: 1 << 20 };
        let run = aggregate_parallel(&inputs, WindowNs::default(), None, split).unwrap();
        let out = run.agg.finish();
        assert_eq!((out.lines.total, out.lines.router, out.lines.oversized), (2, 2, 2));
        assert_eq!(summary_json_of(&inputs, split), sequential(&inputs, WindowNs::default(), None, split.max_line));
    }

    fn summary_json_of(inputs: &[Input], split: Split) -> String {
        summary_json(aggregate_parallel(inputs, WindowNs::default(), None, split).unwrap().agg)
    }

    #[test]
    fn a_read_error_keeps_the_complete_lines_and_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&mixed_log(3000, MAX_LINE_BYTES)).unwrap();
        let gz = gz.finish().unwrap();
        let inputs = [write(dir.path(), "cut.log.gz", &gz[..gz.len() / 2])];
        let run = aggregate_parallel(
            &inputs,
            WindowNs::default(),
            None,
            Split { workers: 2, block_bytes: 4096, max_line: MAX_LINE_BYTES },
        )
        .unwrap();
        assert_eq!(run.notes.len(), 1, "{:?}", run.notes);
        assert!(run.notes[0].contains("cut.log.gz"), "{:?}", run.notes);
        let out = run.agg.finish();
        assert_eq!(out.lines.read_errors, 1);
        assert!(out.lines.total > 500, "{:?}", out.lines);
    }

    #[test]
    fn an_input_that_cannot_be_opened_fails_the_run() {
        let inputs = [Input::File("/nonexistent/bot.log".into())];
        let err = aggregate_parallel(
            &inputs,
            WindowNs::default(),
            None,
            Split { workers: 2, block_bytes: 4096, max_line: 100 },
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bot.log"), "{err}");
    }

    #[test]
    fn more_keys_than_the_caps_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log: String = (0..crate::aggregate::MAX_KEYS + 10)
            .map(|i| format!("{{\"message\":\"Router performance metrics\",\"command\":\"/c{i}\",\"duration\":1}}\n"))
            .collect();
        let inputs = [write(dir.path(), "keys.log", log.as_bytes())];
        let split = Split { workers: 2, block_bytes: 1000, max_line: 1000 };
        assert!(aggregate_parallel(&inputs, WindowNs::default(), None, split).unwrap().hit_caps);
        let few = [write(dir.path(), "few.log", &log.as_bytes()[..2000])];
        assert!(!aggregate_parallel(&few, WindowNs::default(), None, split).unwrap().hit_caps);
    }
}
