//! Artillery-style `{{ ... }}` templates in profile strings: compiled once when the profile
//! is loaded, rendered once per request.
//!
//! Supported expressions: `$randomNumber(a, b)` (inclusive integers), `$randomString(n)`
//! (ASCII letters and digits), `$uuid` (v4), `$processEnvironment.NAME` and `$env.NAME`.
//! Environment variables are read at compile time, because they cannot change during a run;
//! a template that names an unset variable is an error rather than an empty string, so a
//! forgotten `export` fails before the first request instead of sending garbage.
//!
//! `{{ name }}` reads a `config.variables` name or a payload field, when the profile gives a
//! [`Bindings`]: a constant is folded in at compile time, a list value or a payload column
//! is read per virtual user ([`Template::render_vu_into`]). It also reads a value an
//! earlier step of the same flow captured from its answer (`capture: … as: name`), when
//! the [`Scope`] it compiles in names it; until a step has captured it, it renders empty.
//! Anything else inside `{{ }}` (JavaScript, names not defined) is refused with its text.

use std::sync::Arc;

use crate::profile::vars::{Bindings, Vu};

/// Longest template source accepted (a request body is rarely more than a few hundred bytes).
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;
/// Longest `$randomString(n)`.
pub const MAX_RANDOM_STRING: usize = 4096;
/// Most `{{ }}` expressions in one template.
pub const MAX_EXPRESSIONS: usize = 256;

/// Why a template did not compile. The profile loader adds the file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` without a closing `}}}}`")]
    Unclosed,
    #[error(
        "unknown template expression `{{{{ {0} }}}}` (supported: $randomNumber(a, b), $randomString(n), $uuid, $processEnvironment.NAME, $env.NAME)"
    )]
    Unknown(String),
    #[error("bad arguments in `{{{{ {0} }}}}`: {1}")]
    BadArguments(String, &'static str),
    #[error(
        "`{{{{ {0} }}}}` is neither a config.variables name, a payload field nor a value captured by an earlier step (defined: {1}); or use $randomNumber(a, b), $randomString(n), $uuid, $env.NAME"
    )]
    UnknownVariable(String, String),
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("template is longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    #[error("template has more than {MAX_EXPRESSIONS} expressions")]
    TooManyExpressions,
}

/// Where templates read environment variables from: the process, or a map in tests (the
/// 2024 edition makes `std::env::set_var` unsafe, and this crate forbids unsafe code).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(Box<str>),
    RandomNumber {
        lo: i64,
        hi: i64,
    },
    RandomString(usize),
    Uuid,
    /// A per-user value of the bindings.
    Var {
        slot: usize,
        from: Arc<Bindings>,
    },
    /// A value the user's flow captured from an earlier answer.
    Captured {
        slot: usize,
    },
}

/// The names a `{{ name }}` may read when a template compiles: the profile's variables and
/// payload fields, and the values earlier steps of the flow capture (name, capture slot).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub vars: Option<&'a Arc<Bindings>>,
    pub captured: &'a [(String, usize)],
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Bytes a rendering usually takes, to size the output buffer once.
    size_hint: usize,
}

impl Template {
    /// A template that always renders `text` (no `{{ }}` processing).
    pub fn literal(text: &str) -> Self {
        let pieces = if text.is_empty() { vec![] } else { vec![Piece::Lit(text.into())] };
        Template { pieces, size_hint: text.len() }
    }

    /// Compiles without variables: `{{ name }}` is an error.
    pub fn compile(src: &str, env: &dyn Env) -> Result<Self, TemplateError> {
        Template::compile_with(src, env, None)
    }

    /// Compiles with the profile's variables and payload fields in scope.
    pub fn compile_with(src: &str, env: &dyn Env, vars: Option<&Arc<Bindings>>) -> Result<Self, TemplateError> {
        Template::compile_in(src, env, Scope { vars, captured: &[] })
    }

    /// Compiles with variables, payload fields and captured values in scope.
    pub fn compile_in(src: &str, env: &dyn Env, scope: Scope<'_>) -> Result<Self, TemplateError> {
        if src.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong);
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        let mut n_expr = 0;
        while let Some(open) = rest.find("{{") {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            n_expr += 1;
            if n_expr > MAX_EXPRESSIONS {
                return Err(TemplateError::TooManyExpressions);
            }
            let expr = after[..close].trim();
            match compile_expr(expr, env, scope)? {
                Piece::Lit(s) => lit.push_str(&s),
                piece => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit).into()));
                    }
                    pieces.push(piece);
                }
            }
            rest = &after[close + 2..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit.into()));
        }
        let size_hint = pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.len(),
                Piece::RandomNumber { .. } => 20,
                Piece::RandomString(n) => *n,
                Piece::Uuid => 36,
                Piece::Var { .. } | Piece::Captured { .. } => 16,
            })
            .sum();
        Ok(Template { pieces, size_hint })
    }

    /// The text when the template has no per-request parts.
    pub fn as_static(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn size_hint(&self) -> usize {
        self.size_hint
    }

    /// The bindings its variables read, when it has any.
    pub fn bindings(&self) -> Option<&Arc<Bindings>> {
        self.pieces.iter().find_map(|p| match p {
            Piece::Var { from, .. } => Some(from),
            _ => None,
        })
    }

    /// Appends one rendering to `out`; variables come from a fresh virtual user, drawn once
    /// for this rendering.
    pub fn render_into(&self, out: &mut String) {
        self.render_vu_into(None, out);
    }

    /// Appends one rendering for a virtual user (`None`: a fresh one for this rendering).
    pub fn render_vu_into(&self, vu: Option<&Vu>, out: &mut String) {
        let mut drawn: Option<Vu> = None;
        for piece in &self.pieces {
            match piece {
                Piece::Var { slot, from } => {
                    let vu = match vu {
                        Some(v) => v,
                        None => drawn.get_or_insert_with(|| from.new_vu()),
                    };
                    out.push_str(from.value(*slot, vu));
                }
                Piece::Captured { slot } => {
                    if let Some(v) = vu.and_then(|v| v.captured(*slot)) {
                        out.push_str(v);
                    }
                }
                Piece::Lit(s) => out.push_str(s),
                Piece::RandomNumber { lo, hi } => {
                    use std::fmt::Write;
                    let _ = write!(out, "{}", fastrand::i64(*lo..=*hi));
                }
                Piece::RandomString(n) => out.extend((0..*n).map(|_| fastrand::alphanumeric())),
                Piece::Uuid => {
                    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
                    out.push_str(id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.size_hint);
        self.render_into(&mut out);
        out
    }
}

fn compile_expr(expr: &str, env: &dyn Env, scope: Scope<'_>) -> Result<Piece, TemplateError> {
    let unknown = || TemplateError::Unknown(expr.chars().take(80).collect());
    let vars = scope.vars.filter(|b| !b.is_empty());
    if !expr.starts_with('$') && (vars.is_some() || !scope.captured.is_empty()) {
        if let Some((_, slot)) = scope.captured.iter().find(|(name, _)| name == expr) {
            return Ok(Piece::Captured { slot: *slot });
        }
        let Some((b, slot)) = vars.and_then(|b| Some((b, b.slot(expr)?))) else {
            let defined = vars.map(|b| b.names()).unwrap_or_default().iter();
            let names: Vec<&str> =
                defined.chain(scope.captured.iter().map(|(n, _)| n)).take(20).map(String::as_str).collect();
            return Err(TemplateError::UnknownVariable(expr.chars().take(80).collect(), names.join(", ")));
        };
        return Ok(match b.constant(slot) {
            Some(v) => Piece::Lit(v.into()),
            None => Piece::Var { slot, from: Arc::clone(b) },
        });
    }
    if expr == "$uuid" || expr == "$uuid()" || expr == "$randomUUID" || expr == "$randomUUID()" {
        return Ok(Piece::Uuid);
    }
    for prefix in ["$processEnvironment.", "$env."] {
        if let Some(name) = expr.strip_prefix(prefix) {
            if !is_env_name(name) {
                return Err(TemplateError::BadArguments(expr.into(), "not a variable name"));
            }
            let value = env.var(name).ok_or_else(|| TemplateError::MissingEnv(name.into()))?;
            return Ok(Piece::Lit(value.into()));
        }
    }
    if let Some(args) = call_args(expr, "$randomNumber") {
        let bad = |why| TemplateError::BadArguments(expr.into(), why);
        let [lo, hi] = args.as_slice() else { return Err(bad("expects two integers")) };
        let lo: i64 = lo.parse().map_err(|_| bad("expects two integers"))?;
        let hi: i64 = hi.parse().map_err(|_| bad("expects two integers"))?;
        if lo > hi {
            return Err(bad("the first number must not exceed the second"));
        }
        return Ok(Piece::RandomNumber { lo, hi });
    }
    if let Some(args) = call_args(expr, "$randomString") {
        let bad = |why| TemplateError::BadArguments(expr.into(), why);
        let n = match args.as_slice() {
            [] => 10,
            [n] => n.parse::<usize>().map_err(|_| bad("expects a length"))?,
            _ => return Err(bad("expects one length")),
        };
        if n == 0 || n > MAX_RANDOM_STRING {
            return Err(bad("length must be 1..=4096"));
        }
        return Ok(Piece::RandomString(n));
    }
    Err(unknown())
}

/// `name(a, b)` → `["a", "b"]`; `name()` → `[]`; anything else → None.
fn call_args<'a>(expr: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let inner = expr.strip_prefix(name)?.trim_start().strip_prefix('(')?.strip_suffix(')')?.trim();
    if inner.is_empty() {
        return Some(vec![]);
    }
    Some(inner.split(',').map(str::trim).collect())
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 256
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        HashMap::from([("TARGET".to_owned(), "http://127.0.0.1:9".to_owned())])
    }

    fn compile(src: &str) -> Result<Template, TemplateError> {
        Template::compile(src, &env())
    }

    #[test]
    fn plain_text_is_static() {
        let t = compile("command=/echo&text=hi").unwrap();
        assert_eq!(t.as_static(), Some("command=/echo&text=hi"));
        assert_eq!(compile("").unwrap().as_static(), Some(""));
    }

    #[test]
    fn environment_variables_resolve_at_compile_time() {
        let t = compile("{{ $processEnvironment.TARGET }}/x and {{$env.TARGET}}").unwrap();
        assert_eq!(t.as_static(), Some("http://127.0.0.1:9/x and http://127.0.0.1:9"));
    }

    #[test]
    fn random_number_stays_in_its_inclusive_range() {
        let t = compile("{{ $randomNumber(-2, 3) }}").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let n: i64 = t.render().parse().unwrap();
            assert!((-2..=3).contains(&n), "{n}");
            seen.insert(n);
        }
        assert_eq!(seen.len(), 6, "every value of the range comes up: {seen:?}");
    }

    #[test]
    fn random_string_has_the_requested_length_and_alphabet() {
        let t = compile("u={{ $randomString(12) }}.").unwrap();
        let s = t.render();
        assert_eq!(s.len(), 2 + 12 + 1);
        assert!(s[2..14].bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        assert_ne!(t.render(), t.render());
        assert_eq!(compile("{{ $randomString() }}").unwrap().render().len(), 10);
    }

    #[test]
    fn uuid_is_a_fresh_v4_each_time() {
        let t = compile("{{ $uuid }}").unwrap();
        let a = uuid::Uuid::parse_str(&t.render()).unwrap();
        let b = uuid::Uuid::parse_str(&t.render()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
    }

    #[test]
    fn refuses_unknown_and_malformed_expressions() {
        type Check = fn(&TemplateError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("{{ userId }}", |e| matches!(e, TemplateError::Unknown(x) if x == "userId")),
            ("{{ $randomNumber(5) }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("{{ $randomNumber(9, 1) }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("{{ $randomNumber(a, b) }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("{{ $randomString(0) }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("{{ $randomString(100000) }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("{{ $env.NOPE }}", |e| matches!(e, TemplateError::MissingEnv(n) if n == "NOPE")),
            ("{{ $env.A-B }}", |e| matches!(e, TemplateError::BadArguments(..))),
            ("x {{ $uuid", |e| *e == TemplateError::Unclosed),
        ];
        for (src, ok) in cases {
            let err = compile(src).unwrap_err();
            assert!(ok(&err), "{src}: {err}");
        }
    }

    #[test]
    fn refuses_oversized_templates() {
        assert_eq!(compile(&"a".repeat(MAX_TEMPLATE_LEN + 1)), Err(TemplateError::TooLong));
        let many = "{{ $uuid }}".repeat(MAX_EXPRESSIONS + 1);
        assert_eq!(compile(&many), Err(TemplateError::TooManyExpressions));
    }

    fn bindings() -> Arc<Bindings> {
        let mut b = Bindings::default();
        b.add_variable("color", vec!["red".into(), "green".into(), "blue".into()]).unwrap();
        b.add_variable("team", vec!["T1".into()]).unwrap();
        Arc::new(b)
    }

    #[test]
    fn variables_cycle_per_user_and_constants_fold_in() {
        let b = bindings();
        let t = Template::compile_with("{{ team }}:{{ color }}/{{color}}", &env(), Some(&b)).unwrap();
        assert_eq!(t.bindings(), Some(&b));
        let users: Vec<String> = (0..4)
            .map(|_| {
                let vu = b.new_vu();
                let mut out = String::new();
                t.render_vu_into(Some(&vu), &mut out);
                out
            })
            .collect();
        assert_eq!(users, ["T1:red/red", "T1:green/green", "T1:blue/blue", "T1:red/red"]);
        // Without a user, one is drawn for the whole rendering.
        let one = t.render();
        let (_, colors) = one.split_once(':').unwrap();
        let (a, c) = colors.split_once('/').unwrap();
        assert_eq!(a, c);
        let constant = Template::compile_with("team={{ team }}", &env(), Some(&b)).unwrap();
        assert_eq!(constant.as_static(), Some("team=T1"));
    }

    #[test]
    fn unknown_variables_name_what_is_defined() {
        let b = bindings();
        let err = Template::compile_with("{{ user }}", &env(), Some(&b)).unwrap_err();
        assert!(matches!(&err, TemplateError::UnknownVariable(n, defined) if n == "user" && defined == "color, team"));
        assert!(err.to_string().contains("config.variables"), "{err}");
        assert!(matches!(compile("{{ color }}"), Err(TemplateError::Unknown(_))), "no bindings, no variables");
        assert!(Template::compile_with("{{ $uuid }}-{{ color }}", &env(), Some(&b)).is_ok());
    }

    #[test]
    fn captured_values_render_per_user_once_captured() {
        let captured = [("pet_id".to_owned(), 1usize)];
        let scope = Scope { vars: None, captured: &captured };
        let t = Template::compile_in("/pets/{{ pet_id }}?x={{ $randomNumber(1, 1) }}", &env(), scope).unwrap();
        assert!(t.as_static().is_none(), "a captured value is per user");
        let mut vu = Vu::without_bindings();
        let mut out = String::new();
        t.render_vu_into(Some(&vu), &mut out);
        assert_eq!(out, "/pets/?x=1", "nothing captured yet: empty");
        vu.set_captured(1, "p-42".into());
        out.clear();
        t.render_vu_into(Some(&vu), &mut out);
        assert_eq!(out, "/pets/p-42?x=1");
        // Captured names and variables share the error message's list of what is defined.
        let b = bindings();
        let err =
            Template::compile_in("{{ nope }}", &env(), Scope { vars: Some(&b), captured: &captured }).unwrap_err();
        assert!(
            matches!(&err, TemplateError::UnknownVariable(n, d) if n == "nope" && d == "color, team, pet_id"),
            "{err}"
        );
        let err = Template::compile_in("{{ nope }}", &env(), scope).unwrap_err();
        assert!(err.to_string().contains("captured by an earlier step"), "{err}");
        // A capture and a variable side by side.
        let t = Template::compile_in("{{ team }}/{{ pet_id }}", &env(), Scope { vars: Some(&b), captured: &captured })
            .unwrap();
        out.clear();
        t.render_vu_into(Some(&vu), &mut out);
        assert_eq!(out, "T1/p-42");
    }

    #[test]
    fn hostile_text_outside_braces_is_kept_verbatim() {
        let src = "a}}b{ {c\u{0}\r\n%zz";
        assert_eq!(compile(src).unwrap().as_static(), Some(src));
    }
}
