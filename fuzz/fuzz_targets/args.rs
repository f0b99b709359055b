//! Run with `scripts/fuzz.sh args 60`.
//!
//! The router's parsing of a command's text into typed arguments: the quoting rules and the
//! checks. Nothing may panic; word offsets are in order and on character boundaries; a
//! parsed value always satisfies its declaration; quoting words and splitting them again
//! gives the same words back.
#![no_main]

use chatops_core::args::{ArgKind, ArgSpecs, RawArgSpec, split_words};
use libfuzzer_sys::fuzz_target;

fn specs() -> ArgSpecs {
    let spec = |name: &str, kind| RawArgSpec { name: name.into(), kind, ..Default::default() };
    ArgSpecs::new(vec![
        RawArgSpec { pattern: Some("[a-z0-9-]{1,40}".into()), ..spec("service", ArgKind::Word) },
        RawArgSpec { choices: vec!["staging".into(), "production".into()], ..spec("env", ArgKind::Choice) },
        RawArgSpec { min: Some(0), max: Some(100), optional: true, ..spec("replicas", ArgKind::Integer) },
        RawArgSpec { default: Some("5m".into()), ..spec("timeout", ArgKind::Duration) },
        RawArgSpec { optional: true, ..spec("reason", ArgKind::Rest) },
    ])
    .expect("a valid declaration")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(words) = split_words(text) {
        let mut last = 0;
        for w in &words {
            assert!(text.is_char_boundary(w.start) && w.start >= last, "offsets in order");
            last = w.start;
        }
        // Round trip: each word double-quoted with `"` and `\` escaped splits back to itself.
        let quoted: Vec<String> =
            words.iter().map(|w| format!("\"{}\"", w.value.replace('\\', "\\\\").replace('"', "\\\""))).collect();
        let again = split_words(&quoted.join(" ")).expect("quoted words always split");
        let values: Vec<&str> = again.iter().map(|w| w.value.as_str()).collect();
        let want: Vec<&str> = words.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(values, want);
    }
    if let Ok(args) = specs().parse(text) {
        let service = args.get("service").expect("required");
        assert!(!service.is_empty() && service.len() <= 40 && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert!(matches!(args.get("env"), Some("staging" | "production")));
        if let Some(n) = args.get_i64("replicas") {
            assert!((0..=100).contains(&n));
        }
        assert!(args.get_duration("timeout").is_some());
    }
});
