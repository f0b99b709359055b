//! Pending approvals on each engine: requests stored outside the work queue, votes counted
//! once per user, a decided request never changing again, and the job of an approved
//! request reaching the queue exactly once however many approvers race, across a restart
//! and (NATS) across a failure between the deciding vote and the publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatops_core::Quadrant;
use chatops_queue::approvals::{ApprovalRequested, ApprovalState, ApprovalStore, PendingApproval, Vote, VoteOutcome};
use chatops_queue::{Delivery, Enqueued, Queue, QueueError};

use crate::conformance::{job, soon};
use crate::fixture::{Engine, Kind, Tuning};

const LEASE: Duration = Duration::from_secs(30);
const MINUTE_MS: i64 = 60_000;

pub(crate) fn now_ms() -> i64 {
    (chatops_core::time::now_unix_ns() / 1_000_000) as i64
}

/// A fresh id per request, hex like the router's.
fn fresh_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}{:016x}", chatops_core::time::now_unix_ns(), N.fetch_add(1, Ordering::Relaxed))
}

/// A request for the Slack request `key`, needing `required` approvals, expiring after
/// `expires_in_ms`.
fn request(key: &str, required: u32, expires_in_ms: i64) -> PendingApproval {
    let now = now_ms();
    let mut job = job(key, Quadrant::LongWrite);
    job.enqueue_started_ns = 1_700_000_000_000_000_000;
    PendingApproval { id: fresh_id(), job, required, created_ms: now, expires_ms: now + expires_in_ms }
}

fn vote(user: &str, approve: bool) -> Vote {
    Vote {
        user_id: user.into(),
        approve,
        at_ms: now_ms(),
        response_url: Some(format!("https://hooks.slack.com/actions/T1/{user}/secret")),
    }
}

async fn stored(approvals: &Arc<dyn ApprovalStore>, r: &PendingApproval) {
    assert_eq!(approvals.request_approval(r, soon()).await.unwrap(), ApprovalRequested::Stored);
}

/// Every job waiting in the quadrant (leased, so a second call sees none of them).
async fn drain(q: &Arc<dyn Queue>, quadrant: Quadrant) -> Vec<Delivery> {
    let mut out = Vec::new();
    loop {
        let batch = q.dequeue(quadrant, 100, LEASE).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

async fn request_then_get(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-get", 1, 15 * MINUTE_MS);
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0);
    stored(&opened.approvals, &r).await;
    let record = opened.approvals.get_approval(&r.id).await.unwrap().expect("stored");
    assert_eq!(record.request, r);
    assert_eq!(record.state, ApprovalState::Pending);
    assert!(record.votes.is_empty() && record.decided_ms.is_none());
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 1);
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty(), "a pending request is not in the work queue");
    assert_eq!(opened.approvals.get_approval(&fresh_id()).await.unwrap(), None);
}

async fn a_repeated_request_is_a_duplicate_of_the_first(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let first = request("req-dup", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &first).await;
    // The same Slack request again (a replay), with the id a second router run would draw.
    let again = PendingApproval { id: fresh_id(), ..first.clone() };
    assert_eq!(
        opened.approvals.request_approval(&again, soon()).await.unwrap(),
        ApprovalRequested::Duplicate { id: first.id.clone() }
    );
    assert_eq!(opened.approvals.get_approval(&again.id).await.unwrap(), None, "nothing stored under the new id");
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 1);
}

async fn one_approval_enqueues_the_job_once_with_its_approval(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-one", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let before_ns = chatops_core::time::now_unix_ns();
    let click = vote("U1", true);
    let outcome = opened.approvals.vote(&r.id, &click).await.unwrap();
    let after_ns = chatops_core::time::now_unix_ns();
    let VoteOutcome::Approved { record, enqueued } = outcome else { panic!("expected Approved, got {outcome:?}") };
    assert!(matches!(enqueued, Enqueued::Stored { .. }), "{enqueued:?}");
    assert_eq!(record.state, ApprovalState::Approved);
    assert_eq!(record.decided_ms, Some(click.at_ms));
    assert_eq!(record.approvers(), ["U1"]);

    let jobs = drain(&opened.queue, Quadrant::LongWrite).await;
    assert_eq!(jobs.len(), 1, "exactly one job");
    let job = &jobs[0].job;
    assert_eq!(job.idempotency_key, "req-one");
    let approval = job.approval.as_ref().expect("the job carries its approval");
    assert_eq!(approval.requested_ns, r.job.enqueue_started_ns, "requested = the stored enqueue start");
    assert!((before_ns..=after_ns).contains(&approval.approved_ns), "approved_ns stamped at the vote");
    assert_eq!(job.enqueue_started_ns, approval.approved_ns, "enqueue start reset to the approval");
    assert_eq!(approval.approvers, ["U1"]);
    assert_eq!(approval.message_url, click.response_url, "the deciding click's response_url");

    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0);
    let stored = opened.approvals.get_approval(&r.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ApprovalState::Approved);
    // Another approver, or the same one again, changes nothing.
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U2", true)).await.unwrap(), VoteOutcome::Closed(_)));
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Closed(_)));
    opened.queue.complete(&jobs[0]).await.unwrap();
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty());
}

async fn two_approvals_need_two_users(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-two", 2, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let VoteOutcome::Counted(record) = opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap() else {
        panic!("the first approval is counted")
    };
    assert_eq!(record.state, ApprovalState::Pending);
    assert_eq!(record.approvers(), ["U1"]);
    let again = opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap();
    assert!(matches!(&again, VoteOutcome::AlreadyVoted(r) if r.votes.len() == 1), "{again:?}");
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty(), "one approval of two runs nothing");
    let outcome = opened.approvals.vote(&r.id, &vote("U2", true)).await.unwrap();
    assert!(matches!(outcome, VoteOutcome::Approved { .. }), "{outcome:?}");
    let jobs = drain(&opened.queue, Quadrant::LongWrite).await;
    assert_eq!(jobs.len(), 1);
    let approval = jobs[0].job.approval.as_ref().unwrap();
    assert_eq!(approval.approvers, ["U1", "U2"]);
    assert_eq!(approval.message_url.as_deref(), Some("https://hooks.slack.com/actions/T1/U2/secret"));
}

async fn a_deny_ends_the_request_and_nothing_runs(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-deny", 2, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Counted(_)));
    let denied = opened.approvals.vote(&r.id, &vote("U2", false)).await.unwrap();
    let VoteOutcome::Denied(record) = denied else { panic!("expected Denied, got {denied:?}") };
    assert_eq!(record.state, ApprovalState::Denied);
    assert!(record.decided_ms.is_some());
    let late = opened.approvals.vote(&r.id, &vote("U3", true)).await.unwrap();
    assert!(matches!(late, VoteOutcome::Closed(ref r) if r.state == ApprovalState::Denied), "{late:?}");
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty(), "nothing enqueued");
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0);
}

async fn a_vote_after_the_expiry_expires_the_request(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-late", 1, 60_000);
    stored(&opened.approvals, &r).await;
    let late = Vote { at_ms: r.expires_ms + 1, ..vote("U1", true) };
    let outcome = opened.approvals.vote(&r.id, &late).await.unwrap();
    let VoteOutcome::Expired(record) = outcome else { panic!("expected Expired, got {outcome:?}") };
    assert_eq!(record.state, ApprovalState::Expired);
    assert!(record.votes.is_empty(), "a late vote is not counted");
    // Stored: the next click, in time or not, finds it expired; a sweep does not report it.
    assert_eq!(opened.approvals.get_approval(&r.id).await.unwrap().unwrap().state, ApprovalState::Expired);
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U2", true)).await.unwrap(), VoteOutcome::Expired(_)));
    assert!(opened.approvals.sweep_approvals(r.expires_ms + 10).await.unwrap().expired.is_empty());
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty());
    // A vote exactly at the expiry still counts.
    let edge = request("req-edge", 1, 60_000);
    stored(&opened.approvals, &edge).await;
    let at_expiry = Vote { at_ms: edge.expires_ms, ..vote("U1", true) };
    assert!(matches!(opened.approvals.vote(&edge.id, &at_expiry).await.unwrap(), VoteOutcome::Approved { .. }));
}

async fn a_sweep_expires_each_request_once(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let due = request("req-due", 1, -1);
    let counted = request("req-due-counted", 2, -1);
    let open = request("req-open", 1, 15 * MINUTE_MS);
    for r in [&due, &counted, &open] {
        stored(&opened.approvals, r).await;
    }
    // A vote in time, before the request's expiry, recorded before the sweep.
    let in_time = Vote { at_ms: counted.expires_ms - 10, ..vote("U1", true) };
    assert!(matches!(opened.approvals.vote(&counted.id, &in_time).await.unwrap(), VoteOutcome::Counted(_)));
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 3);

    let now = now_ms();
    let swept = opened.approvals.sweep_approvals(now).await.unwrap();
    let mut ids: Vec<&str> = swept.expired.iter().map(|r| r.request.id.as_str()).collect();
    ids.sort();
    let mut want = [due.id.as_str(), counted.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(swept.expired.iter().all(|r| r.state == ApprovalState::Expired && r.decided_ms == Some(now)));
    let reported_counted = swept.expired.iter().find(|r| r.request.id == counted.id).unwrap();
    assert_eq!(reported_counted.approvers(), ["U1"], "the record as it was, with its votes");
    assert_eq!(swept.enqueued, 0);

    assert!(opened.approvals.sweep_approvals(now_ms()).await.unwrap().expired.is_empty(), "reported once");
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 1);
    assert!(matches!(opened.approvals.vote(&due.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Expired(_)));
    assert!(matches!(opened.approvals.vote(&open.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Approved { .. }));
}

async fn concurrent_sweeps_report_each_expiry_once(kind: Kind) {
    let engine = Engine::start(kind);
    // Two processes (routers) sweeping the same store.
    let (a, b) = (engine.open().await, engine.open_second().await);
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = request(&format!("req-swept-{i}"), 1, -1);
        stored(&a.approvals, &r).await;
        ids.push(r.id);
    }
    let now = now_ms();
    let sweeps: Vec<_> = (0..4)
        .map(|i| {
            let store = if i % 2 == 0 { a.approvals.clone() } else { b.approvals.clone() };
            tokio::spawn(async move { store.sweep_approvals(now).await.unwrap() })
        })
        .collect();
    let mut reported = Vec::new();
    for sweep in sweeps {
        reported.extend(sweep.await.unwrap().expired.into_iter().map(|r| r.request.id));
    }
    reported.sort();
    ids.sort();
    assert_eq!(reported, ids, "every expiry reported, none twice");
}

/// Sixteen approvers click at once on a request that needs `required` approvals: one
/// vote decides it, and the queue gets one job.
async fn race(kind: Kind, required: u32) {
    let engine = Engine::start(kind);
    let (a, b) = (engine.open().await, engine.open_second().await);
    let r = request(&format!("req-race-{required}"), required, 15 * MINUTE_MS);
    stored(&a.approvals, &r).await;
    // Both handles have read the request once (connections warm), and every click waits
    // for the others: they reach the store together.
    for handle in [&a, &b] {
        assert!(handle.approvals.get_approval(&r.id).await.unwrap().is_some());
    }
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let clicks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { a.approvals.clone() } else { b.approvals.clone() };
            let (id, start) = (r.id.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.vote(&id, &vote(&format!("U{i}"), true)).await.unwrap()
            })
        })
        .collect();
    let (mut approved, mut counted, mut closed) = (0, 0, 0);
    for click in clicks {
        match click.await.unwrap() {
            VoteOutcome::Approved { enqueued, .. } => {
                assert!(matches!(enqueued, Enqueued::Stored { .. }));
                approved += 1;
            }
            VoteOutcome::Counted(_) => counted += 1,
            VoteOutcome::Closed(_) => closed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((approved, counted, closed), (1, required - 1, 16 - required), "one vote decides");
    let jobs = drain(&a.queue, Quadrant::LongWrite).await;
    assert_eq!(jobs.len(), 1, "exactly one job in the queue");
    assert_eq!(jobs[0].job.approval.as_ref().unwrap().approvers.len(), required as usize);
    let record = a.approvals.get_approval(&r.id).await.unwrap().unwrap();
    assert_eq!(record.approvers().len(), required as usize, "votes after the decision are not recorded");
}

async fn sixteen_approvers_racing_for_one_approval_enqueue_one_job(kind: Kind) {
    race(kind, 1).await;
}

async fn sixteen_approvers_racing_for_two_approvals_enqueue_one_job(kind: Kind) {
    race(kind, 2).await;
}

async fn a_double_click_counts_once(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-double", 2, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let clicks: Vec<_> = (0..8)
        .map(|_| {
            let (store, id, start) = (opened.approvals.clone(), r.id.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.vote(&id, &vote("U1", true)).await.unwrap()
            })
        })
        .collect();
    let mut counted = 0;
    for click in clicks {
        match click.await.unwrap() {
            VoteOutcome::Counted(_) => counted += 1,
            VoteOutcome::AlreadyVoted(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(counted, 1);
    assert_eq!(opened.approvals.get_approval(&r.id).await.unwrap().unwrap().votes.len(), 1);
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty());
}

async fn a_request_survives_a_restart_and_can_be_approved(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-restart", 2, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Counted(_)));
    let opened = engine.reopen(opened).await;
    let record = opened.approvals.get_approval(&r.id).await.unwrap().expect("kept across the restart");
    assert_eq!((record.state, record.approvers()), (ApprovalState::Pending, vec!["U1".to_owned()]));
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 1);
    // The replayed request is still a duplicate, and the vote before the restart counts.
    let replay = PendingApproval { id: fresh_id(), ..r.clone() };
    assert_eq!(
        opened.approvals.request_approval(&replay, soon()).await.unwrap(),
        ApprovalRequested::Duplicate { id: r.id.clone() }
    );
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::AlreadyVoted(_)));
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U2", true)).await.unwrap(), VoteOutcome::Approved { .. }));
    let jobs = drain(&opened.queue, Quadrant::LongWrite).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job.approval.as_ref().unwrap().approvers, ["U1", "U2"]);
}

async fn expiry_is_enforced_after_a_restart(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-restart-expiry", 1, 300);
    stored(&opened.approvals, &r).await;
    let opened = engine.reopen(opened).await;
    // The startup sweep of the next run, after the request's time ran out while it was down.
    let swept = opened.approvals.sweep_approvals(r.expires_ms + 1).await.unwrap();
    assert_eq!(swept.expired.len(), 1);
    assert_eq!(swept.expired[0].request.id, r.id);
    let click = opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap();
    assert!(matches!(click, VoteOutcome::Expired(_)), "{click:?}");
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty());
}

async fn unknown_and_hostile_ids_are_not_found(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-hostile", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let long = "a".repeat(10_000);
    let hostile = [
        "",
        "deadbeef",
        "*",
        ">",
        "a.b",
        "i.x",
        "r.>",
        "../../etc/passwd",
        "' OR 1=1 --",
        "a b",
        "ü",
        "\0",
        long.as_str(),
        &r.id[..r.id.len() - 1],
    ];
    for id in hostile {
        let outcome = opened.approvals.vote(id, &vote("U1", true)).await.unwrap();
        assert!(matches!(outcome, VoteOutcome::NotFound), "{id:.20}: {outcome:?}");
        assert_eq!(opened.approvals.get_approval(id).await.unwrap(), None, "{id:.20}");
    }
    let bad = PendingApproval { id: "x.>".into(), ..request("req-bad-id", 1, MINUTE_MS) };
    let refused = opened.approvals.request_approval(&bad, soon()).await.unwrap_err();
    assert!(refused.to_string().contains("approval id"), "{refused}");
    // The real one is untouched by all that.
    assert_eq!(opened.approvals.get_approval(&r.id).await.unwrap().unwrap().state, ApprovalState::Pending);
    assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty());
}

async fn a_request_past_its_deadline_is_not_stored(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-deadline", 1, 15 * MINUTE_MS);
    let expired = tokio::time::Instant::now() - Duration::from_millis(1);
    let refused = opened.approvals.request_approval(&r, expired).await;
    assert!(matches!(refused, Err(QueueError::NotStoredInTime)), "{refused:?}");
    assert_eq!(opened.approvals.get_approval(&r.id).await.unwrap(), None);
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0);
    // Not a duplicate either: the same request, retried in time, is stored.
    stored(&opened.approvals, &PendingApproval { id: fresh_id(), ..r }).await;
}

/// Many requests under deadlines too short to meet them all: a request answered
/// `NotStoredInTime` is never reported by a sweep (its caller said "not queued"; SQLite
/// undoes it, NATS tombstones it), and every stored one is reported exactly once.
async fn requests_that_miss_their_deadline_are_never_reported(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = opened.approvals.clone();
            tokio::spawn(async move {
                let r = request(&format!("req-rush-{i}"), 1, 300);
                let deadline = tokio::time::Instant::now() + Duration::from_micros(50 * (i % 40));
                let answer = store.request_approval(&r, deadline).await;
                (r.id, answer)
            })
        })
        .collect();
    let (mut stored_ids, mut refused_ids) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(ApprovalRequested::Stored)) => stored_ids.push(id),
            (id, Err(QueueError::NotStoredInTime)) => refused_ids.push(id),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    if kind == Kind::Sqlite {
        // The writer undoes a commit nobody heard of before it takes its next batch: a
        // vote (which goes through the writer) can never find such a request.
        for id in &refused_ids {
            let outcome = opened.approvals.vote(id, &vote("U1", true)).await.unwrap();
            assert!(matches!(outcome, VoteOutcome::NotFound), "not stored means not stored: {outcome:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let swept = opened.approvals.sweep_approvals(now_ms()).await.unwrap();
    let mut reported: Vec<String> = swept.expired.into_iter().map(|r| r.request.id).collect();
    reported.sort();
    stored_ids.sort();
    assert_eq!(reported, stored_ids, "{} refused, {} stored", refused_ids.len(), stored_ids.len());
}

async fn approvals_and_votes_never_show_response_urls_in_debug(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let r = request("req-debug", 2, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let click = vote("U1", true);
    let outcome = opened.approvals.vote(&r.id, &click).await.unwrap();
    for shown in [format!("{click:?}"), format!("{outcome:?}")] {
        assert!(!shown.contains("secret"), "{shown}");
    }
}

crate::on_each_engine!(
    request_then_get,
    a_repeated_request_is_a_duplicate_of_the_first,
    one_approval_enqueues_the_job_once_with_its_approval,
    two_approvals_need_two_users,
    a_deny_ends_the_request_and_nothing_runs,
    a_vote_after_the_expiry_expires_the_request,
    a_sweep_expires_each_request_once,
    concurrent_sweeps_report_each_expiry_once,
    sixteen_approvers_racing_for_one_approval_enqueue_one_job,
    sixteen_approvers_racing_for_two_approvals_enqueue_one_job,
    a_double_click_counts_once,
    a_request_survives_a_restart_and_can_be_approved,
    expiry_is_enforced_after_a_restart,
    unknown_and_hostile_ids_are_not_found,
    a_request_past_its_deadline_is_not_stored,
    requests_that_miss_their_deadline_are_never_reported,
    approvals_and_votes_never_show_response_urls_in_debug,
);

/// SQLite decides and enqueues in one transaction: a full queue refuses the deciding vote
/// and nothing changes, so the approver can click again once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_queue_refuses_the_deciding_vote_and_changes_nothing() {
    let engine = Engine::start_with(Kind::Sqlite, Tuning { max_depth: Some(1), ..Default::default() });
    let opened = engine.open().await;
    opened.queue.enqueue(&job("filler", Quadrant::LongWrite), soon()).await.unwrap();
    let r = request("req-full", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let refused = opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap_err();
    assert!(matches!(refused, QueueError::Full { .. }), "{refused}");
    let record = opened.approvals.get_approval(&r.id).await.unwrap().unwrap();
    assert_eq!((record.state, record.votes.len()), (ApprovalState::Pending, 0));
    let filler = drain(&opened.queue, Quadrant::LongWrite).await;
    opened.queue.complete(&filler[0]).await.unwrap();
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Approved { .. }));
    assert_eq!(drain(&opened.queue, Quadrant::LongWrite).await.len(), 1);
}

/// A request already in the queue's done table (it ran, e.g. approved before a restore of
/// an older file) is approved without a second run: the queue's dedupe answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_job_that_already_ran_is_a_duplicate() {
    for kind in [Kind::Sqlite, Kind::Nats] {
        let engine = Engine::start(kind);
        let opened = engine.open().await;
        opened.queue.enqueue(&job("req-ran", Quadrant::LongWrite), soon()).await.unwrap();
        let ran = drain(&opened.queue, Quadrant::LongWrite).await;
        opened.queue.complete(&ran[0]).await.unwrap();
        let r = request("req-ran", 1, 15 * MINUTE_MS);
        stored(&opened.approvals, &r).await;
        let outcome = opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap();
        assert!(
            matches!(outcome, VoteOutcome::Approved { enqueued: Enqueued::Duplicate, .. }),
            "{kind:?}: {outcome:?}"
        );
        assert!(drain(&opened.queue, Quadrant::LongWrite).await.is_empty(), "{kind:?}");
    }
}

/// A record whose JSON was damaged on disk answers with an error and wedges nothing: the
/// sweep expires it without reporting it, and other requests keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_corrupt_approval_wedges_nothing() {
    let engine = Engine::start(Kind::Sqlite);
    let opened = engine.open().await;
    let broken = request("req-broken", 1, -1);
    let fine = request("req-fine", 1, -1);
    stored(&opened.approvals, &broken).await;
    stored(&opened.approvals, &fine).await;
    let conn = rusqlite::Connection::open(engine.sqlite_path().unwrap()).unwrap();
    conn.execute(
        "UPDATE approvals SET request = CAST('{\"id\": \"https://hooks.slack.com/leak' AS BLOB) WHERE id = ?1",
        [&broken.id],
    )
    .unwrap();
    let err = opened.approvals.get_approval(&broken.id).await.unwrap_err();
    assert!(matches!(err, QueueError::Corrupt(_)), "{err}");
    assert!(!err.to_string().contains("hooks.slack.com"), "the error quotes no stored text: {err}");
    assert!(matches!(opened.approvals.vote(&broken.id, &vote("U1", true)).await, Err(QueueError::Corrupt(_))));
    let swept = opened.approvals.sweep_approvals(now_ms()).await.unwrap();
    assert_eq!(swept.expired.iter().map(|r| r.request.id.as_str()).collect::<Vec<_>>(), [fine.id.as_str()]);
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0, "the corrupt one is expired too");
    assert!(opened.approvals.sweep_approvals(now_ms()).await.unwrap().expired.is_empty());
}

/// The subject of a key of the approvals bucket (the layout `nats/approvals.rs` documents),
/// for tests that play a crashed process by writing the bucket by hand.
fn bucket_subject(key: &str) -> String {
    format!("$KV.CHATOPS_APPROVALS.{key}")
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn jetstream(engine: &Engine) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(engine.nats_url().unwrap()).await.unwrap())
}

/// The deciding vote is stored but its job cannot be published (here: the quadrant is
/// full; a crash between the two steps leaves the same state). The vote reports the error,
/// the request stays approved, and the sweep enqueues the job once there is room, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_an_approved_job_that_missed_the_queue_is_enqueued_by_the_sweep() {
    let engine = Engine::start_with(Kind::Nats, Tuning { max_depth: Some(1), ..Default::default() });
    let opened = engine.open().await;
    opened.queue.enqueue(&job("filler", Quadrant::LongWrite), soon()).await.unwrap();
    let r = request("req-missed", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    let click = vote("U1", true);
    let failed = opened.approvals.vote(&r.id, &click).await.unwrap_err();
    assert!(matches!(failed, QueueError::Full { .. }), "{failed}");
    assert_eq!(opened.approvals.get_approval(&r.id).await.unwrap().unwrap().state, ApprovalState::Approved);
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Closed(_)));
    // Still no room: the sweep tries, fails, and keeps the request for the next sweep.
    assert_eq!(opened.approvals.sweep_approvals(now_ms()).await.unwrap().enqueued, 0);

    let filler = drain(&opened.queue, Quadrant::LongWrite).await;
    assert_eq!(filler.len(), 1);
    assert_eq!(filler[0].job.idempotency_key, "filler");
    opened.queue.complete(&filler[0]).await.unwrap();
    // Another router process runs the sweep.
    let other = engine.open_second().await;
    assert_eq!(other.approvals.sweep_approvals(now_ms()).await.unwrap().enqueued, 1);
    assert_eq!(opened.approvals.sweep_approvals(now_ms()).await.unwrap().enqueued, 0, "repaired once");
    let jobs = drain(&opened.queue, Quadrant::LongWrite).await;
    assert_eq!(jobs.len(), 1);
    let approval = jobs[0].job.approval.as_ref().expect("the job the voter would have published");
    assert_eq!(approval.approvers, ["U1"]);
    assert_eq!(approval.message_url, click.response_url);
    assert_eq!(jobs[0].job.enqueue_started_ns, approval.approved_ns);
}

/// A crash after the job's publish and before the record was marked enqueued: the sweep
/// publishes again, JetStream's duplicate window drops it, the queue holds one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_repeated_publish_of_an_approved_job_is_harmless() {
    let engine = Engine::start(Kind::Nats);
    let opened = engine.open().await;
    let r = request("req-unmarked", 1, 15 * MINUTE_MS);
    stored(&opened.approvals, &r).await;
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Approved { .. }));
    // Undo the marker, as a process that died right after the publish left it.
    let js = jetstream(&engine).await;
    let bucket = js.get_stream("KV_CHATOPS_APPROVALS").await.unwrap();
    let subject = bucket_subject(&format!("r.{}", hex("req-unmarked")));
    let current = bucket.get_last_raw_message_by_subject(&subject).await.unwrap();
    let mut stored_json: serde_json::Value = serde_json::from_slice(&current.payload).unwrap();
    assert_eq!(stored_json["enqueued"], true);
    stored_json["enqueued"] = false.into();
    let mut headers = current.headers.clone();
    headers.insert("Chatops-Approval-Enqueued", "false");
    headers.insert("Nats-Expected-Last-Subject-Sequence", current.sequence.to_string().as_str());
    js.publish_with_headers(subject, headers, serde_json::to_vec(&stored_json).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let swept = opened.approvals.sweep_approvals(now_ms()).await.unwrap();
    assert_eq!(swept.enqueued, 0, "the publish was a duplicate: nothing new enqueued");
    assert_eq!(drain(&opened.queue, Quadrant::LongWrite).await.len(), 1, "one job");
    let again = bucket.get_last_raw_message_by_subject(&bucket_subject(&format!("r.{}", hex("req-unmarked")))).await;
    let again: serde_json::Value = serde_json::from_slice(&again.unwrap().payload).unwrap();
    assert_eq!(again["enqueued"], true, "marked by the sweep");
}

/// A request stored after its caller's deadline (the caller answered "not queued") is
/// followed by a tombstone: its expiry is not reported, and the same Slack request sent
/// again replaces it instead of being told it is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_request_stored_too_late_is_neither_reported_nor_a_duplicate() {
    let engine = Engine::start(Kind::Nats);
    let opened = engine.open().await;
    let late = request("req-too-late", 1, -1);
    stored(&opened.approvals, &late).await;
    // What `request_approval` writes behind a store that missed its deadline.
    let js = jetstream(&engine).await;
    js.publish(bucket_subject(&format!("t.{}", late.id)), "not-stored".into()).await.unwrap().await.unwrap();

    let retry = PendingApproval { id: fresh_id(), ..request("req-too-late", 1, 15 * MINUTE_MS) };
    stored(&opened.approvals, &retry).await;
    assert_eq!(opened.approvals.get_approval(&late.id).await.unwrap(), None, "replaced");
    assert_eq!(opened.approvals.get_approval(&retry.id).await.unwrap().unwrap().state, ApprovalState::Pending);

    let unreported = request("req-too-late-2", 1, -1);
    stored(&opened.approvals, &unreported).await;
    js.publish(bucket_subject(&format!("t.{}", unreported.id)), "not-stored".into()).await.unwrap().await.unwrap();
    let swept = opened.approvals.sweep_approvals(now_ms()).await.unwrap();
    assert!(swept.expired.is_empty(), "nobody was told about it: {:?}", swept.expired);
    assert_eq!(opened.approvals.get_approval(&unreported.id).await.unwrap().unwrap().state, ApprovalState::Expired);
}

/// An admin command against a deployment set up before approvals existed still manages
/// jobs; approvals say what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_an_older_deployment_without_the_bucket_is_a_clear_error() {
    let engine = Engine::start(Kind::Nats);
    drop(engine.open().await);
    let js = jetstream(&engine).await;
    js.delete_stream("KV_CHATOPS_APPROVALS").await.unwrap();
    js.delete_stream("CHATOPS_AUDIT").await.unwrap();
    let settings = chatops_queue::engine::EngineSettings::from_url(
        &engine.nats_url().unwrap(),
        chatops_queue::nats::NatsAuth::default(),
    )
    .unwrap();
    let admin = chatops_queue::engine::open(&settings, chatops_queue::engine::OpenMode::ADMIN).await.unwrap();
    assert!(admin.queue.dlq_list(10).await.unwrap().is_empty());
    let err = admin.approvals.pending_approvals().await.unwrap_err();
    assert!(err.to_string().contains("nats setup"), "{err}");
    let err = admin.audit.audit_list(&Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("nats setup"), "{err}");
    // `chatops nats setup` creates them, and describes them.
    let lines = chatops_queue::engine::setup_nats(&settings).await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("KV_CHATOPS_APPROVALS") && text.contains("CHATOPS_AUDIT"), "{text}");
    assert!(text.contains("max age"), "{text}");
    assert_eq!(admin.approvals.pending_approvals().await.unwrap(), 0);
}

/// The broker is killed (SIGKILL) with a request pending and a vote counted, and started
/// again on its store: the request is still there, approvable, and a sweep still expires
/// the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_pending_approvals_survive_a_broker_kill() {
    let mut engine = Engine::start(Kind::Nats);
    let opened = engine.open().await;
    let r = request("req-broker-kill", 2, 15 * MINUTE_MS);
    let short = request("req-broker-kill-short", 1, 200);
    stored(&opened.approvals, &r).await;
    stored(&opened.approvals, &short).await;
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U1", true)).await.unwrap(), VoteOutcome::Counted(_)));
    drop(opened);
    engine.broker().restart();
    let opened = engine.open().await;
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 2);
    let swept = opened.approvals.sweep_approvals(short.expires_ms + 1).await.unwrap();
    assert_eq!(swept.expired.iter().map(|r| r.request.id.as_str()).collect::<Vec<_>>(), [short.id.as_str()]);
    assert!(matches!(opened.approvals.vote(&r.id, &vote("U2", true)).await.unwrap(), VoteOutcome::Approved { .. }));
    assert_eq!(drain(&opened.queue, Quadrant::LongWrite).await.len(), 1);
}

/// A stalled broker: the request answers `NotStoredInTime` by about its deadline; once the
/// broker resumes, whatever it receives late changes nothing the caller was told (the
/// same Slack request is stored afresh, and no expiry of the first is reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_request_to_a_stalled_broker_misses_its_deadline_cleanly() {
    let mut engine = Engine::start(Kind::Nats);
    let opened = engine.open().await;
    assert_eq!(opened.approvals.pending_approvals().await.unwrap(), 0, "the bucket is open");
    let r = request("req-stalled", 1, 500);
    engine.broker().pause();
    let started = std::time::Instant::now();
    let answer = opened.approvals.request_approval(&r, tokio::time::Instant::now() + Duration::from_millis(300)).await;
    let took = started.elapsed();
    engine.broker().resume();
    assert!(matches!(answer, Err(QueueError::NotStoredInTime)), "{answer:?}");
    assert!(took < Duration::from_secs(5), "answered by about the deadline, took {took:?}");
    let retry = PendingApproval { id: fresh_id(), ..request("req-stalled", 1, 500) };
    stored(&opened.approvals, &retry).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let swept = opened.approvals.sweep_approvals(now_ms()).await.unwrap();
    assert_eq!(swept.expired.iter().map(|r| r.request.id.as_str()).collect::<Vec<_>>(), [retry.id.as_str()]);
}
