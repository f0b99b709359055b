//! Run with `scripts/fuzz.sh ingress 60`.
//!
//! The router's parsing of untrusted input: signature headers, the form body (a slash
//! command, or an interaction payload for `/slack/interactions`) and the response_url.
//! Nothing may panic; a body signed with the secret always verifies; a parsed click
//! re-encodes to itself.
#![no_main]

use chatops_core::slack::interaction::{Interaction, block_action_form, parse_interaction};
use chatops_core::slack::{AllowedHosts, SlackForm, SlackSigner, SlashCommand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: how many bytes of timestamp; second: of signature; the rest is the body.
    let (ts_len, sig_len) = match data {
        [a, b, ..] => (*a as usize % 24, *b as usize % 80),
        _ => return,
    };
    let rest = &data[2..];
    let (timestamp, rest) = rest.split_at(ts_len.min(rest.len()));
    let (signature, body) = rest.split_at(sig_len.min(rest.len()));
    let signer = SlackSigner::new(b"fuzz-secret");
    let _ = signer.verify(Some(timestamp), Some(signature), body, 1_700_000_000);
    // Round trip: what we sign, we verify.
    let own = signer.sign("1700000000", body);
    assert!(signer.verify(Some(b"1700000000"), Some(own.as_bytes()), body, 1_700_000_000).is_ok());
    if let Ok(SlackForm::Command(cmd)) = SlashCommand::parse_form(body) {
        assert!(cmd.command.starts_with('/'));
        let mut hosts = AllowedHosts::default();
        let _ = hosts.allow("127.0.0.1");
        if let Ok(url) = hosts.check(&cmd.response_url) {
            // The redacted form never carries the path's secret segments.
            let redacted = url.redacted();
            assert!(redacted.ends_with("[redacted]"));
        }
        // Re-encoding and parsing again gives the same fields.
        if let Ok(SlackForm::Command(again)) = SlashCommand::parse_form(cmd.to_form().as_bytes()) {
            assert_eq!(again.command, cmd.command);
            assert_eq!(again.text, cmd.text);
            assert_eq!(again.response_url, cmd.response_url);
        }
    }
    if let Ok(Interaction::BlockAction(click)) = parse_interaction(body) {
        assert!(click.value.len() <= chatops_core::slack::interaction::MAX_VALUE_LEN);
        assert_eq!(parse_interaction(block_action_form(&click).as_bytes()), Ok(Interaction::BlockAction(click)));
    }
});
