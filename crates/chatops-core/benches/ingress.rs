//! Run with `cargo bench -p chatops-core --bench ingress`.
//!
//! The router's per-request CPU work before the durable enqueue: verify the Slack signature
//! over the raw body, then parse the form into a `SlashCommand` and check its response_url.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use chatops_core::slack::{AllowedHosts, SlackForm, SlackSigner, SlashCommand};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const BODY: &str = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&channel_id=C2147483705&channel_name=test&user_id=U2147483697&user_name=Steve&command=%2Fecho&text=hello+from+the+benchmark&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0001%2F1234567890%2FAbCdEfGhIjKlMnOpQrStUvWx&trigger_id=13345224609.738474920.8088930838d88f008e0&api_app_id=A123456";

fn verify_and_parse(c: &mut Criterion) {
    let signer = SlackSigner::new(b"8f742231b10e8888abcd99yyyzzz85a5");
    let hosts = AllowedHosts::default();
    let ts = "1700000000";
    let sig = signer.sign(ts, BODY.as_bytes());
    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_signature", |b| {
        b.iter(|| signer.verify(Some(ts.as_bytes()), Some(sig.as_bytes()), black_box(BODY.as_bytes()), 1700000001))
    });
    group.bench_function("parse_form", |b| b.iter(|| SlashCommand::parse_form(black_box(BODY.as_bytes()))));
    group.bench_function("verify_parse_check_url", |b| {
        b.iter(|| {
            signer.verify(Some(ts.as_bytes()), Some(sig.as_bytes()), black_box(BODY.as_bytes()), 1700000001).unwrap();
            let SlackForm::Command(cmd) = SlashCommand::parse_form(BODY.as_bytes()).unwrap() else { unreachable!() };
            hosts.check(&cmd.response_url).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, verify_and_parse);
criterion_main!(benches);
