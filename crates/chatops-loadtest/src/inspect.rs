//! Checks of a request's HTTP answer, for the steps that ask for them: `capture` (a
//! [`JsonPath`] into the body, or a header, stored as a per-user value that later steps
//! read as `{{ name }}`) and `expect` (artillery-plugin-expect's `statusCode`,
//! `contentType`, `hasProperty` and `equals`). Only such a step keeps its answer's head and
//! body (read up to [`crate::fire::MAX_ACK_BODY`]), and the body is parsed as JSON only when
//! a check needs it, so steps without checks cost nothing more than before. Captures run
//! first, so `equals` can compare a value the same answer just captured (as the plugin's
//! own example does).

use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, HeaderName};
use serde_json::Value;

use crate::jsonpath::{JsonPath, value_text};
use crate::profile::vars::Vu;
use crate::template::Template;

/// Where a capture reads its value.
#[derive(Debug, Clone)]
pub enum CaptureSource {
    Json(JsonPath),
    Header(HeaderName),
}

/// `capture: - json: "$.id"  as: id` (or `header: x-id`).
#[derive(Debug, Clone)]
pub struct Capture {
    pub source: CaptureSource,
    /// The user's capture slot the value goes to.
    pub slot: usize,
    /// Artillery's `strict` (default true): a failed strict capture ends the user's flow.
    pub strict: bool,
}

/// What `contentType` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// `json`: a JSON media type (`application/json`, `…+json`) and a body that parses.
    Json,
    /// Any other value: the media type, compared without case (and without parameters such
    /// as `; charset=utf-8` unless the expectation names them).
    Exactly(String),
}

/// One expectation of `expect`.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// One of these status codes.
    StatusCode(Vec<u16>),
    ContentType(ContentType),
    /// The JSON body has this property (`null` counts, as in lodash's `_.has`).
    HasProperty(JsonPath),
    /// Every value renders to the same text.
    Equals(Vec<Template>),
}

/// The kinds of expectation, the keys of the results' `failedExpectations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    StatusCode,
    ContentType,
    HasProperty,
    Equals,
}

impl ExpectKind {
    pub const ALL: [ExpectKind; 4] =
        [ExpectKind::StatusCode, ExpectKind::ContentType, ExpectKind::HasProperty, ExpectKind::Equals];

    /// As in the profile (and the results).
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectKind::StatusCode => "statusCode",
            ExpectKind::ContentType => "contentType",
            ExpectKind::HasProperty => "hasProperty",
            ExpectKind::Equals => "equals",
        }
    }

    pub fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The kinds whose bit is set in `mask`.
    pub fn in_mask(mask: u8) -> impl Iterator<Item = ExpectKind> {
        ExpectKind::ALL.into_iter().filter(move |k| mask & k.bit() != 0)
    }
}

impl Expectation {
    pub fn kind(&self) -> ExpectKind {
        match self {
            Expectation::StatusCode(_) => ExpectKind::StatusCode,
            Expectation::ContentType(_) => ExpectKind::ContentType,
            Expectation::HasProperty(_) => ExpectKind::HasProperty,
            Expectation::Equals(_) => ExpectKind::Equals,
        }
    }
}

/// A step's captures and expectations.
#[derive(Debug, Clone, Default)]
pub struct Inspect {
    pub captures: Vec<Capture>,
    pub expectations: Vec<Expectation>,
}

/// What checking one answer found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    /// A strict capture found nothing: the user's flow stops here.
    pub capture_failed: bool,
    /// [`ExpectKind::bit`]s of the expectations that failed.
    pub failed_expectations: u8,
}

/// An HTTP answer as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The body parsed once, the first time a check asks (None: not JSON).
struct LazyJson<'a> {
    body: &'a [u8],
    parsed: Option<Option<Value>>,
}

impl LazyJson<'_> {
    fn get(&mut self) -> Option<&Value> {
        // serde_json stops at 128 levels of nesting: a hostile body is "not JSON", not a
        // stack overflow.
        self.parsed.get_or_insert_with(|| serde_json::from_slice(self.body).ok()).as_ref()
    }
}

impl Inspect {
    pub fn is_empty(&self) -> bool {
        self.captures.is_empty() && self.expectations.is_empty()
    }

    /// Runs the captures (storing values in `vu`), then the expectations.
    pub fn apply(&self, answer: &Answer<'_>, mut vu: Option<&mut Vu>) -> Findings {
        let mut findings = Findings::default();
        let mut json = LazyJson { body: answer.body, parsed: None };
        for c in &self.captures {
            let value = match &c.source {
                CaptureSource::Json(path) => json.get().and_then(|doc| path.find(doc)).map(value_text),
                CaptureSource::Header(name) => {
                    answer.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                }
            };
            match (value, vu.as_deref_mut()) {
                (Some(v), Some(vu)) => vu.set_captured(c.slot, v),
                (Some(_), None) => {}
                (None, _) => findings.capture_failed |= c.strict,
            }
        }
        let vu = vu.as_deref();
        for e in &self.expectations {
            let held = match e {
                Expectation::StatusCode(codes) => codes.contains(&answer.status),
                Expectation::ContentType(want) => {
                    let got = answer.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                    match want {
                        ContentType::Json => is_json_media_type(got) && json.get().is_some(),
                        ContentType::Exactly(want) if want.contains(';') => got.trim().eq_ignore_ascii_case(want),
                        ContentType::Exactly(want) => media_type(got).eq_ignore_ascii_case(want),
                    }
                }
                Expectation::HasProperty(path) => json.get().is_some_and(|doc| path.find(doc).is_some()),
                Expectation::Equals(values) => {
                    let mut rendered = values.iter().map(|t| {
                        let mut out = String::new();
                        t.render_vu_into(vu, &mut out);
                        out
                    });
                    let first = rendered.next().unwrap_or_default();
                    rendered.all(|v| v == first)
                }
            };
            if !held {
                findings.failed_expectations |= e.kind().bit();
            }
        }
        findings
    }
}

/// The media type of a Content-Type value, without its parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

fn is_json_media_type(value: &str) -> bool {
    let t = media_type(value).to_ascii_lowercase();
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn capture_json(path: &str, slot: usize) -> Capture {
        Capture { source: CaptureSource::Json(JsonPath::parse(path).unwrap()), slot, strict: true }
    }

    #[test]
    fn captures_json_values_and_headers_into_the_users_slots() {
        let inspect = Inspect {
            captures: vec![
                capture_json("$.pet.id", 0),
                capture_json("$.pet.tags[1]", 1),
                capture_json("$.pet", 2),
                Capture { source: CaptureSource::Header(HeaderName::from_static("x-trace")), slot: 3, strict: true },
            ],
            expectations: vec![],
        };
        let h = headers(&[("content-type", "application/json"), ("x-trace", "t-1")]);
        let body = br#"{"pet": {"id": 42, "tags": ["a", "b"]}}"#;
        let mut vu = Vu::without_bindings();
        let f = inspect.apply(&Answer { status: 200, headers: &h, body }, Some(&mut vu));
        assert_eq!(f, Findings::default());
        assert_eq!(vu.captured(0), Some("42"));
        assert_eq!(vu.captured(1), Some("b"));
        assert_eq!(vu.captured(2), Some(r#"{"id":42,"tags":["a","b"]}"#));
        assert_eq!(vu.captured(3), Some("t-1"));
    }

    #[test]
    fn a_missing_value_fails_a_strict_capture_only() {
        let h = HeaderMap::new();
        let mut lenient = capture_json("$.nope", 1);
        lenient.strict = false;
        let inspect = Inspect { captures: vec![lenient], expectations: vec![] };
        let mut vu = Vu::without_bindings();
        assert_eq!(
            inspect.apply(&Answer { status: 200, headers: &h, body: b"{}" }, Some(&mut vu)),
            Findings::default()
        );
        assert_eq!(vu.captured(1), None);
        let strict = Inspect { captures: vec![capture_json("$.nope", 1)], expectations: vec![] };
        for body in [&b"{}"[..], b"not json", b"", &[0xff, 0xfe][..]] {
            assert!(strict.apply(&Answer { status: 200, headers: &h, body }, Some(&mut vu)).capture_failed, "{body:?}");
        }
        let header = Inspect {
            captures: vec![Capture {
                source: CaptureSource::Header(HeaderName::from_static("x-a")),
                slot: 0,
                strict: true,
            }],
            expectations: vec![],
        };
        assert!(header.apply(&Answer { status: 200, headers: &h, body: b"" }, Some(&mut vu)).capture_failed);
    }

    #[test]
    fn a_hostile_body_is_not_json_and_does_not_overflow() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let inspect = Inspect {
            captures: vec![capture_json("$[0]", 0)],
            expectations: vec![Expectation::ContentType(ContentType::Json)],
        };
        let h = headers(&[("content-type", "application/json")]);
        let f = inspect.apply(&Answer { status: 200, headers: &h, body: deep.as_bytes() }, None);
        assert!(f.capture_failed);
        assert_eq!(f.failed_expectations, ExpectKind::ContentType.bit());
    }

    #[test]
    fn expectations_pass_and_fail_by_kind() {
        let b = std::collections::HashMap::<String, String>::new();
        let captured = [("id".to_owned(), 0usize)];
        let scope = crate::template::Scope { vars: None, captured: &captured };
        let tpl = |s: &str| Template::compile_in(s, &b, scope).unwrap();
        let inspect = Inspect {
            captures: vec![capture_json("$.id", 0)],
            expectations: vec![
                Expectation::StatusCode(vec![200, 201]),
                Expectation::ContentType(ContentType::Json),
                Expectation::HasProperty(JsonPath::parse_property("items[0].n").unwrap()),
                Expectation::Equals(vec![tpl("{{ id }}"), tpl("7"), tpl("{{id}}")]),
            ],
        };
        let json_type = headers(&[("content-type", "application/json; charset=utf-8")]);
        let mut vu = Vu::without_bindings();
        let body = br#"{"id": 7, "items": [{"n": null}]}"#;
        let ok = inspect.apply(&Answer { status: 201, headers: &json_type, body }, Some(&mut vu));
        assert_eq!(ok, Findings::default());

        let text_type = headers(&[("content-type", "text/plain")]);
        let body = br#"{"id": 8, "items": []}"#;
        let bad = inspect.apply(&Answer { status: 500, headers: &text_type, body }, Some(&mut vu));
        let kinds: Vec<&str> = ExpectKind::in_mask(bad.failed_expectations).map(ExpectKind::as_str).collect();
        assert_eq!(kinds, ["statusCode", "contentType", "hasProperty", "equals"]);
        assert!(!bad.capture_failed);
    }

    #[test]
    fn content_types_compare_the_media_type_without_case() {
        let check = |want: ContentType, got: &str, body: &[u8]| {
            let inspect = Inspect { captures: vec![], expectations: vec![Expectation::ContentType(want)] };
            let h = headers(&[("content-type", got)]);
            inspect.apply(&Answer { status: 200, headers: &h, body }, None).failed_expectations == 0
        };
        assert!(check(ContentType::Json, "application/problem+json", b"{}"));
        assert!(!check(ContentType::Json, "application/json", b"<html>"), "a JSON type needs a JSON body");
        assert!(!check(ContentType::Json, "text/json-ish", b"{}"));
        assert!(check(ContentType::Exactly("text/html".into()), "Text/HTML; charset=utf-8", b""));
        assert!(!check(ContentType::Exactly("text/html; charset=latin1".into()), "text/html; charset=utf-8", b""));
        assert!(!check(ContentType::Exactly("text/html".into()), "text/plain", b""));
        let none = Inspect { captures: vec![], expectations: vec![Expectation::ContentType(ContentType::Json)] };
        assert_ne!(
            none.apply(&Answer { status: 200, headers: &HeaderMap::new(), body: b"{}" }, None).failed_expectations,
            0
        );
    }
}
