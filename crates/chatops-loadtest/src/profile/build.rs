//! From the raw YAML shape to a checked [`Profile`](super::Profile): durations, compiled
//! templates and request specs, parsed `ensure` conditions, each error with its line.

use super::raw::*;
use super::*;

pub(super) struct Builder<'a> {
    pub(super) source_name: &'a str,
    pub(super) env: &'a dyn Env,
    pub(super) notes: Vec<String>,
}

impl Builder<'_> {
    pub(super) fn err<T>(&self, line: u64, message: impl Into<String>) -> Result<T, ProfileError> {
        Err(ProfileError::Invalid { source_name: self.source_name.to_owned(), line, message: message.into() })
    }

    pub(super) fn template(&self, s: &Spanned<String>, what: &str) -> Result<Template, ProfileError> {
        Template::compile(&s.value, self.env).or_else(|e| self.err(s.referenced.line(), format!("{what}: {e}")))
    }

    pub(super) fn build(mut self, raw: RawProfile) -> Result<Profile, ProfileError> {
        let cfg = raw.config;
        let target = match &cfg.target {
            Some(t) => {
                let rendered = self.template(t, "config.target")?;
                let Some(text) = rendered.as_static() else {
                    return self
                        .err(t.referenced.line(), "config.target may use only $env/$processEnvironment templates");
                };
                Some(text.to_owned())
            }
            None => None,
        };
        if cfg.phases.is_empty() {
            return self.err(1, "config.phases is missing or empty: at least one phase is needed");
        }
        if cfg.phases.len() > MAX_PHASES {
            return self.err(cfg.phases[MAX_PHASES].referenced.line(), format!("more than {MAX_PHASES} phases"));
        }
        let phases = cfg.phases.iter().enumerate().map(|(i, p)| self.phase(i, p)).collect::<Result<Vec<_>, _>>()?;
        let mut http = HttpSettings::default();
        if let Some(h) = &cfg.http {
            if let Some(t) = &h.timeout {
                http.timeout = t.to_duration().or_else(|m| self.err(0, format!("config.http.timeout: {m}")))?;
                if http.timeout.is_zero() {
                    return self.err(0, "config.http.timeout must be more than zero");
                }
            }
            if let Some(pool) = h.pool {
                http.pool = Some(usize::try_from(pool).unwrap_or(usize::MAX).clamp(1, 100_000));
            }
        }
        let mut ensure = Vec::new();
        if let Some(e) = &cfg.ensure {
            self.ensure(e, &mut ensure)?;
        }
        if let Some(plugins) = &cfg.plugins {
            if let Some(e) = &plugins.ensure {
                self.ensure(e, &mut ensure)?;
            }
            if plugins.metrics_by_endpoint.is_some() {
                self.notes.push("plugin metrics-by-endpoint accepted: per-command breakdowns are always kept".into());
            }
        }
        if let Some(p) = &cfg.processor {
            self.notes.push(format!(
                "config.processor ({}) ignored: generateSlackSignature and captureMetrics are built in",
                p.value
            ));
        }
        if raw.scenarios.is_empty() {
            return self.err(1, "scenarios is missing or empty: at least one scenario with a flow is needed");
        }
        if raw.scenarios.len() > MAX_SCENARIOS {
            return self.err(raw.scenarios[MAX_SCENARIOS].referenced.line(), "too many scenarios");
        }
        let scenarios =
            raw.scenarios.iter().enumerate().map(|(i, s)| self.scenario(i, s)).collect::<Result<Vec<_>, _>>()?;
        if scenarios.iter().all(|s| s.weight == 0) {
            return self.err(raw.scenarios[0].referenced.line(), "every scenario has weight 0");
        }
        Ok(Profile { source: self.source_name.to_owned(), target, phases, http, ensure, scenarios, notes: self.notes })
    }

    pub(super) fn phase(&self, idx: usize, p: &Spanned<RawPhase>) -> Result<Phase, ProfileError> {
        let line = p.referenced.line();
        let r = &p.value;
        let name = r.name.clone().unwrap_or_else(|| format!("phase {}", idx + 1));
        let dur = |d: &RawDuration, what: &str| d.to_duration().or_else(|m| self.err(line, format!("{what}: {m}")));
        let nonneg = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 { Ok(v) } else { self.err(line, format!("{what} must be a number ≥ 0")) }
        };
        let phase = if let Some(pause) = &r.pause {
            if r.duration.is_some() || r.arrival_rate.is_some() || r.arrival_count.is_some() || r.ramp_to.is_some() {
                return self.err(line, "a `pause` phase takes no duration, arrivalRate, arrivalCount or rampTo");
            }
            Phase { name, duration: dur(pause, "pause")?, load: Load::Pause, max_in_flight: None }
        } else {
            let Some(d) = &r.duration else {
                return self.err(line, "phase needs `duration` (or is a `pause`)");
            };
            let duration = dur(d, "duration")?;
            let load = match (r.arrival_rate, r.ramp_to, r.arrival_count) {
                (Some(rate), ramp, None) => {
                    let from = nonneg(rate, "arrivalRate")?;
                    let to = match ramp {
                        Some(t) => nonneg(t, "rampTo")?,
                        None => from,
                    };
                    Load::Rate { from, to }
                }
                (None, Some(to), None) => Load::Rate { from: 0.0, to: nonneg(to, "rampTo")? },
                (None, None, Some(n)) => {
                    let n = nonneg(n, "arrivalCount")?;
                    if n.fract() != 0.0 || n > 1e12 {
                        return self.err(line, "arrivalCount must be a whole number");
                    }
                    Load::Count(n as u64)
                }
                (None, None, None) => return self.err(line, "phase needs arrivalRate, rampTo or arrivalCount"),
                _ => return self.err(line, "arrivalCount cannot be combined with arrivalRate or rampTo"),
            };
            let max_in_flight = r.max_vusers.map(|m| usize::try_from(m).unwrap_or(usize::MAX).max(1));
            Phase { name, duration, load, max_in_flight }
        };
        check_phase_limits(&phase).or_else(|m| self.err(line, m))?;
        Ok(phase)
    }

    pub(super) fn ensure(&self, e: &Spanned<RawEnsure>, out: &mut Vec<Condition>) -> Result<(), ProfileError> {
        let line = e.referenced.line();
        let r = &e.value;
        let short = [
            ("http.response_time.median", r.median.or(r.p50)),
            ("http.response_time.p90", r.p90),
            ("http.response_time.p95", r.p95),
            ("http.response_time.p99", r.p99),
            ("http.response_time.max", r.max),
            ("http.response_time.min", r.min),
            ("error_rate", r.max_error_rate),
        ];
        for (metric, limit) in short {
            if let Some(limit) = limit {
                let c = Condition::single(metric, Op::Le, limit).or_else(|m| self.err(line, m))?;
                out.push(c);
            }
        }
        for t in &r.thresholds {
            // Artillery: "check that a metric's value is less-than the defined value".
            for (metric, limit) in &t.value {
                let c = Condition::single(metric, Op::Lt, *limit).or_else(|m| self.err(t.referenced.line(), m))?;
                out.push(c);
            }
        }
        for c in &r.conditions {
            let expr = &c.value.expression;
            let cond = Condition::parse(&expr.value, c.value.strict.unwrap_or(true))
                .or_else(|m| self.err(expr.referenced.line(), m))?;
            out.push(cond);
        }
        Ok(())
    }

    pub(super) fn scenario(&self, idx: usize, s: &Spanned<RawScenario>) -> Result<Scenario, ProfileError> {
        let name = s.value.name.clone().unwrap_or_else(|| format!("scenario {}", idx + 1));
        if s.value.flow.is_empty() {
            return self.err(s.referenced.line(), format!("scenario `{name}` has an empty flow"));
        }
        if s.value.flow.len() > MAX_STEPS {
            return self.err(s.referenced.line(), format!("scenario `{name}` has more than {MAX_STEPS} steps"));
        }
        let mut flow = Vec::new();
        for step in &s.value.flow {
            let line = step.referenced.line();
            let (method, req) = match &step.value {
                RawStep::Think(d) => {
                    let d = d.to_duration().or_else(|m| self.err(line, format!("think: {m}")))?;
                    flow.push(Step::Think(d));
                    continue;
                }
                RawStep::Get(r) => (hyper::Method::GET, r),
                RawStep::Post(r) => (hyper::Method::POST, r),
                RawStep::Put(r) => (hyper::Method::PUT, r),
                RawStep::Patch(r) => (hyper::Method::PATCH, r),
                RawStep::Delete(r) => (hyper::Method::DELETE, r),
            };
            flow.push(Step::Request(Box::new(self.request(method, req)?)));
        }
        Ok(Scenario { name, weight: s.value.weight.unwrap_or(1), flow })
    }

    pub(super) fn request(&self, method: hyper::Method, r: &RawRequest) -> Result<RequestSpec, ProfileError> {
        let url = self.template(&r.url, "url")?;
        let mut sign_default_body = false;
        if let Some(b) = &r.before_request {
            for f in b.value.names() {
                match f {
                    "generateSlackSignature" => sign_default_body = true,
                    other => {
                        return self.err(
                            b.referenced.line(),
                            format!("beforeRequest `{other}` is not built in (only generateSlackSignature is)"),
                        );
                    }
                }
            }
        }
        if let Some(a) = &r.after_response {
            for f in a.value.names() {
                if f != "captureMetrics" {
                    return self.err(
                        a.referenced.line(),
                        format!("afterResponse `{f}` is not built in (only captureMetrics is)"),
                    );
                }
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &r.headers {
            let line = value.referenced.line();
            let header = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .or_else(|_| self.err(line, format!("`{name}` is not a valid header name")))?;
            let tpl = Template::compile(&value.value.0, self.env)
                .or_else(|e| self.err(line, format!("header {name}: {e}")))?;
            if let Some(v) = tpl.as_static()
                && hyper::header::HeaderValue::from_str(v).is_err()
            {
                return self.err(line, format!("header {name}: value is not a valid header value"));
            }
            headers.push((header, tpl));
        }
        let body = match (&r.body, &r.form) {
            (Some(_), Some(f)) => return self.err(f.referenced.line(), "a request takes `body` or `form`, not both"),
            (Some(b), None) if !b.value.is_empty() => BodySpec::from_text(&b.value, self.env)
                .or_else(|e| self.err(b.referenced.line(), format!("body: {e}")))?,
            (None, Some(f)) => {
                let mut fields = Vec::new();
                for (k, v) in &f.value {
                    let value = Template::compile(&v.value.0, self.env)
                        .or_else(|e| self.err(v.referenced.line(), format!("form field {k}: {e}")))?;
                    fields.push(FormField::new(k, value, true));
                }
                BodySpec::Form(fields)
            }
            _ if sign_default_body => BodySpec::default_echo(),
            _ => BodySpec::Empty,
        };
        let label = r.name.clone().unwrap_or_else(|| format!("{method} {}", r.url.value));
        let command = body.command_key().unwrap_or(CommandKey::Static(label.clone()));
        Ok(RequestSpec::new(method, url, headers, body, command, label))
    }
}
