//! The binary's other subcommands: help texts, `sign`, `send`, `dlq`, and the refusal to
//! serve without a signing secret.

use std::process::Command;

use hmac::{KeyInit, Mac};

use crate::support::*;

fn chatops(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chatops")).args(args).env_remove("SLACK_SIGNING_SECRET").output().unwrap()
}

#[test]
fn every_subcommand_explains_itself() {
    let top = chatops(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8(top.stdout).unwrap();
    for sub in ["serve", "sign", "send", "dlq"] {
        assert!(text.contains(sub), "top-level help lists {sub}");
        let out = chatops(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        assert!(String::from_utf8(out.stdout).unwrap().len() > 200, "{sub} --help says something");
    }
}

#[test]
fn sign_matches_an_independent_hmac() {
    let out =
        chatops(&["sign", "--secret", "s3cr3t", "--timestamp", "1700000000", "--body", "command=%2Fecho&text=hi"]);
    assert!(out.status.success());
    let first = String::from_utf8(out.stdout).unwrap().lines().next().unwrap().to_owned();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t").unwrap();
    mac.update(b"v0:1700000000:command=%2Fecho&text=hi");
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(first, expected);
}

#[test]
fn serve_refuses_to_start_without_a_signing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatops(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("SLACK_SIGNING_SECRET") && err.contains("--signing-secret-file"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_file_with_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\ntypo_key = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("SLACK_SIGNING_SECRET", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("typo_key") && err.contains("line 3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_the_ack_and_both_echo_answers() {
    let app = spawn_app().await;
    let url = format!("{}/slack/commands", app.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chatops"))
            .args(["send", "/echo", "hello", "there", "--url", &url, "--expect", "2", "--wait", "20s"])
            .env("SLACK_SIGNING_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("ack 200"), "{text}");
    assert!(text.contains("response 1 at") && text.contains("sync hello there"), "{text}");
    assert!(text.contains("response 2 at") && text.contains("async hello there"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_work_on_a_running_bots_data_directory() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    slack.fail_first(usize::MAX);
    app.send(&slack, "/echo", "dead", "cli-dead").await;
    wait_for_log("cli-dead", "Performance metrics", 3).await;
    let data_dir = app.data_dir.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_chatops")).args(args).output().unwrap())
    };
    let dlq = |rest: &[&str]| {
        let mut v = vec!["dlq".to_owned()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v.extend(["--data-dir".to_owned(), data_dir.clone()]);
        v
    };
    let listed = loop {
        let out = run(dlq(&["list", "--json"])).await.unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        if !text.trim().is_empty() {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let line: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(line["correlationId"], "cli-dead");
    assert_eq!(line["attempts"], 3);
    assert!(!listed.contains("hook/cli-dead"), "the listing shows no response_url");

    let purge_unconfirmed = run(dlq(&["purge"])).await.unwrap();
    assert_eq!(purge_unconfirmed.status.code(), Some(2), "purge needs --yes");

    slack.fail_first(0);
    let out = run(dlq(&["redrive", "--all"])).await.unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("Redrove 1 job"));
    let posts = slack.wait_for("cli-dead", 2, std::time::Duration::from_secs(30)).await;
    assert_eq!(posts.len(), 2, "the running bot picked up the redriven job");
    app.stop().await;
}

fn hmac_hex(secret: &[u8], base: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(base);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn secret_files_follow_one_rule_in_sign_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let base = b"v0:1700000000:text=hi";
    let sign_with_file = |contents: &[u8]| {
        let path = dir.path().join("secret");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        chatops(&["sign", "--secret-file", path.to_str().unwrap(), "--timestamp", "1700000000", "--body", "text=hi"])
    };
    let first_line =
        |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned();
    for (contents, secret) in [
        (&b"s3cr3t"[..], &b"s3cr3t"[..]),
        (b"s3cr3t\n", b"s3cr3t"),
        (b"s3cr3t\r\n", b"s3cr3t"),
        (b"s3cr3t\n\n", b"s3cr3t\n"),
        (b" s3cr3t \n", b" s3cr3t "),
    ] {
        let out = sign_with_file(contents);
        assert!(out.status.success(), "{contents:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(first_line(&out), hmac_hex(secret, base), "{contents:?} signs with {secret:?}");
    }
    for (contents, message) in [(&b""[..], "is empty"), (b"\r\n", "is empty")] {
        let out = sign_with_file(contents);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{contents:?}");
    }
    let out = sign_with_file(&vec![b'a'; 4097]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than 4096 bytes"));

    // serve reads its file with the same rule: an empty one is refused before anything starts.
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n").unwrap();
    let data = dir.path().join("data");
    let out = chatops(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--signing-secret-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));

    // A file others can read works, with a warning.
    let open = dir.path().join("open-secret");
    std::fs::write(&open, "s3cr3t\n").unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out =
        chatops(&["sign", "--secret-file", open.to_str().unwrap(), "--timestamp", "1700000000", "--body", "text=hi"]);
    assert_eq!(first_line(&out), hmac_hex(b"s3cr3t", base));
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable by group or others"));
}

#[test]
fn help_steers_secrets_away_from_the_command_line() {
    for sub in ["sign", "send", "loadtest"] {
        let out = chatops(&[sub, "--help"]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("ps"), "{sub} --help warns that a secret flag shows in ps");
        assert!(text.contains("-secret-file"), "{sub} --help offers a secret file");
    }
}
