//! Slack's wire formats: request signing, the slash-command form, `response_url` and the
//! JSON messages posted to it. Only this module (and the service's ingress and respond
//! modules, which use it) knows what Slack's bytes look like.

pub mod command;
pub mod interaction;
pub mod message;
pub mod response_url;
pub mod secret_file;
pub mod signature;

pub use command::{CommandParseError, SlackForm, SlashCommand};
pub use message::{ResponseType, SlackMessage};
pub use response_url::{AllowedHosts, ResponseUrl, ResponseUrlError};
pub use signature::{SlackSigner, VerifyError};
