//! The command registry: which commands exist (their [`CommandSpec`]s, from the
//! configuration) and the [`Handler`] of each kind. A command that fits an existing kind
//! needs no code; Rust code adds kinds with [`RegistryBuilder::handler`] (or, more simply,
//! commands with `chatops::App::builder().command(..)`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::handler::Handler;
use crate::handlers;
use crate::spec::CommandSpec;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("command {command} uses handler `{kind}`, which is not registered (known: {known})")]
    UnknownHandler { command: String, kind: String, known: String },
    #[error("command {0} is defined twice")]
    DuplicateCommand(String),
    #[error("command {command}: bad parameters for handler `{kind}`: {message}")]
    BadParams { command: String, kind: String, message: String },
}

/// Commands by name, plus the handler for each kind.
pub struct Registry {
    commands: BTreeMap<String, Arc<CommandSpec>>,
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("commands", &self.commands.keys().collect::<Vec<_>>())
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Collects handler kinds (built-in ones are pre-registered) and builds a [`Registry`].
#[derive(Clone)]
pub struct RegistryBuilder {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
        handlers.insert("echo".into(), Arc::new(handlers::echo::Echo));
        handlers.insert("help".into(), Arc::new(handlers::help::Help));
        handlers.insert("check-status".into(), Arc::new(handlers::check_status::CheckStatus));
        handlers.insert("simulate".into(), Arc::new(handlers::simulate::Simulate));
        handlers.insert("exec".into(), Arc::new(handlers::exec::Exec));
        handlers.insert("webhook".into(), Arc::new(handlers::webhook::Webhook::Generic));
        handlers.insert("github-workflow".into(), Arc::new(handlers::webhook::Webhook::GithubWorkflow));
        handlers.insert("github-repository-dispatch".into(), Arc::new(handlers::webhook::Webhook::GithubDispatch));
        RegistryBuilder { handlers }
    }
}

impl RegistryBuilder {
    /// Registers (or replaces) a handler kind that config entries can name.
    pub fn handler(mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind.into(), handler);
        self
    }

    /// Whether a kind is registered.
    pub fn has(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    pub fn build(self, specs: Vec<CommandSpec>) -> Result<Registry, RegistryError> {
        let mut commands = BTreeMap::new();
        for spec in specs {
            if !self.handlers.contains_key(spec.handler.kind()) {
                let mut known: Vec<_> = self.handlers.keys().cloned().collect();
                known.sort();
                return Err(RegistryError::UnknownHandler {
                    command: spec.name,
                    kind: spec.handler.kind().to_owned(),
                    known: known.join(", "),
                });
            }
            if let Err(message) = self.handlers[spec.handler.kind()].check_params(&spec) {
                return Err(RegistryError::BadParams { command: spec.name, kind: spec.handler.kind, message });
            }
            let name = spec.name.clone();
            if commands.insert(name.clone(), Arc::new(spec)).is_some() {
                return Err(RegistryError::DuplicateCommand(name));
            }
        }
        Ok(Registry { commands, handlers: self.handlers })
    }
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<CommandSpec>> {
        self.commands.get(name)
    }

    pub fn handler(&self, spec: &CommandSpec) -> Option<Arc<dyn Handler>> {
        self.handlers.get(spec.handler.kind()).cloned()
    }

    /// All commands, sorted by name.
    pub fn commands(&self) -> impl Iterator<Item = &Arc<CommandSpec>> {
        self.commands.values()
    }

    /// `/a, /b, /c`: for the unknown-command answer.
    pub fn names(&self) -> String {
        self.commands.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatops_core::Quadrant;

    use super::*;
    use crate::spec::HandlerSpec;

    fn spec(name: &str, kind: &str) -> CommandSpec {
        CommandSpec {
            name: name.into(),
            quadrant: Quadrant::ShortRead,
            timeout: Duration::from_secs(1),
            requires_approval: false,
            description: String::new(),
            usage: None,
            args: Default::default(),
            handler: HandlerSpec::new(kind),
            max_attempts: 3,
            rerun_interrupted: false,
            visibility: chatops_core::slack::ResponseType::Ephemeral,
        }
    }

    #[test]
    fn refuses_unknown_handler_kind() {
        let err = RegistryBuilder::default().build(vec![spec("/x", "teleport")]).unwrap_err();
        assert!(err.to_string().contains("teleport") && err.to_string().contains("echo"), "{err}");
    }

    #[test]
    fn refuses_duplicate_command() {
        let err = RegistryBuilder::default().build(vec![spec("/x", "echo"), spec("/x", "help")]).unwrap_err();
        assert!(matches!(err, RegistryError::DuplicateCommand(_)));
    }

    #[test]
    fn refuses_parameters_the_kind_cannot_read() {
        let mut bad = spec("/x", "simulate");
        bad.handler = bad.handler.param("work", "soon");
        let err = RegistryBuilder::default().build(vec![bad]).unwrap_err();
        assert!(matches!(&err, RegistryError::BadParams { command, .. } if command == "/x"), "{err}");
        assert!(err.to_string().contains("not a duration"), "{err}");
    }

    #[test]
    fn lists_commands_sorted() {
        let r = RegistryBuilder::default().build(vec![spec("/b", "echo"), spec("/a", "help")]).unwrap();
        assert_eq!(r.names(), "/a, /b");
        assert!(r.handler(r.get("/a").unwrap()).is_some());
    }
}
