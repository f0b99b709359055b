//! Typed arguments of a slash command: what a command declares it takes ([`ArgSpecs`], from
//! the configuration), how its text is split into words ([`split_words`], the quoting
//! rules), and the checked values ([`Args`]) that travel in the job.
//!
//! The router parses a command's text before it enqueues anything, so a bad or missing
//! argument is answered at once with a usage message and nothing runs.
//!
//! Quoting rules:
//! - Slack's HTML escapes in the text (`&amp;`, `&lt;`, `&gt;`) are decoded first;
//! - words are separated by whitespace;
//! - `"double"` and `'single'` quotes group words into one; Slack's smart quotes `“…”` and
//!   `‘…’` (which its clients type for you) count as double and single quotes; a quote is
//!   closed only by its own kind (an ASCII `"` by `"`, a smart one by a smart one), so the
//!   other kinds inside it are plain characters;
//! - outside single quotes a backslash makes the next character literal (`\"`, `\ `);
//! - a `rest` argument takes the remainder of the text as typed, trimmed, quotes and all.
//!
//! Values are kept as canonical strings (an integer as digits, a duration as written), so
//! they can fill templates and audit records as they are; typed accessors read them back.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an argument's word is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgKind {
    /// Any single word (optionally matching `pattern`).
    #[default]
    Word,
    /// One of `choices`.
    Choice,
    /// A whole number, optionally within `min..=max`.
    Integer,
    /// A duration such as `30s`, `5m`, `1h30m`.
    Duration,
    /// The rest of the text, as typed. Must be the last argument.
    Rest,
}

/// One argument as written in the configuration (`[[commands]] args = [...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgSpec {
    pub name: String,
    #[serde(default)]
    pub kind: ArgKind,
    /// `choice`: the allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// `word`/`rest`: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `integer`: bounds, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// May be left out; then `default` (if any) is used.
    #[serde(default)]
    pub optional: bool,
    /// The value when left out (implies `optional`); checked like a typed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Its value is redacted wherever it is recorded (audit, logs).
    #[serde(default)]
    pub secret: bool,
    /// Shown by `/help`.
    #[serde(default)]
    pub description: String,
}

/// A configuration mistake in a command's arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgSpecError {
    #[error("argument name `{0}` must be 1-32 lowercase letters, digits, `-` or `_`, starting with a letter")]
    BadName(String),
    #[error("argument `{0}` is declared twice")]
    Duplicate(String),
    #[error("argument `{0}`: a `rest` argument must be the last one")]
    RestNotLast(String),
    #[error("argument `{0}`: a required argument cannot follow an optional one")]
    RequiredAfterOptional(String),
    #[error("argument `{0}`: a `choice` argument needs a non-empty `choices` list")]
    NoChoices(String),
    #[error("argument `{name}`: `{key}` does not apply to a `{kind}` argument")]
    Inapplicable { name: String, key: &'static str, kind: &'static str },
    #[error("argument `{name}`: `pattern` is not a valid regular expression: {message}")]
    BadPattern { name: String, message: String },
    #[error("argument `{name}`: `min` is larger than `max`")]
    EmptyRange { name: String },
    #[error("argument `{name}`: the default `{value}` is not a valid value: {message}")]
    BadDefault { name: String, value: String, message: String },
}

/// Why a command's text does not fit its arguments. Shown to the user with the usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("missing `{0}`")]
    Missing(String),
    #[error("unexpected `{0}` (this command takes no more arguments)")]
    TooMany(String),
    #[error("`{name}` must be one of {choices}, not `{value}`")]
    NotAChoice { name: String, value: String, choices: String },
    #[error("`{value}` is not a valid `{name}`")]
    NoMatch { name: String, value: String },
    #[error("`{name}` must be a whole number, not `{value}`")]
    NotAnInteger { name: String, value: String },
    #[error("`{name}` must be between {min} and {max}, not {value}")]
    OutOfRange { name: String, value: i64, min: i64, max: i64 },
    #[error("`{name}` must be a duration such as 30s or 5m, not `{value}`")]
    NotADuration { name: String, value: String },
    #[error("a quote is not closed")]
    UnclosedQuote,
}

/// One checked argument declaration.
#[derive(Debug, Clone)]
struct ArgSpec {
    raw: RawArgSpec,
    pattern: Option<regex::Regex>,
}

/// A command's declared arguments, validated. Empty: the command takes free text (its
/// handler reads `text` as it is), as every command did before arguments existed.
#[derive(Debug, Clone, Default)]
pub struct ArgSpecs {
    specs: Vec<ArgSpec>,
}

impl PartialEq for ArgSpecs {
    fn eq(&self, other: &Self) -> bool {
        self.raw().eq(other.raw())
    }
}

/// Checked argument values by name (canonical strings), as stored in the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Args(pub BTreeMap<String, String>);

impl Args {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name)?.parse().ok()
    }

    pub fn get_duration(&self, name: &str) -> Option<Duration> {
        crate::time::parse_duration(self.get(name)?).ok()
    }

    /// The values with those of `secret` arguments replaced, for records and logs.
    pub fn redacted(&self, specs: &ArgSpecs) -> Args {
        let secret = |name: &str| specs.specs.iter().any(|s| s.raw.secret && s.raw.name == name);
        Args(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), if secret(k) { "[redacted]".to_owned() } else { v.clone() }))
                .collect(),
        )
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn kind_name(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Word => "word",
        ArgKind::Choice => "choice",
        ArgKind::Integer => "integer",
        ArgKind::Duration => "duration",
        ArgKind::Rest => "rest",
    }
}

impl ArgSpecs {
    /// Validates the declarations of one command.
    pub fn new(raw: Vec<RawArgSpec>) -> Result<ArgSpecs, ArgSpecError> {
        let mut specs: Vec<ArgSpec> = Vec::with_capacity(raw.len());
        let mut seen_optional = false;
        let last = raw.len().saturating_sub(1);
        for (i, r) in raw.into_iter().enumerate() {
            let name = r.name.clone();
            if !is_valid_name(&name) {
                return Err(ArgSpecError::BadName(name));
            }
            if specs.iter().any(|s| s.raw.name == name) {
                return Err(ArgSpecError::Duplicate(name));
            }
            if r.kind == ArgKind::Rest && i != last {
                return Err(ArgSpecError::RestNotLast(name));
            }
            let optional = r.optional || r.default.is_some();
            if !optional && seen_optional {
                return Err(ArgSpecError::RequiredAfterOptional(name));
            }
            seen_optional |= optional;
            let kind = kind_name(r.kind);
            let inapplicable = |key| ArgSpecError::Inapplicable { name: name.clone(), key, kind };
            match r.kind {
                ArgKind::Choice if r.choices.is_empty() => return Err(ArgSpecError::NoChoices(name)),
                ArgKind::Choice => {}
                _ if !r.choices.is_empty() => return Err(inapplicable("choices")),
                _ => {}
            }
            if r.kind != ArgKind::Integer && (r.min.is_some() || r.max.is_some()) {
                return Err(inapplicable(if r.min.is_some() { "min" } else { "max" }));
            }
            if r.min.zip(r.max).is_some_and(|(lo, hi)| lo > hi) {
                return Err(ArgSpecError::EmptyRange { name });
            }
            let pattern = match (&r.pattern, r.kind) {
                (None, _) => None,
                (Some(p), ArgKind::Word | ArgKind::Rest) => Some(
                    regex::Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| ArgSpecError::BadPattern { name: name.clone(), message: e.to_string() })?,
                ),
                (Some(_), _) => return Err(inapplicable("pattern")),
            };
            let spec = ArgSpec { raw: RawArgSpec { optional, ..r }, pattern };
            if let Some(value) = &spec.raw.default {
                spec.check(value).map_err(|e| ArgSpecError::BadDefault {
                    name: name.clone(),
                    value: value.clone(),
                    message: e.to_string(),
                })?;
            }
            specs.push(spec);
        }
        Ok(ArgSpecs { specs })
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The declarations as configured (for `/help` and for re-serializing).
    pub fn raw(&self) -> impl Iterator<Item = &RawArgSpec> {
        self.specs.iter().map(|s| &s.raw)
    }

    /// `/deploy <service> <env: staging|production> [version]`.
    pub fn usage(&self, command: &str) -> String {
        let mut out = command.to_owned();
        for s in &self.specs {
            let shape = match s.raw.kind {
                ArgKind::Choice => format!("{}: {}", s.raw.name, s.raw.choices.join("|")),
                ArgKind::Rest => format!("{}...", s.raw.name),
                _ => s.raw.name.clone(),
            };
            out.push(' ');
            out.push_str(&if s.raw.optional { format!("[{shape}]") } else { format!("<{shape}>") });
        }
        out
    }

    /// Splits and checks a command's text. With no declared arguments every text is
    /// accepted (and nothing is parsed).
    pub fn parse(&self, text: &str) -> Result<Args, ArgError> {
        let mut args = Args::default();
        if self.specs.is_empty() {
            return Ok(args);
        }
        let text = decode_slack_escapes(text);
        let words = split_words(&text)?;
        let mut next = 0;
        for spec in &self.specs {
            let value = if spec.raw.kind == ArgKind::Rest {
                let rest = words.get(next).map(|w| text[w.start..].trim().to_owned());
                next = words.len();
                rest
            } else {
                let word = words.get(next).map(|w| w.value.clone());
                next += usize::from(word.is_some());
                word
            };
            let value = match (value, &spec.raw.default) {
                (Some(v), _) => spec.check(&v)?,
                (None, Some(default)) => default.clone(),
                (None, None) if spec.raw.optional => continue,
                (None, None) => return Err(ArgError::Missing(spec.raw.name.clone())),
            };
            args.0.insert(spec.raw.name.clone(), value);
        }
        if let Some(extra) = words.get(next) {
            return Err(ArgError::TooMany(extra.value.clone()));
        }
        Ok(args)
    }
}

impl ArgSpec {
    /// Checks one value; returns its canonical form.
    fn check(&self, value: &str) -> Result<String, ArgError> {
        let name = || self.raw.name.clone();
        match self.raw.kind {
            ArgKind::Word | ArgKind::Rest => match &self.pattern {
                Some(p) if !p.is_match(value) => Err(ArgError::NoMatch { name: name(), value: value.to_owned() }),
                _ => Ok(value.to_owned()),
            },
            ArgKind::Choice => {
                if self.raw.choices.iter().any(|c| c == value) {
                    Ok(value.to_owned())
                } else {
                    Err(ArgError::NotAChoice {
                        name: name(),
                        value: value.to_owned(),
                        choices: self.raw.choices.join(", "),
                    })
                }
            }
            ArgKind::Integer => {
                let n: i64 =
                    value.parse().map_err(|_| ArgError::NotAnInteger { name: name(), value: value.to_owned() })?;
                let (min, max) = (self.raw.min.unwrap_or(i64::MIN), self.raw.max.unwrap_or(i64::MAX));
                if (min..=max).contains(&n) {
                    Ok(n.to_string())
                } else {
                    Err(ArgError::OutOfRange { name: name(), value: n, min, max })
                }
            }
            ArgKind::Duration => match crate::time::parse_duration(value) {
                Ok(_) => Ok(value.to_owned()),
                Err(_) => Err(ArgError::NotADuration { name: name(), value: value.to_owned() }),
            },
        }
    }
}

/// One word of a command's text and where it started in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub value: String,
    /// Byte offset of the word's first character (its opening quote, if quoted).
    pub start: usize,
}

/// Slack escapes `&`, `<` and `>` in a command's text.
pub fn decode_slack_escapes(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Splits text into words by the quoting rules of this module.
pub fn split_words(text: &str) -> Result<Vec<Word>, ArgError> {
    /// The open quote, and so what closes it: an ASCII quote closes only with its twin,
    /// a smart quote with either smart quote of its kind (clients pair them loosely).
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Double,
        SmartDouble,
        Single,
        SmartSingle,
    }
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quote = Quote::None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        let word = current.get_or_insert_with(|| Word { value: String::new(), start: i });
        match (quote, c) {
            (Quote::None, c) if c.is_whitespace() => {
                if let Some(w) = current.take().filter(|w| w.start != i) {
                    words.push(w);
                }
            }
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '“' | '”') => quote = Quote::SmartDouble,
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '‘' | '’') => quote = Quote::SmartSingle,
            (Quote::Double, '"') | (Quote::SmartDouble, '”' | '“') => quote = Quote::None,
            (Quote::Single, '\'') | (Quote::SmartSingle, '’' | '‘') => quote = Quote::None,
            (Quote::None | Quote::Double | Quote::SmartDouble, '\\') => match chars.next() {
                Some((_, escaped)) => word.value.push(escaped),
                None => word.value.push('\\'),
            },
            (_, c) => word.value.push(c),
        }
    }
    if quote != Quote::None {
        return Err(ArgError::UnclosedQuote);
    }
    if let Some(w) = current {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: ArgKind) -> RawArgSpec {
        RawArgSpec { name: name.into(), kind, ..Default::default() }
    }

    fn deploy() -> ArgSpecs {
        ArgSpecs::new(vec![
            RawArgSpec { pattern: Some("[a-z0-9-]{1,40}".into()), ..spec("service", ArgKind::Word) },
            RawArgSpec { choices: vec!["staging".into(), "production".into()], ..spec("env", ArgKind::Choice) },
            RawArgSpec { optional: true, ..spec("version", ArgKind::Word) },
        ])
        .unwrap()
    }

    fn values(args: &Args) -> Vec<(&str, &str)> {
        args.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn words_follow_the_quoting_rules() {
        let split = |t: &str| split_words(t).unwrap().into_iter().map(|w| w.value).collect::<Vec<_>>();
        assert_eq!(split("  a  b\tc\n"), ["a", "b", "c"]);
        assert_eq!(split(r#"say "hello world" 'it''s' x"#), ["say", "hello world", "its", "x"]);
        assert_eq!(split("“smart quotes” ‘work too’"), ["smart quotes", "work too"]);
        assert_eq!(split(r#"a\ b "c\"d" 'e\f'"#), ["a b", "c\"d", "e\\f"]);
        assert_eq!(split(r#""" x"#), ["", "x"], "an empty quoted word is a word");
        assert_eq!(split("\"it’s “fine”\" ‘a \"b\"’"), ["it’s “fine”", "a \"b\""], "each quote closes only its kind");
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split_words("\"open"), Err(ArgError::UnclosedQuote));
        assert_eq!(split_words("‘open"), Err(ArgError::UnclosedQuote));
        assert_eq!(
            split_words("\"mixed”"),
            Err(ArgError::UnclosedQuote),
            "found by fuzzing: an ASCII quote is not closed by a smart one"
        );
    }

    #[test]
    fn a_command_parses_into_checked_values() {
        let d = deploy();
        assert_eq!(values(&d.parse("web production").unwrap()), [("env", "production"), ("service", "web")]);
        assert_eq!(
            values(&d.parse("web staging v1.2").unwrap()),
            [("env", "staging"), ("service", "web"), ("version", "v1.2")]
        );
        assert_eq!(d.usage("/deploy"), "/deploy <service> <env: staging|production> [version]");
    }

    #[test]
    fn bad_input_says_what_was_wrong() {
        let d = deploy();
        let cases: &[(&str, ArgError)] = &[
            ("", ArgError::Missing("service".into())),
            ("web", ArgError::Missing("env".into())),
            (
                "web prod",
                ArgError::NotAChoice {
                    name: "env".into(),
                    value: "prod".into(),
                    choices: "staging, production".into(),
                },
            ),
            ("Web staging", ArgError::NoMatch { name: "service".into(), value: "Web".into() }),
            ("web staging v1 extra", ArgError::TooMany("extra".into())),
            ("\"web staging", ArgError::UnclosedQuote),
        ];
        for (text, want) in cases {
            assert_eq!(d.parse(text).as_ref(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn injection_attempts_are_one_literal_value_or_refused() {
        let free = ArgSpecs::new(vec![spec("target", ArgKind::Word), spec("note", ArgKind::Rest)]).unwrap();
        let args = free.parse(r#""web; rm -rf /" $(reboot) `id` && echo &lt;b&gt;"#).unwrap();
        assert_eq!(args.get("target"), Some("web; rm -rf /"));
        assert_eq!(args.get("note"), Some("$(reboot) `id` && echo <b>"));
        let newline = free.parse("\"a\nb\" c").unwrap();
        assert_eq!(newline.get("target"), Some("a\nb"));
        // A pattern is matched against the whole value.
        let d = deploy();
        assert!(matches!(d.parse("\"web; rm -rf /\" staging"), Err(ArgError::NoMatch { .. })));
        assert!(matches!(d.parse("web\nstaging\nx y"), Err(ArgError::TooMany(_))));
    }

    #[test]
    fn integers_durations_defaults_and_rest() {
        let s = ArgSpecs::new(vec![
            RawArgSpec { min: Some(0), max: Some(50), ..spec("replicas", ArgKind::Integer) },
            RawArgSpec { default: Some("5m".into()), ..spec("timeout", ArgKind::Duration) },
            RawArgSpec { optional: true, ..spec("reason", ArgKind::Rest) },
        ])
        .unwrap();
        let a = s.parse("3").unwrap();
        assert_eq!((a.get_i64("replicas"), a.get_duration("timeout")), (Some(3), Some(Duration::from_secs(300))));
        assert_eq!(a.get("reason"), None);
        let a = s.parse("+07 90s  because \"the\" load   ").unwrap();
        assert_eq!(values(&a), [("reason", "because \"the\" load"), ("replicas", "7"), ("timeout", "90s")]);
        assert!(matches!(s.parse("51"), Err(ArgError::OutOfRange { value: 51, .. })));
        assert!(matches!(s.parse("three"), Err(ArgError::NotAnInteger { .. })));
        assert!(matches!(s.parse("3 soon"), Err(ArgError::NotADuration { .. })));
        assert_eq!(s.usage("/scale"), "/scale <replicas> [timeout] [reason...]");
    }

    #[test]
    fn no_declared_arguments_accepts_any_text() {
        assert!(ArgSpecs::default().parse("anything \"unclosed").unwrap().is_empty());
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let bad: Vec<(Vec<RawArgSpec>, &str)> = vec![
            (vec![spec("Service", ArgKind::Word)], "argument name"),
            (vec![spec("a", ArgKind::Word), spec("a", ArgKind::Word)], "twice"),
            (vec![spec("a", ArgKind::Rest), spec("b", ArgKind::Word)], "last"),
            (vec![RawArgSpec { optional: true, ..spec("a", ArgKind::Word) }, spec("b", ArgKind::Word)], "follow"),
            (vec![spec("a", ArgKind::Choice)], "choices"),
            (vec![RawArgSpec { choices: vec!["x".into()], ..spec("a", ArgKind::Word) }], "does not apply"),
            (vec![RawArgSpec { pattern: Some("(".into()), ..spec("a", ArgKind::Word) }], "regular expression"),
            (vec![RawArgSpec { pattern: Some("x".into()), ..spec("a", ArgKind::Integer) }], "does not apply"),
            (vec![RawArgSpec { min: Some(3), max: Some(1), ..spec("a", ArgKind::Integer) }], "larger"),
            (vec![RawArgSpec { default: Some("x".into()), ..spec("a", ArgKind::Integer) }], "default"),
        ];
        for (specs, needle) in bad {
            let err = ArgSpecs::new(specs.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{specs:?}: {err}");
        }
    }

    #[test]
    fn secret_values_are_redacted() {
        let s = ArgSpecs::new(vec![
            spec("user", ArgKind::Word),
            RawArgSpec { secret: true, ..spec("token", ArgKind::Word) },
        ])
        .unwrap();
        let a = s.parse("alice hunter2").unwrap();
        assert_eq!(values(&a.redacted(&s)), [("token", "[redacted]"), ("user", "alice")]);
    }
}
