//! The `exec` runner: runs a program with an argv built from templates, never through a
//! shell, and captures a bounded tail of its output.
//!
//! Guarantees:
//! - **No shell, no splitting.** Each configured argv element is one template and renders
//!   to exactly one argv element, whatever the value holds (`web; rm -rf /`, `$(reboot)`,
//!   a newline, quotes). The program (`argv[0]`) cannot be a template at all.
//! - **A clean environment.** The bot's environment is cleared; only the names in
//!   `env_allow` pass through, then the per-command `env` (templates) and `secret_env`
//!   (read from a file or a variable when the command runs, never logged).
//! - **A whole process group, always cleaned up.** The program leads its own process group.
//!   On `timeout` the group gets SIGTERM, then after `grace` SIGKILL, children included.
//!   When the program exits on its own, the output is drained (up to `grace`, in case a
//!   child still holds the pipes) and whatever it left in its group is killed: no process
//!   outlives its command. If the run is abandoned (the future dropped, e.g. by an outer
//!   timeout), the group is killed as well.
//! - **Bounded memory.** stdout and stderr are one pipe (as `2>&1` would make them), so
//!   the output is read as it is written, in the order the program wrote it, into one
//!   tail buffer of `max_output_bytes` (the *end* of the output is kept); a line is
//!   inspected for the progress prefix only up to [`MAX_LINE_BYTES`]. (Two pipes read
//!   concurrently cannot tell which of two writes came first.)
//!
//! Signals go through `rustix` (`kill(-pgid, sig)`), a safe wrapper over the syscall:
//! the workspace forbids `unsafe`, and rustix is already built for `tempfile`.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::template::{Template, TemplateError, TemplateNames, TemplateValues};
use super::{SecretError, SecretRef, deserialize_duration, mrkdwn_escape, valid_env_name};

/// A progress line is recognised within its first this many bytes; longer lines are
/// still captured in the tail but not delivered as progress.
pub const MAX_LINE_BYTES: usize = 4096;

/// After SIGKILL of the group, how long the pipes may stay open (a process outside the
/// group, e.g. one that called `setsid`, may hold them) before reading stops.
const AFTER_KILL_DRAIN: Duration = Duration::from_secs(2);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
const DEFAULT_PROGRESS_PREFIX: &str = "::progress::";

/// An `exec` command as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// `["scripts/deploy.sh", "{service}", "{env}"]`: the program (a literal) and its
    /// arguments, each a template that renders to exactly one argument.
    pub argv: Vec<String>,
    /// Working directory; a relative program path (with a `/`) is resolved against it.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Per-command environment variables (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the bot's own environment variables passed through (all others cleared).
    #[serde(default)]
    pub env_allow: Vec<String>,
    /// Environment variables whose values are secrets, read when the command runs.
    #[serde(default)]
    pub secret_env: BTreeMap<String, SecretRef>,
    /// How long the program may run before SIGTERM (default 5 minutes).
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL (default 10 s).
    #[serde(default = "default_grace", deserialize_with = "deserialize_duration")]
    pub grace: Duration,
    /// How much of the output's end is kept (default 64 KiB).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// Lines starting with this are progress (default `::progress::`).
    #[serde(default = "default_progress_prefix")]
    pub progress_prefix: String,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_grace() -> Duration {
    DEFAULT_GRACE
}
fn default_max_output_bytes() -> usize {
    DEFAULT_MAX_OUTPUT_BYTES
}
fn default_progress_prefix() -> String {
    DEFAULT_PROGRESS_PREFIX.to_owned()
}

impl ExecSpec {
    /// A spec with every default, for code that builds one (presets, tests).
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> ExecSpec {
        ExecSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: None,
            env: BTreeMap::new(),
            env_allow: Vec::new(),
            secret_env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            grace: DEFAULT_GRACE,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            progress_prefix: DEFAULT_PROGRESS_PREFIX.to_owned(),
        }
    }

    /// Checks the spec and parses its templates against the command's names.
    pub fn compile(&self, names: &TemplateNames) -> Result<ExecPlan, ExecConfigError> {
        let (program, args) = self.argv.split_first().ok_or(ExecConfigError::EmptyArgv)?;
        if program.is_empty() {
            return Err(ExecConfigError::EmptyArgv);
        }
        // The program is fixed by the configuration: a value never chooses what runs.
        if !Template::parse(program)?.is_literal() {
            return Err(ExecConfigError::TemplatedProgram(program.clone()));
        }
        let program = Template::parse(program)?.render(&TemplateValues::new());
        let args = args.iter().map(|a| Template::parse_checked(a, names)).collect::<Result<Vec<_>, _>>()?;
        for name in self.env.keys().chain(self.secret_env.keys()).chain(&self.env_allow) {
            if !valid_env_name(name) {
                return Err(ExecConfigError::BadEnvName(name.clone()));
            }
        }
        if let Some(name) = self.env.keys().find(|n| self.secret_env.contains_key(*n)) {
            return Err(ExecConfigError::EnvTwice(name.clone()));
        }
        let env = self
            .env
            .iter()
            .map(|(name, value)| Ok((name.clone(), Template::parse_checked(value, names)?)))
            .collect::<Result<Vec<_>, TemplateError>>()?;
        if self.timeout.is_zero() {
            return Err(ExecConfigError::ZeroTimeout);
        }
        if self.max_output_bytes < 1024 {
            return Err(ExecConfigError::OutputTooSmall(self.max_output_bytes));
        }
        if self.progress_prefix.is_empty() {
            return Err(ExecConfigError::EmptyProgressPrefix);
        }
        let program = PathBuf::from(program);
        // std leaves "relative to which directory" unspecified when `current_dir` is set;
        // decide it here: relative to `cwd`.
        let program = match &self.cwd {
            Some(cwd) if program.is_relative() && program.components().count() > 1 => cwd.join(program),
            _ => program,
        };
        Ok(ExecPlan {
            program,
            args,
            cwd: self.cwd.clone(),
            env,
            env_allow: self.env_allow.clone(),
            secret_env: self.secret_env.clone().into_iter().collect(),
            timeout: self.timeout,
            grace: self.grace,
            max_output_bytes: self.max_output_bytes,
            progress_prefix: self.progress_prefix.clone(),
        })
    }
}

/// A configuration mistake in an `exec` spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecConfigError {
    #[error("exec: `argv` needs at least the program")]
    EmptyArgv,
    #[error("exec: the program `{0}` cannot be a template; put values in the arguments")]
    TemplatedProgram(String),
    #[error("exec: {0}")]
    Template(#[from] TemplateError),
    #[error("exec: `{0}` is not an environment variable name")]
    BadEnvName(String),
    #[error("exec: `{0}` is in both `env` and `secret_env`")]
    EnvTwice(String),
    #[error("exec: `timeout` must be more than zero")]
    ZeroTimeout,
    #[error("exec: `max_output_bytes` = {0} is too small (at least 1024)")]
    OutputTooSmall(usize),
    #[error("exec: `progress_prefix` cannot be empty")]
    EmptyProgressPrefix,
}

/// A checked `exec` spec, ready to run any number of times.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    program: PathBuf,
    args: Vec<Template>,
    cwd: Option<PathBuf>,
    env: Vec<(String, Template)>,
    env_allow: Vec<String>,
    secret_env: Vec<(String, SecretRef)>,
    timeout: Duration,
    grace: Duration,
    max_output_bytes: usize,
    progress_prefix: String,
}

/// How a run ended. Exit code 0 (and no timeout) is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The program's exit code, if it exited (rather than being killed by a signal).
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// From spawn to the end of output capture.
    pub duration: Duration,
    /// The end of stdout and stderr (one pipe, in the order written), lossy UTF-8. When
    /// `truncated`, it starts at a line boundary.
    pub output_tail: String,
    /// More output was written than `max_output_bytes`; the start was dropped.
    pub truncated: bool,
    /// The timeout expired and the group was signalled.
    pub timed_out: bool,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why a run did not produce an [`ExecOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Nothing was spawned: the effect has certainly not started.
    #[error("the program was not started: {0}")]
    NotStarted(#[source] NotStarted),
    /// The program was spawned and then the bot lost track of it (waiting failed). The
    /// effect may have started; the group was killed.
    #[error("the program started, then waiting for it failed: {0}")]
    Lost(#[source] io::Error),
}

/// The reasons for [`ExecError::NotStarted`].
#[derive(Debug, thiserror::Error)]
pub enum NotStarted {
    #[error("secret for `{name}`: {source}")]
    Secret { name: String, source: SecretError },
    #[error("cannot run `{program}`: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("cannot create the output pipe: {0}")]
    Pipe(io::Error),
}

/// What a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecErrorKind {
    /// Safe to retry or to report as "did not run".
    NotStarted,
    /// The effect may have started: a write must not be re-run by surprise.
    MayHaveStarted,
}

impl ExecError {
    pub fn kind(&self) -> ExecErrorKind {
        match self {
            ExecError::NotStarted(_) => ExecErrorKind::NotStarted,
            ExecError::Lost(_) => ExecErrorKind::MayHaveStarted,
        }
    }

    pub fn may_have_started(&self) -> bool {
        self.kind() == ExecErrorKind::MayHaveStarted
    }
}

impl ExecPlan {
    /// The argv this plan would run with `values` (program first), for audit records and
    /// tests. It is exactly what [`ExecPlan::run`] passes to the program.
    pub fn argv(&self, values: &TemplateValues) -> Vec<String> {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().map(|a| a.render(values)))
            .collect()
    }

    /// Runs the program once. `progress` gets each progress line (prefix stripped,
    /// trimmed) as it arrives. A non-zero exit or a timeout is an `Ok` outcome: the
    /// program ran; [`ExecOutcome::success`] tells.
    pub async fn run(
        &self,
        values: &TemplateValues,
        progress: impl FnMut(String) + Send,
    ) -> Result<ExecOutcome, ExecError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(self.args.iter().map(|a| a.render(values)))
            .env_clear()
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        for name in &self.env_allow {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        for (name, template) in &self.env {
            command.env(name, template.render(values));
        }
        for (name, secret) in &self.secret_env {
            let value = secret
                .read()
                .map_err(|source| ExecError::NotStarted(NotStarted::Secret { name: name.clone(), source }))?;
            command.env(name, value.expose_secret());
        }

        let (output, output_writer) =
            output_pipe().map_err(|source| ExecError::NotStarted(NotStarted::Pipe(source)))?;
        command.stdout(output_writer.stdout).stderr(output_writer.stderr);

        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|source| ExecError::NotStarted(NotStarted::Spawn { program: self.program.clone(), source }))?;
        // The command holds the pipe's write ends; only the child may keep them, or the
        // output would never reach its end.
        drop(command);
        // From here on the effect may have started. The guard kills the whole group if
        // this future is dropped before the end.
        let group = GroupGuard::new(child.id());
        let capture = Mutex::new(Capture {
            tail: Tail::new(self.max_output_bytes),
            progress,
            prefix: self.progress_prefix.as_bytes().to_vec(),
        });
        // Boxed so it can be dropped (releasing `capture`) once reading is over.
        let mut readers = Box::pin(pump(output, &capture));
        let mut readers_done = false;

        let mut timed_out = false;
        let status = match wait_until(&mut child, &mut readers, &mut readers_done, Some(started + self.timeout)).await {
            Some(status) => status,
            None => {
                timed_out = true;
                group.signal(Signal::TERM);
                let grace_end = Instant::now() + self.grace;
                match wait_until(&mut child, &mut readers, &mut readers_done, Some(grace_end)).await {
                    Some(status) => status,
                    None => {
                        group.signal(Signal::KILL);
                        wait_until(&mut child, &mut readers, &mut readers_done, None)
                            .await
                            .unwrap_or_else(|| Err(io::Error::other("wait ended without a status")))
                    }
                }
            }
        };
        let status: ExitStatus = match status {
            Ok(status) => status,
            Err(error) => {
                group.signal(Signal::KILL);
                return Err(ExecError::Lost(error));
            }
        };
        // The program is gone; children may still hold the pipes. Drain for up to
        // `grace`, then kill what is left of the group and stop reading soon after.
        if !readers_done {
            readers_done = tokio::time::timeout(self.grace, &mut readers).await.is_ok();
        }
        group.signal(Signal::KILL);
        if !readers_done {
            let _ = tokio::time::timeout(AFTER_KILL_DRAIN, &mut readers).await;
        }
        group.disarm();
        drop(readers);
        let duration = started.elapsed();
        let capture = capture.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (output_tail, truncated) = capture.tail.finish();
        Ok(ExecOutcome {
            exit_code: status.code(),
            signal: status.signal(),
            duration,
            output_tail,
            truncated,
            timed_out,
        })
    }
}

/// Waits for the program to exit, reading output meanwhile, until `deadline` (then
/// `None`). `Child::wait` is cancel safe, so it can be raced repeatedly.
async fn wait_until(
    child: &mut tokio::process::Child,
    readers: &mut (impl Future<Output = ()> + Unpin),
    readers_done: &mut bool,
    deadline: Option<Instant>,
) -> Option<io::Result<ExitStatus>> {
    let sleep = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            status = child.wait() => return Some(status),
            () = &mut *readers, if !*readers_done => *readers_done = true,
            () = &mut sleep => return None,
        }
    }
}

/// Signals the program's process group; on drop (a run abandoned mid-way) kills it.
struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        // With `process_group(0)` the group id is the child's pid.
        GroupGuard { group: pid.and_then(|pid| i32::try_from(pid).ok()).and_then(Pid::from_raw) }
    }

    fn signal(&self, signal: Signal) {
        if let Some(group) = self.group {
            // ESRCH (the group is already empty) is the expected end state.
            let _ = kill_process_group(group, signal);
        }
    }

    fn disarm(mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}

/// The write ends given to the child as stdout and stderr.
struct OutputWriter {
    stdout: Stdio,
    stderr: Stdio,
}

/// One pipe for both output streams; the read end is non-blocking for tokio.
fn output_pipe() -> io::Result<(tokio::net::unix::pipe::Receiver, OutputWriter)> {
    let (reader, writer) = std::io::pipe()?;
    let stderr = writer.try_clone()?;
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))?;
    Ok((reader, OutputWriter { stdout: Stdio::from(writer), stderr: Stdio::from(stderr) }))
}

struct Capture<F> {
    tail: Tail,
    progress: F,
    prefix: Vec<u8>,
}

/// Reads the output to its end: every byte into the tail, complete lines checked for the
/// progress prefix.
async fn pump<F: FnMut(String)>(mut stream: impl AsyncRead + Unpin, capture: &Mutex<Capture<F>>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line = LineBuffer::default();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut capture = capture.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let capture = &mut *capture;
        capture.tail.push(&buf[..n]);
        line.feed(&buf[..n], |complete| {
            if let Some(message) = progress_message(complete, &capture.prefix) {
                (capture.progress)(message);
            }
        });
    }
    if let Some(last) = line.finish() {
        let mut capture = capture.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let capture = &mut *capture;
        if let Some(message) = progress_message(&last, &capture.prefix) {
            (capture.progress)(message);
        }
    }
}

fn progress_message(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?;
    Some(String::from_utf8_lossy(rest).trim().to_owned())
}

/// The current line of one stream, bounded: bytes past [`MAX_LINE_BYTES`] are dropped
/// (and the line is then not a progress line).
#[derive(Default)]
struct LineBuffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl LineBuffer {
    fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        while !chunk.is_empty() {
            let (part, rest, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            let room = MAX_LINE_BYTES - self.bytes.len();
            self.overflowed |= part.len() > room;
            self.bytes.extend_from_slice(&part[..part.len().min(room)]);
            if ended {
                if !self.overflowed {
                    on_line(&self.bytes);
                }
                self.bytes.clear();
                self.overflowed = false;
            }
            chunk = rest;
        }
    }

    fn finish(self) -> Option<Vec<u8>> {
        (!self.bytes.is_empty() && !self.overflowed).then_some(self.bytes)
    }
}

/// The last `capacity` bytes written.
struct Tail {
    bytes: VecDeque<u8>,
    capacity: usize,
    truncated: bool,
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Tail { bytes: VecDeque::with_capacity(capacity.min(64 * 1024)), capacity, truncated: false }
    }

    fn push(&mut self, chunk: &[u8]) {
        let chunk = if chunk.len() > self.capacity {
            self.truncated = true;
            self.bytes.clear();
            &chunk[chunk.len() - self.capacity..]
        } else {
            chunk
        };
        let excess = (self.bytes.len() + chunk.len()).saturating_sub(self.capacity);
        if excess > 0 {
            self.truncated = true;
            self.bytes.drain(..excess);
        }
        self.bytes.extend(chunk);
    }

    /// The tail as text. A truncated tail starts after its first newline, so it never
    /// begins with half a line (or half a UTF-8 character).
    fn finish(self) -> (String, bool) {
        let bytes: Vec<u8> = self.bytes.into();
        let start = match (self.truncated, bytes.iter().position(|&b| b == b'\n')) {
            (true, Some(i)) if i + 1 < bytes.len() => i + 1,
            _ => 0,
        };
        (String::from_utf8_lossy(&bytes[start..]).into_owned(), self.truncated)
    }
}

/// At most this many characters of output go into a Slack message (Slack's own limit is
/// far higher; a chat message with more is unreadable anyway).
const SLACK_OUTPUT_CHARS: usize = 3000;

/// The result message for Slack: status, exit code or signal, duration, and the last
/// `last_lines` lines of output in a code block. The output is escaped for mrkdwn, and
/// backticks are split with a zero-width space so nothing in it can close the block.
pub fn format_outcome_for_slack(label: &str, outcome: &ExecOutcome, last_lines: usize) -> String {
    let seconds = format!("{:.1}s", outcome.duration.as_secs_f64());
    let label = mrkdwn_escape(label);
    let headline = if outcome.success() {
        format!(":white_check_mark: `{label}` succeeded (exit code 0) in {seconds}")
    } else if outcome.timed_out {
        let how = match outcome.signal {
            Some(9) => " and was killed".to_owned(),
            Some(signal) => format!(" and was stopped by signal {signal}"),
            None => format!(", exit code {}", outcome.exit_code.unwrap_or(-1)),
        };
        format!(":hourglass: `{label}` timed out after {seconds}{how}")
    } else if let Some(code) = outcome.exit_code {
        format!(":x: `{label}` failed with exit code {code} in {seconds}")
    } else {
        format!(":x: `{label}` was killed by signal {} after {seconds}", outcome.signal.unwrap_or(0))
    };
    let lines: Vec<&str> = outcome.output_tail.lines().collect();
    let skipped_lines = lines.len().saturating_sub(last_lines);
    let mut shown = lines[skipped_lines..].join("\n");
    let char_count = shown.chars().count();
    if char_count > SLACK_OUTPUT_CHARS {
        shown = shown.chars().skip(char_count - SLACK_OUTPUT_CHARS).collect();
    }
    if shown.trim().is_empty() {
        return format!("{headline}\n_(no output)_");
    }
    let note = if skipped_lines > 0 || outcome.truncated || char_count > SLACK_OUTPUT_CHARS {
        "\n_(last lines of the output)_"
    } else {
        ""
    };
    format!("{headline}{note}\n```\n{}\n```", code_block_safe(&mrkdwn_escape(&shown)))
}

/// No two backticks in a row, so ``` cannot occur inside the block.
fn code_block_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_backtick = false;
    for c in text.chars() {
        if c == '`' && previous_backtick {
            out.push('\u{200B}');
        }
        previous_backtick = c == '`';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_and_starts_on_a_line() {
        let mut tail = Tail::new(10);
        tail.push(b"aaaa\nbbbb\n");
        assert_eq!(tail.bytes.len(), 10);
        tail.push(b"cc\ndd");
        let (text, truncated) = tail.finish();
        assert!(truncated);
        assert_eq!(text, "cc\ndd", "the cut line `bb\\n` is dropped");
        let mut whole = Tail::new(10);
        whole.push(&[b'x'; 100]);
        assert_eq!(whole.bytes.len(), 10, "one chunk larger than the buffer");
    }

    #[test]
    fn progress_lines_are_found_across_chunks_and_long_lines_are_not_kept() {
        let mut line = LineBuffer::default();
        let mut seen = Vec::new();
        let mut on = |l: &[u8]| seen.push(String::from_utf8_lossy(l).into_owned());
        line.feed(b"::progress:: one\n::prog", &mut on);
        line.feed(b"ress:: two\r\nplain\n", &mut on);
        line.feed(&vec![b'x'; MAX_LINE_BYTES + 10], &mut on);
        line.feed(b"\n", &mut on);
        let messages: Vec<_> = seen.iter().filter_map(|l| progress_message(l.as_bytes(), b"::progress::")).collect();
        assert_eq!(messages, ["one", "two"]);
        assert_eq!(seen.len(), 3, "the overlong line is not delivered");
    }

    #[test]
    fn slack_format_escapes_and_cannot_close_the_code_block() {
        let outcome = ExecOutcome {
            exit_code: Some(3),
            signal: None,
            duration: Duration::from_millis(1234),
            output_tail: "one\ntwo <!channel> & ```\nthree ``````\n".to_owned(),
            truncated: false,
            timed_out: false,
        };
        let text = format_outcome_for_slack("/deploy web", &outcome, 2);
        assert!(text.starts_with(":x: `/deploy web` failed with exit code 3 in 1.2s"), "{text}");
        let block = text.split_once("```\n").unwrap().1.strip_suffix("\n```").unwrap();
        assert!(!block.contains("``"), "{block:?}");
        assert!(block.contains("&lt;!channel&gt; &amp;"), "{block:?}");
        assert!(!block.contains("one"), "only the last 2 lines: {block:?}");
        assert!(text.contains("last lines"));
    }

    #[test]
    fn configuration_mistakes_are_refused() {
        let names = TemplateNames::with_args(["service"]);
        let compile = |spec: ExecSpec| spec.compile(&names);
        assert_eq!(compile(ExecSpec::new(Vec::<String>::new())).unwrap_err(), ExecConfigError::EmptyArgv);
        assert!(matches!(compile(ExecSpec::new(["{service}"])), Err(ExecConfigError::TemplatedProgram(_))));
        assert!(matches!(compile(ExecSpec::new(["x", "{nope}"])), Err(ExecConfigError::Template(_))));
        let mut spec = ExecSpec::new(["x"]);
        spec.env.insert("A=B".into(), "v".into());
        assert!(matches!(compile(spec), Err(ExecConfigError::BadEnvName(_))));
        let toml_err = toml::from_str::<ExecSpec>("argv = [\"x\"]\nshell = true\n").unwrap_err();
        assert!(toml_err.to_string().contains("shell"), "{toml_err}");
        let spec: ExecSpec = toml::from_str("argv = [\"x\"]\ntimeout = \"90s\"\n").unwrap();
        assert_eq!((spec.timeout, spec.grace, spec.max_output_bytes), (Duration::from_secs(90), DEFAULT_GRACE, 65536));
    }
}
