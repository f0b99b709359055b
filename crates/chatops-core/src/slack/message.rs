//! Messages the bot posts to `response_url` (and the JSON body of the router's HTTP answer).

use serde::{Deserialize, Serialize};

/// Who sees a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// Only the user who ran the command.
    Ephemeral,
    /// Everyone in the channel.
    InChannel,
}

/// A message in Slack's `response_url` / slash-command response format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackMessage {
    pub response_type: ResponseType,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_original: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_original: bool,
}

impl SlackMessage {
    pub fn ephemeral(text: impl Into<String>) -> Self {
        SlackMessage {
            response_type: ResponseType::Ephemeral,
            text: text.into(),
            blocks: Vec::new(),
            replace_original: false,
            delete_original: false,
        }
    }

    pub fn in_channel(text: impl Into<String>) -> Self {
        SlackMessage { response_type: ResponseType::InChannel, ..SlackMessage::ephemeral(text) }
    }

    pub fn with_blocks(mut self, blocks: Vec<serde_json::Value>) -> Self {
        self.blocks = blocks;
        self
    }
}

/// Block Kit: a section with mrkdwn text.
pub fn section_block(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Block Kit: a context line with mrkdwn text.
pub fn context_block(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

/// Escapes `&`, `<` and `>` as Slack's mrkdwn requires, so user text cannot forge mentions.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_message_serialises_like_slack_expects() {
        let json = serde_json::to_string(&SlackMessage::ephemeral("hi")).unwrap();
        assert_eq!(json, r#"{"response_type":"ephemeral","text":"hi"}"#);
    }

    #[test]
    fn escapes_mention_syntax() {
        assert_eq!(escape_mrkdwn("<!channel> & <@U1>"), "&lt;!channel&gt; &amp; &lt;@U1&gt;");
    }
}
