//! The raw YAML shape of a profile: serde structs that deny unknown fields, so a key we do
//! not understand is an error naming the key and its line. `build` turns them into a
//! checked [`Profile`](super::Profile).

use serde::de::IgnoredAny;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) config: RawConfig,
    #[serde(default)]
    pub(super) scenarios: Vec<Spanned<RawScenario>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) target: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) phases: Vec<Spanned<RawPhase>>,
    pub(super) http: Option<RawHttp>,
    pub(super) ensure: Option<Spanned<RawEnsure>>,
    pub(super) processor: Option<Spanned<String>>,
    pub(super) plugins: Option<RawPlugins>,
    /// Artillery's engine settings (`http`, `ws`, …): accepted, not applied.
    pub(super) engines: Option<Spanned<IgnoredAny>>,
    pub(super) variables: Option<Spanned<BTreeMap<String, RawVariable>>>,
    pub(super) payload: Option<RawPayloads>,
}

/// `config.plugins`: any plugin name is accepted (and warned about); `ensure` is read as our
/// `ensure` when its shape matches.
pub(super) struct RawPlugins(pub(super) Vec<(String, Spanned<RawPlugin>)>);

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPlugin {
    Ensure(RawEnsure),
    Other(IgnoredAny),
}

impl<'de> Deserialize<'de> for RawPlugins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawPlugins;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of plugin names to their settings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawPlugins, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value = if name == "ensure" {
                        map.next_value::<Spanned<RawPlugin>>()?
                    } else {
                        let v = map.next_value::<Spanned<IgnoredAny>>()?;
                        Spanned::new(RawPlugin::Other(v.value), v.referenced, v.defined)
                    };
                    if out.len() < 100 {
                        out.push((name, value));
                    }
                }
                Ok(RawPlugins(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A `config.variables` value: a scalar (a constant) or a list (cycled per virtual user).
pub(super) enum RawVariable {
    One(Scalar),
    Many(Vec<Scalar>),
}

impl<'de> Deserialize<'de> for RawVariable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawVariable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a variable: a string, number or boolean, or a list of them")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawVariable, E> {
                Ok(RawVariable::One(Scalar(v.to_owned())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawVariable, E> {
                Ok(RawVariable::One(Scalar(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawVariable, E> {
                Ok(RawVariable::One(Scalar(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawVariable, E> {
                Ok(RawVariable::One(Scalar(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawVariable, E> {
                Ok(RawVariable::One(Scalar(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawVariable, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Scalar>()? {
                    out.push(v);
                }
                Ok(RawVariable::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `config.payload`: one entry or a list of them.
pub(super) struct RawPayloads(pub(super) Vec<RawPayload>);

impl<'de> Deserialize<'de> for RawPayloads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawPayloads;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a payload (path, fields, …) or a list of payloads")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawPayloads, A::Error> {
                let one = RawPayload::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawPayloads(vec![one]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawPayloads, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<RawPayload>()? {
                    out.push(p);
                }
                Ok(RawPayloads(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPayload {
    pub(super) path: Spanned<String>,
    #[serde(default)]
    pub(super) fields: Vec<String>,
    pub(super) order: Option<Spanned<String>>,
    pub(super) skip_header: Option<bool>,
    pub(super) delimiter: Option<Spanned<String>>,
    pub(super) skip_empty_lines: Option<bool>,
    pub(super) cast: Option<bool>,
    pub(super) load_all: Option<Spanned<bool>>,
    pub(super) name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPhase {
    pub(super) duration: Option<RawDuration>,
    pub(super) arrival_rate: Option<f64>,
    pub(super) ramp_to: Option<f64>,
    pub(super) arrival_count: Option<f64>,
    pub(super) pause: Option<RawDuration>,
    pub(super) name: Option<String>,
    pub(super) max_vusers: Option<u64>,
}

/// A number of seconds, or text such as `30s`, `2m`, `1h 30m`, `500ms`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Secs(f64),
    Text(String),
}

impl RawDuration {
    pub(super) fn to_duration(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Secs(s) if s.is_finite() && *s >= 0.0 && *s <= MAX_PHASE.as_secs_f64() => {
                Ok(Duration::from_secs_f64(*s))
            }
            RawDuration::Secs(s) => Err(format!("duration {s} is out of range")),
            RawDuration::Text(t) => parse_duration(t),
        }
    }
}

/// `30`, `30s`, `2m`, `1h30m`, `250ms` → Duration. Bare numbers are seconds (Artillery).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return RawDuration::Secs(secs).to_duration();
    }
    // Artillery also takes a bare number of seconds (handled above).
    let d =
        chatops_core::time::parse_duration(t).map_err(|e| format!("{e}; or a number of seconds, as in Artillery"))?;
    if d > MAX_PHASE {
        return Err(format!("duration `{t}` is out of range"));
    }
    Ok(d)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) timeout: Option<RawDuration>,
    pub(super) pool: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawEnsure {
    pub(super) max_error_rate: Option<f64>,
    pub(super) p50: Option<f64>,
    pub(super) median: Option<f64>,
    pub(super) p90: Option<f64>,
    pub(super) p95: Option<f64>,
    pub(super) p99: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) min: Option<f64>,
    #[serde(default)]
    pub(super) thresholds: Vec<Spanned<BTreeMap<String, f64>>>,
    #[serde(default)]
    pub(super) conditions: Vec<Spanned<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub(super) expression: Spanned<String>,
    pub(super) strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Option<String>,
    pub(super) weight: Option<u32>,
    pub(super) flow: Vec<Spanned<RawStep>>,
}

/// One flow step: a request (`get`, `post`, …), `think`, or a `loop` with its `count`.
/// A struct rather than an enum because `loop` takes sibling keys (`count`, `over`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawStep {
    // Boxed: a request's raw shape is large, and a `loop` nests steps, so inline requests
    // made each level of a nested loop's deserialisation a deep stack frame.
    pub(super) get: Option<Box<RawRequest>>,
    pub(super) post: Option<Box<RawRequest>>,
    pub(super) put: Option<Box<RawRequest>>,
    pub(super) patch: Option<Box<RawRequest>>,
    pub(super) delete: Option<Box<RawRequest>>,
    pub(super) think: Option<RawDuration>,
    #[serde(rename = "loop")]
    pub(super) loop_steps: Option<Vec<Spanned<RawStep>>>,
    pub(super) count: Option<Spanned<u64>>,
    pub(super) over: Option<Spanned<IgnoredAny>>,
    pub(super) while_true: Option<Spanned<IgnoredAny>>,
    pub(super) log: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRequest {
    pub(super) url: Spanned<String>,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<Scalar>>,
    pub(super) body: Option<Spanned<String>>,
    pub(super) form: Option<Spanned<BTreeMap<String, Spanned<Scalar>>>>,
    pub(super) before_request: Option<Spanned<OneOrMany>>,
    pub(super) after_response: Option<Spanned<OneOrMany>>,
    /// Refused with what to use instead: the bot's endpoints take form bodies.
    pub(super) json: Option<Spanned<IgnoredAny>>,
    pub(super) form_data: Option<Spanned<IgnoredAny>>,
    pub(super) qs: Option<Spanned<IgnoredAny>>,
    pub(super) capture: Option<Spanned<RawCaptures>>,
    pub(super) expect: Option<Spanned<RawExpectations>>,
    /// Ours: posts the bot should make to the request's `response_url`.
    pub(super) expect_answers: Option<Spanned<u64>>,
}

/// `capture:`, one capture or a list of them. The single form has no line of its own;
/// the builder falls back to the key's.
pub(super) struct RawCaptures(pub(super) Vec<Spanned<RawCapture>>);

impl<'de> Deserialize<'de> for RawCaptures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCaptures;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a capture (json or header, with as) or a list of them")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawCaptures, A::Error> {
                let one = RawCapture::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawCaptures(vec![unplaced(one)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawCaptures, A::Error> {
                let mut out = Vec::new();
                while let Some(c) = seq.next_element::<Spanned<RawCapture>>()? {
                    out.push(c);
                }
                Ok(RawCaptures(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(value, serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCapture {
    pub(super) json: Option<Spanned<String>>,
    pub(super) header: Option<Spanned<String>>,
    #[serde(rename = "as")]
    pub(super) name: Option<Spanned<String>>,
    pub(super) strict: Option<bool>,
    /// Artillery's other sources and their options: refused with what is supported.
    pub(super) regexp: Option<Spanned<IgnoredAny>>,
    pub(super) group: Option<Spanned<IgnoredAny>>,
    pub(super) flags: Option<Spanned<IgnoredAny>>,
    pub(super) xpath: Option<Spanned<IgnoredAny>>,
    pub(super) selector: Option<Spanned<IgnoredAny>>,
    pub(super) attr: Option<Spanned<IgnoredAny>>,
    pub(super) index: Option<Spanned<IgnoredAny>>,
    pub(super) transform: Option<Spanned<IgnoredAny>>,
}

/// `expect:`, a list of expectations (each a one-key map, as artillery-plugin-expect
/// writes them) or one map of them.
pub(super) struct RawExpectations(pub(super) Vec<Spanned<RawExpectation>>);

impl<'de> Deserialize<'de> for RawExpectations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawExpectations;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of expectations (statusCode, contentType, hasProperty, equals)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawExpectations, A::Error> {
                let one = RawExpectation::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawExpectations(vec![unplaced(one)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawExpectations, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<Spanned<RawExpectation>>()? {
                    out.push(e);
                }
                Ok(RawExpectations(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawExpectation {
    /// A code or a list of codes.
    pub(super) status_code: Option<Spanned<RawVariable>>,
    pub(super) content_type: Option<Spanned<String>>,
    pub(super) has_property: Option<Spanned<String>>,
    pub(super) equals: Option<Spanned<RawVariable>>,
    /// The plugin's other expectations: refused with the supported ones.
    pub(super) not_status_code: Option<Spanned<IgnoredAny>>,
    pub(super) not_has_property: Option<Spanned<IgnoredAny>>,
    pub(super) has_header: Option<Spanned<IgnoredAny>>,
    pub(super) header_equals: Option<Spanned<IgnoredAny>>,
    pub(super) matches_regexp: Option<Spanned<IgnoredAny>>,
    pub(super) cdn_hit: Option<Spanned<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn names(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A YAML scalar read as text (header and form values may be written as numbers).
pub(super) struct Scalar(pub(super) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
