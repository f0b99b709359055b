//! One set of queue options for every subcommand that opens a queue: `chatops dlq` (the
//! real binary) reaches a NATS broker that requires a login with the same flags as `serve`,
//! is refused with a clear message without them, and takes `--config`; a password given in
//! a `nats://user:pass@...` URL is used to log in and appears in no log line.

use std::path::Path;
use std::process::{Command, Output};

use chatops_testkit::NatsServer;

use crate::support::*;

const NATS_USER: &str = "chatops-ops";
/// Distinctive, so a search of every log line cannot miss it.
const NATS_PASSWORD: &str = "pw-Zq81xK-never-logged";

fn broker_with_login() -> NatsServer {
    NatsServer::start_with_args(&["--user", NATS_USER, "--pass", NATS_PASSWORD])
}

/// Runs the real binary without any credentials inherited from the environment.
fn chatops(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatops"));
    cmd.args(args)
        .env_remove("CHATOPS_NATS_PASSWORD")
        .env_remove("CHATOPS_NATS_USER")
        .env_remove("CHATOPS_QUEUE")
        .env_remove("CHATOPS_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn password_file(dir: &Path) -> String {
    let path = dir.join("nats-password");
    std::fs::write(&path, format!("{NATS_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_reaches_a_nats_broker_that_requires_a_login_with_the_flags_serve_uses() {
    let nats = broker_with_login();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = password_file(dir.path());
    let config = test_config_file(dir.path(), "");
    let queue_flags = strings(&["--queue", &nats.url(), "--nats-user", NATS_USER, "--nats-password-file", &pw_file]);

    let mut serve_args = strings(&["serve", "--listen", "127.0.0.1:0"]);
    serve_args.extend(queue_flags.iter().cloned());
    let serve_args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let bot =
        BotProcess::spawn(&serve_args, &dir.path().join("bot.log"), &[("CHATOPS_CONFIG", config.to_str().unwrap())]);

    // The same queue flags, after the nested subcommand as an operator types them.
    let mut list = strings(&["dlq", "list", "--json"]);
    list.extend(queue_flags.iter().cloned());
    let out = tokio::task::spawn_blocking(move || chatops(&list, &[])).await.unwrap();
    assert!(out.status.success(), "dlq list with serve's flags: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().trim().is_empty(), "no dead letters yet");

    // The password from the environment instead of a file works too.
    let list_env = strings(&["dlq", "list", "--queue", &nats.url(), "--nats-user", NATS_USER]);
    let out = tokio::task::spawn_blocking(move || chatops(&list_env, &[("CHATOPS_NATS_PASSWORD", NATS_PASSWORD)]))
        .await
        .unwrap();
    assert!(out.status.success(), "dlq list with CHATOPS_NATS_PASSWORD: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().contains("empty"));

    // And from a --config file that names the queue.
    let dlq_config = dir.path().join("dlq.toml");
    std::fs::write(&dlq_config, format!("[queue]\nurl = \"{}\"\n", nats.url())).unwrap();
    let list_config = strings(&[
        "dlq",
        "list",
        "--config",
        dlq_config.to_str().unwrap(),
        "--nats-user",
        NATS_USER,
        "--nats-password-file",
        &pw_file,
    ]);
    let out = tokio::task::spawn_blocking(move || chatops(&list_config, &[])).await.unwrap();
    assert!(out.status.success(), "dlq list --config: {}", String::from_utf8_lossy(&out.stderr));

    // Without credentials: refused, and the message says why and what to pass.
    let bare = strings(&["dlq", "list", "--queue", &nats.url()]);
    let out = tokio::task::spawn_blocking(move || chatops(&bare, &[])).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "dlq without credentials fails");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.to_ascii_lowercase().contains("authorization"), "{err}");
    assert!(err.contains("--nats-user") && err.contains("--nats-password-file"), "{err}");
    assert!(!err.contains(NATS_PASSWORD), "{err}");
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_queue_url_logs_in_and_is_never_logged() {
    let nats = broker_with_login();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), "");
    let url = format!("nats://{NATS_USER}:{NATS_PASSWORD}@127.0.0.1:{}", nats.port());
    let log = dir.path().join("bot.log");
    let mut bot = BotProcess::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--queue", &url],
        &log,
        &[("CHATOPS_CONFIG", config.to_str().unwrap())],
    );
    // A command through the broker proves the URL's credentials were used to log in.
    let slack = SlackReceiver::start().await;
    let body = slash("/echo", "with-login", &slack.url("url-login")).to_form();
    let resp = post_signed(&bot.base, &sign(body), "url-login").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(slack.wait_for("url-login", 2, std::time::Duration::from_secs(30)).await.len(), 2);
    bot.sigterm();
    bot.wait_exit(std::time::Duration::from_secs(30));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text.lines().count();
    assert!(lines >= 3, "the bot logged its start, the command and its stop ({lines} lines)");
    assert!(!text.contains(NATS_PASSWORD), "the password appears in no log line");
    let serving = bot.log_lines().into_iter().find(|l| l["message"] == "chatops is serving").expect("serving line");
    let queue = serving["queue"].as_str().unwrap();
    assert!(queue.contains(&format!("nats://127.0.0.1:{}", nats.port())), "{queue}");
    assert!(!queue.contains(NATS_USER) && !queue.contains('@'), "no userinfo in {queue}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_takes_the_data_directory_from_a_config_file() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bot.toml");
    std::fs::write(&config, format!("[server]\ndata_dir = \"{}\"\n", app.data_dir.display())).unwrap();
    let args = strings(&["dlq", "list", "--config", config.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || chatops(&args, &[])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().contains("empty"));
    // A directory with no queue is an error, not a new empty queue.
    let empty = tempfile::tempdir().unwrap();
    let args = strings(&["dlq", "list", "--data-dir", empty.path().to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || chatops(&args, &[])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no queue at"));
    assert!(!empty.path().join("queue.db").exists());
    app.stop().await;
}
