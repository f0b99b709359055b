//! `exec` against real scripts: progress, exit codes, megabytes of output, a program that
//! ignores SIGTERM (and its child), injection attempts, the environment and secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatops_service::actions::exec::{ExecErrorKind, ExecOutcome, ExecPlan, ExecSpec, format_outcome_for_slack};
use chatops_service::actions::{SecretRef, TemplateNames, TemplateValues};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).to_string_lossy().into_owned()
}

fn values(pairs: &[(&str, &str)]) -> TemplateValues {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn plan(spec: &ExecSpec, args: &[&str]) -> ExecPlan {
    spec.compile(&TemplateNames::with_args(args.iter().copied())).expect("spec compiles")
}

/// A spec for a fixture with PATH passed through (the scripts call `sleep`, `seq`, ...).
fn spec(argv: &[&str]) -> ExecSpec {
    let mut spec = ExecSpec::new(argv.iter().map(|a| a.to_string()));
    spec.env_allow = vec!["PATH".into()];
    spec
}

async fn run_collecting(plan: &ExecPlan, values: &TemplateValues) -> (ExecOutcome, Vec<(String, Instant)>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let outcome = plan
        .run(values, move |line| sink.lock().unwrap().push((line, Instant::now())))
        .await
        .expect("the program runs");
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet: it runs nothing).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Polls (bounded: 100 × 100 ms) until every pid is gone.
async fn wait_gone(pids: &[u32]) -> bool {
    for _ in 0..100 {
        if pids.iter().all(|&pid| process_gone(pid)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn read_pids(path: &Path) -> Vec<u32> {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text.split_whitespace().map(|p| p.parse().unwrap()).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_arrive_while_the_program_runs_and_exit_0_is_success() {
    let script = fixture("progress.sh");
    let plan = plan(&spec(&[&script, "{service}", "3"]), &["service"]);
    let (outcome, seen) = run_collecting(&plan, &values(&[("service", "web")])).await;
    let ended = Instant::now();

    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(
        (outcome.exit_code, outcome.signal, outcome.timed_out, outcome.truncated),
        (Some(0), None, false, false)
    );
    let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    // stdout and stderr share one pipe: the order is the order written.
    assert_eq!(lines, ["step 1/3 build", "step 2/3 push", "step 3/3 rollout"]);
    // The script sleeps 3 s after its progress: progress was delivered before the end.
    let first = seen.iter().map(|(_, at)| *at).min().unwrap();
    assert!(ended.duration_since(first) >= Duration::from_millis(1500), "{:?}", ended.duration_since(first));
    let tail = &outcome.output_tail;
    assert!(tail.starts_with("starting web\n") && tail.ends_with("done\n"), "{tail:?}");
    let message = format_outcome_for_slack("/deploy web", &outcome, 10);
    assert!(message.contains("succeeded (exit code 0)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_program_reports_its_code_and_the_tail_of_its_output() {
    let plan = plan(&spec(&[&fixture("fail.sh")]), &[]);
    let (outcome, seen) = run_collecting(&plan, &values(&[])).await;

    assert!(!outcome.success());
    assert_eq!((outcome.exit_code, outcome.signal, outcome.timed_out), (Some(3), None, false));
    assert!(seen.is_empty());
    assert!(outcome.output_tail.contains("line 20\n") && outcome.output_tail.contains("error: rollout failed"));
    let message = format_outcome_for_slack("/restart worker", &outcome, 3);
    assert!(message.starts_with(":x: `/restart worker` failed with exit code 3 in "), "{message}");
    assert!(message.contains("line 19") && message.contains("error: rollout failed"), "{message}");
    assert!(!message.contains("line 1\n"), "only the last 3 lines: {message}");
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_of_output_keep_only_a_bounded_tail() {
    let mut spec = spec(&[&fixture("flood.sh")]);
    spec.max_output_bytes = 64 * 1024;
    let plan = plan(&spec, &[]);
    let peak_before = peak_rss_kib();
    let (outcome, _) = run_collecting(&plan, &values(&[])).await;
    let peak_growth = peak_rss_kib().saturating_sub(peak_before);
    eprintln!("flood: tail {} bytes, peak RSS growth {peak_growth} KiB", outcome.output_tail.len());

    assert!(outcome.success(), "{outcome:?}");
    assert!(outcome.truncated);
    assert!(outcome.output_tail.len() <= 64 * 1024 && outcome.output_tail.len() > 60 * 1024);
    assert!(outcome.output_tail.ends_with("flood line 099999 ..............................\nthe very last line\n"));
    // Starts on a line and every line follows the previous one: the tail is contiguous.
    let numbers: Vec<u32> =
        outcome.output_tail.lines().filter_map(|l| l.strip_prefix("flood line ")?.get(..6)?.parse().ok()).collect();
    assert!(outcome.output_tail.starts_with("flood line "), "{:?}", &outcome.output_tail[..40]);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1) && *numbers.last().unwrap() == 99_999);
    // 5 MB went through; holding it would show as megabytes of peak memory.
    assert!(peak_growth < 4 * 1024, "peak RSS grew by {peak_growth} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_a_program_and_its_child_that_ignore_sigterm_are_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut spec = spec(&[&fixture("stubborn.sh"), &pid_file.to_string_lossy()]);
    spec.timeout = Duration::from_secs(1);
    spec.grace = Duration::from_secs(2);
    let plan = plan(&spec, &[]);
    let (outcome, _) = run_collecting(&plan, &values(&[])).await;
    let pids = read_pids(&pid_file).await;
    eprintln!("stubborn: {:?} after {:?}, pids {pids:?}", outcome.signal, outcome.duration);

    assert!(outcome.timed_out && !outcome.success(), "{outcome:?}");
    assert_eq!((outcome.exit_code, outcome.signal), (None, Some(9)), "SIGTERM was ignored, SIGKILL ended it");
    // timeout + grace at least (it ignored SIGTERM); generous upper bound for a loaded machine.
    assert!(outcome.duration >= Duration::from_secs(3), "{:?}", outcome.duration);
    assert!(outcome.duration < Duration::from_secs(20), "{:?}", outcome.duration);
    assert_eq!(pids.len(), 2);
    assert!(wait_gone(&pids).await, "the script and its child are both gone: {pids:?}");
    let message = format_outcome_for_slack("/logs", &outcome, 5);
    assert!(message.contains("timed out") && message.contains("killed"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_left_behind_holding_the_output_is_killed_when_the_program_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut spec = spec(&[&fixture("leaves_child.sh"), &pid_file.to_string_lossy()]);
    spec.grace = Duration::from_secs(1);
    let plan = plan(&spec, &[]);
    let (outcome, _) = run_collecting(&plan, &values(&[])).await;
    let pids = read_pids(&pid_file).await;

    assert!(outcome.success(), "{outcome:?}");
    // Not the child's 30 s: grace (1 s) plus the drain after SIGKILL.
    assert!(outcome.duration < Duration::from_secs(15), "{:?}", outcome.duration);
    assert_eq!(outcome.output_tail, "bye\n");
    assert!(wait_gone(&pids).await, "the child is gone: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_run_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut spec = spec(&[&fixture("stubborn.sh"), &pid_file.to_string_lossy()]);
    spec.timeout = Duration::from_secs(600);
    let plan = plan(&spec, &[]);
    let values = values(&[]);
    // An outer timeout (the worker's) drops the run future.
    let run = plan.run(&values, |_| {});
    let abandoned = tokio::time::timeout(Duration::from_secs(2), run).await;
    assert!(abandoned.is_err(), "still running when abandoned");
    let pids = read_pids(&pid_file).await;
    assert!(wait_gone(&pids).await, "dropping the run killed the script and its child: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_attempts_arrive_as_literal_argv_elements() {
    let attempts = [
        "web; rm -rf /",
        "$(reboot)",
        "`id`",
        "a\nb",
        "' \" \\",
        "",
        "--force",
        "*",
        "x && echo pwned > /tmp/chatops-pwned",
        "{service}",
    ];
    let script = fixture("argv.sh");
    let mut argv = vec![script.clone()];
    let mut given = Vec::new();
    for (i, attempt) in attempts.iter().enumerate() {
        argv.push(format!("{{a{i}}}"));
        given.push((format!("a{i}"), attempt.to_string()));
    }
    argv.push("prefix-{a0}-suffix".into());
    let names: Vec<String> = given.iter().map(|(k, _)| k.clone()).collect();
    let spec = ExecSpec::new(argv);
    let plan = spec.compile(&TemplateNames::with_args(names.iter().map(String::as_str))).unwrap();
    let values: TemplateValues = given.into_iter().collect();
    let (outcome, _) = run_collecting(&plan, &values).await;

    assert!(outcome.success(), "{outcome:?}");
    let mut received: Vec<&str> = outcome.output_tail.split('\0').collect();
    assert_eq!(received.pop(), Some(""), "NUL-terminated");
    let mut expected: Vec<String> = attempts.iter().map(|a| a.to_string()).collect();
    expected.push("prefix-web; rm -rf /-suffix".into());
    assert_eq!(received[0], format!("argc={}", expected.len()));
    assert_eq!(&received[1..], expected.iter().map(String::as_str).collect::<Vec<_>>().as_slice());
    assert_eq!(plan.argv(&values)[1..], expected[..], "argv() shows exactly what ran");
    assert!(!Path::new("/tmp/chatops-pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_cleared_but_for_the_allow_list_and_secrets_arrive_unlogged() {
    // cargo runs tests with CARGO_* set: one is allowed through, another must not be.
    let allowed_value = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME for tests");
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "the bot's environment has it");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION for tests");

    let dir = tempfile::tempdir().unwrap();
    let secret: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
    let secret_path = dir.path().join("token");
    std::fs::write(&secret_path, format!("{secret}\n")).unwrap();
    let out_path = dir.path().join("seen");

    let mut spec = spec(&[&fixture("env.sh"), &out_path.to_string_lossy()]);
    spec.env_allow.push("CARGO_PKG_NAME".into());
    spec.env = BTreeMap::from([("GREETING".into(), "hello {user_name}".into())]);
    spec.secret_env = BTreeMap::from([
        ("API_TOKEN".into(), SecretRef::File(secret_path.clone())),
        ("DEPLOY_VERSION".into(), SecretRef::Env("CARGO_PKG_VERSION".into())),
    ]);
    let plan = plan(&spec, &[]);
    let (outcome, _) = run_collecting(&plan, &values(&[("user_name", "ada")])).await;

    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), secret, "the file secret arrived, newline stripped");
    let names_line = outcome.output_tail.lines().find_map(|l| l.strip_prefix("names: ")).unwrap();
    let mut names: Vec<&str> = names_line.split_whitespace().collect();
    // bash itself exports these three.
    names.retain(|n| !["PWD", "SHLVL", "_"].contains(n));
    assert_eq!(names, ["API_TOKEN", "CARGO_PKG_NAME", "DEPLOY_VERSION", "GREETING", "PATH"]);
    assert!(outcome.output_tail.contains("GREETING=hello ada\n"));
    assert!(outcome.output_tail.contains(&format!("CARGO_PKG_NAME={allowed_value}\n")));
    assert!(outcome.output_tail.contains(&format!("DEPLOY_VERSION={version}\n")), "env-sourced secret");
    for shown in [format!("{spec:?}"), format!("{plan:?}"), format!("{outcome:?}")] {
        assert!(!shown.contains(&secret), "a secret in Debug: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_spawn_say_nothing_started() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let mut with_missing_secret = spec(&[&fixture("env.sh"), &marker.to_string_lossy()]);
    with_missing_secret.secret_env.insert("API_TOKEN".into(), SecretRef::File(dir.path().join("absent")));
    let err = plan(&with_missing_secret, &[]).run(&values(&[]), |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ExecErrorKind::NotStarted, "{err}");
    assert!(!err.may_have_started());
    assert!(!marker.exists(), "the program did not run");

    let missing_program = spec(&[&dir.path().join("no-such-script").to_string_lossy()]);
    let err = plan(&missing_program, &[]).run(&values(&[]), |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), ExecErrorKind::NotStarted, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_program_is_resolved_against_cwd() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut spec = spec(&["fixtures/argv.sh", "x"]);
    spec.cwd = Some(fixtures);
    let (outcome, _) = run_collecting(&plan(&spec, &[]), &values(&[])).await;
    assert_eq!(outcome.output_tail, "argc=1\0x\0");
}
