//! The figures the analyzer reports per stage: the log contract's [`Metric`] table, which
//! lives once in `chatops_core::contract` (field names, stages, labels). This module adds
//! only the JSON schema the committed `MetricsSummary` schema is checked against.

pub use chatops_core::contract::Metric;

/// The schema of a serialized [`Metric`]: one of the log fields of the table.
#[cfg(test)]
pub(crate) struct MetricSchema;

#[cfg(test)]
impl schemars::JsonSchema for MetricSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Metric".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let fields: Vec<&str> = Metric::ALL.iter().map(|m| m.field()).collect();
        schemars::json_schema!({
            "description": "A reported figure, named by the log field that carries it.",
            "type": "string",
            "enum": fields,
        })
    }
}
