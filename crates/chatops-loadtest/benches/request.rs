//! Run with `cargo bench -p chatops-loadtest --bench request`.
//!
//! The generator's per-request CPU work before any I/O: render the default `/echo` body
//! (random user, message and trigger ids, response_url pointed at the receiver) and sign it
//! with a fresh timestamp, then walk the schedule, and the pacer's per-arrival decision of
//! how to wait (with the `Instant::now()` it needs). The end-to-end rate and send lag are
//! measured by `scripts/bench-loadtest.sh`.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use chatops_core::slack::SlackSigner;
use chatops_loadtest::pace;
use chatops_loadtest::profile::Profile;
use chatops_loadtest::request::{BodySpec, HookTarget, encode_hook_prefix};
use chatops_loadtest::schedule;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn per_request(c: &mut Criterion) {
    let body = BodySpec::default_echo();
    let prefix = encode_hook_prefix("http://127.0.0.1:40000");
    let signer = SlackSigner::new(b"8f742231b10e8888abcd99yyyzzz85a5");
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("render_default_echo", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(body.size_hint());
            body.render_into(Some(HookTarget { encoded_prefix: &prefix, request_id: "abcdefgh-123456" }), &mut out);
            out
        })
    });
    group.bench_function("render_and_sign", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(body.size_hint());
            body.render_into(Some(HookTarget { encoded_prefix: &prefix, request_id: "abcdefgh-123456" }), &mut out);
            let ts = chatops_core::time::now_unix_secs().to_string();
            signer.sign(&ts, black_box(out.as_bytes()))
        })
    });
    group.finish();

    let env = std::collections::HashMap::<String, String>::new();
    let mut profile = Profile::load("full", &env).unwrap();
    profile.scale(10.0, 1.0).unwrap();
    let n = schedule::arrivals(&profile.phases).count() as u64;
    let mut group = c.benchmark_group("schedule");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_function("full_profile_x10_arrivals", |b| b.iter(|| schedule::arrivals(&profile.phases).count()));
    group.finish();

    let mut group = c.benchmark_group("pace");
    group.throughput(Throughput::Elements(1));
    let start = std::time::Instant::now();
    let mut k = 0u64;
    group.bench_function("plan_wait_with_now", |b| {
        b.iter(|| {
            // A 50,000/s schedule: slots 20 µs apart, mostly due or about to be.
            k += 1;
            let due = start + std::time::Duration::from_micros(k * 20);
            pace::plan_wait(std::time::Instant::now(), black_box(due), pace::SPIN_LEAD)
        })
    });
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
