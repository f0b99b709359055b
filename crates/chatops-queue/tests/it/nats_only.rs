//! Behaviour specific to the JetStream engine: setup is idempotent, a worker that dies on
//! its last delivery still ends in the DLQ, the broker can restart under the queue.

use std::sync::Arc;
use std::time::Duration;

use chatops_core::Quadrant;
use chatops_queue::nats::{ConsumerSettings, NatsQueue, NatsSettings};
use chatops_queue::{Enqueued, Queue};
use chatops_testkit::NatsServer;

use crate::conformance::{job, soon};

const LEASE: Duration = Duration::from_secs(30);

fn settings(server: &NatsServer) -> NatsSettings {
    let mut s = NatsSettings::new(vec![server.url()]);
    s.consumers = [ConsumerSettings { ack_wait: Duration::from_millis(500), max_deliver: 2 }; 4];
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_idempotent_and_updates_changed_settings() {
    let server = NatsServer::start();
    let first = NatsQueue::connect(&settings(&server)).await.unwrap();
    first.enqueue(&job("kept", Quadrant::ShortRead), soon()).await.unwrap();
    let mut changed = settings(&server);
    changed.consumers[0].ack_wait = Duration::from_secs(2);
    let second = NatsQueue::connect(&changed).await.expect("connecting again with other settings works");
    let got = second.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "the stream kept its job across setups");
    second.complete(&got[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_jetstream_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(chatops_testkit::nats_server_binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = NatsQueue::connect(&NatsSettings::new(vec![format!("nats://127.0.0.1:{port}")])).await.unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.to_string().contains("no JetStream") && err.to_string().contains("-js"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = NatsQueue::connect(&NatsSettings::new(vec![format!("nats://127.0.0.1:{port}")])).await.unwrap_err();
    assert!(err.to_string().contains("connecting to NATS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_dies_on_every_delivery_ends_in_the_dlq() {
    let server = NatsServer::start();
    let q = NatsQueue::connect(&settings(&server)).await.unwrap();
    let _watcher = q.watch_exhausted_deliveries().await.unwrap();
    q.enqueue(&job("crashy", Quadrant::LongWrite), soon()).await.unwrap();
    // Two deliveries (max_deliver = 2), neither acknowledged: the worker "died" each time.
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(d) = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop() {
                    break d;
                }
                q.wait_for_jobs(Quadrant::LongWrite, Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("delivered again after AckWait");
        std::mem::forget(d);
    }
    // JetStream notices the exhausted job when a worker asks for more work, as live workers do.
    let dead = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            assert!(q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().is_empty(), "no third delivery");
            let dead = q.dlq_list(10).await.unwrap();
            if !dead.is_empty() {
                break dead;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the max-deliveries watcher dead-letters the job");
    assert_eq!(dead[0].job.idempotency_key, "crashy");
    assert!(dead[0].last_error.contains("delivered 2 times"), "{}", dead[0].last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_jobs_survive_a_broker_restart() {
    let mut server = NatsServer::start();
    let q: Arc<dyn Queue> = Arc::new(NatsQueue::connect(&settings(&server)).await.unwrap());
    assert!(matches!(q.enqueue(&job("durable", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Stored { .. }));
    server.kill();
    let refused = q.enqueue(&job("while-down", Quadrant::ShortRead), soon()).await;
    assert!(refused.is_err(), "no ack while the broker is down");
    assert!(q.ping().await.is_err());
    server.restart();
    // The client reconnects by itself; the stored job is delivered, and the one the router
    // was told failed is never run, even if the client delivers its publish after reconnecting.
    let mut delivered = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Ok(batch) = q.dequeue(Quadrant::ShortRead, 10, LEASE).await {
            for d in batch {
                delivered.push(d.job.idempotency_key.clone());
                q.complete(&d).await.unwrap();
            }
        }
        if delivered.iter().any(|k| k == "durable") {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(batch) = q.dequeue(Quadrant::ShortRead, 10, LEASE).await {
                delivered.extend(batch.iter().map(|d| d.job.idempotency_key.clone()));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, ["durable"]);
    q.ping().await.unwrap();
}
