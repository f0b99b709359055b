//! `{name}` templates: the one way a command's values get into an argv element, an
//! environment variable, a URL's path or query, or a JSON string.
//!
//! A template is parsed once, when the configuration is loaded, and checked against the
//! names the command will have ([`TemplateNames`]), so a typo is a configuration error and
//! never a surprise at run time. `{{` and `}}` stand for literal braces. Rendering only
//! substitutes text: nothing is ever interpreted by a shell, and the caller decides how a
//! value is escaped for where it lands ([`Template::render_with`]).

use std::collections::{BTreeMap, BTreeSet};

/// The values a template is rendered with: the command's arguments plus the built-in
/// names of [`BUILTIN_NAMES`].
pub type TemplateValues = BTreeMap<String, String>;

/// Names every command has, whatever its arguments.
pub const BUILTIN_NAMES: [&str; 6] = ["command", "user_id", "user_name", "channel_id", "team_id", "correlation_id"];

/// Why a template text is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{template}`: `{{` at byte {at} is not closed (write `{{{{` for a literal brace)")]
    Unclosed { template: String, at: usize },
    #[error("template `{template}`: `}}` at byte {at} has no `{{` (write `}}}}` for a literal brace)")]
    StrayClose { template: String, at: usize },
    #[error("template `{template}`: `{{{name}}}` is not a valid name (letters, digits, `_`, `-`, `.`)")]
    BadName { template: String, name: String },
    #[error("template `{template}`: unknown name `{{{name}}}`; known names: {known}")]
    UnknownName { template: String, name: String, known: String },
}

/// The names a command's templates may use: [`BUILTIN_NAMES`] and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateNames(BTreeSet<String>);

impl TemplateNames {
    /// The built-in names plus `args` (the command's declared argument names).
    pub fn with_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        TemplateNames(BUILTIN_NAMES.iter().copied().chain(args).map(str::to_owned).collect())
    }

    /// These names plus `extra` (used by presets for their own fields).
    pub fn and(mut self, extra: impl IntoIterator<Item = String>) -> Self {
        self.0.extend(extra);
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn list(&self) -> String {
        self.0.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Value(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; names are checked later by [`Template::check`].
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::StrayClose { template: text.to_owned(), at }),
                '{' => {
                    let rest = &text[at + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed { template: text.to_owned(), at })?;
                    let name = &rest[..end];
                    if !valid_name(name) {
                        return Err(TemplateError::BadName { template: text.to_owned(), name: name.to_owned() });
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Value(name.to_owned()));
                    // Skip the name and its closing brace.
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { source: text.to_owned(), pieces })
    }

    /// Parses `text` and checks every name against `names`.
    pub fn parse_checked(text: &str, names: &TemplateNames) -> Result<Template, TemplateError> {
        let template = Template::parse(text)?;
        template.check(names)?;
        Ok(template)
    }

    /// Fails on the first name that is not in `names`.
    pub fn check(&self, names: &TemplateNames) -> Result<(), TemplateError> {
        match self.names().find(|name| !names.contains(name)) {
            Some(name) => Err(TemplateError::UnknownName {
                template: self.source.clone(),
                name: name.to_owned(),
                known: names.list(),
            }),
            None => Ok(()),
        }
    }

    /// The names the template uses, in order (with repeats).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Value(name) => Some(name.as_str()),
            Piece::Literal(_) => None,
        })
    }

    /// True when the template has no placeholder at all.
    pub fn is_literal(&self) -> bool {
        self.names().next().is_none()
    }

    /// The text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with values as they are. A name without a value (an optional argument
    /// left out and without a default) renders as the empty string: names were checked
    /// when the configuration was loaded.
    pub fn render(&self, values: &TemplateValues) -> String {
        self.render_with(values, |value, out| out.push_str(value))
    }

    /// Renders with each value passed through `escape` (literals are copied as they are).
    pub fn render_with(&self, values: &TemplateValues, mut escape: impl FnMut(&str, &mut String)) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value(name) => escape(values.get(name).map(String::as_str).unwrap_or(""), &mut out),
            }
        }
        out
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> TemplateValues {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn renders_values_and_literal_braces() {
        let t = Template::parse("deploy {service} to {env} {{literal}} }}").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["service", "env"]);
        let out = t.render(&values(&[("service", "web; rm -rf /"), ("env", "{env}")]));
        // A value that looks like a placeholder is not expanded again.
        assert_eq!(out, "deploy web; rm -rf / to {env} {literal} }");
    }

    #[test]
    fn syntax_errors_name_the_position() {
        assert!(matches!(Template::parse("a {b"), Err(TemplateError::Unclosed { at: 2, .. })));
        assert!(matches!(Template::parse("a } b"), Err(TemplateError::StrayClose { at: 2, .. })));
        assert!(matches!(Template::parse("{}"), Err(TemplateError::BadName { .. })));
        assert!(matches!(Template::parse("{a b}"), Err(TemplateError::BadName { .. })));
    }

    #[test]
    fn unknown_names_are_configuration_errors() {
        let names = TemplateNames::with_args(["service"]);
        assert!(Template::parse_checked("{service} {user_id} {correlation_id}", &names).is_ok());
        let err = Template::parse_checked("{servcie}", &names).unwrap_err();
        assert!(matches!(&err, TemplateError::UnknownName { name, .. } if name == "servcie"), "{err}");
        assert!(err.to_string().contains("`service`"), "the message lists the known names: {err}");
    }

    #[test]
    fn missing_optional_values_render_empty_and_escaping_applies_to_values_only() {
        let t = Template::parse("a/{x}/{y}").unwrap();
        let out = t.render_with(&values(&[("x", "1/2")]), |v, out| out.push_str(&v.replace('/', "%2F")));
        assert_eq!(out, "a/1%2F2/");
    }
}
