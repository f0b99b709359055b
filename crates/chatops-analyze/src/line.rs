//! One log line → a router or worker metric record, or the reason it is skipped. This is the
//! hot path of `chatops analyze`: a substring prefilter rejects most non-metric lines without
//! parsing them, and metric lines are deserialized by serde_json into borrowed fields (no
//! allocation unless a string holds escapes).
//!
//! Shapes accepted, all with the log contract's message names and camelCase fields:
//! - tracing-subscriber's JSON with flattened fields (`timestamp` in RFC 3339);
//! - the origin TypeScript bot's lines, with `@timestamp` or `timestamp` as RFC 3339, epoch
//!   milliseconds or a numeric string, fields possibly given as numeric strings;
//! - a CloudWatch export, where the JSON follows a prefix such as
//!   `2024-05-01T10:00:00.000Z\t<requestId>\tINFO\t`; the prefix's timestamp is used when the
//!   object has none.
//!
//! Unknown keys are ignored, and a field of an unexpected type (an object where a number was
//! expected) is treated as absent rather than failing the line.

use std::borrow::Cow;
use std::fmt;

use chatops_core::contract::{ROUTER_METRICS_MESSAGE, WORKER_METRICS_MESSAGE};
use chatops_core::time::parse_rfc3339_ns;
use memchr::memmem;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::fields::{Fields, epoch_to_ns};
use crate::metric::Metric;

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum LineKind<'a> {
    Router(RouterLine<'a>),
    Worker(WorkerLine<'a>),
    /// Holds no JSON object (plain text, a stack trace, invalid UTF-8 outside a metric line).
    NotJson,
    /// JSON, but not one of the two metric lines.
    NotMetric,
    /// Looks like a metric line but is not valid JSON or lacks the fields that make it one.
    Malformed,
}

/// The router's line (one per HTTP request).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterLine<'a> {
    /// Unix nanoseconds, when the line carries a timestamp.
    pub ts_ns: Option<i64>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub command: Option<Cow<'a, str>>,
    pub quadrant: Option<Cow<'a, str>>,
    pub status_code: Option<u16>,
    pub duration_ms: f64,
    pub success: bool,
    pub error_type: Option<Cow<'a, str>>,
    pub enqueue_ms: Option<f64>,
}

/// A worker's line (one per job attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLine<'a> {
    pub ts_ns: Option<i64>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub command: Option<Cow<'a, str>>,
    pub component: Option<Cow<'a, str>>,
    pub quadrant: Option<Cow<'a, str>>,
    pub success: bool,
    pub error_type: Option<Cow<'a, str>>,
    pub attempt: u32,
    /// Indexed by [`Metric::index`]; the router-line slot is always `None`.
    pub values: [Option<f64>; Metric::COUNT],
    pub responses: Option<u32>,
}

impl WorkerLine<'_> {
    pub fn get(&self, m: Metric) -> Option<f64> {
        self.values[m.index()]
    }
}

/// Reusable line parser (holds the prefilter's searcher).
#[derive(Debug)]
pub struct LineParser {
    metrics: memmem::Finder<'static>,
}

impl Default for LineParser {
    fn default() -> Self {
        LineParser::new()
    }
}

impl LineParser {
    pub fn new() -> Self {
        // Both message names end in `metrics`; a line without `metrics"` cannot be a metric line.
        LineParser { metrics: memmem::Finder::new(b"metrics\"") }
    }

    /// Classifies one line (without its newline; a trailing `\r` is tolerated).
    pub fn parse<'a>(&self, line: &'a [u8]) -> LineKind<'a> {
        let line = line.trim_ascii();
        let Some(brace) = memchr::memchr(b'{', line) else {
            return LineKind::NotJson;
        };
        let (prefix, json) = line.split_at(brace);
        if self.metrics.find(json).is_none() {
            return if json.ends_with(b"}") { LineKind::NotMetric } else { LineKind::NotJson };
        }
        // Fast path: a hand-written scanner for the common shape; anything unusual (escapes,
        // invalid UTF-8 in a wanted field, broken structure) goes to serde_json, which decides.
        let fields = match crate::scan::scan(json) {
            Some(f) => f,
            None => match serde_json::from_slice::<Raw<'a>>(json) {
                Ok(raw) => raw.into_fields(),
                Err(_) => return if prefix.is_empty() { LineKind::Malformed } else { LineKind::NotJson },
            },
        };
        let ts_ns = fields.timestamp.or(fields.at_timestamp).or_else(|| prefix_timestamp(prefix));
        match fields.message.as_deref() {
            Some(ROUTER_METRICS_MESSAGE) => fields.into_router(ts_ns),
            Some(WORKER_METRICS_MESSAGE) => fields.into_worker(ts_ns),
            _ => LineKind::NotMetric,
        }
    }
}

/// The timestamp at the start of a CloudWatch export line, if any.
fn prefix_timestamp(prefix: &[u8]) -> Option<i64> {
    let end = prefix.iter().position(|&b| b == b'\t' || b == b' ').unwrap_or(prefix.len());
    let token = std::str::from_utf8(&prefix[..end]).ok()?;
    parse_rfc3339_ns(token).or_else(|| epoch_to_ns(token.parse().ok()?))
}

/// The slow path alone, for checking the fast path against it.
#[cfg(test)]
pub(crate) fn slow_fields(json: &[u8]) -> Option<Fields<'_>> {
    serde_json::from_slice::<Raw<'_>>(json).ok().map(Raw::into_fields)
}

/// The serde_json slow path's view of a line: the same [`Fields`], keyed by the same names
/// as the fast scanner, the timed ones through the log contract's table.
struct Raw<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
                let mut f = Fields::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "message" => f.message = map.next_value::<Text<'de>>()?.0,
                        "timestamp" => f.timestamp = map.next_value::<Option<Timestamp>>()?.and_then(|t| t.0),
                        "@timestamp" => f.at_timestamp = map.next_value::<Option<Timestamp>>()?.and_then(|t| t.0),
                        "correlationId" => f.correlation_id = map.next_value::<Text<'de>>()?.0,
                        "command" => f.command = map.next_value::<Text<'de>>()?.0,
                        "component" => f.component = map.next_value::<Text<'de>>()?.0,
                        "quadrant" => f.quadrant = map.next_value::<Text<'de>>()?.0,
                        "errorType" => f.error_type = map.next_value::<Text<'de>>()?.0,
                        "statusCode" => f.status_code = map.next_value::<Num>()?.0,
                        "success" => f.success = map.next_value::<Flag>()?.0,
                        "attempt" => f.attempt = map.next_value::<Num>()?.0,
                        "responses" => f.responses = map.next_value::<Num>()?.0,
                        other => match Metric::from_field(other) {
                            Some(m) => f.values[m.index()] = map.next_value::<Num>()?.0,
                            None => drop(map.next_value::<IgnoredAny>()?),
                        },
                    }
                }
                Ok(Raw(f))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Raw<'a> {
    fn into_fields(self) -> Fields<'a> {
        self.0
    }
}

impl<'a> Fields<'a> {
    fn into_router(self, ts_ns: Option<i64>) -> LineKind<'a> {
        let Some(duration_ms) = self.values[Metric::RouterDuration.index()] else {
            return LineKind::Malformed;
        };
        let status_code = self.status_code.filter(|s| (100.0..1000.0).contains(s)).map(|s| s as u16);
        // The origin omitted `success` on some lines; the status code then decides.
        let success = self.success.unwrap_or(match status_code {
            Some(s) => s < 400,
            None => self.error_type.is_none(),
        });
        LineKind::Router(RouterLine {
            ts_ns,
            correlation_id: self.correlation_id,
            command: self.command,
            quadrant: self.quadrant,
            status_code,
            duration_ms,
            success,
            error_type: self.error_type,
            enqueue_ms: self.values[Metric::Enqueue.index()],
        })
    }

    fn into_worker(self, ts_ns: Option<i64>) -> LineKind<'a> {
        let mut values = self.values;
        values[Metric::RouterDuration.index()] = None;
        if values.iter().all(Option::is_none) {
            return LineKind::Malformed;
        }
        let success = self.success.unwrap_or(self.error_type.is_none());
        let attempt = self.attempt.filter(|a| (1.0..1e9).contains(a)).map_or(1, |a| a as u32);
        let responses = self.responses.filter(|r| (0.0..1e9).contains(r)).map(|r| r as u32);
        LineKind::Worker(WorkerLine {
            ts_ns,
            correlation_id: self.correlation_id,
            command: self.command,
            component: self.component,
            quadrant: self.quadrant,
            success,
            error_type: self.error_type,
            attempt,
            values,
            responses,
        })
    }
}

/// A string field; any other JSON type reads as absent.
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

/// A number, or a string holding one (the origin's exports have both); anything else, and
/// non-finite values, read as absent.
#[derive(Default)]
struct Num(Option<f64>);

/// A boolean, or `"true"`/`"false"`, or 0/1.
#[derive(Default)]
struct Flag(Option<bool>);

/// RFC 3339 string, epoch milliseconds (number or numeric string); unparseable reads as absent.
#[derive(Clone, Copy)]
struct Timestamp(Option<i64>);

/// Consumes a value of a type a field does not want, so that it reads as absent.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods that make every JSON type other than the wanted one read
/// as `$absent`.
macro_rules! lenient_rest {
    ($absent:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($absent)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map)?;
            Ok($absent)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq)?;
            Ok($absent)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            lenient_rest!(Text(None));
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(finite(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                Ok(Num(v.trim().parse::<f64>().ok().and_then(finite)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Num, E> {
                Ok(Num(None))
            }
            lenient_rest!(Num(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                Ok(Flag(match v.trim() {
                    s if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
                    s if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
                    _ => None,
                }))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                Ok(Flag(matches!(v, 0 | 1).then_some(v == 1)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                Ok(Flag(matches!(v, 0 | 1).then_some(v == 1)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            lenient_rest!(Flag(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Ok(Timestamp(parse_rfc3339_ns(v).or_else(|| epoch_to_ns(v.trim().parse().ok()?))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_to_ns(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_to_ns(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_to_ns(v as f64)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Timestamp, E> {
                Ok(Timestamp(None))
            }
            lenient_rest!(Timestamp(None));
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: &str = r#"{"timestamp":"2026-11-28T12:00:00.123456Z","level":"INFO","message":"Router performance metrics","correlationId":"0193-a","command":"/echo","statusCode":200,"duration":1.234,"success":true,"enqueueMs":0.9,"quadrant":"short-read","target":"chatops_service::ingress"}"#;
    const WORKER: &str = r#"{"timestamp":"2026-11-28T12:00:00.5Z","level":"INFO","message":"Performance metrics","correlationId":"0193-a","command":"/echo","component":"sr-worker","quadrant":"short-read","totalE2eMs":5.1,"workerDurationMs":2.0,"queueWaitMs":1.5,"syncResponseMs":0.7,"asyncResponseMs":0.6,"success":true,"attempt":1,"routerMs":0.2,"enqueueMs":0.9,"handlerMs":1.6,"firstResponseE2eMs":4.0,"lastResponseE2eMs":4.8,"responses":2,"span":{"name":"job","correlation_id":"0193-a"},"spans":[{"name":"x"}]}"#;

    fn parse(line: &str) -> LineKind<'_> {
        LineParser::new().parse(line.as_bytes())
    }

    fn router(line: &str) -> RouterLine<'_> {
        match parse(line) {
            LineKind::Router(r) => r,
            other => panic!("not a router line: {other:?}"),
        }
    }

    fn worker(line: &str) -> WorkerLine<'_> {
        match parse(line) {
            LineKind::Worker(w) => w,
            other => panic!("not a worker line: {other:?}"),
        }
    }

    #[test]
    fn reads_the_router_line_of_the_log_contract() {
        let r = router(ROUTER);
        assert_eq!(r.ts_ns, parse_rfc3339_ns("2026-11-28T12:00:00.123456Z"));
        assert_eq!(r.correlation_id.as_deref(), Some("0193-a"));
        assert_eq!((r.command.as_deref(), r.quadrant.as_deref()), (Some("/echo"), Some("short-read")));
        assert_eq!((r.status_code, r.duration_ms, r.success, r.enqueue_ms), (Some(200), 1.234, true, Some(0.9)));
        assert!(matches!(r.command, Some(Cow::Borrowed(_))), "plain strings are borrowed, not copied");
    }

    #[test]
    fn reads_the_worker_line_and_ignores_span_fields() {
        let w = worker(WORKER);
        assert_eq!(w.component.as_deref(), Some("sr-worker"));
        assert_eq!((w.attempt, w.responses, w.success), (1, Some(2), true));
        let got: Vec<Option<f64>> = Metric::ALL.iter().map(|&m| w.get(m)).collect();
        assert_eq!(
            got,
            [
                None,
                Some(5.1),
                Some(2.0),
                None,
                Some(1.5),
                Some(0.7),
                Some(0.6),
                Some(0.2),
                Some(0.9),
                Some(1.6),
                Some(4.0),
                Some(4.8)
            ]
        );
    }

    #[test]
    fn reads_the_approval_wait_of_a_job_that_waited_for_approvals() {
        let line = r#"{"message":"Performance metrics","correlationId":"0193-b","command":"/deploy","totalE2eMs":90015.2,"routerMs":2.1,"approvalWaitMs":90000,"enqueueMs":3.1,"queueWaitMs":7,"workerDurationMs":3}"#;
        let w = worker(line);
        assert_eq!(w.get(Metric::ApprovalWait), Some(90000.0));
        assert_eq!(w.get(Metric::Router), Some(2.1));
        // The slow path (an escape in a wanted string sends the line there) reads it too.
        let escaped = line.replace("/deploy", r"/d\u0065ploy");
        let w = worker(&escaped);
        assert_eq!((w.command.as_deref(), w.get(Metric::ApprovalWait)), (Some("/deploy"), Some(90000.0)));
        assert_eq!(worker(WORKER).get(Metric::ApprovalWait), None, "absent on a job without approvals");
    }

    #[test]
    fn reads_origin_lines_with_at_timestamp_and_numeric_strings() {
        let line = r#"{"@timestamp":"2024-05-01T10:00:00.000Z","level":"INFO","message":"Router performance metrics","correlationId":"abc","command":"/deploy","statusCode":"500","duration":"12.5","success":"false","errorType":"DynamoDBError","errorMessage":"boom"}"#;
        let r = router(line);
        assert_eq!(r.ts_ns, parse_rfc3339_ns("2024-05-01T10:00:00Z"));
        assert_eq!((r.status_code, r.duration_ms, r.success), (Some(500), 12.5, false));
        assert_eq!(r.error_type.as_deref(), Some("DynamoDBError"));
    }

    #[test]
    fn reads_epoch_millisecond_and_epoch_second_timestamps() {
        let ms = r#"{"timestamp":1714557600123,"message":"Performance metrics","totalE2eMs":3}"#;
        assert_eq!(worker(ms).ts_ns, Some(1_714_557_600_123_000_000));
        let ms_str = r#"{"timestamp":"1714557600123","message":"Performance metrics","totalE2eMs":3}"#;
        assert_eq!(worker(ms_str).ts_ns, Some(1_714_557_600_123_000_000));
        let secs = r#"{"timestamp":1714557600,"message":"Performance metrics","totalE2eMs":3}"#;
        assert_eq!(worker(secs).ts_ns, Some(1_714_557_600_000_000_000));
    }

    #[test]
    fn reads_cloudwatch_export_lines_with_a_prefix() {
        let line = "2024-05-01T10:00:00.250Z\t6f1c-req\tINFO\t{\"message\":\"Performance metrics\",\"command\":\"/build\",\"component\":\"lw-worker\",\"totalE2eMs\":\"900\",\"workerDurationMs\":850,\"queueWaitMs\":50,\"success\":true}\r";
        let w = worker(line);
        assert_eq!(w.ts_ns, parse_rfc3339_ns("2024-05-01T10:00:00.250Z"));
        assert_eq!((w.get(Metric::TotalE2e), w.get(Metric::QueueWait)), (Some(900.0), Some(50.0)));
        assert_eq!(w.get(Metric::Handler), None);
    }

    #[test]
    fn the_objects_own_timestamp_wins_over_the_prefix() {
        let line = "2024-05-01T10:00:00.000Z\tid\tINFO\t{\"timestamp\":\"2024-05-01T10:00:09Z\",\"message\":\"Performance metrics\",\"totalE2eMs\":1}";
        assert_eq!(worker(line).ts_ns, parse_rfc3339_ns("2024-05-01T10:00:09Z"));
    }

    #[test]
    fn unescapes_strings_with_escapes() {
        let line = r#"{"message":"Router performance metrics","command":"/e\u0063ho","duration":1,"statusCode":200}"#;
        assert_eq!(router(line).command.as_deref(), Some("/echo"));
    }

    #[test]
    fn derives_success_when_the_line_omits_it() {
        let bad = r#"{"message":"Router performance metrics","duration":1,"statusCode":503}"#;
        assert!(!router(bad).success);
        let ok = r#"{"message":"Router performance metrics","duration":1,"statusCode":200}"#;
        assert!(router(ok).success);
        let failed_job = r#"{"message":"Performance metrics","totalE2eMs":1,"errorType":"Timeout"}"#;
        assert!(!worker(failed_job).success);
    }

    #[test]
    fn fields_of_unexpected_types_read_as_absent() {
        let line = r#"{"message":"Performance metrics","command":{"name":"/echo"},"component":7,"totalE2eMs":[1,2],"queueWaitMs":"n/a","workerDurationMs":2,"attempt":"x","success":"maybe","errorType":null}"#;
        let w = worker(line);
        assert_eq!((&w.command, &w.component), (&None, &None));
        assert_eq!(
            (w.get(Metric::TotalE2e), w.get(Metric::QueueWait), w.get(Metric::WorkerDuration)),
            (None, None, Some(2.0))
        );
        assert_eq!((w.attempt, w.success), (1, true));
    }

    #[test]
    fn classifies_lines_that_are_not_metrics() {
        for (line, want) in [
            ("", LineKind::NotJson),
            ("plain text from a panic", LineKind::NotJson),
            ("thread 'main' panicked at 'metrics\"'", LineKind::NotJson),
            (r#"{"message":"listening","port":3000}"#, LineKind::NotMetric),
            (r#"{"message":"Other metrics","duration":1}"#, LineKind::NotMetric),
            (r#"{"message":{"text":"Performance metrics"},"duration":1}"#, LineKind::NotMetric),
            (r#"{"message":"Router performance metrics","statusCode":200}"#, LineKind::Malformed),
            (r#"{"message":"Performance metrics","success":true}"#, LineKind::Malformed),
            (r#"{"message":"Performance metrics","totalE2eMs":1"#, LineKind::Malformed),
            ("[\"Performance metrics\"]", LineKind::NotJson),
        ] {
            assert_eq!(parse(line), want, "{line}");
        }
    }

    #[test]
    fn survives_hostile_input() {
        let p = LineParser::new();
        assert_eq!(
            p.parse(b"{\"message\":\"Performance metrics\",\"command\":\"\xff\xfe\",\"totalE2eMs\":1}"),
            LineKind::Malformed
        );
        let deep =
            format!("{{\"message\":\"Performance metrics\",\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(p.parse(deep.as_bytes()), LineKind::Malformed, "serde_json's recursion limit holds");
        let big = format!(
            "{{\"message\":\"Performance metrics\",\"totalE2eMs\":\"1e400\",\"queueWaitMs\":-1,\"pad\":\"{}\"}}",
            "a".repeat(100_000)
        );
        let LineKind::Worker(w) = p.parse(big.as_bytes()) else { panic!("big line") };
        assert_eq!(
            (w.get(Metric::TotalE2e), w.get(Metric::QueueWait)),
            (None, Some(-1.0)),
            "infinite strings read as absent"
        );
        let overflow = b"{\"message\":\"Performance metrics\",\"totalE2eMs\":1e400}";
        assert_eq!(p.parse(overflow), LineKind::Malformed, "an out-of-range number is no figure");
        assert_eq!(p.parse(b"{\"timestamp\":\"9999-99-99T99:99:99Z\",\"message\":\"Performance metrics\",\"totalE2eMs\":1,\"attempt\":-4}"), {
            let mut values = [None; Metric::COUNT];
            values[Metric::TotalE2e.index()] = Some(1.0);
            LineKind::Worker(WorkerLine {
                ts_ns: None,
                correlation_id: None,
                command: None,
                component: None,
                quadrant: None,
                success: true,
                error_type: None,
                attempt: 1,
                values,
                responses: None,
            })
        });
    }
}
