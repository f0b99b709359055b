//! The slash command as Slack posts it: an `application/x-www-form-urlencoded` body parsed
//! into typed fields.
//!
//! Parsing is strict where ambiguity could be abused (a field given twice is an error, so
//! that two parsers can never disagree about which `command` or `response_url` counts) and
//! lenient where Slack may evolve (unknown fields are kept in `extra`, not refused).

use serde::{Deserialize, Serialize};

/// Longest command name accepted, slash included. Slack allows 32 characters.
pub const MAX_COMMAND_LEN: usize = 64;

/// A parsed slash-command request. `response_url` is kept raw here; the router checks it
/// against the allow-list and stores the checked form in the job.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashCommand {
    pub command: String,
    pub text: String,
    pub response_url: String,
    pub team_id: String,
    pub team_domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_name: Option<String>,
    pub channel_id: String,
    pub channel_name: String,
    pub user_id: String,
    pub user_name: String,
    pub trigger_id: String,
    pub api_app_id: String,
    #[serde(default)]
    pub is_enterprise_install: bool,
    /// Fields Slack sent that this version does not know, in arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, String)>,
}

impl std::fmt::Debug for SlashCommand {
    /// Leaves out the legacy `token` (never stored) and the secret part of `response_url`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlashCommand")
            .field("command", &self.command)
            .field("text", &self.text)
            .field("response_url", &"[redacted]")
            .field("team_id", &self.team_id)
            .field("channel_id", &self.channel_id)
            .field("user_id", &self.user_id)
            .field("extra", &self.extra.len())
            .finish_non_exhaustive()
    }
}

/// Why a form body is not a slash command (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandParseError {
    #[error("body is not valid UTF-8 form data")]
    NotUtf8,
    #[error("field `{0}` is given more than once")]
    DuplicateField(String),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("`command` must start with `/` and be at most {MAX_COMMAND_LEN} characters of letters, digits, `-` or `_`")]
    InvalidCommand,
    #[error("too many form fields (limit {0})")]
    TooManyFields(usize),
}

/// Upper bound on the number of fields; Slack sends about 15.
pub const MAX_FIELDS: usize = 64;

/// What a form body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackForm {
    /// Slack's periodic certificate check (`ssl_check=1`): answer 200, do nothing.
    SslCheck,
    Command(Box<SlashCommand>),
}

impl SlashCommand {
    /// Parses a form body. Percent-decoding is done once, by `form_urlencoded`.
    pub fn parse_form(body: &[u8]) -> Result<SlackForm, CommandParseError> {
        // Refuse invalid UTF-8 before decoding: form_urlencoded would replace it silently.
        std::str::from_utf8(body).map_err(|_| CommandParseError::NotUtf8)?;
        let mut cmd = SlashCommand::default();
        let mut seen: u32 = 0;
        let mut ssl_check = false;
        let mut n_fields = 0usize;
        for (key, value) in form_urlencoded::parse(body) {
            n_fields += 1;
            if n_fields > MAX_FIELDS {
                return Err(CommandParseError::TooManyFields(MAX_FIELDS));
            }
            let (bit, slot): (u32, Option<&mut String>) = match key.as_ref() {
                "command" => (1, Some(&mut cmd.command)),
                "text" => (1 << 1, Some(&mut cmd.text)),
                "response_url" => (1 << 2, Some(&mut cmd.response_url)),
                "team_id" => (1 << 3, Some(&mut cmd.team_id)),
                "team_domain" => (1 << 4, Some(&mut cmd.team_domain)),
                "channel_id" => (1 << 5, Some(&mut cmd.channel_id)),
                "channel_name" => (1 << 6, Some(&mut cmd.channel_name)),
                "user_id" => (1 << 7, Some(&mut cmd.user_id)),
                "user_name" => (1 << 8, Some(&mut cmd.user_name)),
                "trigger_id" => (1 << 9, Some(&mut cmd.trigger_id)),
                "api_app_id" => (1 << 10, Some(&mut cmd.api_app_id)),
                "enterprise_id" => (1 << 11, None),
                "enterprise_name" => (1 << 12, None),
                "is_enterprise_install" => (1 << 13, None),
                "ssl_check" => (1 << 14, None),
                // The legacy verification token is not used for auth and never stored.
                "token" => (1 << 15, None),
                _ => (0, None),
            };
            if bit != 0 {
                if seen & bit != 0 {
                    return Err(CommandParseError::DuplicateField(key.into_owned()));
                }
                seen |= bit;
            }
            match (key.as_ref(), slot) {
                (_, Some(slot)) => *slot = value.into_owned(),
                ("enterprise_id", None) => cmd.enterprise_id = Some(value.into_owned()),
                ("enterprise_name", None) => cmd.enterprise_name = Some(value.into_owned()),
                ("is_enterprise_install", None) => cmd.is_enterprise_install = value == "true",
                ("ssl_check", None) => ssl_check = value == "1",
                ("token", None) => {}
                _ => cmd.extra.push((key.into_owned(), value.into_owned())),
            }
        }
        if ssl_check && cmd.command.is_empty() {
            return Ok(SlackForm::SslCheck);
        }
        if cmd.command.is_empty() {
            return Err(CommandParseError::MissingField("command"));
        }
        if cmd.response_url.is_empty() {
            return Err(CommandParseError::MissingField("response_url"));
        }
        if !is_valid_command_name(&cmd.command) {
            return Err(CommandParseError::InvalidCommand);
        }
        Ok(SlackForm::Command(Box::new(cmd)))
    }

    /// Encodes the command as Slack would send it (used by `chatops send` and the load generator).
    pub fn to_form(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::with_capacity(512));
        out.append_pair("token", "local-testing")
            .append_pair("team_id", &self.team_id)
            .append_pair("team_domain", &self.team_domain);
        if let Some(id) = &self.enterprise_id {
            out.append_pair("enterprise_id", id);
        }
        out.append_pair("channel_id", &self.channel_id)
            .append_pair("channel_name", &self.channel_name)
            .append_pair("user_id", &self.user_id)
            .append_pair("user_name", &self.user_name)
            .append_pair("command", &self.command)
            .append_pair("text", &self.text)
            .append_pair("api_app_id", &self.api_app_id)
            .append_pair("response_url", &self.response_url)
            .append_pair("trigger_id", &self.trigger_id);
        out.finish()
    }
}

/// `/` followed by 1..=63 letters, digits, `-`, `_` or `.`.
pub fn is_valid_command_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/') else { return false };
    !rest.is_empty()
        && name.len() <= MAX_COMMAND_LEN
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&enterprise_id=E0001&enterprise_name=Globular%20Construct%20Inc&channel_id=C2147483705&channel_name=test&user_id=U2147483697&user_name=Steve&command=/weather&text=94070&response_url=https://hooks.slack.com/commands/1234/5678&trigger_id=13345224609.738474920.8088930838d88f008e0&api_app_id=A123456";

    fn parse(body: &str) -> Result<SlackForm, CommandParseError> {
        SlashCommand::parse_form(body.as_bytes())
    }

    #[test]
    fn parses_slack_documentation_example() {
        let SlackForm::Command(cmd) = parse(BODY).unwrap() else { panic!("not a command") };
        assert_eq!(cmd.command, "/weather");
        assert_eq!(cmd.text, "94070");
        assert_eq!(cmd.team_id, "T0001");
        assert_eq!(cmd.enterprise_name.as_deref(), Some("Globular Construct Inc"));
        assert_eq!(cmd.user_name, "Steve");
        assert_eq!(cmd.response_url, "https://hooks.slack.com/commands/1234/5678");
        assert_eq!(cmd.api_app_id, "A123456");
        assert!(cmd.extra.is_empty());
    }

    #[test]
    fn decodes_plus_and_percent_in_text() {
        let body = BODY.replace("text=94070", "text=deploy+web%20now%21%26x%3Dy");
        let SlackForm::Command(cmd) = parse(&body).unwrap() else { panic!() };
        assert_eq!(cmd.text, "deploy web now!&x=y");
    }

    #[test]
    fn keeps_unknown_fields_out_of_the_way() {
        let body = format!("{BODY}&is_enterprise_install=true&future_field=1");
        let SlackForm::Command(cmd) = parse(&body).unwrap() else { panic!() };
        assert!(cmd.is_enterprise_install);
        assert_eq!(cmd.extra, vec![("future_field".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn recognises_ssl_check() {
        assert_eq!(parse("ssl_check=1&token=abc"), Ok(SlackForm::SslCheck));
    }

    #[test]
    fn refuses_bad_forms() {
        let cases = [
            ("team_id=T1&response_url=https://hooks.slack.com/x", CommandParseError::MissingField("command")),
            ("command=/echo&text=hi", CommandParseError::MissingField("response_url")),
            ("command=echo&response_url=x", CommandParseError::InvalidCommand),
            ("command=/&response_url=x", CommandParseError::InvalidCommand),
            ("command=/ec%20ho&response_url=x", CommandParseError::InvalidCommand),
            ("command=/echo&command=/deploy&response_url=x", CommandParseError::DuplicateField("command".into())),
            ("command=/echo&response_url=a&response_url=b", CommandParseError::DuplicateField("response_url".into())),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body), Err(want), "{body}");
        }
        let long = format!("command=/{}&response_url=x", "a".repeat(MAX_COMMAND_LEN));
        assert_eq!(parse(&long), Err(CommandParseError::InvalidCommand));
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(parse(&many), Err(CommandParseError::TooManyFields(MAX_FIELDS)));
        assert_eq!(SlashCommand::parse_form(b"command=/echo\xff"), Err(CommandParseError::NotUtf8));
    }

    #[test]
    fn round_trips_through_to_form() {
        let SlackForm::Command(cmd) = parse(BODY).unwrap() else { panic!() };
        let SlackForm::Command(again) = parse(&cmd.to_form()).unwrap() else { panic!() };
        assert_eq!(again.command, cmd.command);
        assert_eq!(again.text, cmd.text);
        assert_eq!(again.response_url, cmd.response_url);
        assert_eq!(again.enterprise_id, cmd.enterprise_id);
    }

    #[test]
    fn debug_output_redacts_response_url() {
        let SlackForm::Command(cmd) = parse(BODY).unwrap() else { panic!() };
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("5678"), "{shown}");
    }
}
