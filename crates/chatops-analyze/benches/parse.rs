//! Run with `cargo bench -p chatops-analyze --bench parse`.
//!
//! Metric lines per second through the analyzer's hot path, on synthetic lines shaped like
//! the service's (tracing JSON, flattened fields, span fields included): `parse` is the line
//! parser alone, `aggregate` is parse + every group, stage and time bin, `read_and_aggregate`
//! adds the block reader over an in-memory file. Goal: ≥ 1,000,000 metric lines/s.
//!
//! Latencies are log-normal around a per-stage median (as real latencies are), so the
//! histograms see a realistic spread; uniformly random values over three decades would make
//! every histogram record a cache miss and measure the memory system instead.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use std::hint::black_box;
use std::time::Duration;

use chatops_analyze::AnalyzeArgs;
use chatops_analyze::aggregate::{Aggregator, WindowNs};
use chatops_analyze::input::{MAX_LINE_BYTES, for_each_line};
use chatops_analyze::line::{LineKind, LineParser};
use chatops_core::time::format_rfc3339_ms;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 100_000;

const COMMANDS: [(&str, &str, &str); 4] = [
    ("/echo", "sr-worker", "short-read"),
    ("/scale", "sw-worker", "short-write"),
    ("/report", "lr-worker", "long-read"),
    ("/deploy", "lw-worker", "long-write"),
];

/// Half router lines, half worker lines, 2 % failures, timestamps 1 ms apart.
fn synthetic_log() -> Vec<u8> {
    let mut out = Vec::with_capacity(N * 450);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    // Log-normal with sigma 0.6 (Irwin-Hall approximation of the normal).
    let mut next = move |median: f64| {
        let z = (uniform() + uniform() + uniform() + uniform() - 2.0) * 3f64.sqrt();
        median * (0.6 * z).exp()
    };
    for i in 0..N {
        let ts = format!("{}123Z", &format_rfc3339_ms(1_764_331_200_000 + i as i64)[..23]);
        let (cmd, component, quadrant) = COMMANDS[i % 4];
        let id = format!("0193a1b2-c3d4-7e5f-8a9b-{i:012x}");
        let ok = i % 50 != 0;
        if i % 2 == 0 {
            let (status, err) = if ok { (200, String::new()) } else { (503, r#","errorType":"QueueFull""#.to_owned()) };
            out.extend_from_slice(format!(
                r#"{{"timestamp":"{ts}","level":"INFO","message":"Router performance metrics","correlationId":"{id}","command":"{cmd}","statusCode":{status},"duration":{:.3},"success":{ok},"enqueueMs":{:.3},"quadrant":"{quadrant}"{err},"target":"chatops_service::ingress","span":{{"correlation_id":"{id}","name":"request"}}}}"#,
                next(2.0), next(0.8)
            ).as_bytes());
        } else {
            let err = if ok { "" } else { r#","errorType":"Timeout","errorMessage":"handler timed out""# };
            out.extend_from_slice(format!(
                r#"{{"timestamp":"{ts}","level":"INFO","message":"Performance metrics","correlationId":"{id}","command":"{cmd}","component":"{component}","quadrant":"{quadrant}","totalE2eMs":{:.3},"workerDurationMs":{:.3},"queueWaitMs":{:.3},"syncResponseMs":{:.3},"asyncResponseMs":{:.3},"success":{ok}{err},"attempt":1,"routerMs":{:.3},"enqueueMs":{:.3},"handlerMs":{:.3},"firstResponseE2eMs":{:.3},"lastResponseE2eMs":{:.3},"responses":2,"target":"chatops_service::worker"}}"#,
                next(40.0), next(25.0), next(8.0), next(3.0), next(4.0), next(0.5), next(0.8), next(20.0), next(30.0), next(38.0)
            ).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    let log = synthetic_log();
    let lines: Vec<&[u8]> = log.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), N);
    let mut g = c.benchmark_group("metric_lines");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    g.bench_function("parse", |b| {
        let p = LineParser::new();
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                n += usize::from(matches!(p.parse(black_box(l)), LineKind::Router(_) | LineKind::Worker(_)));
            }
            assert_eq!(n, N);
        });
    });

    g.bench_function("aggregate", |b| {
        b.iter(|| {
            let mut agg = Aggregator::new(WindowNs::default(), Some(10_000_000_000), None);
            for l in &lines {
                agg.feed(black_box(l));
            }
            let out = agg.finish();
            assert_eq!(out.lines.router + out.lines.worker, N as u64);
        });
    });

    g.bench_function("read_and_aggregate", |b| {
        b.iter(|| {
            let mut agg = Aggregator::new(WindowNs::default(), Some(10_000_000_000), None);
            let (_, err) = for_each_line(&mut std::io::Cursor::new(&log), MAX_LINE_BYTES, |l| agg.feed(l));
            assert!(err.is_none());
            black_box(agg.finish());
        });
    });
    g.bench_function("analyze_file", |b| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.log");
        std::fs::write(&path, &log).unwrap();
        let args = AnalyzeArgs {
            inputs: vec![path],
            from_results: None,
            buffer: Duration::from_secs(30),
            since: None,
            start: None,
            end: None,
            bin: Some(Duration::from_secs(10)),
            requests: None,
            json: None,
            no_json: false,
            threads: None,
            block_kib: None,
        };
        b.iter(|| {
            let out = chatops_analyze::run_analyze_to(&args, &mut std::io::sink()).unwrap();
            assert_eq!(out.summary.lines.router + out.summary.lines.worker, N as u64);
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
