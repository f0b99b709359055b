//! Worker pools: one per quadrant, each with its own concurrency. A pool's dispatcher leases
//! as many jobs as it has free slots and runs each in its own task, so a panicking handler
//! becomes a failed outcome instead of a dead worker. Each job's handler runs under the
//! command's timeout while its lease is extended; the result is completed, retried with
//! backoff, or dead-lettered, and one "Performance metrics" line is written per attempt.
//!
//! Shutdown: when `stop` fires, dispatchers stop leasing; running jobs get `grace` to
//! finish; whatever is still running then is aborted and released back to the queue
//! without using an attempt. Nothing leased is dropped.

use std::sync::Arc;
use std::time::Duration;

use chatops_core::slack::{AllowedHosts, SlackMessage};
use chatops_core::time::{now_unix_ns, now_unix_secs};
use chatops_core::{Job, JobStamps, Metric, Quadrant, Stage, StageTimings};
use chatops_queue::{Delivery, FailOutcome, Queue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::guard::audit::{AuditTrail, RanOutcome};
use crate::handler::{BotView, HandlerContext, HandlerError};
use crate::metrics::{JobLabels, Metrics, QuadrantLabels, UNKNOWN_COMMAND};
use crate::registry::Registry;
use crate::respond::ResponseClient;
use crate::spec::{PoolSettings, RetrySettings};
use crate::status::E2eWindow;

/// What every job of every pool shares.
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub registry: Arc<Registry>,
    /// What handlers see of the bot.
    pub bot: Arc<BotView>,
    /// Completed jobs' E2E times, recorded here and read by `/check-status` through `bot`.
    pub e2e: Arc<E2eWindow>,
    pub client: ResponseClient,
    pub allowed_hosts: AllowedHosts,
    pub retry: RetrySettings,
    pub metrics: Arc<Metrics>,
    /// Where a command's record goes when it ends.
    pub audit: AuditTrail,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext").field("retry", &self.retry).finish_non_exhaustive()
    }
}

/// Poll interval when a quadrant is idle; wake-ups on enqueue make it a fallback only.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs one quadrant's pool until `stop` fires, then drains it as described above.
pub async fn run_pool(
    ctx: Arc<WorkerContext>,
    quadrant: Quadrant,
    pool: PoolSettings,
    stop: CancellationToken,
    grace: Duration,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(pool.concurrency));
    let hard_stop = CancellationToken::new();
    let mut running = JoinSet::new();
    tracing::info!(quadrant = %quadrant, concurrency = pool.concurrency, "worker pool started");
    loop {
        while running.try_join_next().is_some() {}
        if stop.is_cancelled() {
            break;
        }
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let free = slots.available_permits() + 1;
        // Not raced against `stop`: the wait ends by IDLE_POLL anyway, and a claim dropped
        // halfway would leave its jobs leased until the lease expires.
        let deliveries = match ctx.queue.dequeue_waiting(quadrant, free, pool.lease, IDLE_POLL).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(quadrant = %quadrant, error.message = %e, "dequeue failed; backing off");
                drop(first);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {},
                    _ = stop.cancelled() => break,
                }
                continue;
            }
        };
        if deliveries.is_empty() {
            continue;
        }
        let mut first = Some(first);
        for delivery in deliveries {
            // Only this loop takes permits, so the ones counted as free are still there.
            let permit = match first.take() {
                Some(p) => p,
                None => slots.clone().acquire_owned().await.expect("the semaphore is never closed"),
            };
            let (ctx, hard_stop) = (ctx.clone(), hard_stop.clone());
            running.spawn(async move {
                run_delivery(&ctx, delivery, pool.lease, &hard_stop).await;
                drop(permit);
            });
        }
    }
    let in_flight = running.len();
    if in_flight > 0 {
        tracing::info!(quadrant = %quadrant, in_flight, grace_ms = grace.as_millis() as u64, "draining worker pool");
    }
    let drained = tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(quadrant = %quadrant, remaining = running.len(), "grace period over; releasing unfinished jobs");
        hard_stop.cancel();
        while running.join_next().await.is_some() {}
    }
    tracing::info!(quadrant = %quadrant, "worker pool stopped");
}

/// What happened to a job attempt, for the metrics line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Retrying,
    DeadLettered,
    /// The ack to the queue failed; the lease will expire and the job run again.
    Unacknowledged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retrying => "retrying",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Unacknowledged => "unacknowledged",
        }
    }
}

/// Runs one delivery to its end: complete, retry, dead-letter, or (on hard stop) release.
pub async fn run_delivery(ctx: &WorkerContext, delivery: Delivery, lease: Duration, hard_stop: &CancellationToken) {
    let job = Arc::new(delivery.job.clone());
    let span = tracing::info_span!(
        "job",
        otel.kind = "consumer",
        correlation_id = %job.correlation_id,
        command = %job.command.command,
        quadrant = job.quadrant.as_str(),
        attempt = delivery.attempt,
    );
    crate::tracing_context::adopt_job_parent(&span, job.traceparent.as_deref());
    async {
        let mut stamps = JobStamps {
            router_received_ns: job.router_received_ns,
            approval: job.approval.as_ref().map(|a| (a.requested_ns, a.approved_ns)),
            enqueue_started_ns: job.enqueue_started_ns,
            enqueued_ns: delivery.enqueued_ns,
            dequeued_ns: delivery.dequeued_ns,
            ..JobStamps::default()
        };
        let result = tokio::select! {
            r = execute(ctx, &job, &delivery, lease, &mut stamps) => r,
            _ = hard_stop.cancelled() => {
                match ctx.queue.release(&delivery).await {
                    Ok(()) => tracing::info!("job released back to the queue at shutdown"),
                    Err(e) => tracing::error!(error.message = %e, "could not release job at shutdown; its lease will expire"),
                }
                return;
            }
        };
        let (quadrant, responses) = (job.quadrant, stamps.responses.len());
        let outcome = conclude(ctx, &job, &delivery, &result).await;
        stamps.done_ns = now_unix_ns();
        let t = StageTimings::from_stamps(&stamps);
        if outcome == Outcome::Completed {
            ctx.e2e.record(now_unix_secs(), t.last_response_e2e_ms.unwrap_or(t.total_e2e_ms));
        }
        record_metrics(ctx, &job, delivery.attempt, outcome, &t, &stamps);
        let (error_type, error_message) = match &result {
            Ok(()) => (None, None),
            Err(e) => (Some(e.error_type()), Some(e.to_string())),
        };
        // The timed fields are written from the log contract's one table.
        macro_rules! write_worker_line {
            ($($metric:ident => $field:literal, $stage:expr, $label:literal;)*) => {
                tracing::info!(
                    correlationId = %job.correlation_id,
                    jobId = %job.job_id,
                    command = %job.command.command,
                    component = quadrant.component(),
                    quadrant = quadrant.as_str(),
                    success = result.is_ok(),
                    errorType = error_type,
                    errorMessage = error_message,
                    attempt = delivery.attempt,
                    responses = responses as u64,
                    outcome = outcome.as_str(),
                    $($field = t.get(Metric::$metric),)*
                    "{}",
                    chatops_core::contract::WORKER_METRICS_MESSAGE
                )
            };
        }
        chatops_core::metric_fields!(write_worker_line);
    }
    .instrument(span)
    .await
}

fn record_metrics(
    ctx: &WorkerContext,
    job: &Job,
    attempt: u32,
    outcome: Outcome,
    t: &StageTimings,
    stamps: &JobStamps,
) {
    let m = &ctx.metrics;
    let command = ctx.registry.get(&job.command.command).map_or(UNKNOWN_COMMAND, |s| s.name.as_str());
    let (q, label) = (Some(job.quadrant), outcome.as_str());
    if let Some(ms) = t.approval_wait_ms {
        m.observe_stage(Stage::ApprovalWait, command, q, label, ms);
    }
    m.observe_stage(Stage::QueueWait, command, q, label, t.queue_wait_ms);
    m.observe_stage(Stage::Handler, command, q, label, t.handler_ms);
    m.observe_stage(Stage::Worker, command, q, label, t.worker_duration_ms);
    m.observe_stage(Stage::E2e, command, q, label, t.total_e2e_ms);
    for &(start, end) in &stamps.responses {
        m.observe_stage(Stage::Response, command, q, label, chatops_core::time::ms_between(start, end));
    }
    m.jobs.get_or_create(&JobLabels { quadrant: job.quadrant.as_str(), outcome: label }).inc();
    if attempt == 1 && job.redrives > 0 {
        m.jobs_redriven.get_or_create(&QuadrantLabels { quadrant: job.quadrant.as_str() }).inc();
    }
}

/// Looks up the command, checks the response_url, and runs the handler under its timeout
/// while keeping the lease alive.
async fn execute(
    ctx: &WorkerContext,
    job: &Arc<Job>,
    delivery: &Delivery,
    lease: Duration,
    stamps: &mut JobStamps,
) -> Result<(), HandlerError> {
    let spec =
        ctx.registry.get(&job.command.command).cloned().ok_or_else(|| {
            HandlerError::Failed(format!("{} is no longer a registered command", job.command.command))
        })?;
    let handler =
        ctx.registry.handler(&spec).ok_or_else(|| HandlerError::Failed(format!("no handler for {}", spec.name)))?;
    // A write command's external effect (a program, an HTTP call) starts at most once by
    // surprise: recorded durably before it starts, and not started again on a redelivery
    // after a crash unless the command opts in.
    if handler.has_external_effect() && job.quadrant.is_write() {
        if let Some(started) = delivery.effect_started.filter(|_| !spec.rerun_interrupted) {
            return Err(HandlerError::Interrupted {
                attempt: started.attempt,
                at: chatops_core::time::format_rfc3339_ms(started.at_ms),
            });
        }
        ctx.queue
            .mark_effect_started(delivery)
            .await
            .map_err(|e| HandlerError::Transient(format!("could not record that the command starts: {e}")))?;
    }
    // Checked again here: the allow-list may have changed since the router accepted it.
    let url = ctx
        .allowed_hosts
        .check(&job.command.response_url)
        .map_err(|e| HandlerError::Failed(format!("response_url refused: {e}")))?;
    let queue_wait_ms = chatops_core::time::ms_between(delivery.enqueued_ns, delivery.dequeued_ns);
    drop(tracing::info_span!("dequeue", correlation_id = %job.correlation_id, queue_wait_ms).entered());
    let responder = ctx.client.responder(url, &job.correlation_id);
    let hctx = HandlerContext::new(job.clone(), spec.clone(), delivery.attempt, ctx.bot.clone(), responder.clone());
    stamps.handler_started_ns = now_unix_ns();
    let handler_span = tracing::info_span!("handler", correlation_id = %job.correlation_id, kind = spec.handler.kind());
    let task = tokio::spawn(async move { handler.handle(&hctx).await }.instrument(handler_span));
    let abort = task.abort_handle();
    let _abort_on_drop = AbortOnDrop(abort.clone());
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline, task);
    let mut extend = tokio::time::interval_at(tokio::time::Instant::now() + lease / 3, lease / 3);
    let result = loop {
        tokio::select! {
            joined = &mut task => break match joined {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(HandlerError::Panicked(panic_message(e.into_panic()))),
                Err(_) => Err(HandlerError::Failed("handler task was cancelled".into())),
            },
            _ = &mut deadline => {
                abort.abort();
                break Err(HandlerError::Timeout(spec.timeout));
            }
            _ = extend.tick() => {
                if let Err(e) = ctx.queue.extend_lease(delivery, lease).await {
                    tracing::warn!(error.message = %e, "could not extend the job's lease");
                }
            }
        }
    };
    stamps.handler_finished_ns = now_unix_ns();
    stamps.responses = responder.stamps();
    result
}

/// Aborts the handler task if `execute` itself is dropped (hard stop at shutdown).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Acknowledges the attempt to the queue and, when the job has failed for good, tells the
/// user (best effort). A job that ends (completed, or failed for good) gets its audit
/// record first, so a command that ran is never without one.
async fn conclude(ctx: &WorkerContext, job: &Job, delivery: &Delivery, result: &Result<(), HandlerError>) -> Outcome {
    let error = match result {
        Ok(()) => {
            let spec = ctx.registry.get(&job.command.command);
            let duration_ms = chatops_core::time::ms_between(job.router_received_ns, now_unix_ns());
            let record = ctx.audit.ran_record(
                job,
                spec.map(|s| &**s),
                RanOutcome::Completed,
                None,
                duration_ms,
                delivery.attempt,
            );
            let completed = match record {
                // One durable step for both where the engine can (a commit fewer per command).
                Some(record) => match ctx.queue.complete_audited(delivery, &record, ctx.audit.log()).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::warn!(error.message = %e, "could not store the audit record with the completion; storing them one by one");
                        ctx.audit.write(record).await;
                        ctx.queue.complete(delivery).await
                    }
                },
                None => ctx.queue.complete(delivery).await,
            };
            post_approval_result(ctx, job, RanOutcome::Completed, None, duration_ms).await;
            return match completed {
                Ok(()) => Outcome::Completed,
                Err(e) => {
                    tracing::error!(error.message = %e, "could not mark job done; it may run again");
                    Outcome::Unacknowledged
                }
            };
        }
        Err(e) => e,
    };
    let retry_in = (error.is_retryable(job.quadrant) && delivery.attempt < job.max_attempts)
        .then(|| ctx.retry.backoff(delivery.attempt));
    if retry_in.is_none() {
        let ran = match error {
            HandlerError::Timeout(_) => RanOutcome::TimedOut,
            HandlerError::Interrupted { .. } => RanOutcome::Interrupted,
            _ => RanOutcome::Failed,
        };
        record_end(ctx, job, delivery, ran, Some(error.to_string())).await;
    }
    let outcome = match ctx.queue.fail(delivery, &error.to_string(), retry_in).await {
        Ok(FailOutcome::Retrying) => Outcome::Retrying,
        Ok(FailOutcome::DeadLettered) => Outcome::DeadLettered,
        Err(e) => {
            tracing::error!(error.message = %e, "could not record the failed attempt; its lease will expire");
            return Outcome::Unacknowledged;
        }
    };
    if outcome == Outcome::DeadLettered && !matches!(error, HandlerError::Respond(_)) {
        notify_failure(ctx, job, error).await;
    }
    outcome
}

/// Writes the job's audit record and, for a job that waited for approvals, puts the result
/// into the approval message (through the deciding click's `response_url`).
async fn record_end(ctx: &WorkerContext, job: &Job, delivery: &Delivery, ran: RanOutcome, error: Option<String>) {
    let spec = ctx.registry.get(&job.command.command);
    let duration_ms = chatops_core::time::ms_between(job.router_received_ns, now_unix_ns());
    if let Some(record) =
        ctx.audit.ran_record(job, spec.map(|s| &**s), ran, error.clone(), duration_ms, delivery.attempt)
    {
        ctx.audit.write(record).await;
    }
    post_approval_result(ctx, job, ran, error.as_deref(), duration_ms).await;
}

/// Puts the result of a job that waited for approvals into the approval message.
async fn post_approval_result(ctx: &WorkerContext, job: &Job, ran: RanOutcome, error: Option<&str>, duration_ms: f64) {
    let Some(approval) = &job.approval else { return };
    let Some(url) = approval.message_url.as_deref().and_then(|u| ctx.allowed_hosts.check(u).ok()) else { return };
    let message = crate::guard::approvals::result_message(job, ran.as_str(), error, duration_ms);
    if let Err(e) = ctx.client.responder(url, &job.correlation_id).post(&message).await {
        tracing::warn!(error.message = %e, "could not put the result into the approval message");
    }
}

async fn notify_failure(ctx: &WorkerContext, job: &Job, error: &HandlerError) {
    let Ok(url) = ctx.allowed_hosts.check(&job.command.response_url) else { return };
    let reason = match error {
        // Internal details (panic messages) stay in the logs.
        HandlerError::Panicked(_) => "an internal error".to_owned(),
        other => other.to_string(),
    };
    let text = format!("{} failed: {reason}. Correlation id: `{}`.", job.command.command, job.correlation_id);
    if let Err(e) = ctx.client.responder(url, &job.correlation_id).post(&SlackMessage::ephemeral(text)).await {
        tracing::warn!(error.message = %e, "could not tell the user about the failure");
    }
}
