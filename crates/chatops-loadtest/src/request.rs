//! What one request of a flow step looks like, and how its body is rendered: templates
//! filled in, the slash command's `response_url` pointed at our receiver, the command name
//! found for the per-command breakdown. No IO here; `fire` sends what this renders.
//!
//! A body written as a form (`key=value&key=value`, the way Slack sends slash commands) is
//! split into fields once, when the profile loads, so that rendering never parses a form:
//! the `response_url` field is replaced by the receiver URL for the request and the
//! `command` field is known statically unless it is templated.

use crate::inspect::Inspect;
use crate::profile::vars::{Bindings, Vu};
use crate::template::{Env, Scope, Template, TemplateError};

/// How the `response_url` field's value is rewritten for one request: the form-encoded
/// receiver base (e.g. `http%3A%2F%2F127.0.0.1%3A4321%2Fhook%2F`) followed by the request id.
#[derive(Debug, Clone, Copy)]
pub struct HookTarget<'a> {
    pub encoded_prefix: &'a str,
    pub request_id: &'a str,
}

/// Where the command name of a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKey {
    /// Known when the profile loads: the literal `command` field, or the step's label
    /// (`POST /slack/commands`) when the body has no command.
    Static(String),
    /// The `command` field is templated: decoded from each rendered body.
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Command,
    ResponseUrl,
}

/// One `key=value` of a form body.
#[derive(Debug, Clone)]
pub struct FormField {
    /// The key as sent (already form-encoded).
    key: String,
    value: Template,
    /// Values from a `form:` map are plain text and get form-encoded; values written inside
    /// a `body:` string are sent as written, as Artillery does.
    encode: bool,
    role: Role,
}

impl FormField {
    /// `key` is plain text when `encode` is true, else as written in a body.
    pub fn new(key: &str, value: Template, encode: bool) -> Self {
        let decoded = decode_component(key);
        let role = match decoded.as_str() {
            "command" => Role::Command,
            "response_url" => Role::ResponseUrl,
            _ => Role::Plain,
        };
        let key = if encode { encode_component(key) } else { key.to_owned() };
        FormField { key, value, encode, role }
    }
}

/// A request body as the profile describes it.
#[derive(Debug, Clone)]
pub enum BodySpec {
    Empty,
    /// Not form-shaped (e.g. JSON): sent as rendered, nothing rewritten.
    Raw(Template),
    Form(Vec<FormField>),
}

/// What rendering a body found out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderInfo {
    /// The body had a `response_url` that now points at the receiver.
    pub expects_response: bool,
    /// The decoded command, when it is templated.
    pub command: Option<String>,
}

impl BodySpec {
    /// A `body:` string: split into form fields when it is form-shaped.
    pub fn from_text(src: &str, env: &dyn Env) -> Result<BodySpec, TemplateError> {
        BodySpec::from_text_with(src, env, None)
    }

    /// [`BodySpec::from_text`] with the profile's variables in scope.
    pub fn from_text_with(
        src: &str,
        env: &dyn Env,
        vars: Option<&std::sync::Arc<Bindings>>,
    ) -> Result<BodySpec, TemplateError> {
        BodySpec::from_text_in(src, env, Scope { vars, captured: &[] })
    }

    /// [`BodySpec::from_text`] with variables and captured values in scope.
    pub fn from_text_in(src: &str, env: &dyn Env, scope: Scope<'_>) -> Result<BodySpec, TemplateError> {
        if let Some(parts) = split_form(src) {
            let fields = parts
                .into_iter()
                .map(|(k, v)| Ok(FormField::new(k, Template::compile_in(v, env, scope)?, false)))
                .collect::<Result<Vec<_>, TemplateError>>()?;
            return Ok(BodySpec::Form(fields));
        }
        // Not a form: still a template, compiled whole (this also reports template errors).
        Ok(BodySpec::Raw(Template::compile_in(src, env, scope)?))
    }

    /// What `beforeRequest: generateSlackSignature` sends when the step has no body: an
    /// `/echo` slash command from a random user with a random message id.
    pub fn default_echo() -> BodySpec {
        let no_env = std::collections::HashMap::<String, String>::new();
        let t = |s: &str| Template::compile(s, &no_env).expect("built-in template is valid");
        let fields = [
            ("token", "local-testing"),
            ("team_id", "T0LOADTEST"),
            ("team_domain", "loadtest"),
            ("channel_id", "C0LOADTEST"),
            ("channel_name", "loadtest"),
            ("user_id", "U{{ $randomString(10) }}"),
            ("user_name", "loadtest-{{ $randomString(6) }}"),
            ("command", "%2Fecho"),
            ("text", "load+test+{{ $uuid }}"),
            ("api_app_id", "A0LOADTEST"),
            ("response_url", "https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0LOADTEST%2F1%2Floadtest"),
            ("trigger_id", "{{ $randomNumber(1000000000, 9999999999) }}.{{ $randomString(32) }}"),
        ];
        BodySpec::Form(fields.iter().map(|(k, v)| FormField::new(k, t(v), false)).collect())
    }

    pub fn is_form(&self) -> bool {
        matches!(self, BodySpec::Form(_))
    }

    /// The body has a `response_url` field, so the bot can answer it at the receiver.
    pub fn has_response_url(&self) -> bool {
        matches!(self, BodySpec::Form(fields) if fields.iter().any(|f| f.role == Role::ResponseUrl))
    }

    /// The command of every request of this body, when the profile fixes it.
    pub fn command_key(&self) -> Option<CommandKey> {
        let BodySpec::Form(fields) = self else { return None };
        let f = fields.iter().find(|f| f.role == Role::Command)?;
        Some(match f.value.as_static() {
            Some(v) if f.encode => CommandKey::Static(v.to_owned()),
            Some(v) => CommandKey::Static(decode_component(v)),
            None => CommandKey::Dynamic,
        })
    }

    pub fn size_hint(&self) -> usize {
        match self {
            BodySpec::Empty => 0,
            BodySpec::Raw(t) => t.size_hint(),
            BodySpec::Form(fields) => fields.iter().map(|f| f.key.len() + 2 + f.value.size_hint()).sum::<usize>() + 64,
        }
    }

    /// Renders the body into `out`. With a hook, a `response_url` field is replaced by the
    /// receiver URL for this request. Variables come from one virtual user drawn for this
    /// body, so the fields of one payload row stay together.
    pub fn render_into(&self, hook: Option<HookTarget<'_>>, out: &mut String) -> RenderInfo {
        // --- profile variables (art branch): one draw per body when no user is given.
        let drawn = match self {
            BodySpec::Form(fields) => fields.iter().find_map(|f| f.value.bindings()).map(|b| b.new_vu()),
            _ => None,
        };
        self.render_vu_into(drawn.as_ref(), hook, out)
    }

    /// [`BodySpec::render_into`] for a given virtual user (`None`: each template draws its own).
    pub fn render_vu_into(&self, vu: Option<&Vu>, hook: Option<HookTarget<'_>>, out: &mut String) -> RenderInfo {
        // --- end profile variables
        let mut info = RenderInfo::default();
        match self {
            BodySpec::Empty => {}
            BodySpec::Raw(t) => t.render_vu_into(vu, out),
            BodySpec::Form(fields) => {
                let mut scratch = String::new();
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push('&');
                    }
                    out.push_str(&f.key);
                    out.push('=');
                    if let (Role::ResponseUrl, Some(h)) = (f.role, hook) {
                        out.push_str(h.encoded_prefix);
                        out.push_str(h.request_id);
                        info.expects_response = true;
                        continue;
                    }
                    let start = out.len();
                    if f.encode {
                        scratch.clear();
                        f.value.render_vu_into(vu, &mut scratch);
                        out.extend(form_urlencoded::byte_serialize(scratch.as_bytes()));
                    } else {
                        f.value.render_vu_into(vu, out);
                    }
                    if f.role == Role::Command && f.value.as_static().is_none() {
                        info.command = Some(decode_component(&out[start..]));
                    }
                }
            }
        }
        info
    }
}

/// A compiled flow step request.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: hyper::Method,
    pub url: Template,
    pub headers: Vec<(hyper::header::HeaderName, Template)>,
    pub body: BodySpec,
    pub command: CommandKey,
    /// `POST /slack/commands`, or the step's `name`.
    pub label: String,
    /// The step sets its own Content-Type; otherwise form bodies get the form type.
    pub has_content_type: bool,
    /// Posts the bot should make to the request's `response_url` (`expectAnswers`, 1 by
    /// default; 0 expects none, so the command is never lost or incomplete).
    pub expect_answers: u8,
    /// The step's `capture` and `expect`: only then is the answer's head and body kept.
    pub inspect: Option<std::sync::Arc<Inspect>>,
}

impl RequestSpec {
    pub fn new(
        method: hyper::Method,
        url: Template,
        headers: Vec<(hyper::header::HeaderName, Template)>,
        body: BodySpec,
        command: CommandKey,
        label: String,
    ) -> Self {
        let has_content_type = headers.iter().any(|(h, _)| h == hyper::header::CONTENT_TYPE);
        RequestSpec { method, url, headers, body, command, label, has_content_type, expect_answers: 1, inspect: None }
    }

    pub fn command_name(&self) -> Option<&str> {
        match &self.command {
            CommandKey::Static(s) => Some(s),
            CommandKey::Dynamic => None,
        }
    }
}

/// Splits a form-shaped body source on `&` outside `{{ }}`; None when a part has no `=` or a
/// templated key (then the body is not treated as a form).
fn split_form(src: &str) -> Option<Vec<(&str, &str)>> {
    if src.is_empty() || src.trim_start().starts_with(['{', '[', '<']) {
        return None;
    }
    let mut parts = Vec::new();
    let bytes = src.as_bytes();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(b"}}") && depth > 0 {
            depth -= 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'&' && depth == 0 {
            parts.push(&src[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&src[start..]);
    parts
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            (!k.is_empty() && !k.contains("{{") && !k.contains(char::is_whitespace)).then_some((k, v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn encode_component(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The form-encoded prefix that precedes a request id in a rewritten `response_url`.
pub fn encode_hook_prefix(receiver_base: &str) -> String {
    encode_component(&format!("{}/hook/", receiver_base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::slack::{SlackForm, SlashCommand};
    use std::collections::HashMap;

    fn body(src: &str) -> BodySpec {
        BodySpec::from_text(src, &HashMap::<String, String>::new()).unwrap()
    }

    fn parse(rendered: &str) -> SlashCommand {
        match SlashCommand::parse_form(rendered.as_bytes()).unwrap() {
            SlackForm::Command(c) => *c,
            SlackForm::SslCheck => panic!("ssl check"),
        }
    }

    #[test]
    fn rewrites_response_url_to_the_receiver() {
        let b =
            body("command=%2Fecho&text=hi+{{ $randomNumber(1, 9) }}&response_url=https%3A%2F%2Fhooks.slack.com%2Fx");
        let prefix = encode_hook_prefix("http://127.0.0.1:4321");
        let mut out = String::new();
        let info = b.render_into(Some(HookTarget { encoded_prefix: &prefix, request_id: "ab12-7" }), &mut out);
        assert!(info.expects_response);
        let cmd = parse(&out);
        assert_eq!(cmd.response_url, "http://127.0.0.1:4321/hook/ab12-7");
        assert_eq!(cmd.command, "/echo");
        assert!(cmd.text.starts_with("hi "), "{}", cmd.text);
        assert_eq!(b.command_key(), Some(CommandKey::Static("/echo".into())));
    }

    #[test]
    fn keeps_response_url_when_the_receiver_is_off() {
        let b = body("command=/echo&response_url=https%3A%2F%2Fhooks.slack.com%2Fx");
        let mut out = String::new();
        let info = b.render_into(None, &mut out);
        assert!(!info.expects_response);
        assert_eq!(parse(&out).response_url, "https://hooks.slack.com/x");
    }

    #[test]
    fn templated_command_is_decoded_per_request() {
        let b = body("command=%2Fcmd{{ $randomNumber(1, 1) }}&response_url=x");
        assert_eq!(b.command_key(), Some(CommandKey::Dynamic));
        let mut out = String::new();
        assert_eq!(b.render_into(None, &mut out).command.as_deref(), Some("/cmd1"));
    }

    #[test]
    fn default_echo_body_is_a_valid_slash_command_with_random_ids() {
        let b = BodySpec::default_echo();
        let (mut one, mut two) = (String::new(), String::new());
        let prefix = encode_hook_prefix("http://127.0.0.1:1/");
        b.render_into(Some(HookTarget { encoded_prefix: &prefix, request_id: "r-1" }), &mut one);
        b.render_into(Some(HookTarget { encoded_prefix: &prefix, request_id: "r-2" }), &mut two);
        let (a, c) = (parse(&one), parse(&two));
        assert_eq!(a.command, "/echo");
        assert_eq!(a.response_url, "http://127.0.0.1:1/hook/r-1");
        assert_ne!(a.user_id, c.user_id);
        assert_ne!(a.text, c.text);
        assert!(a.text.starts_with("load test "));
    }

    #[test]
    fn form_map_values_are_encoded() {
        let no_env = HashMap::<String, String>::new();
        let b = BodySpec::Form(vec![
            FormField::new("command", Template::literal("/deploy"), true),
            FormField::new("text", Template::compile("web & db=1", &no_env).unwrap(), true),
            FormField::new("response_url", Template::literal("https://hooks.slack.com/x"), true),
        ]);
        let mut out = String::new();
        b.render_into(None, &mut out);
        let cmd = parse(&out);
        assert_eq!((cmd.command.as_str(), cmd.text.as_str()), ("/deploy", "web & db=1"));
        assert_eq!(b.command_key(), Some(CommandKey::Static("/deploy".into())));
    }

    #[test]
    fn non_form_bodies_are_sent_as_written() {
        for src in [r#"{"command": "/echo", "x": "{{ $uuid }}"}"#, "plain text without equals", "a=1&&b=2"] {
            let b = body(src);
            assert!(!b.is_form(), "{src}");
            let mut out = String::new();
            assert_eq!(b.render_into(None, &mut out), RenderInfo::default());
        }
        assert!(!body("a=1&{{ $uuid }}=2").is_form());
        assert!(!body("a={{ $randomString(3) }}&b=x&y").is_form());
    }

    #[test]
    fn ampersands_inside_templates_do_not_split_fields() {
        let b = body("a={{ $randomNumber(1, 2) }}&b=2");
        let BodySpec::Form(fields) = &b else { panic!("not a form") };
        assert_eq!(fields.len(), 2);
    }
}
