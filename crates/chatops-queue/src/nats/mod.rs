//! The scale-out engine: NATS JetStream. Routers and workers run as separate processes on
//! any number of machines; the broker is the queue.
//!
//! Layout (names carry a configurable prefix, `CHATOPS` by default):
//!
//! - stream `<P>_JOBS`, subjects `<p>.jobs.{sr,sw,lr,lw}`: file storage, work-queue
//!   retention, at most `max_depth` messages per subject (new ones refused, so the router
//!   answers 503), and a duplicate window in which a second publish with the same
//!   `Nats-Msg-Id` (the job's idempotency key) is dropped: a retried publish or a
//!   duplicate Slack delivery is one job.
//! - one durable pull consumer per quadrant, `<P>_<sr|sw|lr|lw>`, explicit acks, `AckWait`
//!   = the pool's lease (in-progress acks extend it while a job runs), `MaxDeliver` always
//!   set (the client default is unlimited, and then nothing would ever reach the DLQ).
//! - stream `<P>_DLQ`, subjects `<p>.dlq.*`: dead letters with their last error and
//!   attempt count in headers.
//! - stream `<P>_DONE`, subjects `<p>.done.<idempotency key>`: done-records, one per
//!   subject, expiring after the done retention; checked before a handler runs. (A plain
//!   stream rather than a KV bucket: async-nats' KV setup needs a 2.10+ server, and
//!   Debian ships 2.9.)
//! - in the same stream, subjects `<p>.started.<redrives>.<idempotency key>`:
//!   effect-started records (`effect`), written by `mark_effect_started` and read at
//!   dequeue together with the done-records, so a batch still costs one round trip.
//!
//! - KV bucket `<P>_APPROVALS` (stream `KV_<P>_APPROVALS`, history 1): pending
//!   approvals as JSON records changed by compare-and-set (`approvals`).
//! - stream `<P>_AUDIT`, subjects `<p>.audit.<hex of the record id>`: the audit trail, one
//!   message per record id, limits retention with `max_age` = the audit retention
//!   (`audit`).
//!
//! - core-NATS subjects `<p>.wake.{sr,sw,lr,lw}` (no stream): an empty message published
//!   after each stored job, so idle workers in any process wake at once. Workers listen on a
//!   connection of their own whose subscriptions buffer at most [`WAKE_BUFFER`] messages
//!   (the rest are dropped: one pending wake-up is as good as many). Workers never receive
//!   job payloads outside a fetch, so a backlog costs them no memory.
//!
//! Retries are negative acks with a delay. A job whose worker dies on its last delivery is
//! moved to the DLQ by a watcher of JetStream's max-deliveries advisory.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, stream};
use async_nats::{HeaderMap, client::Client, connection::State};
use async_trait::async_trait;
use bytes::Bytes;
use chatops_core::time::now_unix_ns;
use chatops_core::{Job, Quadrant};
use futures::StreamExt;
use tokio::sync::Mutex;

mod approvals;
mod audit;
mod dlq;
mod effect;
mod scan;
mod settings;
mod topology;

pub use settings::{ConsumerSettings, NatsAuth, NatsSettings};

use dlq::{HEADER_ATTEMPTS, HEADER_FAILED_AT_MS, HEADER_LAST_ERROR, publish_dead_letter};
use effect::HEADER_EFFECT_STARTED;
use topology::{Names, check_jetstream, create_streams};

use crate::{
    DeadLetter, Delivery, EffectStarted, Enqueued, FailOutcome, QuadrantStats, Queue, QueueError, QueueStats, Receipt,
    Redrive,
};

/// Upper bound of one fetch round trip.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);

/// Wake-ups one subscription may hold before newer ones are dropped.
pub const WAKE_BUFFER: usize = 16;

/// Time kept back from an enqueue's deadline for writing the tombstone after a publish
/// that did not complete in time.
const TOMBSTONE_MARGIN: Duration = Duration::from_millis(100);

/// The shortest publish an enqueue attempts, however close its deadline.
const MIN_PUBLISH_WAIT: Duration = Duration::from_millis(5);

/// When a job whose effect-started record could not be read is offered again.
const LOOKUP_FAILED_RETRY: Duration = Duration::from_secs(1);

/// async-nats' default buffer of a subscription.
const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 64 * 1024;

const HEADER_CORRELATION_ID: &str = "Chatops-Correlation-Id";
const HEADER_JOB_ID: &str = "Chatops-Job-Id";
const HEADER_ROUTER_RECEIVED_NS: &str = "Chatops-Router-Received-Ns";
const HEADER_TRACEPARENT: &str = "traceparent";

/// The JetStream queue.
pub struct NatsQueue {
    client: Client,
    js: jetstream::Context,
    names: Names,
    jobs: stream::Stream,
    dlq: stream::Stream,
    done: stream::Stream,
    consumers: Vec<PullConsumer>,
    /// Opened at first use, so that an admin command against a deployment set up by an
    /// older version (no bucket, no audit stream) still manages its jobs and dead letters.
    approvals: tokio::sync::OnceCell<stream::Stream>,
    audit: tokio::sync::OnceCell<stream::Stream>,
    wakeups: Vec<Mutex<Option<async_nats::Subscriber>>>,
    /// The connection wake-ups arrive on, opened by the first `wait_for_jobs` (routers never
    /// need it): its own, because subscription buffers are sized per connection.
    wake_client: tokio::sync::OnceCell<Client>,
    settings: NatsSettings,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue").field("names", &self.names).finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueueError {
    QueueError::unavailable(what, e)
}

async fn connect_client(settings: &NatsSettings, subscription_capacity: usize) -> Result<Client, QueueError> {
    let auth = &settings.auth;
    let mut options = async_nats::ConnectOptions::new()
        .name("chatops")
        .subscription_capacity(subscription_capacity)
        .connection_timeout(Duration::from_secs(3))
        .require_tls(auth.require_tls);
    if let Some(path) = &auth.creds_file {
        options = options.credentials_file(path).await.map_err(|e| unavailable("reading NATS credentials", e))?;
    }
    if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &auth.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &auth.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &auth.tls_client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers: Vec<async_nats::ServerAddr> = settings
        .servers
        .iter()
        .map(|s| s.parse().map_err(|e| unavailable(&format!("NATS server address `{s}`"), e)))
        .collect::<Result<_, _>>()?;
    options
        .connect(servers.as_slice())
        .await
        .map_err(|e| unavailable(&format!("connecting to NATS at {}", settings.servers.join(",")), e))
}

impl NatsQueue {
    /// Connects and creates or updates the streams and consumers (idempotent): what a bot
    /// process does at startup, and `chatops nats setup` does explicitly.
    pub async fn connect(settings: &NatsSettings) -> Result<NatsQueue, QueueError> {
        Self::open(settings, true).await
    }

    /// Connects to streams and consumers that must already exist, changing nothing: for
    /// admin commands (`chatops dlq`), which must not reset a running deployment's settings.
    pub async fn connect_existing(settings: &NatsSettings) -> Result<NatsQueue, QueueError> {
        Self::open(settings, false).await
    }

    async fn open(settings: &NatsSettings, setup: bool) -> Result<NatsQueue, QueueError> {
        // The main connection keeps the client's default buffers: fetches stream their
        // batches through them.
        let client = connect_client(settings, DEFAULT_SUBSCRIPTION_CAPACITY).await?;
        let js = jetstream::ContextBuilder::new().timeout(settings.publish_timeout).build(client.clone());
        check_jetstream(&client, settings).await?;
        let names = Names::new(&settings.prefix);
        if setup {
            create_streams(&js, &names, settings).await?;
        }
        let missing = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
            unavailable(
                &format!(
                    "opening {what} (run `chatops nats setup` or start a bot process with this --nats-prefix first)"
                ),
                e,
            )
        };
        let jobs = js.get_stream(&names.jobs_stream).await.map_err(|e| missing("the jobs stream", e.into()))?;
        let dlq = js.get_stream(&names.dlq_stream).await.map_err(|e| missing("the DLQ stream", e.into()))?;
        let done = js.get_stream(&names.done_stream).await.map_err(|e| missing("the done stream", e.into()))?;
        let mut consumers = Vec::with_capacity(4);
        for q in Quadrant::ALL {
            let consumer = if setup {
                let c = settings.consumers[q.index()];
                let config = jetstream::consumer::pull::Config {
                    durable_name: Some(names.consumer(q)),
                    description: Some(format!("chatops {q} workers")),
                    filter_subject: names.job_subject(q),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: c.ack_wait,
                    max_deliver: i64::from(c.max_deliver.max(1)),
                    max_ack_pending: 20_000,
                    ..Default::default()
                };
                match jobs.create_consumer(config.clone()).await {
                    Ok(consumer) => consumer,
                    // An existing consumer with other settings: update it in place.
                    Err(_) => jobs
                        .update_consumer(config)
                        .await
                        .map_err(|e| unavailable(&format!("creating the {q} consumer"), e))?,
                }
            } else {
                jobs.get_consumer(&names.consumer(q)).await.map_err(|e| missing(&format!("the {q} consumer"), e))?
            };
            consumers.push(consumer);
        }
        Ok(NatsQueue {
            client,
            js,
            names,
            jobs,
            dlq,
            done,
            consumers,
            approvals: tokio::sync::OnceCell::new(),
            audit: tokio::sync::OnceCell::new(),
            wakeups: (0..4).map(|_| Mutex::new(None)).collect(),
            wake_client: tokio::sync::OnceCell::new(),
            settings: settings.clone(),
        })
    }

    /// Stream and consumer names with their settings, for `chatops nats setup`.
    pub async fn describe(&self) -> Result<Vec<String>, QueueError> {
        let mut lines = Vec::new();
        let (approvals, audit) = (self.approvals_stream().await?, self.audit_stream().await?);
        for stream in [&self.jobs, &self.dlq, &self.done, approvals, audit] {
            let info = stream.get_info().await.map_err(|e| unavailable("reading stream info", e))?;
            let max_age = if info.config.max_age.is_zero() {
                String::new()
            } else {
                format!(", max age {:?}", info.config.max_age)
            };
            lines.push(format!(
                "stream {}: subjects {:?}, {:?} retention, {:?} storage, {} replica(s), {} message(s), duplicate window {:?}{max_age}",
                info.config.name,
                info.config.subjects,
                info.config.retention,
                info.config.storage,
                info.config.num_replicas,
                info.state.messages,
                info.config.duplicate_window,
            ));
        }
        for consumer in &self.consumers {
            let mut consumer = consumer.clone();
            let info = consumer.info().await.map_err(|e| unavailable("reading consumer info", e))?;
            lines.push(format!(
                "consumer {}: filter {}, AckWait {:?}, MaxDeliver {}, {} waiting, {} in flight",
                info.name,
                info.config.filter_subject,
                info.config.ack_wait,
                info.config.max_deliver,
                info.num_pending,
                info.num_ack_pending
            ));
        }
        Ok(lines)
    }

    /// Watches JetStream's max-deliveries advisories and moves such jobs to the DLQ (a job
    /// whose worker died on its last delivery). Run it in worker processes; a queue group
    /// makes one of them handle each advisory.
    pub async fn watch_exhausted_deliveries(&self) -> Result<tokio::task::JoinHandle<()>, QueueError> {
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*", self.names.jobs_stream);
        let mut sub = self
            .client
            .queue_subscribe(subject, format!("{}-dlq-watchers", self.names.jobs_stream))
            .await
            .map_err(|e| unavailable("subscribing to max-delivery advisories", e))?;
        let (jobs, done, js, names) = (self.jobs.clone(), self.done.clone(), self.js.clone(), self.names.clone());
        Ok(tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Ok(advisory) = serde_json::from_slice::<serde_json::Value>(&msg.payload) else { continue };
                let (Some(seq), deliveries) =
                    (advisory["stream_seq"].as_u64(), advisory["deliveries"].as_u64().unwrap_or(0))
                else {
                    continue;
                };
                let Ok(raw) = jobs.get_raw_message(seq).await else { continue };
                let quadrant = Quadrant::ALL
                    .into_iter()
                    .find(|&q| raw.subject.as_str() == names.job_subject(q))
                    .unwrap_or(Quadrant::ShortRead);
                let error = format!("delivered {deliveries} times without finishing (worker crashed or stalled)");
                // A worker that died on its last attempt may well have started the effect:
                // the dead letter keeps the record for the operator.
                let effect_started = match decode(&raw.payload) {
                    Ok(job) => effect::lookup(&done, &names.started_subject(job.redrives, &job.idempotency_key))
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!(error.message = %e, "dead-lettering without its effect-started record");
                            None
                        }),
                    Err(_) => None,
                };
                let payload = raw.payload.clone();
                match publish_dead_letter(&js, &names, quadrant, payload, &error, deliveries as u32, effect_started)
                    .await
                {
                    Ok(()) => {
                        let _ = jobs.delete_message(seq).await;
                        tracing::warn!(stream_seq = seq, deliveries, "job exhausted its deliveries; moved to the DLQ");
                    }
                    Err(e) => tracing::error!(error.message = %e, "could not dead-letter an exhausted job"),
                }
            }
        }))
    }

    async fn approvals_stream(&self) -> Result<&stream::Stream, QueueError> {
        self.approvals
            .get_or_try_init(|| self.existing_stream(&self.names.approvals_stream, "the approvals bucket"))
            .await
    }

    async fn audit_stream(&self) -> Result<&stream::Stream, QueueError> {
        self.audit.get_or_try_init(|| self.existing_stream(&self.names.audit_stream, "the audit stream")).await
    }

    async fn existing_stream(&self, name: &str, what: &str) -> Result<stream::Stream, QueueError> {
        self.js.get_stream(name).await.map_err(|e| {
            unavailable(
                &format!(
                    "opening {what} (run `chatops nats setup`, or start a bot process of this version with this \
                     --nats-prefix, first)"
                ),
                e,
            )
        })
    }

    /// Publishes the job to its quadrant's subject and waits for JetStream's answer (the
    /// context's timeout bounds the wait); wakes idle workers when it was stored. No
    /// deadline and no tombstone: [`Queue::enqueue`] adds those, and the approval path,
    /// which must never write a tombstone for a job it will publish again, does not.
    async fn publish_job(&self, job: &Job) -> Result<Enqueued, QueueError> {
        let payload = serde_json::to_vec(job).map_err(QueueError::corrupt)?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.idempotency_key.as_str());
        headers.insert(HEADER_CORRELATION_ID, job.correlation_id.as_str());
        headers.insert(HEADER_JOB_ID, job.job_id.as_str());
        headers.insert(HEADER_ROUTER_RECEIVED_NS, job.router_received_ns.to_string().as_str());
        if let Some(tp) = &job.traceparent {
            headers.insert(HEADER_TRACEPARENT, tp.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(self.names.job_subject(job.quadrant), headers, payload.into())
            .await
            .map_err(|e| unavailable("publishing to JetStream", e))?
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("maximum messages") {
                    QueueError::Full { quadrant: job.quadrant, depth: 0 }
                } else {
                    unavailable("JetStream did not store the job", text)
                }
            })?;
        if ack.duplicate {
            return Ok(Enqueued::Duplicate);
        }
        // Core NATS, fire and forget: a lost wake-up only costs a worker's poll.
        let _ = self.client.publish(self.names.wake_subject(job.quadrant), Bytes::new()).await;
        Ok(Enqueued::Stored { enqueued_ns: now_unix_ns() })
    }

    /// Runs `store` (publishes and their acknowledgements) so that it gives up
    /// [`TOMBSTONE_MARGIN`] before `deadline`: a caller that then writes a tombstone does
    /// so while its own caller still waits for the answer.
    async fn store_by<T>(
        &self,
        deadline: tokio::time::Instant,
        store: impl std::future::Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let publish_wait = left.saturating_sub(TOMBSTONE_MARGIN).max(MIN_PUBLISH_WAIT);
        tokio::time::timeout(publish_wait, store).await.map_err(|_| QueueError::NotStoredInTime).and_then(|r| r)
    }

    /// Hands a tombstone to the client behind a store that failed or timed out (same
    /// connection, so the server sees it second): readers treat what it names as never
    /// stored. Bounded by [`TOMBSTONE_MARGIN`]; only the hand-over is awaited.
    async fn write_tombstone(&self, subject: String, payload: &'static [u8], correlation_id: &str) {
        let tombstone = self.js.publish(subject, Bytes::from_static(payload));
        if tokio::time::timeout(TOMBSTONE_MARGIN, tombstone).await.is_err() {
            tracing::warn!(correlation_id, "could not hand the not-stored tombstone to the NATS client in time");
        }
    }

    async fn is_done(&self, idempotency_key: &str) -> bool {
        self.done.get_last_raw_message_by_subject(&self.names.done_subject(idempotency_key)).await.is_ok()
    }

    async fn effect_record(&self, job: &Job) -> Result<Option<EffectStarted>, QueueError> {
        effect::lookup(&self.done, &self.names.started_subject(job.redrives, &job.idempotency_key)).await
    }

    fn message<'a>(&self, delivery: &'a Delivery) -> &'a jetstream::Message {
        match &delivery.receipt {
            Receipt::Nats(m) => m,
            Receipt::Sqlite { .. } => unreachable!("a NATS queue only hands out NATS deliveries"),
        }
    }
}

fn decode(payload: &[u8]) -> Result<Job, QueueError> {
    serde_json::from_slice(payload).map_err(QueueError::corrupt)
}

fn ack_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueueError {
    unavailable("acknowledging to JetStream", e)
}

#[async_trait]
impl Queue for NatsQueue {
    async fn enqueue(&self, job: &Job, deadline: tokio::time::Instant) -> Result<Enqueued, QueueError> {
        if tokio::time::Instant::now() >= deadline {
            return Err(QueueError::NotStoredInTime);
        }
        // While disconnected the client would buffer the publish and send it after a
        // reconnect, after the router already answered "not queued". Refuse instead.
        if self.client.connection_state() != State::Connected {
            return Err(QueueError::Unavailable("not connected to NATS".into()));
        }
        match self.store_by(deadline, self.publish_job(job)).await {
            Ok(enqueued) => Ok(enqueued),
            // The server refused it: nothing was stored.
            Err(e @ QueueError::Full { .. }) => Err(e),
            Err(e) => {
                // The caller will answer "not queued", but the publish may have left and be
                // stored late (a stalled broker, an ack lost on the way back). A done-record
                // right behind it makes workers skip such a job.
                let subject = self.names.done_subject(&job.idempotency_key);
                self.write_tombstone(subject, b"not-queued", job.correlation_id.as_str()).await;
                Err(e)
            }
        }
    }

    async fn dequeue(&self, quadrant: Quadrant, max: usize, _lease: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let consumer = &self.consumers[quadrant.index()];
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .map_err(|e| unavailable("fetching jobs", e))?;
        let mut out = Vec::new();
        // A no-wait fetch ends at once when nothing is pending; while deliveries are pending
        // (a retry's delay, an unacknowledged lease) the server may hold it until a message
        // is due or `expires`. The client-side deadline is a backstop a little after that,
        // so the server, not us, ends the request and no message goes to a dropped inbox.
        let deadline = tokio::time::Instant::now() + FETCH_EXPIRES + Duration::from_millis(250);
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, batch.next()).await {
            let message = message.map_err(|e| unavailable("fetching jobs", e))?;
            let dequeued_ns = now_unix_ns();
            let (attempt, enqueued_ns) = match message.info() {
                Ok(info) => (info.delivered.max(1) as u32, info.published.unix_timestamp_nanos().max(0) as u64),
                Err(_) => (1, dequeued_ns),
            };
            let job = match decode(&message.payload) {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(error.message = %e, "dead-lettering a corrupt job");
                    publish_dead_letter(
                        &self.js,
                        &self.names,
                        quadrant,
                        message.payload.clone(),
                        &e.to_string(),
                        attempt,
                        None,
                    )
                    .await?;
                    message.ack_with(AckKind::Term).await.map_err(ack_error)?;
                    continue;
                }
            };
            out.push(Delivery {
                job,
                attempt,
                enqueued_ns,
                dequeued_ns,
                effect_started: None,
                receipt: Receipt::Nats(Box::new(message)),
            });
        }
        // The done-record and the effect-started record are read before any handler runs;
        // all lookups of one batch go out together, so a batch costs one round trip, not
        // one per job or per record.
        let lookups = futures::future::join_all(
            out.iter().map(|d| futures::future::join(self.is_done(&d.job.idempotency_key), self.effect_record(&d.job))),
        )
        .await;
        let mut fresh = Vec::with_capacity(out.len());
        for (mut delivery, (done, effect_started)) in out.into_iter().zip(lookups) {
            if done {
                self.message(&delivery).ack().await.map_err(ack_error)?;
                continue;
            }
            match effect_started {
                Ok(record) => {
                    delivery.effect_started = record;
                    fresh.push(delivery);
                }
                Err(e) => {
                    // Not knowing whether an effect started, the job must not run now (JetStream
                    // counts the nak as a delivery).
                    tracing::warn!(error.message = %e, "offering a job again later: its effect-started record could not be read");
                    self.message(&delivery)
                        .ack_with(AckKind::Nak(Some(LOOKUP_FAILED_RETRY)))
                        .await
                        .map_err(ack_error)?;
                }
            }
        }
        Ok(fresh)
    }

    async fn wait_for_jobs(&self, quadrant: Quadrant, timeout: Duration) {
        // An empty message per stored job on the quadrant's wake subject: an instant wake-up
        // across processes. Retries whose delay ended are found by the caller's poll. The
        // buffer is drained fully on each wake-up, and it is small, so a worker whose pool
        // is busy holds a few empty messages, never copies of the backlog.
        let mut slot = self.wakeups[quadrant.index()].lock().await;
        if slot.is_none() {
            let client =
                self.wake_client.get_or_try_init(|| connect_client(&self.settings, WAKE_BUFFER)).await.cloned();
            let subscribed = match client {
                Ok(client) => client.subscribe(self.names.wake_subject(quadrant)).await.map_err(|_| ()),
                Err(_) => Err(()),
            };
            match subscribed {
                Ok(sub) => *slot = Some(sub),
                Err(_) => {
                    drop(slot);
                    tokio::time::sleep(timeout).await;
                    return;
                }
            }
        }
        let sub = slot.as_mut().expect("subscribed above");
        match tokio::time::timeout(timeout, sub.next()).await {
            Ok(Some(_)) => while let Some(Some(_)) = futures::FutureExt::now_or_never(sub.next()) {},
            // The subscription ended (client closed): subscribe again next time, not spin.
            Ok(None) => *slot = None,
            Err(_) => {}
        }
    }

    async fn extend_lease(&self, delivery: &Delivery, _lease: Duration) -> Result<(), QueueError> {
        self.message(delivery).ack_with(AckKind::Progress).await.map_err(ack_error)
    }

    async fn complete(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let job = &delivery.job;
        // The done-record goes out first and the ack right behind it on the same connection
        // (so the server sees them in that order); both are then awaited together.
        let stored = self
            .js
            .publish(self.names.done_subject(&job.idempotency_key), Bytes::from(job.job_id.clone()))
            .await
            .map_err(|e| unavailable("writing the done-record", e))?;
        let (stored, acked) = tokio::join!(stored, self.message(delivery).double_ack());
        stored.map_err(|e| unavailable("storing the done-record", e))?;
        acked.map_err(ack_error)
    }

    async fn fail(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<FailOutcome, QueueError> {
        let message = self.message(delivery);
        match retry_in {
            Some(delay) => {
                message.ack_with(AckKind::Nak(Some(delay))).await.map_err(ack_error)?;
                Ok(FailOutcome::Retrying)
            }
            None => {
                // This attempt may have marked after its dequeue: read the record again. It
                // is information for the operator only (a redrive clears it), so a failed
                // lookup does not keep the job from its dead letter.
                let effect_started = self.effect_record(&delivery.job).await.unwrap_or_else(|e| {
                    tracing::warn!(error.message = %e, "dead-lettering without its effect-started record");
                    delivery.effect_started
                });
                publish_dead_letter(
                    &self.js,
                    &self.names,
                    delivery.job.quadrant,
                    message.payload.clone(),
                    error,
                    delivery.attempt,
                    effect_started,
                )
                .await?;
                message.double_ack_with(AckKind::Term).await.map_err(ack_error)?;
                Ok(FailOutcome::DeadLettered)
            }
        }
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        // JetStream counts this as a delivery: a released job uses one attempt.
        self.message(delivery).ack_with(AckKind::Nak(None)).await.map_err(ack_error)
    }

    async fn mark_effect_started(&self, delivery: &Delivery) -> Result<(), QueueError> {
        // While disconnected the client would buffer the publish and send it later; the
        // caller must not start its effect on a record that is not stored yet.
        if self.client.connection_state() != State::Connected {
            return Err(QueueError::Unavailable("not connected to NATS".into()));
        }
        let job = &delivery.job;
        let record = EffectStarted { attempt: delivery.attempt, at_ms: (now_unix_ns() / 1_000_000) as i64 };
        // The JetStream context's timeout bounds the wait for the acknowledgement. If it
        // passes, the record may still be stored: then a redelivery is told "outcome unknown"
        // for an effect that never started, the safe side of the mistake.
        self.js
            .publish(self.names.started_subject(job.redrives, &job.idempotency_key), effect::encode(record).into())
            .await
            .map_err(|e| unavailable("writing the effect-started record", e))?
            .await
            .map_err(|e| unavailable("storing the effect-started record", e))?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut stats = QueueStats::default();
        for (i, consumer) in self.consumers.iter().enumerate() {
            let mut consumer = consumer.clone();
            let info = consumer.info().await.map_err(|e| unavailable("reading consumer info", e))?;
            stats.quadrants[i] = QuadrantStats { ready: info.num_pending, in_flight: info.num_ack_pending as u64 };
        }
        let dlq = self.dlq.get_info().await.map_err(|e| unavailable("reading DLQ info", e))?;
        stats.dead_letters = dlq.state.messages;
        Ok(stats)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        if self.client.connection_state() != State::Connected {
            return Err(QueueError::Unavailable("not connected to NATS".into()));
        }
        tokio::time::timeout(Duration::from_secs(1), self.client.flush())
            .await
            .map_err(|_| QueueError::Unavailable("NATS did not answer a ping within 1s".into()))?
            .map_err(|e| unavailable("pinging NATS", e))
    }

    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let info = self.dlq.get_info().await.map_err(|e| unavailable("reading DLQ info", e))?;
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if out.len() >= limit {
                break;
            }
            let Ok(raw) = self.dlq.get_raw_message(seq).await else { continue };
            let header = |name: &str| raw.headers.get(name).map(|v| v.as_str().to_owned());
            out.push(DeadLetter {
                id: seq.to_string(),
                job: decode(&raw.payload)?,
                attempts: header(HEADER_ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
                last_error: header(HEADER_LAST_ERROR).unwrap_or_default(),
                failed_at_ms: header(HEADER_FAILED_AT_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
                effect_started: header(HEADER_EFFECT_STARTED).map(|v| effect::decode(v.as_bytes())),
            });
        }
        Ok(out)
    }

    async fn dlq_redrive(&self, which: Redrive) -> Result<u64, QueueError> {
        let seqs: Vec<u64> = match which {
            Redrive::One(id) => vec![id.parse().map_err(|_| QueueError::NotFound(id.clone()))?],
            Redrive::All => {
                let info = self.dlq.get_info().await.map_err(|e| unavailable("reading DLQ info", e))?;
                if info.state.messages == 0 {
                    Vec::new()
                } else {
                    (info.state.first_sequence..=info.state.last_sequence).collect()
                }
            }
        };
        let single = seqs.len() == 1;
        let mut n = 0;
        for seq in seqs {
            let raw = match self.dlq.get_raw_message(seq).await {
                Ok(raw) => raw,
                Err(_) if !single => continue,
                Err(_) => return Err(QueueError::NotFound(seq.to_string())),
            };
            let mut job = decode(&raw.payload)?;
            job.redrives += 1;
            let payload = serde_json::to_vec(&job).map_err(QueueError::corrupt)?;
            let mut headers = HeaderMap::new();
            // A fresh message id: the original one may still be inside the duplicate window.
            headers.insert("Nats-Msg-Id", format!("{}.redrive.{seq}", job.idempotency_key).as_str());
            headers.insert(HEADER_CORRELATION_ID, job.correlation_id.as_str());
            self.js
                .publish_with_headers(self.names.job_subject(job.quadrant), headers, payload.into())
                .await
                .map_err(|e| unavailable("republishing a dead letter", e))?
                .await
                .map_err(|e| unavailable("republishing a dead letter", e))?;
            self.dlq.delete_message(seq).await.map_err(|e| unavailable("removing a redriven dead letter", e))?;
            n += 1;
        }
        Ok(n)
    }

    async fn dlq_purge(&self) -> Result<u64, QueueError> {
        let purged = self.dlq.purge().await.map_err(|e| unavailable("purging the DLQ", e))?;
        Ok(purged.purged)
    }
}
