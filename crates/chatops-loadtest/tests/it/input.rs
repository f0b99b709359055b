//! Malformed, hostile and oversized input through the full `run` path: each is refused
//! with exit code 2 and a message, before any request is sent.

use crate::helpers::{SECRET, parse_args, run, write_profile};

fn usage_error(r: &crate::helpers::Run) -> String {
    match &r.outcome {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn hostile_profiles_are_refused_with_exit_code_two() {
    let alias_bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nconfig: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n";
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("binary", "\u{0}\u{1}\u{2}\u{fffd}".repeat(100)),
        ("alias bomb", alias_bomb.into()),
        ("deep nesting", format!("config: {}{}", "[".repeat(5000), "]".repeat(5000))),
        ("oversized", format!("# {}\n", "x".repeat(2 * 1024 * 1024))),
        ("two documents", "config: {}\n---\nconfig: {}\n".into()),
        ("rate too high", "config:\n  phases:\n    - duration: 1\n      arrivalRate: 1e12\nscenarios:\n  - flow:\n      - get:\n          url: /\n".into()),
        ("phase too long", "config:\n  phases:\n    - duration: 100000000\n      arrivalRate: 1\nscenarios:\n  - flow:\n      - get:\n          url: /\n".into()),
    ];
    for (what, yaml) in cases {
        let (_g, profile) = write_profile(&yaml);
        let r = run(&["--profile", &profile, "--target", "http://127.0.0.1:9"]).await;
        let msg = usage_error(&r);
        assert!(msg.contains("profile.yml"), "{what}: {msg}");
    }
    let r = run(&["--profile", "no-such-profile-or-file"]).await;
    assert!(usage_error(&r).contains("smoke, minimal, light, standard, full"));
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["--profile", dir.path().to_str().unwrap()]).await;
    usage_error(&r);
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--profile", "smoke"], "no signing secret"),
        (
            vec!["--profile", "smoke", "--signing-secret", SECRET, "--target", "ftp://127.0.0.1:1"],
            "http:// or https://",
        ),
        (vec!["--profile", "smoke", "--signing-secret", SECRET, "--target", "not a url"], "target"),
        (vec!["--profile", "smoke", "--signing-secret", SECRET, "--spawn"], "--spawn"),
        (vec!["--profile", "smoke", "--signing-secret", SECRET, "--rate-scale", "1000000"], "limit"),
        (vec!["--profile", "smoke", "--signing-secret-file", "/nonexistent/secret"], "signing secret file"),
        (vec!["--profile", "smoke", "--signing-secret", SECRET, "--timeout", "0"], "timeout"),
    ];
    for (argv, needle) in cases {
        let mut full = argv.clone();
        full.extend(["--quiet", "-o", &out]);
        let err = crate::helpers::plan_run_write(&parse_args(&full)).await.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(needle), "{argv:?}: {err}");
    }
    let huge = dir.path().join("huge-secret");
    std::fs::write(&huge, vec![b'a'; 1024 * 1024]).unwrap();
    let full = ["--profile", "smoke", "--quiet", "--signing-secret-file", huge.to_str().unwrap()];
    let err = crate::helpers::plan_run_write(&parse_args(&full)).await.unwrap_err();
    assert!(err.to_string().contains("larger than 4096 bytes"), "{err}");
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n").unwrap();
    let full = ["--profile", "smoke", "--quiet", "--signing-secret-file", empty.to_str().unwrap()];
    let err = crate::helpers::plan_run_write(&parse_args(&full)).await.unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(!dir.path().join("r.json").exists());
}

#[tokio::test]
async fn list_profiles_needs_nothing_else() {
    let args = parse_args(&["--list-profiles"]);
    assert!(chatops_loadtest::list_profiles().contains("smoke"));
    // Listing is not a run: a plan refuses it instead of running without a profile.
    let err = chatops_loadtest::Plan::from_args(&args, None).err().expect("not a run");
    assert!(err.to_string().contains("--list-profiles"), "{err}");
}
