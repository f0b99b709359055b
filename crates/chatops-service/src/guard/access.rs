//! Who may run a command, and where: checked at the router from the command's rule (or
//! the `[access]` rule), before anything is stored.
//!
//! User groups are resolved through Slack's `usergroups.users.list` into a cache that a
//! background task refreshes; the check itself only reads the cache, so Slack's latency or
//! an outage never eats into the 3 seconds the ack has. A group whose members could not be
//! fetched again for three refresh intervals counts as empty: access fails closed rather
//! than trusting a membership list that may have lost someone.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chatops_core::SlashCommand;

use super::settings::{AccessSettings, DefaultPolicy};
use crate::spec::{ApprovalRule, CommandSpec};

/// The rule that refused a command. Its name is the `rule` label of the refusal counter
/// and the audit record's `refusedBy`; the message says which rule, never who is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not in an allowed workspace or organisation.
    Team,
    /// Not in an allowed channel.
    Channel,
    /// Not an allowed user or member of an allowed group.
    User,
    /// The rule names nobody and `[access] default` is `deny`.
    Default,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Team => "team",
            Refusal::Channel => "channel",
            Refusal::User => "user",
            Refusal::Default => "default",
        }
    }

    /// The ephemeral answer to the user.
    pub fn message(self, command: &str) -> String {
        let why = match self {
            Refusal::Team => format!("`{command}` is not allowed in this workspace"),
            Refusal::Channel => format!("`{command}` is not allowed in this channel"),
            Refusal::User => format!("you are not allowed to run `{command}`: it is limited to certain people"),
            Refusal::Default => {
                format!("you are not allowed to run `{command}`: commands are closed unless a rule allows them")
            }
        };
        format!(":no_entry: Not allowed here: {why} (rule: {}). Nothing was run.", self.as_str())
    }
}

/// Fetches a user group's members (`usergroups.users.list`); the error says why.
pub type FetchMembers =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send>> + Send + Sync>;

struct Members {
    users: HashSet<String>,
    fetched: Instant,
}

/// Members of the user groups the configuration names.
pub struct UsergroupCache {
    fetch: Option<FetchMembers>,
    refresh: Duration,
    groups: RwLock<HashMap<String, Members>>,
}

impl std::fmt::Debug for UsergroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsergroupCache").field("refresh", &self.refresh).finish_non_exhaustive()
    }
}

impl UsergroupCache {
    /// `fetch` is `None` without a bot token: then no group may be named.
    pub fn new(fetch: Option<FetchMembers>, refresh: Duration) -> Self {
        UsergroupCache { fetch, refresh, groups: RwLock::new(HashMap::new()) }
    }

    /// Fetches every group once; an error names the group that could not be resolved (an
    /// unknown group is a configuration error, reported at startup).
    pub async fn load(&self, groups: &[String]) -> Result<(), String> {
        if groups.is_empty() {
            return Ok(());
        }
        let Some(fetch) = &self.fetch else {
            return Err(format!(
                "user groups are named ({}) but no Slack bot token is configured to resolve them \
                 (set CHATOPS_SLACK_BOT_TOKEN or slack.bot_token_file)",
                groups.join(", ")
            ));
        };
        for group in groups {
            let users = fetch(group.clone()).await.map_err(|e| format!("user group {group}: {e}"))?;
            self.store(group, users);
        }
        Ok(())
    }

    fn store(&self, group: &str, users: Vec<String>) {
        let members = Members { users: users.into_iter().collect(), fetched: Instant::now() };
        self.groups.write().unwrap_or_else(|p| p.into_inner()).insert(group.to_owned(), members);
    }

    /// Refreshes the loaded groups every `refresh` until `stop` fires. A failed refresh
    /// keeps the previous members (until they are too old, see the module docs).
    pub fn spawn_refresh(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let Some(fetch) = self.fetch.clone() else { return };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.refresh) => {}
                    _ = stop.cancelled() => return,
                }
                let names: Vec<String> =
                    self.groups.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
                for group in names {
                    match fetch(group.clone()).await {
                        Ok(users) => self.store(&group, users),
                        Err(e) => {
                            tracing::warn!(usergroup = %group, error.message = %e, "could not refresh a user group")
                        }
                    }
                }
            }
        })
    }

    /// Whether `user` is a member of `group`, as last fetched and not too old.
    pub fn contains(&self, group: &str, user: &str) -> bool {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups.get(group).is_some_and(|m| m.fetched.elapsed() <= self.refresh * 3 && m.users.contains(user))
    }
}

/// The access check and the approver check, with the user groups they need.
#[derive(Debug)]
pub struct AccessPolicy {
    settings: AccessSettings,
    groups: Arc<UsergroupCache>,
}

impl AccessPolicy {
    pub fn new(settings: AccessSettings, groups: Arc<UsergroupCache>) -> Self {
        AccessPolicy { settings, groups }
    }

    /// Whether `cmd` may run `spec` where it was sent. Rules are checked in a fixed order
    /// (workspace, channel, person) so the refusal names the first that fails.
    pub fn check(&self, spec: &CommandSpec, cmd: &SlashCommand) -> Result<(), Refusal> {
        let rule = self.settings.rule_for(spec);
        let in_team = rule.teams.iter().any(|t| *t == cmd.team_id || cmd.enterprise_id.as_deref() == Some(t));
        if !rule.teams.is_empty() && !in_team {
            return Err(Refusal::Team);
        }
        if !rule.channels.is_empty() && !rule.channels.contains(&cmd.channel_id) {
            return Err(Refusal::Channel);
        }
        if rule.names_people() {
            if !self.is_named(&rule.users, &rule.usergroups, &cmd.user_id) {
                return Err(Refusal::User);
            }
        } else if self.settings.default == DefaultPolicy::Deny {
            return Err(Refusal::Default);
        }
        Ok(())
    }

    /// Whether `user` is one of the rule's approvers (directly or through a group).
    pub fn is_approver(&self, rule: &ApprovalRule, user: &str) -> bool {
        self.is_named(&rule.approvers, &rule.usergroups, user)
    }

    fn is_named(&self, users: &[String], groups: &[String], user: &str) -> bool {
        users.iter().any(|u| u == user) || groups.iter().any(|g| self.groups.contains(g, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AccessRule;

    fn policy(default: DefaultPolicy, global: AccessRule, groups: &[(&str, &[&str])]) -> AccessPolicy {
        let members: HashMap<String, Vec<String>> =
            groups.iter().map(|(g, us)| (g.to_string(), us.iter().map(|u| u.to_string()).collect())).collect();
        let fetch: FetchMembers = Arc::new(move |g: String| {
            let found = members.get(&g).cloned().ok_or_else(|| "no_such_subteam".to_owned());
            Box::pin(async move { found })
        });
        let cache = Arc::new(UsergroupCache::new(Some(fetch), Duration::from_secs(60)));
        let names: Vec<String> = groups.iter().map(|(g, _)| g.to_string()).collect();
        block_on(cache.load(&names)).unwrap();
        AccessPolicy::new(AccessSettings { default, rule: global, usergroup_refresh: Duration::from_secs(60) }, cache)
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn spec(access: Option<AccessRule>) -> CommandSpec {
        let handler = crate::spec::HandlerSpec::new("simulate");
        CommandSpec { access, ..CommandSpec::new("/deploy", chatops_core::Quadrant::LongWrite, handler) }
    }

    fn cmd(team: &str, channel: &str, user: &str) -> SlashCommand {
        SlashCommand {
            command: "/deploy".into(),
            team_id: team.into(),
            channel_id: channel.into(),
            user_id: user.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_table_of_people_places_and_rules() {
        let deployers = AccessRule {
            users: vec!["U1".into()],
            usergroups: vec!["S1".into()],
            channels: vec!["C1".into()],
            teams: vec!["T1".into(), "E1".into()],
        };
        let open = policy(DefaultPolicy::Allow, AccessRule::default(), &[("S1", &["U2"])]);
        let closed = policy(DefaultPolicy::Deny, AccessRule::default(), &[("S1", &["U2"])]);
        type Case<'a> = (&'a AccessPolicy, Option<AccessRule>, SlashCommand, Result<(), Refusal>);
        let cases: Vec<Case<'_>> = vec![
            (&open, None, cmd("T9", "C9", "U9"), Ok(())),
            (&closed, None, cmd("T9", "C9", "U9"), Err(Refusal::Default)),
            (&open, Some(deployers.clone()), cmd("T1", "C1", "U1"), Ok(())),
            (&open, Some(deployers.clone()), cmd("T1", "C1", "U2"), Ok(())),
            (&open, Some(deployers.clone()), cmd("T1", "C1", "U3"), Err(Refusal::User)),
            (&open, Some(deployers.clone()), cmd("T1", "C2", "U1"), Err(Refusal::Channel)),
            (&open, Some(deployers.clone()), cmd("T2", "C1", "U1"), Err(Refusal::Team)),
            (&closed, Some(deployers.clone()), cmd("T1", "C1", "U2"), Ok(())),
            (
                &closed,
                Some(AccessRule { channels: vec!["C1".into()], ..Default::default() }),
                cmd("T1", "C1", "U1"),
                Err(Refusal::Default),
            ),
        ];
        for (i, (policy, access, cmd, expected)) in cases.into_iter().enumerate() {
            assert_eq!(policy.check(&spec(access), &cmd), expected, "case {i}");
        }
        let mut grid = cmd("T2", "C1", "U1");
        grid.enterprise_id = Some("E1".into());
        assert_eq!(open.check(&spec(Some(deployers)), &grid), Ok(()), "an organisation id admits its workspaces");
    }

    #[test]
    fn refusal_messages_name_the_rule_not_the_people() {
        for r in [Refusal::Team, Refusal::Channel, Refusal::User, Refusal::Default] {
            let text = r.message("/deploy");
            assert!(text.contains(&format!("(rule: {})", r.as_str())) && text.contains("Nothing was run"), "{text}");
        }
    }

    #[test]
    fn groups_need_a_token_and_unknown_groups_are_named() {
        let without_token = UsergroupCache::new(None, Duration::from_secs(60));
        let err = block_on(without_token.load(&["S1".into()])).unwrap_err();
        assert!(err.contains("bot token"), "{err}");
        let fetch: FetchMembers = Arc::new(|_| Box::pin(async { Err("no_such_subteam".to_owned()) }));
        let err =
            block_on(UsergroupCache::new(Some(fetch), Duration::from_secs(60)).load(&["S404".into()])).unwrap_err();
        assert!(err.contains("S404") && err.contains("no_such_subteam"), "{err}");
    }
}
