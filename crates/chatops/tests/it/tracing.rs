//! OpenTelemetry: with `--otlp-endpoint`, every command is one trace across the router
//! process and a worker process (NATS engine), with the expected spans and parent links,
//! and an incoming `traceparent` is honoured. The collector is an in-process OTLP/HTTP
//! receiver decoding the real protobuf the exporter sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

use crate::support::*;

#[derive(Debug, Clone)]
struct CollectedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    service: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<CollectedSpan>>>;

async fn receive(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
    let mut out = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| value_text(a.value.as_ref()))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push(CollectedSpan {
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    name: span.name.clone(),
                    service: service.clone(),
                    attributes: span.attributes.iter().map(|a| (a.key.clone(), value_text(a.value.as_ref()))).collect(),
                });
            }
        }
    }
    "ok"
}

fn value_text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

async fn start_collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_is_one_trace_across_router_and_worker_processes() {
    let nats = chatops_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (collector, spans) = start_collector().await;
    let slack = SlackReceiver::start().await;
    let config = test_config_file(dir.path(), "");
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let queue = nats.url();
    let mut router = BotProcess::spawn(
        &["router", "--listen", "127.0.0.1:0", "--queue", &queue, "--otlp-endpoint", &collector],
        &dir.path().join("router.log"),
        &env,
    );
    let mut worker = BotProcess::spawn(
        &["worker", "--queue", &queue, "--otlp-endpoint", &collector],
        &dir.path().join("worker.log"),
        &env,
    );
    for i in 0..3 {
        let id = format!("traced-{i}");
        let body = slash("/echo", &id, &slack.url(&id)).to_form();
        assert_eq!(post_signed(&router.base, &sign(body), &id).await.status(), 200);
    }
    // A caller that is itself traced: its traceparent becomes the router span's parent.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let req = sign(slash("/echo", "child", &slack.url("traced-child")).to_form());
    let resp = http()
        .post(format!("{}/slack/commands", router.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &req.timestamp)
        .header("x-slack-signature", &req.signature)
        .header("x-request-id", "traced-child")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .body(req.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for id in ["traced-0", "traced-1", "traced-2", "traced-child"] {
        assert_eq!(slack.wait_for(id, 2, Duration::from_secs(30)).await.len(), 2, "{id} answered");
    }
    // Stopping flushes the exporters.
    router.sigterm();
    worker.sigterm();
    assert!(router.wait_exit(Duration::from_secs(30)).success());
    assert!(worker.wait_exit(Duration::from_secs(30)).success());

    let spans = spans.lock().unwrap().clone();
    let roots: Vec<&CollectedSpan> = spans.iter().filter(|s| s.name == "POST /slack/commands").collect();
    assert_eq!(roots.len(), 4, "one router span per command: {spans:#?}");
    for root in roots {
        let id = root.attributes.get("correlation_id").expect("correlation id on the router span");
        let trace: Vec<&CollectedSpan> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
        let by_name = |name: &str| trace.iter().filter(|s| s.name == name).copied().collect::<Vec<_>>();
        let (enqueue, job, dequeue, handler, posts) =
            (by_name("enqueue"), by_name("job"), by_name("dequeue"), by_name("handler"), by_name("response_url.post"));
        assert_eq!(
            (enqueue.len(), job.len(), dequeue.len(), handler.len(), posts.len()),
            (1, 1, 1, 1, 2),
            "{id}: {trace:#?}"
        );
        assert_eq!(enqueue[0].parent_span_id, root.span_id, "{id}: enqueue under the router span");
        assert_eq!(job[0].parent_span_id, enqueue[0].span_id, "{id}: the worker's job span continues the enqueue");
        assert_eq!(dequeue[0].parent_span_id, job[0].span_id);
        assert_eq!(handler[0].parent_span_id, job[0].span_id);
        for p in &posts {
            assert_eq!(p.parent_span_id, handler[0].span_id, "{id}: posts under the handler");
        }
        assert_eq!(job[0].attributes.get("correlation_id"), Some(id), "{id}: correlation id on the worker span");
        assert_ne!(root.service, "", "spans carry service.name");
        if id == "traced-child" {
            assert_eq!(root.trace_id, caller_trace, "the incoming traceparent is honoured");
            assert_eq!(root.parent_span_id, caller_span);
        } else {
            assert_eq!(root.parent_span_id, "", "{id}: a new trace starts at the router");
        }
    }
}
