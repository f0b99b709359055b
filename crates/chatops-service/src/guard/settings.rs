//! The guardrails' configuration: the `[access]` and `[audit]` sections and each command's
//! `access` and `approval` tables, as the file writes them and as validated settings.
//! Mistakes that would leave a command nobody can run, or an approval nobody can give, are
//! refused here, at startup, with the key that is wrong.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::spec::{AccessRule, ApprovalRule, CommandSpec, HumanDuration};

/// `[access]` as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAccess {
    default: String,
    users: Vec<String>,
    usergroups: Vec<String>,
    channels: Vec<String>,
    teams: Vec<String>,
    usergroup_refresh: HumanDuration,
}

/// `[audit]` as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAudit {
    record: String,
    retention: HumanDuration,
}

/// A command's `access = { ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessRule {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    usergroups: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    teams: Vec<String>,
}

/// A command's `approval = { ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovalRule {
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    usergroups: Vec<String>,
    required: Option<u32>,
    #[serde(default)]
    allow_self: bool,
    expires_after: Option<HumanDuration>,
}

/// What `[access] default` decides for a command whose rule names nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Anyone may run it (the behaviour before access control existed).
    Allow,
    /// Nobody may: only the users and groups a rule names.
    Deny,
}

/// Access control shared by all commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    pub default: DefaultPolicy,
    /// The rule of every command without its own `access`.
    pub rule: AccessRule,
    /// How often user groups' members are fetched again from Slack.
    pub usergroup_refresh: Duration,
}

impl AccessSettings {
    /// The rule that applies to `spec`.
    pub fn rule_for<'a>(&'a self, spec: &'a CommandSpec) -> &'a AccessRule {
        spec.access.as_ref().unwrap_or(&self.rule)
    }

    /// Every user group a rule or an approval names, sorted, once each.
    pub fn usergroups<'a>(&'a self, commands: impl IntoIterator<Item = &'a CommandSpec>) -> Vec<String> {
        let mut groups: Vec<String> = self.rule.usergroups.clone();
        for c in commands {
            groups.extend(c.access.iter().flat_map(|a| a.usergroups.iter().cloned()));
            groups.extend(c.approval.iter().flat_map(|a| a.usergroups.iter().cloned()));
        }
        groups.sort();
        groups.dedup();
        groups
    }
}

/// Which commands get an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// Every command, reads included.
    All,
    /// Commands in write quadrants, and every refusal, denial and expiry.
    Write,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    pub record: AuditScope,
    pub retention: Duration,
}

fn invalid(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.to_string() }
}

fn check_ids(key: &str, ids: &[String], prefixes: &str) -> Result<(), ConfigError> {
    for id in ids {
        let ok = id.len() >= 2
            && id.len() <= 32
            && prefixes.contains(&id[..1])
            && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(invalid(
                key,
                format!("`{id}` is not a Slack id (upper-case letters and digits starting with one of {prefixes})"),
            ));
        }
    }
    Ok(())
}

fn access_rule(key: &str, raw: RawAccessRule) -> Result<AccessRule, ConfigError> {
    check_ids(&format!("{key}.users"), &raw.users, "UW")?;
    check_ids(&format!("{key}.usergroups"), &raw.usergroups, "S")?;
    check_ids(&format!("{key}.channels"), &raw.channels, "CGD")?;
    check_ids(&format!("{key}.teams"), &raw.teams, "TE")?;
    Ok(AccessRule { users: raw.users, usergroups: raw.usergroups, channels: raw.channels, teams: raw.teams })
}

pub(crate) fn access_settings(f: FileAccess) -> Result<AccessSettings, ConfigError> {
    let default = match f.default.as_str() {
        "allow" => DefaultPolicy::Allow,
        "deny" => DefaultPolicy::Deny,
        other => return Err(invalid("access.default", format!("`{other}`: expected allow or deny"))),
    };
    let rule = access_rule(
        "access",
        RawAccessRule { users: f.users, usergroups: f.usergroups, channels: f.channels, teams: f.teams },
    )?;
    if f.usergroup_refresh.0 < Duration::from_secs(10) {
        return Err(invalid(
            "access.usergroup_refresh",
            "must be at least 10s (Slack rate-limits usergroups.users.list)",
        ));
    }
    Ok(AccessSettings { default, rule, usergroup_refresh: f.usergroup_refresh.0 })
}

pub(crate) fn audit_settings(f: FileAudit) -> Result<AuditSettings, ConfigError> {
    let record = match f.record.as_str() {
        "all" => AuditScope::All,
        "write" => AuditScope::Write,
        "none" => AuditScope::None,
        other => return Err(invalid("audit.record", format!("`{other}`: expected all, write or none"))),
    };
    if f.retention.0 < Duration::from_secs(3600) {
        return Err(invalid("audit.retention", "must be at least 1h"));
    }
    Ok(AuditSettings { record, retention: f.retention.0 })
}

/// A command's `access` table.
pub(crate) fn command_access(key: &str, raw: Option<RawAccessRule>) -> Result<Option<AccessRule>, ConfigError> {
    raw.map(|r| access_rule(&format!("{key}.access"), r)).transpose()
}

/// Default open time of an approval request.
pub const DEFAULT_APPROVAL_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// A command's `requires_approval` and `approval` table.
pub(crate) fn command_approval(
    key: &str,
    requires_approval: bool,
    raw: Option<RawApprovalRule>,
) -> Result<Option<ApprovalRule>, ConfigError> {
    let key = format!("{key}.approval");
    let raw = match (requires_approval, raw) {
        (false, None) => return Ok(None),
        (false, Some(_)) => return Err(invalid(&key, "is set but requires_approval is false")),
        (true, None) => RawApprovalRule::default(),
        (true, Some(raw)) => raw,
    };
    check_ids(&format!("{key}.approvers"), &raw.approvers, "UW")?;
    check_ids(&format!("{key}.usergroups"), &raw.usergroups, "S")?;
    if raw.approvers.is_empty() && raw.usergroups.is_empty() {
        return Err(invalid(
            &key,
            "requires_approval needs approvers: set approval = { approvers = [\"U…\"] } and/or usergroups = [\"S…\"]",
        ));
    }
    let required = raw.required.unwrap_or(1);
    if required == 0 {
        return Err(invalid(&format!("{key}.required"), "must be at least 1"));
    }
    if raw.usergroups.is_empty() && (raw.approvers.len() as u32) < required {
        return Err(invalid(
            &format!("{key}.required"),
            format!("needs {required} approvals but only {} approvers are named", raw.approvers.len()),
        ));
    }
    let expires_after = raw.expires_after.map_or(DEFAULT_APPROVAL_EXPIRY, |d| d.0);
    if !(Duration::from_secs(5)..=Duration::from_secs(24 * 3600)).contains(&expires_after) {
        return Err(invalid(&format!("{key}.expires_after"), "must be between 5s and 24h"));
    }
    Ok(Some(ApprovalRule {
        approvers: raw.approvers,
        usergroups: raw.usergroups,
        required,
        allow_self: raw.allow_self,
        expires_after,
    }))
}

/// Checks that cut across commands: with `default = "deny"`, a write command whose rule
/// names nobody could never run, which is a mistake, not a policy.
pub(crate) fn check_commands(access: &AccessSettings, commands: &[CommandSpec]) -> Result<(), ConfigError> {
    if access.default != DefaultPolicy::Deny {
        return Ok(());
    }
    for c in commands.iter().filter(|c| c.quadrant.is_write()) {
        if !access.rule_for(c).names_people() {
            return Err(invalid(
                &format!("commands[{}].access", c.name),
                "with access.default = \"deny\" this write command names no users or usergroups, so nobody \
                 could run it: give it access = { users = [...] } (or usergroups), or set [access] users",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{self, Overrides, Settings};

    fn load(text: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let o = Overrides { signing_secret: Some("s".to_owned().into()), ..Default::default() };
        config::load(Some(&path), o).map_err(|e| e.to_string())
    }

    const DEPLOY: &str = "[[commands]]\nname = \"/ship\"\nquadrant = \"long-write\"\nhandler = \"simulate\"\n";

    #[test]
    fn mistakes_are_reported_with_their_key() {
        let cases = [
            ("[access]\ndefault = \"maybe\"\n", "access.default"),
            ("[access]\nusers = [\"alice\"]\n", "access.users"),
            ("[access]\nchannels = [\"U123\"]\n", "access.channels"),
            ("[access]\nusergroup_refresh = \"1s\"\n", "access.usergroup_refresh"),
            ("[audit]\nrecord = \"some\"\n", "audit.record"),
            ("[audit]\nretention = \"1m\"\n", "audit.retention"),
            (&format!("{DEPLOY}requires_approval = true\n"), "needs approvers"),
            (&format!("{DEPLOY}approval = {{ approvers = [\"U1\"] }}\n"), "requires_approval is false"),
            (
                &format!("{DEPLOY}requires_approval = true\napproval = {{ approvers = [\"U1\"], required = 2 }}\n"),
                "only 1 approvers",
            ),
            (
                &format!("{DEPLOY}requires_approval = true\napproval = {{ approvers = [\"U1\"], required = 0 }}\n"),
                "at least 1",
            ),
            (
                &format!(
                    "{DEPLOY}requires_approval = true\napproval = {{ approvers = [\"U1\"], expires_after = \"2d\" }}\n"
                ),
                "expires_after",
            ),
            (&format!("{DEPLOY}requires_approval = true\napproval = {{ approvers = [\"U1\"], who = 1 }}\n"), "who"),
            (&format!("{DEPLOY}access = {{ groups = [\"S1\"] }}\n"), "groups"),
            (&format!("[access]\ndefault = \"deny\"\n{DEPLOY}"), "nobody"),
        ];
        for (text, expected) in cases {
            let err = load(text).expect_err(text);
            assert!(err.contains(expected), "{text}\n→ {err}");
        }
    }

    #[test]
    fn a_closed_bot_with_named_deployers_loads() {
        let text = format!(
            "[access]\ndefault = \"deny\"\nusers = [\"U0ADMIN\"]\n{DEPLOY}access = {{ usergroups = [\"S0SRE\"], channels = [\"C0DEPLOY\"] }}\n\
             requires_approval = true\napproval = {{ approvers = [\"U0LEAD\"], usergroups = [\"S0SRE\"], required = 2, expires_after = \"30m\" }}\n"
        );
        let s = load(&text).unwrap();
        let ship = s.commands.iter().find(|c| c.name == "/ship").unwrap();
        assert_eq!(s.access.rule_for(ship).channels, ["C0DEPLOY"]);
        let approval = ship.approval.as_ref().unwrap();
        assert_eq!((approval.required, approval.expires_after.as_secs()), (2, 1800));
        assert_eq!(s.access.usergroups(&s.commands), ["S0SRE"]);
        let echo = s.commands.iter().find(|c| c.name == "/echo").unwrap();
        assert_eq!(s.access.rule_for(echo).users, ["U0ADMIN"], "the shared rule applies to commands without one");
    }
}
