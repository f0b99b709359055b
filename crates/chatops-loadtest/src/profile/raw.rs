//! The raw YAML shape of a profile: serde structs that deny unknown fields, so a key we do
//! not understand is an error naming the key and its line. `build` turns them into a
//! checked [`Profile`](super::Profile).

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugins {
    pub(super) ensure: Option<Spanned<RawEnsure>>,
    #[serde(rename = "metrics-by-endpoint")]
    pub(super) metrics_by_endpoint: Option<serde::de::IgnoredAny>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) enum RawStep {
    Get(RawRequest),
    Post(RawRequest),
    Put(RawRequest),
    Patch(RawRequest),
    Delete(RawRequest),
    Think(RawDuration),
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
