//! The approval flow as users see it: the request message with Approve / Deny buttons, the
//! checks on a click, the message updates, and the sweeper that expires old requests.
//!
//! The router stores a request as pending (durably, within the ack budget, like an
//! enqueue) and acks; the message with the buttons is posted in the channel through the
//! command's `response_url` right after. A click arrives on `/slack/interactions`: this
//! module checks who clicked (an approver, not the requester unless allowed; the requester
//! may withdraw), records the vote in the store (which counts each user once and enqueues
//! the job exactly once when the last approval needed comes in), and answers through the
//! click's `response_url`: the shared message is replaced ("Approved by @a, running…"), a
//! refused click gets an ephemeral note. The worker later puts the result into the same
//! message (see [`chatops_core::Approval::message_url`]).

use std::sync::Arc;
use std::time::Duration;

use chatops_core::Job;
use chatops_core::slack::interaction::{APPROVE_ACTION, BlockAction, DENY_ACTION};
use chatops_core::slack::message::{context_block, escape_mrkdwn, section_block};
use chatops_core::slack::{AllowedHosts, ResponseUrl, SlackMessage};
use chatops_core::time::now_unix_ms;
use chatops_queue::QueueError;
use chatops_queue::approvals::{ApprovalRecord, ApprovalRequested, ApprovalStore, PendingApproval, Vote, VoteOutcome};
use tokio_util::sync::CancellationToken;

use super::access::AccessPolicy;
use super::audit::AuditTrail;
use crate::metrics::{ApprovalLabels, Metrics};
use crate::registry::Registry;
use crate::respond::ResponseClient;
use crate::spec::{ApprovalRule, CommandSpec};

/// How often the sweeper expires requests and refreshes the pending gauge.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What the approval flow needs.
pub struct ApprovalFlow {
    pub store: Arc<dyn ApprovalStore>,
    pub registry: Arc<Registry>,
    pub policy: Arc<AccessPolicy>,
    pub client: ResponseClient,
    pub allowed_hosts: AllowedHosts,
    pub audit: AuditTrail,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ApprovalFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalFlow").finish_non_exhaustive()
    }
}

/// What the router tells the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Stored; the request message is being posted.
    Stored,
    /// The same Slack request was already stored (a retry or replay).
    Duplicate,
}

/// The label of a command as typed.
fn label(job: &Job) -> String {
    let text = job.command.text.trim();
    let typed = if text.is_empty() { job.command.command.clone() } else { format!("{} {text}", job.command.command) };
    escape_mrkdwn(&typed)
}

fn mention(user: &str) -> String {
    format!("<@{}>", escape_mrkdwn(user))
}

/// Slack mentions of these users, comma-separated (also the simulation's "Approved by").
pub(crate) fn mentions(users: &[String]) -> String {
    users.iter().map(|u| mention(u)).collect::<Vec<_>>().join(", ")
}

/// The approval message once its job ended (posted by the worker through the deciding
/// click's `response_url`): what ran, who approved it, and how it ended.
pub(crate) fn result_message(job: &Job, outcome: &str, error: Option<&str>, duration_ms: f64) -> SlackMessage {
    let approvers = job.approval.as_ref().map_or(&[][..], |a| a.approvers.as_slice());
    let how = outcome.replace('_', " ");
    let (icon, how) = match error {
        _ if outcome == "completed" => (":white_check_mark:", how),
        Some(e) => (":x:", format!("{how}: {}", escape_mrkdwn(e))),
        None => (":x:", how),
    };
    let text = format!(
        "{icon} {}'s `{}`, approved by {}: {how} ({:.1} s).",
        mention(&job.command.user_id),
        label(job),
        mentions(approvers),
        duration_ms / 1000.0
    );
    SlackMessage { replace_original: true, ..SlackMessage::in_channel(text) }
}

/// Who may approve, as Slack renders it.
fn approvers_text(rule: &ApprovalRule) -> String {
    let mut who: Vec<String> = rule.approvers.iter().map(|u| mention(u)).collect();
    who.extend(rule.usergroups.iter().map(|g| format!("<!subteam^{}>", escape_mrkdwn(g))));
    who.join(", ")
}

impl ApprovalFlow {
    /// At the router: stores the request as pending (bounded by `deadline`), then posts the
    /// request message in the background.
    pub async fn request(
        self: &Arc<Self>,
        spec: &CommandSpec,
        rule: &ApprovalRule,
        job: Job,
        deadline: tokio::time::Instant,
    ) -> Result<Requested, QueueError> {
        let now = now_unix_ms();
        let request = PendingApproval {
            id: uuid::Uuid::new_v4().simple().to_string(),
            job,
            required: rule.required,
            created_ms: now,
            expires_ms: now + rule.expires_after.as_millis() as i64,
        };
        match self.store.request_approval(&request, deadline).await? {
            ApprovalRequested::Duplicate { .. } => Ok(Requested::Duplicate),
            ApprovalRequested::Stored => {
                self.count(&spec.name, "requested");
                let (flow, rule) = (self.clone(), rule.clone());
                tokio::spawn(async move { flow.post_request_message(&request, &rule).await });
                Ok(Requested::Stored)
            }
        }
    }

    fn count(&self, command: &str, event: &'static str) {
        self.metrics.approvals.get_or_create(&ApprovalLabels { command: command.to_owned(), event }).inc();
    }

    async fn post_request_message(&self, request: &PendingApproval, rule: &ApprovalRule) {
        let job = &request.job;
        let Ok(url) = self.allowed_hosts.check(&job.command.response_url) else { return };
        let headline = format!(":raised_hand: {} asks to run `{}`", mention(&job.command.user_id), label(job));
        let needs = format!(
            "Needs {} approval{} from {}. Expires <!date^{}^{{time}}|in {}>.",
            rule.required,
            if rule.required == 1 { "" } else { "s" },
            approvers_text(rule),
            request.expires_ms / 1000,
            humantime::format_duration(rule.expires_after),
        );
        let message = SlackMessage::in_channel(format!("{headline}. {needs}")).with_blocks(vec![
            section_block(&headline),
            context_block(&needs),
            buttons(&request.id),
        ]);
        if let Err(e) = self.client.responder(url, &job.correlation_id).post(&message).await {
            tracing::warn!(correlation_id = %job.correlation_id, error.message = %e, "could not post the approval request");
        }
    }

    /// A click on Approve or Deny, with its `response_url` already checked. Returns once
    /// the vote is decided; the answers to Slack are posted in the background.
    pub async fn click(self: &Arc<Self>, action: BlockAction, reply_to: ResponseUrl) -> Result<(), QueueError> {
        let approve = match action.action_id.as_str() {
            APPROVE_ACTION => true,
            DENY_ACTION => false,
            _ => return Ok(()),
        };
        let id = action.value.as_str();
        // Ids are ours: 32 lowercase hex digits. Anything else was never issued.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            self.reply(reply_to, None, Reply::Unknown);
            return Ok(());
        }
        let Some(record) = self.store.get_approval(id).await? else {
            self.reply(reply_to, None, Reply::Unknown);
            return Ok(());
        };
        let job = &record.request.job;
        let spec = self.registry.get(&job.command.command).cloned();
        let Some(rule) = spec.as_ref().and_then(|s| s.approval.clone()) else {
            self.reply(reply_to, Some(record), Reply::NoLongerNeedsApproval);
            return Ok(());
        };
        let is_requester = action.user_id == job.command.user_id && action.team_id == job.command.team_id;
        let is_approver = self.policy.is_approver(&rule, &action.user_id);
        // The requester may withdraw (deny) their own request, but approves it only when
        // the command allows self-approval.
        let allowed = match (approve, is_requester) {
            (true, true) => rule.allow_self && is_approver,
            (true, false) | (false, false) => is_approver,
            (false, true) => true,
        };
        if !allowed {
            let why = if is_requester { Reply::OwnRequest } else { Reply::NotAnApprover };
            self.reply(reply_to, Some(record), why);
            return Ok(());
        }
        let vote = Vote {
            user_id: action.user_id.clone(),
            approve,
            at_ms: now_unix_ms(),
            response_url: Some(reply_to.expose().to_string()),
        };
        let outcome = self.store.vote(id, &vote).await?;
        let command = spec.as_ref().map_or(job.command.command.as_str(), |s| s.name.as_str()).to_owned();
        match outcome {
            VoteOutcome::NotFound => self.reply(reply_to, None, Reply::Unknown),
            VoteOutcome::Counted(record) => self.reply(reply_to, Some(record), Reply::Counted(rule)),
            VoteOutcome::AlreadyVoted(record) => self.reply(reply_to, Some(record), Reply::AlreadyVoted),
            VoteOutcome::Closed(record) => self.reply(reply_to, Some(record), Reply::Closed),
            VoteOutcome::Approved { record, .. } => {
                self.count(&command, "approved");
                self.reply(reply_to, Some(record), Reply::Approved);
            }
            VoteOutcome::Denied(record) => {
                self.count(&command, "denied");
                self.audit.closed_unrun(&record, spec.as_deref(), "denied").await;
                self.tell_requester(
                    &record,
                    format!(
                        ":no_entry: Your `{}` was denied by {}. Nothing ran.",
                        label(&record.request.job),
                        mention(&action.user_id)
                    ),
                );
                self.reply(reply_to, Some(record), Reply::Denied { by: action.user_id.clone() });
            }
            VoteOutcome::Expired(record) => {
                self.reply(reply_to, Some(record), Reply::Expired);
            }
        }
        Ok(())
    }

    fn tell_requester(&self, record: &ApprovalRecord, text: String) {
        let job = &record.request.job;
        let Ok(url) = self.allowed_hosts.check(&job.command.response_url) else { return };
        let responder = self.client.responder(url, &job.correlation_id);
        tokio::spawn(async move {
            if let Err(e) = responder.post(&SlackMessage::ephemeral(text)).await {
                tracing::warn!(error.message = %e, "could not tell the requester");
            }
        });
    }

    /// Answers a click through its `response_url`, in the background.
    fn reply(&self, reply_to: ResponseUrl, record: Option<ApprovalRecord>, reply: Reply) {
        let message = reply.message(record.as_ref());
        let correlation_id = record
            .as_ref()
            .map_or_else(chatops_core::CorrelationId::generate, |r| r.request.job.correlation_id.clone());
        let responder = self.client.responder(reply_to, &correlation_id);
        tokio::spawn(async move {
            if let Err(e) = responder.post(&message).await {
                tracing::warn!(error.message = %e, "could not answer an approval click");
            }
        });
    }

    /// Expires old requests (telling the channel) and refreshes the pending gauge, every
    /// few seconds and once at once, so expiry holds across restarts.
    pub fn spawn_sweeper(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.sweep().await;
                tokio::select! {
                    _ = tokio::time::sleep(SWEEP_EVERY) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    }

    async fn sweep(&self) {
        match self.store.sweep_approvals(now_unix_ms()).await {
            Ok(swept) => {
                if swept.enqueued > 0 {
                    tracing::info!(jobs = swept.enqueued, "enqueued approved jobs an earlier process had not");
                }
                for record in swept.expired {
                    let job = &record.request.job;
                    let spec = self.registry.get(&job.command.command).cloned();
                    self.count(spec.as_ref().map_or(job.command.command.as_str(), |s| s.name.as_str()), "expired");
                    self.audit.closed_unrun(&record, spec.as_deref(), "expired").await;
                    if let Ok(url) = self.allowed_hosts.check(&job.command.response_url) {
                        let text = format!(
                            ":hourglass: The request by {} to run `{}` expired before it was approved. Nothing ran.",
                            mention(&job.command.user_id),
                            label(job)
                        );
                        let responder = self.client.responder(url, &job.correlation_id);
                        if let Err(e) = responder.post(&SlackMessage::in_channel(text)).await {
                            tracing::warn!(error.message = %e, "could not announce an expired approval");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error.message = %e, "approval sweep failed"),
        }
        match self.store.pending_approvals().await {
            Ok(n) => {
                self.metrics.approvals_pending.set(n as i64);
            }
            Err(e) => tracing::debug!(error.message = %e, "could not count pending approvals"),
        }
    }
}

/// Block Kit: the Approve / Deny buttons of the request with this id.
fn buttons(id: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "actions",
        "block_id": "chatops_approval",
        "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": id,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": DENY_ACTION, "style": "danger", "value": id,
             "text": {"type": "plain_text", "text": "Deny"}},
        ],
    })
}

/// The answers to a click.
enum Reply {
    Unknown,
    NoLongerNeedsApproval,
    NotAnApprover,
    OwnRequest,
    AlreadyVoted,
    Closed,
    Counted(ApprovalRule),
    Approved,
    Denied { by: String },
    Expired,
}

impl Reply {
    fn message(&self, record: Option<&ApprovalRecord>) -> SlackMessage {
        let what = record.map_or_else(String::new, |r| {
            format!("{}'s `{}`", mention(&r.request.job.command.user_id), label(&r.request.job))
        });
        let ephemeral = |text: String| SlackMessage::ephemeral(text);
        let replace = |text: String, blocks: Vec<serde_json::Value>| SlackMessage {
            replace_original: true,
            ..SlackMessage::in_channel(text.clone()).with_blocks(if blocks.is_empty() {
                vec![section_block(&text)]
            } else {
                blocks
            })
        };
        match self {
            Reply::Unknown => ephemeral("This approval request is unknown (it may have been cleaned up).".into()),
            Reply::NoLongerNeedsApproval => {
                ephemeral(format!("{what} no longer needs approval (the configuration changed); nothing was recorded."))
            }
            Reply::NotAnApprover => ephemeral(format!("You cannot approve this: you are not an approver of {what}.")),
            Reply::OwnRequest => ephemeral("You cannot approve your own request.".into()),
            Reply::AlreadyVoted => ephemeral("You already voted on this request.".into()),
            Reply::Closed => {
                let state = record.map_or("closed", |r| r.state.as_str());
                ephemeral(format!("This request is already {state}."))
            }
            Reply::Counted(rule) => {
                let approvers = record.map(ApprovalRecord::approvers).unwrap_or_default();
                let text = format!(
                    ":raised_hand: {what}: approved by {} ({} of {}), waiting for more.",
                    mentions(&approvers),
                    approvers.len(),
                    rule.required
                );
                // Keep the buttons: others still have to click.
                let id = record.map_or("", |r| r.request.id.as_str());
                replace(text.clone(), vec![section_block(&text), buttons(id)])
            }
            Reply::Approved => {
                let approvers = record.map(ApprovalRecord::approvers).unwrap_or_default();
                replace(format!(":white_check_mark: {what}: approved by {}, running…", mentions(&approvers)), vec![])
            }
            Reply::Denied { by } => {
                replace(format!(":no_entry: {what}: denied by {}. Nothing ran.", mention(by)), vec![])
            }
            Reply::Expired => {
                replace(format!(":hourglass: {what}: expired before it was approved. Nothing ran."), vec![])
            }
        }
    }
}
