//! Slack's interaction payloads (a click on a button in a message the bot posted): a form
//! body with one field, `payload`, holding JSON. Only `block_actions` is understood; every
//! other type is reported as such so the ingress can acknowledge and ignore it.
//!
//! The payload carries the whole message that held the button, so it is much larger than a
//! slash command; only the fields the approval flow needs are read, each bounded, and the
//! rest is skipped by serde without being kept.

use serde::Deserialize;

/// `action_id` of the Approve button of an approval request.
pub const APPROVE_ACTION: &str = "chatops_approve";
/// `action_id` of the Deny button of an approval request.
pub const DENY_ACTION: &str = "chatops_deny";

/// Slack's own limit on a button's `value`.
pub const MAX_VALUE_LEN: usize = 2000;
/// Slack's own limit on an `action_id`.
pub const MAX_ACTION_ID_LEN: usize = 255;
/// Longest id (user, team, channel) accepted; Slack's are about 11 characters.
const MAX_ID_LEN: usize = 64;

/// One click on a button.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockAction {
    pub user_id: String,
    pub user_name: String,
    pub team_id: String,
    pub enterprise_id: Option<String>,
    pub channel_id: String,
    /// Raw; the caller checks it against the allow-list like a command's.
    pub response_url: String,
    pub action_id: String,
    pub value: String,
}

impl std::fmt::Debug for BlockAction {
    /// Leaves out `response_url` (a bearer token) and the value (an approval id).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockAction")
            .field("user_id", &self.user_id)
            .field("team_id", &self.team_id)
            .field("channel_id", &self.channel_id)
            .field("action_id", &self.action_id)
            .finish_non_exhaustive()
    }
}

/// What a payload turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    BlockAction(BlockAction),
    /// Another interaction type (`view_submission`, `shortcut`, ...): acknowledged, ignored.
    Other {
        kind: String,
    },
}

/// Why a body is not an interaction payload (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionParseError {
    #[error("body is not valid UTF-8 form data")]
    NotUtf8,
    #[error("missing form field `payload`")]
    MissingPayload,
    #[error("form field `payload` is given more than once")]
    DuplicatePayload,
    #[error("`payload` is not a JSON interaction: {0}")]
    NotJson(String),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` is too long")]
    TooLong(&'static str),
    #[error("a block_actions payload must carry exactly one action")]
    ActionCount,
}

#[derive(Deserialize)]
struct RawPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<RawUser>,
    #[serde(default)]
    team: Option<RawId>,
    #[serde(default)]
    enterprise: Option<RawId>,
    #[serde(default)]
    channel: Option<RawId>,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Deserialize)]
struct RawUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct RawId {
    id: String,
}

#[derive(Deserialize)]
struct RawAction {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// Parses a form body holding `payload=<json>`.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, InteractionParseError> {
    std::str::from_utf8(body).map_err(|_| InteractionParseError::NotUtf8)?;
    let mut payload = None;
    for (key, value) in form_urlencoded::parse(body) {
        if key == "payload" {
            if payload.is_some() {
                return Err(InteractionParseError::DuplicatePayload);
            }
            payload = Some(value);
        }
    }
    let payload = payload.ok_or(InteractionParseError::MissingPayload)?;
    let raw: RawPayload = serde_json::from_str(&payload).map_err(|e| InteractionParseError::NotJson(e.to_string()))?;
    if raw.kind != "block_actions" {
        return Ok(Interaction::Other { kind: bounded(raw.kind, MAX_ACTION_ID_LEN, "type")? });
    }
    let user = raw.user.ok_or(InteractionParseError::MissingField("user"))?;
    let team_id = match raw.team {
        Some(team) => team.id,
        None => user.team_id.clone().ok_or(InteractionParseError::MissingField("team"))?,
    };
    let [action] = <[RawAction; 1]>::try_from(raw.actions).map_err(|_| InteractionParseError::ActionCount)?;
    let action_id = bounded(action.action_id, MAX_ACTION_ID_LEN, "action_id")?;
    let value = bounded(action.value.unwrap_or_default(), MAX_VALUE_LEN, "value")?;
    Ok(Interaction::BlockAction(BlockAction {
        user_id: bounded(non_empty(user.id, "user.id")?, MAX_ID_LEN, "user.id")?,
        user_name: bounded(user.username.or(user.name).unwrap_or_default(), MAX_ID_LEN * 4, "user.username")?,
        team_id: bounded(non_empty(team_id, "team.id")?, MAX_ID_LEN, "team.id")?,
        enterprise_id: raw.enterprise.map(|e| bounded(e.id, MAX_ID_LEN, "enterprise.id")).transpose()?,
        channel_id: bounded(raw.channel.map(|c| c.id).unwrap_or_default(), MAX_ID_LEN, "channel.id")?,
        response_url: non_empty(raw.response_url.unwrap_or_default(), "response_url")?,
        action_id,
        value,
    }))
}

fn non_empty(s: String, field: &'static str) -> Result<String, InteractionParseError> {
    if s.is_empty() { Err(InteractionParseError::MissingField(field)) } else { Ok(s) }
}

fn bounded(s: String, max: usize, field: &'static str) -> Result<String, InteractionParseError> {
    if s.len() > max { Err(InteractionParseError::TooLong(field)) } else { Ok(s) }
}

/// Builds the form body Slack would send for a click (for tests and the load generator).
pub fn block_action_form(action: &BlockAction) -> String {
    let mut payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": action.user_id, "username": action.user_name, "team_id": action.team_id},
        "team": {"id": action.team_id},
        "channel": {"id": action.channel_id},
        "response_url": action.response_url,
        "actions": [{"type": "button", "action_id": action.action_id, "value": action.value}],
    });
    if let Some(e) = &action.enterprise_id {
        payload["enterprise"] = serde_json::json!({"id": e});
    }
    form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click() -> BlockAction {
        BlockAction {
            user_id: "U2".into(),
            user_name: "bob".into(),
            team_id: "T1".into(),
            enterprise_id: None,
            channel_id: "C1".into(),
            response_url: "https://hooks.slack.com/actions/T1/1/abc".into(),
            action_id: APPROVE_ACTION.into(),
            value: "0123abcd".into(),
        }
    }

    #[test]
    fn a_click_round_trips() {
        let form = block_action_form(&click());
        assert_eq!(parse_interaction(form.as_bytes()), Ok(Interaction::BlockAction(click())));
    }

    #[test]
    fn other_types_are_recognised_not_refused() {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", r#"{"type":"view_submission","user":{"id":"U1"}}"#)
            .finish();
        assert_eq!(parse_interaction(form.as_bytes()), Ok(Interaction::Other { kind: "view_submission".into() }));
    }

    #[test]
    fn hostile_payloads_are_refused_with_a_reason() {
        let payload =
            |json: &str| form_urlencoded::Serializer::new(String::new()).append_pair("payload", json).finish();
        let cases: Vec<(Vec<u8>, InteractionParseError)> = vec![
            (b"\xff\xfe".to_vec(), InteractionParseError::NotUtf8),
            (b"text=hi".to_vec(), InteractionParseError::MissingPayload),
            (format!("{}&{}", payload("{}"), payload("{}")).into_bytes(), InteractionParseError::DuplicatePayload),
            (payload(r#"{"type":"block_actions","user":{"id":"U1"},"team":{"id":"T1"},"response_url":"x","actions":[]}"#).into_bytes(), InteractionParseError::ActionCount),
            (payload(r#"{"type":"block_actions","team":{"id":"T1"},"response_url":"x","actions":[{"action_id":"a"}]}"#).into_bytes(), InteractionParseError::MissingField("user")),
            (payload(r#"{"type":"block_actions","user":{"id":"U1"},"team":{"id":"T1"},"actions":[{"action_id":"a"}]}"#).into_bytes(), InteractionParseError::MissingField("response_url")),
            (payload(&format!(r#"{{"type":"block_actions","user":{{"id":"U1"}},"team":{{"id":"T1"}},"response_url":"x","actions":[{{"action_id":"a","value":"{}"}}]}}"#, "v".repeat(MAX_VALUE_LEN + 1))).into_bytes(), InteractionParseError::TooLong("value")),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_interaction(&body), Err(expected.clone()), "{}", String::from_utf8_lossy(&body));
        }
        for not_json in ["", "[", "null", "{\"type\":1}", "{\"no_type\":true}"] {
            assert!(
                matches!(parse_interaction(payload(not_json).as_bytes()), Err(InteractionParseError::NotJson(_))),
                "{not_json}"
            );
        }
    }

    #[test]
    fn debug_hides_the_response_url_and_the_value() {
        let shown = format!("{:?}", click());
        assert!(!shown.contains("hooks.slack.com") && !shown.contains("0123abcd"), "{shown}");
    }
}
