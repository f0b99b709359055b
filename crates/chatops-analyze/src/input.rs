//! Where log lines come from: files, folders (walked recursively), gzip files (recognised by
//! their magic bytes, not their name) and stdin, read in large blocks and split into lines
//! without copying. Lines longer than [`MAX_LINE_BYTES`] are skipped and counted, so one
//! runaway line cannot make the analyzer hold a whole file in memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::AnalyzeError;

/// Longest line read; longer ones are skipped (and counted as oversized).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Deepest folder nesting walked, a guard against pathological trees.
const MAX_DEPTH: usize = 32;

const READ_BLOCK: usize = 256 * 1024;

/// One source of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// How the source is named in the summary.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "-".to_owned(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Expands the command-line inputs: `-` is stdin, a folder contributes every regular file
/// below it (sorted, hidden entries and the analyzer's own outputs skipped, symlinked folders
/// not followed so a link cycle cannot loop), a file is itself. A path that does not exist is
/// an error: a typo must not produce an empty, "successful" analysis.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, AnalyzeError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|source| AnalyzeError::Input { path: p.clone(), source })?;
        if meta.is_dir() {
            walk(p, 0, &mut out)?;
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<Input>) -> Result<(), AnalyzeError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let io_err = |source| AnalyzeError::Input { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io_err)?.collect::<Result<_, _>>().map_err(io_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || is_own_output(&name) {
            continue;
        }
        let kind = entry.file_type().map_err(io_err)?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push(Input::File(path));
        }
    }
    Ok(())
}

/// Files the toolkit writes next to logs, which hold no log lines.
fn is_own_output(name: &str) -> bool {
    name.ends_with(".metrics.json") || name.ends_with(".html") || name.ends_with(".png") || name.ends_with(".svg")
}

/// A source of bytes that any thread may read from (the parallel aggregator's workers take
/// turns).
pub type Source = Box<dyn Read + Send>;

/// Opens a source, transparently decompressing gzip (several concatenated members, as
/// logrotate and `cat a.gz b.gz` produce, are read as one stream).
pub fn open(input: &Input) -> Result<Source, AnalyzeError> {
    match input {
        // Not `stdin().lock()`: the lock cannot move between threads. Each read takes it,
        // which costs nothing next to reads of several MiB.
        Input::Stdin => {
            Ok(maybe_gunzip(Box::new(io::stdin()))
                .map_err(|source| AnalyzeError::Input { path: "-".into(), source })?)
        }
        Input::File(path) => {
            let f = File::open(path).map_err(|source| AnalyzeError::Input { path: path.clone(), source })?;
            maybe_gunzip(Box::new(f)).map_err(|source| AnalyzeError::Input { path: path.clone(), source })
        }
    }
}

/// Peeks at the first two bytes and wraps the reader in a gzip decoder when they are the gzip
/// magic number.
pub fn maybe_gunzip(mut r: Source) -> io::Result<Source> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let joined: Source = Box::new(head.chain(r));
    if magic[..n] == [0x1f, 0x8b] { Ok(Box::new(MultiGzDecoder::new(joined))) } else { Ok(joined) }
}

/// Counters of one read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub lines: u64,
    pub oversized: u64,
}

/// Calls `f` with each line of `r` (without the newline), in order. Lines longer than
/// `max_line` bytes are skipped whole and counted. A read error stops the read and is
/// returned with the counts so far, so a truncated gzip file still yields its complete lines.
pub fn for_each_line<R: Read + ?Sized>(
    r: &mut R,
    max_line: usize,
    mut f: impl FnMut(&[u8]),
) -> (ReadStats, Option<io::Error>) {
    let mut stats = ReadStats::default();
    let mut buf = vec![0u8; READ_BLOCK.max(max_line + 1)];
    let (mut start, mut end) = (0usize, 0usize);
    // True while skipping the rest of an oversized line up to its newline.
    let mut skipping = false;
    loop {
        // Hand out every complete line in the buffer.
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..end]) {
            let line = &buf[start..start + nl];
            if skipping {
                skipping = false;
            } else if line.len() > max_line {
                stats.oversized += 1;
            } else {
                stats.lines += 1;
                f(line);
            }
            start += nl + 1;
        }
        // The rest is a partial line: move it to the front, or drop it when it is too long.
        if end - start > max_line {
            if !skipping {
                stats.oversized += 1;
                skipping = true;
            }
            start = end;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = loop {
            match r.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (stats, Some(e)),
            }
        };
        if n == 0 {
            if end > max_line {
                stats.oversized += 1;
            } else if end > 0 && !skipping {
                stats.lines += 1;
                f(&buf[..end]);
            }
            return (stats, None);
        }
        end += n;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn lines_of(data: &[u8], max: usize) -> (Vec<String>, ReadStats) {
        let mut got = Vec::new();
        let (stats, err) =
            for_each_line(&mut io::Cursor::new(data), max, |l| got.push(String::from_utf8_lossy(l).into()));
        assert!(err.is_none());
        (got, stats)
    }

    #[test]
    fn splits_lines_including_a_last_line_without_newline() {
        let (got, stats) = lines_of(b"a\nbb\r\n\nccc", 100);
        assert_eq!(got, ["a", "bb\r", "", "ccc"]);
        assert_eq!(stats, ReadStats { lines: 4, oversized: 0 });
    }

    #[test]
    fn skips_oversized_lines_whole_and_keeps_reading() {
        let long = "x".repeat(5000);
        let data = format!("short\n{long}\nafter\n{long}");
        let (got, stats) = lines_of(data.as_bytes(), 1000);
        assert_eq!(got, ["short", "after"]);
        assert_eq!(stats, ReadStats { lines: 2, oversized: 2 });
    }

    #[test]
    fn reads_lines_that_straddle_read_blocks() {
        let line = "y".repeat(1000);
        let data: String = (0..2000).map(|_| format!("{line}\n")).collect();
        let (got, _) = lines_of(data.as_bytes(), MAX_LINE_BYTES);
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(|l| l == &line));
    }

    #[test]
    fn decompresses_gzip_by_magic_bytes_including_concatenated_members() {
        let gz = |s: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(s.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let mut data = gz("one\ntwo\n");
        data.extend(gz("three\n"));
        let mut r = maybe_gunzip(Box::new(io::Cursor::new(data))).unwrap();
        let mut got = Vec::new();
        let (_, err) = for_each_line(&mut r, 100, |l| got.push(l.to_vec()));
        assert!(err.is_none());
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    }

    #[test]
    fn a_truncated_gzip_file_yields_its_complete_lines_and_an_error() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..20_000 {
            writeln!(e, "line {i}").unwrap();
        }
        let mut data = e.finish().unwrap();
        data.truncate(data.len() / 2);
        let mut r = maybe_gunzip(Box::new(io::Cursor::new(data))).unwrap();
        let mut n = 0;
        let (_, err) = for_each_line(&mut r, 100, |_| n += 1);
        assert!(err.is_some());
        assert!(n > 1000, "{n}");
    }

    #[test]
    fn tiny_and_empty_inputs_are_not_mistaken_for_gzip() {
        for data in [&b""[..], b"x", b"\x1f"] {
            let mut r = maybe_gunzip(Box::new(io::Cursor::new(data.to_vec()))).unwrap();
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn walks_folders_recursively_in_order_skipping_hidden_files_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("b/deeper")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        for f in ["a.log", "b/deeper/c.log.gz", "b/x.log", ".hidden", ".git/HEAD", "r.metrics.json", "report.html"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let got = expand_inputs(&[d.to_path_buf()]).unwrap();
        let names: Vec<String> =
            got.iter().map(|i| i.display().trim_start_matches(&d.display().to_string()).to_owned()).collect();
        assert_eq!(names, ["/a.log", "/b/deeper/c.log.gz", "/b/x.log"]);
    }

    #[test]
    fn a_missing_input_is_an_error_not_an_empty_analysis() {
        let err = expand_inputs(&[PathBuf::from("/nonexistent/bot.log")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bot.log"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn does_not_follow_symlinked_folders_into_a_cycle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        assert_eq!(expand_inputs(&[dir.path().to_path_buf()]).unwrap().len(), 1);
    }
}
