//! [`App`]: the bot as a library user sees it. Register commands in Rust, the short way,
//! and start the bot in any role:
//!
//! ```no_run
//! # async fn demo(settings: chatops_service::Settings) -> Result<(), chatops_service::startup::StartupError> {
//! use chatops_core::slack::SlackMessage;
//! use chatops_service::app::App;
//! use chatops_service::startup::Roles;
//!
//! let app = App::builder()
//!     .command("/greet", |ctx| async move { ctx.respond(SlackMessage::ephemeral("hello")).await })
//!     .build();
//! let bot = app.start(settings, Roles::all()).await?;
//! # drop(bot); Ok(()) }
//! ```
//!
//! A command registered from code needs no configuration entry: it runs in the
//! [`CommandOptions`] given (default: `short-read`, the quadrant's default timeout, the
//! retry budget of `[retry]`). Its handler kind is the command's name, so a config file can
//! still configure it by name, key by key (`[[commands]] name = "/greet" params = {..}`),
//! like a built-in command. [`App::start`] keeps the role checks (a router or worker alone
//! needs a shared queue) and owns every background task it starts.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatops_core::Quadrant;
use chatops_core::slack::ResponseType;
use chatops_queue::engine::OpenedQueue;

use crate::config::{self, ConfigError, Overrides, Settings};
use crate::handler::{Handler, HandlerContext, HandlerError, handler_fn};
use crate::registry::RegistryBuilder;
use crate::spec::{CommandSpec, HandlerSpec, default_timeout};
use crate::startup::{self, Application, Roles, StartupError};

/// How a command registered from code runs when the configuration says nothing about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    pub quadrant: Quadrant,
    /// `None`: [`default_timeout`] of the quadrant.
    pub timeout: Option<Duration>,
    pub description: String,
    pub usage: Option<String>,
    pub requires_approval: bool,
    /// `None`: `retry.max_attempts`.
    pub max_attempts: Option<u32>,
    /// Who sees the command's messages (default: only the user who ran it).
    pub visibility: ResponseType,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions::in_quadrant(Quadrant::ShortRead)
    }
}

impl CommandOptions {
    pub fn in_quadrant(quadrant: Quadrant) -> Self {
        CommandOptions {
            quadrant,
            timeout: None,
            description: String::new(),
            usage: None,
            requires_approval: false,
            max_attempts: None,
            visibility: ResponseType::Ephemeral,
        }
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    pub fn usage(mut self, text: impl Into<String>) -> Self {
        self.usage = Some(text.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn requires_approval(mut self) -> Self {
        self.requires_approval = true;
        self
    }

    /// The whole channel sees the command's messages (and, with a bot token, its progress
    /// is one channel message edited in place).
    pub fn in_channel(mut self) -> Self {
        self.visibility = ResponseType::InChannel;
        self
    }

    /// The command as a `[[commands]]` entry: what a config file is merged over.
    fn entry(&self, name: &str) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("name".into(), name.into());
        t.insert("quadrant".into(), self.quadrant.as_str().into());
        t.insert("handler".into(), name.into());
        t.insert("description".into(), self.description.clone().into());
        t.insert("requires_approval".into(), self.requires_approval.into());
        if self.visibility == ResponseType::InChannel {
            t.insert("visibility".into(), "in_channel".into());
        }
        if let Some(usage) = &self.usage {
            t.insert("usage".into(), usage.clone().into());
        }
        if let Some(timeout) = self.timeout {
            t.insert("timeout".into(), humantime::format_duration(timeout).to_string().into());
        }
        if let Some(n) = self.max_attempts {
            t.insert("max_attempts".into(), i64::from(n).into());
        }
        t
    }

    /// The command when the settings were loaded without it (e.g. by `config::load`).
    fn spec(&self, name: &str, default_attempts: u32) -> CommandSpec {
        // Approvers come from the configuration: a command registered from code that
        // needs approval and is loaded without it has none, so it is refused at startup.
        let approval = self.requires_approval.then(|| crate::spec::ApprovalRule {
            approvers: Vec::new(),
            usergroups: Vec::new(),
            required: 1,
            allow_self: false,
            expires_after: crate::guard::settings::DEFAULT_APPROVAL_EXPIRY,
        });
        CommandSpec {
            timeout: self.timeout.unwrap_or_else(|| default_timeout(self.quadrant)),
            approval,
            description: self.description.clone(),
            usage: self.usage.clone(),
            max_attempts: self.max_attempts.unwrap_or(default_attempts).max(1),
            visibility: self.visibility,
            ..CommandSpec::new(name, self.quadrant, HandlerSpec::new(name))
        }
    }
}

#[derive(Debug, Clone)]
struct CodeCommand {
    name: String,
    options: CommandOptions,
}

/// A bot's commands and handler kinds; start it with [`App::start`], or give it to
/// `chatops::run` for the whole command line.
#[derive(Clone)]
pub struct App {
    kinds: RegistryBuilder,
    commands: Vec<CodeCommand>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("commands", &self.commands).finish_non_exhaustive()
    }
}

impl Default for App {
    /// The built-in handler kinds and commands only: the stock `chatops` binary.
    fn default() -> Self {
        App::builder().build()
    }
}

/// Builds an [`App`]. Later registrations of the same name replace earlier ones.
pub struct AppBuilder {
    app: App,
}

impl std::fmt::Debug for AppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.app.fmt(f)
    }
}

impl AppBuilder {
    /// A command answered by a closure, in the default [`CommandOptions`] (`short-read`).
    pub fn command<F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.command_with(name, CommandOptions::default(), handler_fn(handler))
    }

    /// A command answered by a closure, in another quadrant.
    pub fn command_in<F, Fut>(self, quadrant: Quadrant, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.command_with(name, CommandOptions::in_quadrant(quadrant), handler_fn(handler))
    }

    /// A command answered by any [`Handler`], with its options.
    pub fn command_with(mut self, name: impl Into<String>, options: CommandOptions, handler: impl Handler) -> Self {
        let name = name.into();
        self.app.kinds = self.app.kinds.handler(name.clone(), Arc::new(handler));
        self.app.commands.retain(|c| c.name != name);
        self.app.commands.push(CodeCommand { name, options });
        self
    }

    /// A handler kind that `[[commands]]` entries can name with `handler = "kind"` (the way
    /// to run one Rust handler under several configured commands).
    pub fn handler_kind(mut self, kind: impl Into<String>, handler: impl Handler) -> Self {
        self.app.kinds = self.app.kinds.handler(kind, Arc::new(handler));
        self
    }

    pub fn build(self) -> App {
        self.app
    }
}

impl App {
    pub fn builder() -> AppBuilder {
        AppBuilder { app: App { kinds: RegistryBuilder::default(), commands: Vec::new() } }
    }

    /// [`config::load`] with this app's commands, so the file can configure them by name.
    pub fn load_settings(&self, config_file: Option<&Path>, overrides: Overrides) -> Result<Settings, ConfigError> {
        let entries: Vec<toml::Table> = self.commands.iter().map(|c| c.options.entry(&c.name)).collect();
        config::load_with(config_file, overrides, &entries)
    }

    /// Adds the app's commands that `settings` does not list (settings loaded without
    /// [`App::load_settings`]); listed ones keep their configuration.
    pub fn complete(&self, mut settings: Settings) -> Result<Settings, ConfigError> {
        for c in &self.commands {
            if settings.commands.iter().any(|s| s.name == c.name) {
                continue;
            }
            if !chatops_core::slack::command::is_valid_command_name(&c.name) {
                return Err(ConfigError::Invalid {
                    key: format!("commands[{}]", c.name),
                    message: "name must look like /deploy (letters, digits, -, _ or . after the slash)".into(),
                });
            }
            settings.commands.push(c.options.spec(&c.name, settings.retry.max_attempts));
        }
        Ok(settings)
    }

    /// Checks the roles against the configured engine, opens it, and builds the bot.
    pub async fn start(&self, settings: Settings, roles: Roles) -> Result<Application, StartupError> {
        startup::check_roles(&settings, &roles)?;
        let settings = self.complete(settings)?;
        let opened = startup::open_queue(&settings, &roles).await?;
        Application::assemble(settings, roles, opened, self.kinds.clone()).await
    }

    /// Builds the bot on a queue the caller opened and shares (e.g. a router and workers in
    /// one test process). The application owns the queue's background tasks; the role check
    /// is the caller's, since only the caller knows who else consumes this queue.
    pub async fn start_on(
        &self,
        settings: Settings,
        roles: Roles,
        opened: OpenedQueue,
    ) -> Result<Application, StartupError> {
        let settings = self.complete(settings)?;
        Application::assemble(settings, roles, opened, self.kinds.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_command_becomes_an_entry_the_configuration_reads_back() {
        let options = CommandOptions::in_quadrant(Quadrant::LongWrite)
            .description("Roll back")
            .usage("/rollback SERVICE")
            .timeout(Duration::from_secs(90));
        let app = App::builder()
            .command_with("/rollback", options.clone(), handler_fn(|_ctx| async { Ok(()) }))
            .command("/greet", |_ctx| async { Ok(()) })
            .build();
        let o = Overrides { signing_secret: Some("s".to_owned().into()), ..Default::default() };
        let s = app.load_settings(None, o).unwrap();
        let from_config = s.commands.iter().find(|c| c.name == "/rollback").unwrap();
        assert_eq!(*from_config, options.spec("/rollback", s.retry.max_attempts), "both paths agree");
        let greet = s.commands.iter().find(|c| c.name == "/greet").unwrap();
        assert_eq!((greet.quadrant, greet.timeout), (Quadrant::ShortRead, Duration::from_secs(30)));
        let bare = config::load(None, Overrides::default()).unwrap();
        let completed = app.complete(bare).unwrap();
        assert_eq!(completed.commands.iter().filter(|c| c.name == "/greet").count(), 1);
    }
}
