//! The JSONPath subset of `capture: json:` and the property paths of `expect: hasProperty:`:
//! `$` (the whole answer), `.key`, `['key']` (or `["key"]`) and `[N]`, nothing else. A path
//! is parsed once, when the profile loads, so a construct outside the subset (`..`, `*`,
//! filters, slices, unions, negative indexes) is an error naming it there, not a capture
//! that silently never matches; finding a path in an answer is then a walk of at most
//! [`MAX_SEGMENTS`] steps.

use serde_json::Value;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Most segments (`.key`, `[N]`) in one path.
pub const MAX_SEGMENTS: usize = 64;
/// Largest `[N]`: an answer is read up to 1 MiB, so no array in it has more elements.
pub const MAX_INDEX: usize = 1024 * 1024;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(Box<str>),
    Index(usize),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: Box<str>,
    segments: Vec<Segment>,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` {reason} (supported: $, .key, ['key'], [N])")]
pub struct PathError {
    shown: String,
    reason: String,
}

impl PathError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        // Cut and with control characters escaped: a hostile path cannot flood or rewrite
        // a terminal through an error message.
        let mut shown: String = text
            .chars()
            .take(80)
            .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
            .collect();
        if text.chars().count() > 80 {
            shown.push('…');
        }
        PathError { shown, reason: reason.into() }
    }
}

impl JsonPath {
    /// Parses a JSONPath such as `$.items[0]['display name']`.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let err = |reason: String| PathError::new(text, reason);
        if text.len() > MAX_PATH_LEN {
            return Err(err(format!("is longer than {MAX_PATH_LEN} bytes")));
        }
        let Some(rest) = text.strip_prefix('$') else {
            return Err(err("must start with `$`".into()));
        };
        let mut segments = Vec::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            // Positions are 1-based and count the leading `$`.
            let pos = at + 2;
            let segment = match c {
                '.' => match chars.peek() {
                    Some((_, '.')) => return Err(err("uses recursive descent `..`, which is not supported".into())),
                    Some((_, '*')) => return Err(err("uses the wildcard `*`, which is not supported".into())),
                    None => return Err(err("ends with `.`: a key must follow".into())),
                    Some(_) => {
                        let mut key = String::new();
                        while let Some(&(_, k)) = chars.peek() {
                            if k == '.' || k == '[' {
                                break;
                            }
                            if !(k.is_alphanumeric() || k == '_' || k == '-' || k == '$') {
                                return Err(err(format!(
                                    "has `{}` in a `.key` at position {pos}: write ['...'] for such keys",
                                    k.escape_default()
                                )));
                            }
                            key.push(k);
                            chars.next();
                        }
                        if key.is_empty() {
                            return Err(err(format!("has an empty key at position {pos}")));
                        }
                        Segment::Key(key.into())
                    }
                },
                '[' => match chars.next() {
                    Some((_, q @ ('\'' | '"'))) => {
                        let mut key = String::new();
                        loop {
                            match chars.next() {
                                Some((_, '\\')) => match chars.next() {
                                    Some((_, e)) => key.push(e),
                                    None => return Err(err(format!("has an unclosed quoted key at position {pos}"))),
                                },
                                Some((_, e)) if e == q => break,
                                Some((_, e)) => key.push(e),
                                None => return Err(err(format!("has an unclosed quoted key at position {pos}"))),
                            }
                        }
                        match chars.next() {
                            Some((_, ']')) => Segment::Key(key.into()),
                            Some((_, ',')) => return Err(err("uses a union `[a, b]`, which is not supported".into())),
                            _ => return Err(err(format!("needs `]` after the quoted key at position {pos}"))),
                        }
                    }
                    Some((_, d)) if d.is_ascii_digit() => {
                        let mut index: usize = d as usize - '0' as usize;
                        loop {
                            match chars.next() {
                                Some((_, ']')) => break,
                                Some((_, d)) if d.is_ascii_digit() => {
                                    index = index
                                        .checked_mul(10)
                                        .and_then(|i| i.checked_add(d as usize - '0' as usize))
                                        .filter(|i| *i <= MAX_INDEX)
                                        .ok_or_else(|| {
                                            err(format!("has an index above {MAX_INDEX} at position {pos}"))
                                        })?;
                                }
                                Some((_, ':')) => {
                                    return Err(err("uses a slice `[a:b]`, which is not supported".into()));
                                }
                                Some((_, ',')) => {
                                    return Err(err("uses a union `[a, b]`, which is not supported".into()));
                                }
                                _ => return Err(err(format!("has a malformed index at position {pos}"))),
                            }
                        }
                        Segment::Index(index)
                    }
                    Some((_, '-')) => return Err(err("uses a negative index, which is not supported".into())),
                    Some((_, '*')) => return Err(err("uses the wildcard `[*]`, which is not supported".into())),
                    Some((_, '?')) => return Err(err("uses a filter `[?(...)]`, which is not supported".into())),
                    Some((_, ':')) => return Err(err("uses a slice `[a:b]`, which is not supported".into())),
                    Some((_, '(')) => return Err(err("uses a script `[(...)]`, which is not supported".into())),
                    _ => return Err(err(format!("has a malformed `[...]` at position {pos}"))),
                },
                other => {
                    return Err(err(format!("has an unexpected `{}` at position {pos}", other.escape_default())));
                }
            };
            if segments.len() == MAX_SEGMENTS {
                return Err(err(format!("has more than {MAX_SEGMENTS} segments")));
            }
            segments.push(segment);
        }
        Ok(JsonPath { text: text.into(), segments })
    }

    /// Parses a property path as `hasProperty` writes it (lodash's `_.has`): `a.b`,
    /// `items[0].id`, `['a b'].c`; the same subset without the leading `$`.
    pub fn parse_property(text: &str) -> Result<JsonPath, PathError> {
        if text.is_empty() {
            return Err(PathError::new(text, "is empty: name a property"));
        }
        if text.starts_with('$') {
            return JsonPath::parse(text);
        }
        let full = if text.starts_with('[') { format!("${text}") } else { format!("$.{text}") };
        match JsonPath::parse(&full) {
            Ok(p) => Ok(JsonPath { text: text.into(), segments: p.segments }),
            Err(e) => Err(PathError::new(text, e.reason)),
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The value at this path, if there is one (`null` is a value).
    pub fn find<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(root, |v, s| match (s, v) {
            (Segment::Key(k), Value::Object(m)) => m.get(&**k),
            (Segment::Index(i), Value::Array(a)) => a.get(*i),
            _ => None,
        })
    }
}

/// A found value as a template sees it: a string as it is, anything else as JSON text
/// (`42`, `true`, `null`, `{"a":1}`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> JsonPath {
        JsonPath::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn finds_keys_quoted_keys_and_indexes() {
        let doc = json!({"a": {"b": [10, {"c d": "x", "e'f": 2}]}, "n": null, "t": true});
        assert_eq!(path("$").find(&doc), Some(&doc));
        assert_eq!(path("$.a.b[0]").find(&doc), Some(&json!(10)));
        assert_eq!(path("$.a.b[1]['c d']").find(&doc), Some(&json!("x")));
        assert_eq!(path("$['a'][\"b\"][1]['e\\'f']").find(&doc), Some(&json!(2)));
        assert_eq!(path("$.n").find(&doc), Some(&Value::Null), "null is a value");
        assert_eq!(path("$.a.b[2]").find(&doc), None);
        assert_eq!(path("$.a.missing").find(&doc), None);
        assert_eq!(path("$.t.x").find(&doc), None, "a key of a scalar");
        assert_eq!(path("$.a[0]").find(&doc), None, "an index of an object");
        assert_eq!(path("$.a.b.0").find(&doc), None, "`.0` is a key, not an index");
        assert_eq!(path("$.a.b[1]").segments().len(), 3);
    }

    #[test]
    fn unicode_keys_work_in_both_notations() {
        let doc = json!({"ключ": {"日本": "はい"}, "emoji 🎉": 1});
        assert_eq!(path("$.ключ.日本").find(&doc), Some(&json!("はい")));
        assert_eq!(path("$['ключ']['日本']").find(&doc), Some(&json!("はい")));
        assert_eq!(path("$['emoji 🎉']").find(&doc), Some(&json!(1)));
        assert!(JsonPath::parse("$.emoji🎉").is_err(), "symbols need the bracket form");
    }

    #[test]
    fn values_render_as_text() {
        assert_eq!(value_text(&json!("plain")), "plain");
        assert_eq!(value_text(&json!(4.5)), "4.5");
        assert_eq!(value_text(&json!(null)), "null");
        assert_eq!(value_text(&json!({"a": [1]})), r#"{"a":[1]}"#);
    }

    #[test]
    fn refuses_what_is_outside_the_subset_naming_it() {
        let cases = [
            ("", "start with `$`"),
            ("a.b", "start with `$`"),
            ("$..a", "recursive descent"),
            ("$.*", "wildcard"),
            ("$[*]", "wildcard"),
            ("$.a[?(@.b > 1)]", "filter"),
            ("$.a[0:2]", "slice"),
            ("$.a[:2]", "slice"),
            ("$.a[0,1]", "union"),
            ("$['a','b']", "union"),
            ("$.a[-1]", "negative"),
            ("$.a[(@.length-1)]", "script"),
            ("$.", "ends with `.`"),
            ("$.a.", "ends with `.`"),
            ("$a", "unexpected `a`"),
            ("$.a b", "write ['...']"),
            ("$['a", "unclosed"),
            ("$['a\\", "unclosed"),
            ("$['a'", "needs `]`"),
            ("$[0", "malformed index"),
            ("$[0x1]", "malformed index"),
            ("$[]", "malformed"),
            ("$[", "malformed"),
            ("$.a]", "`]`"),
        ];
        for (p, needle) in cases {
            let e = JsonPath::parse(p).unwrap_err().to_string();
            assert!(e.contains(needle), "{p:?}: {e}");
            assert!(e.contains("supported: $, .key"), "{p:?}: {e}");
        }
    }

    #[test]
    fn hostile_paths_are_bounded() {
        // Huge indexes: refused, never an overflow.
        for p in ["$[1048577]", "$[99999999999999999999999999]", &format!("$[{}]", "9".repeat(5000))] {
            let e = JsonPath::parse(p).unwrap_err().to_string();
            assert!(e.contains("index above") || e.contains("longer than"), "{e}");
        }
        assert!(JsonPath::parse("$[1048576]").is_ok());
        // Deep nesting: a bounded number of segments.
        let deep = format!("${}", ".a".repeat(MAX_SEGMENTS));
        assert_eq!(path(&deep).segments().len(), MAX_SEGMENTS);
        let deeper = format!("${}", ".a".repeat(MAX_SEGMENTS + 1));
        assert!(JsonPath::parse(&deeper).unwrap_err().to_string().contains("more than 64 segments"));
        let long = format!("$.{}", "k".repeat(MAX_PATH_LEN));
        assert!(JsonPath::parse(&long).unwrap_err().to_string().contains("longer than"));
        // Error text is cut and escaped: a hostile path cannot flood or rewrite a terminal.
        let e = JsonPath::parse(&format!("$.a\u{1b}[2J{}", "x".repeat(500))).unwrap_err().to_string();
        assert!(e.len() < 400 && !e.contains('\u{1b}'), "{e}");
        // A deeply nested document: the walk stops at the path's length.
        let mut doc = json!("leaf");
        for _ in 0..100 {
            doc = json!({ "a": doc });
        }
        assert_eq!(path(&deep).find(&doc).map(Value::is_object), Some(true));
    }

    #[test]
    fn property_paths_read_like_lodash() {
        let doc = json!({"a": {"b": [1, {"c": 0}]}, "x y": 1});
        for (p, found) in [("a", true), ("a.b", true), ("a.b[1].c", true), ("['x y']", true), ("a.z", false)] {
            assert_eq!(JsonPath::parse_property(p).unwrap().find(&doc).is_some(), found, "{p}");
        }
        assert_eq!(JsonPath::parse_property("a.b").unwrap().as_str(), "a.b");
        assert!(JsonPath::parse_property("").is_err());
        let e = JsonPath::parse_property("a..b").unwrap_err().to_string();
        assert!(e.starts_with("`a..b`") && e.contains("recursive"), "{e}");
        assert!(JsonPath::parse_property("$.a").is_ok());
    }
}
