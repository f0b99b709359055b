//! The runners that do a command's real work: [`exec`] runs a program, [`webhook`] calls
//! an HTTP API (with GitHub Actions presets). They know nothing of the handler registry,
//! the queue or Slack's `response_url`: a handler kind builds the [`TemplateValues`] of a
//! job ([`template_values`]), runs one of them, and turns the outcome into messages.
//!
//! Both follow the same shape: a *spec* deserialized from the configuration (unknown keys
//! refused), compiled once against the command's argument names into a *plan*
//! (`ExecSpec::compile`, `WebhookSpec::compile`), so every template mistake is a
//! configuration error; the plan is then run per job. Secrets are named in the spec (a
//! file or an environment variable, [`SecretRef`]) and read only when the command runs, so
//! a rotated file is picked up and no secret value sits in the configuration or its
//! `Debug`.
//!
//! Crash safety (issue 11 item 5): each runner says exactly whether the external effect
//! may have started, so the caller can record "attempt started" before it and refuse to
//! re-run an interrupted write: `ExecError::NotStarted` means no program was spawned;
//! `WebhookError::may_have_started` is false only when no request left the bot.

pub mod exec;
pub mod template;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use chatops_core::args::Args;
use chatops_core::slack::secret_file::{SecretFileError, read_secret_file};
use secrecy::SecretString;
use serde::Deserialize;

pub use template::{BUILTIN_NAMES, Template, TemplateError, TemplateNames, TemplateValues};

/// Who ran a command, where: the built-in template values.
#[derive(Debug, Clone, Copy)]
pub struct CommandContext<'a> {
    pub command: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub channel_id: &'a str,
    pub team_id: &'a str,
    pub correlation_id: &'a str,
}

/// The values a job's templates are rendered with: its parsed arguments, then the
/// built-in names. The built-ins are inserted last so that an argument can never pose as
/// `user_id` or `correlation_id`.
pub fn template_values(args: &Args, context: CommandContext<'_>) -> TemplateValues {
    let mut values = args.0.clone();
    for (name, value) in [
        ("command", context.command),
        ("user_id", context.user_id),
        ("user_name", context.user_name),
        ("channel_id", context.channel_id),
        ("team_id", context.team_id),
        ("correlation_id", context.correlation_id),
    ] {
        values.insert(name.to_owned(), value.to_owned());
    }
    values
}

/// Where a secret comes from: `{ file = "/run/secrets/token" }` or `{ env = "VAR" }`.
/// Files follow the one secret-file rule (`chatops_core::slack::secret_file`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSecretRef")]
pub enum SecretRef {
    File(PathBuf),
    Env(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    file: Option<PathBuf>,
    env: Option<String>,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = String;

    fn try_from(raw: RawSecretRef) -> Result<Self, String> {
        match (raw.file, raw.env) {
            (Some(file), None) => Ok(SecretRef::File(file)),
            (None, Some(env)) if valid_env_name(&env) => Ok(SecretRef::Env(env)),
            (None, Some(env)) => Err(format!("`{env}` is not an environment variable name")),
            _ => Err("a secret is `{ file = \"...\" }` or `{ env = \"VAR\" }`, exactly one of them".to_owned()),
        }
    }
}

/// Why a secret could not be read. Never holds the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error("environment variable `{0}` (a secret) is not set or not UTF-8")]
    EnvMissing(String),
    #[error("environment variable `{0}` (a secret) is empty")]
    EnvEmpty(String),
}

impl SecretRef {
    /// Reads the secret now.
    pub fn read(&self) -> Result<SecretString, SecretError> {
        match self {
            SecretRef::File(path) => Ok(SecretString::from(read_secret_file(path)?.into_secret())),
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if value.is_empty() => Err(SecretError::EnvEmpty(name.clone())),
                Ok(value) => Ok(SecretString::from(value)),
                Err(_) => Err(SecretError::EnvMissing(name.clone())),
            },
        }
    }
}

/// `NAME` of an environment variable: a letter or `_`, then letters, digits, `_`.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes text for Slack's mrkdwn: `&`, `<`, `>` become entities (Slack's own rule), so
/// output cannot form a link, a mention or `<!channel>`. The one implementation lives with
/// Slack's wire formats in core.
pub use chatops_core::slack::message::escape_mrkdwn as mrkdwn_escape;

/// `"30s"`, `"5m"`, `"500ms"` in the configuration.
pub(crate) fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\" or \"5m\": {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cannot_be_overridden_by_arguments() {
        let args = Args([("user_id".to_owned(), "U_SPOOFED".to_owned()), ("env".to_owned(), "prod".to_owned())].into());
        let ctx = CommandContext {
            command: "/deploy",
            user_id: "U1",
            user_name: "ada",
            channel_id: "C1",
            team_id: "T1",
            correlation_id: "c-1",
        };
        let values = template_values(&args, ctx);
        assert_eq!(values["user_id"], "U1");
        assert_eq!(values["env"], "prod");
        assert_eq!(values.len(), 7);
    }

    #[test]
    fn secret_refs_are_exactly_one_source() {
        #[derive(Deserialize)]
        struct W {
            s: SecretRef,
        }
        let parse = |t: &str| toml::from_str::<W>(t).map(|w| w.s);
        assert_eq!(parse("s = { file = \"/x\" }").unwrap(), SecretRef::File("/x".into()));
        assert_eq!(parse("s = { env = \"TOKEN\" }").unwrap(), SecretRef::Env("TOKEN".into()));
        assert!(parse("s = { file = \"/x\", env = \"T\" }").is_err());
        assert!(parse("s = {}").is_err());
        assert!(parse("s = { env = \"A-B\" }").is_err());
        assert!(parse("s = { path = \"/x\" }").is_err());
    }

    #[test]
    fn mrkdwn_escape_neutralises_links_and_mentions() {
        assert_eq!(mrkdwn_escape("<!channel> a&b <http://x|y>"), "&lt;!channel&gt; a&amp;b &lt;http://x|y&gt;");
    }
}
