//! From the raw YAML shape to a checked [`Profile`](super::Profile): durations, compiled
//! templates and request specs, parsed `ensure` conditions, loops unrolled, variables and
//! payload files loaded, captures and expectations compiled, each error with its line.
//!
//! Captured names are scoped like the flow runs: a `{{ name }}` may read a value that an
//! earlier step of the same scenario captures (or, in `expect: equals`, the same step),
//! never one captured later or in another scenario.

use std::sync::Arc;

use super::raw::*;
use super::vars::{Bindings, Order, PayloadSpec};
use super::*;
use crate::inspect::{Capture, CaptureSource, ContentType, Expectation, Inspect};
use crate::jsonpath::JsonPath;
use crate::template::Scope;

/// Deepest nesting of `loop`s.
const MAX_LOOP_DEPTH: usize = 8;
/// Most distinct captured names in a profile.
const MAX_CAPTURE_NAMES: usize = 256;
/// Most captures, and most expectations, of one request.
const MAX_CHECKS: usize = 32;
/// Slack accepts at most this many posts per `response_url`.
const MAX_EXPECT_ANSWERS: u64 = 5;

pub(super) struct Builder<'a> {
    pub(super) source_name: &'a str,
    pub(super) env: &'a dyn Env,
    pub(super) notes: Vec<String>,
    /// The profile file's folder, for payload paths; None for a built-in or in-memory text.
    pub(super) base_dir: Option<&'a Path>,
    pub(super) vars: Option<Arc<Bindings>>,
    /// Every name any step captures into; its index is its capture slot.
    pub(super) capture_names: Vec<String>,
    /// The captured names the step being built may read (name, slot).
    pub(super) in_scope: Vec<(String, usize)>,
    /// Every `as:` name of the profile, read before any step is built, so that a name used
    /// too early is reported as such rather than as unknown.
    pub(super) declared_captures: Vec<String>,
}

impl Builder<'_> {
    pub(super) fn err<T>(&self, line: u64, message: impl Into<String>) -> Result<T, ProfileError> {
        Err(ProfileError::Invalid { source_name: self.source_name.to_owned(), line, message: message.into() })
    }

    /// A note is said once, however many steps trigger it.
    fn note(&mut self, text: String) {
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    pub(super) fn template(&self, s: &Spanned<String>, what: &str) -> Result<Template, ProfileError> {
        self.compile(&s.value, s.referenced.line(), what)
    }

    fn scope(&self) -> Scope<'_> {
        Scope { vars: self.vars.as_ref(), captured: &self.in_scope }
    }

    /// Compiles a template of a flow step, in the step's scope.
    fn compile(&self, src: &str, line: u64, what: &str) -> Result<Template, ProfileError> {
        Template::compile_in(src, self.env, self.scope()).or_else(|e| self.err(line, self.template_error(what, &e)))
    }

    /// A template error, saying so when the name is captured, just not before this step.
    fn template_error(&self, what: &str, e: &crate::template::TemplateError) -> String {
        use crate::template::TemplateError::{Unknown, UnknownVariable};
        if let Unknown(name) | UnknownVariable(name, _) = e
            && self.declared_captures.contains(name)
            && !self.in_scope.iter().any(|(n, _)| n == name)
        {
            return format!(
                "{what}: `{{{{ {name} }}}}` is captured, but not by an earlier step of this scenario: a captured value \
                 can be used only after the step that captures it"
            );
        }
        format!("{what}: {e}")
    }

    pub(super) fn build(mut self, raw: RawProfile) -> Result<Profile, ProfileError> {
        let cfg = raw.config;
        let target = match &cfg.target {
            Some(t) => {
                let rendered = Template::compile(&t.value, self.env)
                    .or_else(|e| self.err(t.referenced.line(), format!("config.target: {e}")))?;
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
            self.ensure(e.referenced.line(), &e.value, &mut ensure)?;
        }
        if let Some(plugins) = &cfg.plugins {
            self.plugins(plugins, &mut ensure)?;
        }
        if let Some(e) = &cfg.engines {
            self.note(format!(
                "config.engines (line {}) ignored: requests are HTTP slash commands, sent by the built-in engine",
                e.referenced.line()
            ));
        }
        self.vars = self.bindings(&cfg)?;
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
        for s in &raw.scenarios {
            declared_captures(&s.value.flow, 0, &mut self.declared_captures);
        }
        let mut scenarios = Vec::with_capacity(raw.scenarios.len());
        for (i, s) in raw.scenarios.iter().enumerate() {
            scenarios.push(self.scenario(i, s)?);
        }
        if scenarios.iter().all(|s| s.weight == 0) {
            return self.err(raw.scenarios[0].referenced.line(), "every scenario has weight 0");
        }
        Ok(Profile {
            source: self.source_name.to_owned(),
            target,
            phases,
            http,
            ensure,
            scenarios,
            notes: self.notes,
            vars: self.vars,
        })
    }

    /// `config.plugins`: `ensure` becomes ours when its shape matches; every other plugin
    /// is named in a warning (it does not run here), never an error.
    fn plugins(&mut self, plugins: &RawPlugins, ensure: &mut Vec<Condition>) -> Result<(), ProfileError> {
        for (name, value) in &plugins.0 {
            let line = value.referenced.line();
            match (name.as_str(), &value.value) {
                ("ensure", RawPlugin::Ensure(e)) => {
                    self.ensure(line, e, ensure)?;
                }
                ("ensure", RawPlugin::Other(_)) => self.note(format!(
                    "warning: plugin ensure (line {line}) has settings we do not read: put maxErrorRate, p95, p99, \
                     thresholds or conditions under config.ensure"
                )),
                ("metrics-by-endpoint", _) => {
                    self.note("plugin metrics-by-endpoint accepted: per-command breakdowns are always kept".into());
                }
                ("expect", _) => self.note(format!(
                    "plugin expect (line {line}) accepted: a request's `expect` is checked whether the plugin is \
                     listed or not"
                )),
                (other, _) => self.note(format!(
                    "warning: plugin {other} (line {line}) ignored: Artillery plugins do not run in chatops loadtest"
                )),
            }
        }
        Ok(())
    }

    /// `config.variables` and `config.payload` → the names templates may read.
    fn bindings(&mut self, cfg: &RawConfig) -> Result<Option<Arc<Bindings>>, ProfileError> {
        let mut b = Bindings::default();
        if let Some(vars) = &cfg.variables {
            let line = vars.referenced.line();
            for (name, value) in &vars.value {
                let values = match value {
                    RawVariable::One(v) => vec![v.0.clone()],
                    RawVariable::Many(vs) => vs.iter().map(|v| v.0.clone()).collect(),
                };
                b.add_variable(name, values).or_else(|m| self.err(line, format!("config.variables: {m}")))?;
            }
        }
        if let Some(payloads) = &cfg.payload {
            if payloads.0.len() > 16 {
                return self.err(payloads.0[16].path.referenced.line(), "config.payload: more than 16 payload files");
            }
            for p in &payloads.0 {
                let spec = self.payload_spec(p)?;
                let line = p.path.referenced.line();
                let Some(dir) = self.base_dir else {
                    return self.err(
                        line,
                        "config.payload: payload paths are relative to the profile file; run the profile from a file",
                    );
                };
                let loaded =
                    vars::load_payload(&spec, dir).or_else(|m| self.err(line, format!("config.payload: {m}")))?;
                self.note(format!(
                    "payload {}: {} rows ({})",
                    spec.path,
                    loaded.rows(),
                    match spec.order {
                        Order::Random => "random order",
                        Order::Sequence => "in sequence",
                    }
                ));
                b.add_payload(loaded).or_else(|m| self.err(line, format!("config.payload: {m}")))?;
            }
        }
        Ok((!b.is_empty()).then(|| Arc::new(b)))
    }

    fn payload_spec(&mut self, p: &RawPayload) -> Result<PayloadSpec, ProfileError> {
        let line = p.path.referenced.line();
        if let Some(l) = &p.load_all {
            return self.err(
                l.referenced.line(),
                "config.payload.loadAll is not supported: name the columns with `fields` and use {{ field }}",
            );
        }
        if let Some(n) = &p.name {
            return self.err(
                n.referenced.line(),
                "config.payload.name (with loadAll) is not supported: name the columns with `fields` and use {{ field }}",
            );
        }
        if p.fields.is_empty() {
            return self.err(line, "config.payload needs `fields`: the names of the CSV columns, in order");
        }
        let order = match &p.order {
            None => Order::Random,
            Some(o) => match o.value.as_str() {
                "random" => Order::Random,
                "sequence" => Order::Sequence,
                other => {
                    return self.err(
                        o.referenced.line(),
                        format!("config.payload.order `{other}`: use `random` or `sequence`"),
                    );
                }
            },
        };
        let delimiter = match &p.delimiter {
            None => b',',
            Some(d) => match d.value.as_bytes() {
                [b] if b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r' => *b,
                _ => return self.err(d.referenced.line(), "config.payload.delimiter must be one ASCII character"),
            },
        };
        if p.cast == Some(true) {
            self.note("payload `cast: true` ignored: every value is sent as text".into());
        }
        // skipEmptyLines: empty lines are always skipped.
        let _ = p.skip_empty_lines;
        Ok(PayloadSpec {
            path: p.path.value.clone(),
            fields: p.fields.clone(),
            order,
            skip_header: p.skip_header.unwrap_or(false),
            delimiter,
        })
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

    /// `line` is the ensure block's; values inside a plugin's block have no line of their own
    /// (it is read loosely, to tell a matching shape from another), so they fall back to it.
    pub(super) fn ensure(&self, line: u64, r: &RawEnsure, out: &mut Vec<Condition>) -> Result<(), ProfileError> {
        let at = |l: u64| if l == 0 { line } else { l };
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
                let c = Condition::single(metric, Op::Lt, *limit).or_else(|m| self.err(at(t.referenced.line()), m))?;
                out.push(c);
            }
        }
        for c in &r.conditions {
            let expr = &c.value.expression;
            let cond = Condition::parse(&expr.value, c.value.strict.unwrap_or(true))
                .or_else(|m| self.err(at(expr.referenced.line()), m))?;
            out.push(cond);
        }
        Ok(())
    }

    pub(super) fn scenario(&mut self, idx: usize, s: &Spanned<RawScenario>) -> Result<Scenario, ProfileError> {
        let name = s.value.name.clone().unwrap_or_else(|| format!("scenario {}", idx + 1));
        if s.value.flow.is_empty() {
            return self.err(s.referenced.line(), format!("scenario `{name}` has an empty flow"));
        }
        let mut flow = Vec::new();
        // Captured values belong to one user's flow: a scenario starts with none.
        self.in_scope.clear();
        self.steps(&name, &s.value.flow, 0, &mut flow)?;
        if flow.is_empty() {
            return self
                .err(s.referenced.line(), format!("scenario `{name}` has no step to run (every loop is empty)"));
        }
        Ok(Scenario { name, weight: s.value.weight.unwrap_or(1), flow })
    }

    /// Compiles a list of steps into `out`, unrolling `loop`s.
    fn steps(
        &mut self,
        scenario: &str,
        steps: &[Spanned<RawStep>],
        depth: usize,
        out: &mut Vec<Step>,
    ) -> Result<(), ProfileError> {
        if steps.len() > MAX_STEPS {
            return self.err(
                steps[MAX_STEPS].referenced.line(),
                format!("scenario `{scenario}`: more than {MAX_STEPS} steps in one list"),
            );
        }
        for step in steps {
            let line = step.referenced.line();
            let r = &step.value;
            let requests = [
                (hyper::Method::GET, &r.get),
                (hyper::Method::POST, &r.post),
                (hyper::Method::PUT, &r.put),
                (hyper::Method::PATCH, &r.patch),
                (hyper::Method::DELETE, &r.delete),
            ];
            let actions = requests.iter().filter(|(_, q)| q.is_some()).count()
                + usize::from(r.think.is_some())
                + usize::from(r.loop_steps.is_some())
                + usize::from(r.log.is_some());
            if actions != 1 {
                return self
                    .err(line, "a flow step takes exactly one of get, post, put, patch, delete, think, loop, log");
            }
            if r.loop_steps.is_none() {
                for (key, present) in
                    [("count", r.count.is_some()), ("over", r.over.is_some()), ("whileTrue", r.while_true.is_some())]
                {
                    if present {
                        return self.err(line, format!("`{key}` belongs to a `loop` step"));
                    }
                }
            }
            if let Some(d) = &r.think {
                let d = d.to_duration().or_else(|m| self.err(line, format!("think: {m}")))?;
                out.push(Step::Think(d));
            } else if r.log.is_some() {
                self.note("flow `log` steps ignored: nothing is printed per virtual user".into());
            } else if let Some(inner) = &r.loop_steps {
                self.loop_step(scenario, r, inner, line, depth, out)?;
            } else if let Some((method, Some(req))) = requests.into_iter().find(|(_, q)| q.is_some()) {
                let spec = self.request(method, req)?;
                out.push(Step::Request(Box::new(spec)));
            }
            if out.len() > MAX_FLOW_STEPS {
                return self.err(
                    line,
                    format!("scenario `{scenario}` has more than {MAX_FLOW_STEPS} steps once its loops are unrolled"),
                );
            }
        }
        Ok(())
    }

    fn loop_step(
        &mut self,
        scenario: &str,
        r: &RawStep,
        inner: &[Spanned<RawStep>],
        line: u64,
        depth: usize,
        out: &mut Vec<Step>,
    ) -> Result<(), ProfileError> {
        if let Some(o) = &r.over {
            return self.err(
                o.referenced.line(),
                "loop `over` is not supported: use `count` and {{ variable }} from config.variables or a payload",
            );
        }
        if let Some(w) = &r.while_true {
            return self.err(
                w.referenced.line(),
                "loop `whileTrue` is not supported (it needs a processor function): use `count`",
            );
        }
        let Some(count) = &r.count else {
            return self.err(line, "a `loop` needs `count` (a loop without one never ends)");
        };
        if depth >= MAX_LOOP_DEPTH {
            return self.err(line, format!("loops nested more than {MAX_LOOP_DEPTH} deep"));
        }
        let mut body = Vec::new();
        self.steps(scenario, inner, depth + 1, &mut body)?;
        let total = (body.len() as u64).saturating_mul(count.value).saturating_add(out.len() as u64);
        if total > MAX_FLOW_STEPS as u64 {
            return self.err(
                count.referenced.line(),
                format!("scenario `{scenario}` has more than {MAX_FLOW_STEPS} steps once its loops are unrolled"),
            );
        }
        for _ in 0..count.value {
            out.extend(body.iter().cloned());
        }
        Ok(())
    }

    pub(super) fn request(&mut self, method: hyper::Method, r: &RawRequest) -> Result<RequestSpec, ProfileError> {
        if let Some(j) = &r.json {
            return self.err(
                j.referenced.line(),
                "`json:` bodies are not sent: the bot takes Slack's form-encoded bodies (signed as sent); use `form:` \
                 with the same keys, or `body: \"command=%2Fecho&text=…\"`",
            );
        }
        if let Some(f) = &r.form_data {
            return self.err(
                f.referenced.line(),
                "`formData:` (multipart) is not sent: Slack posts form-encoded bodies; use `form:`",
            );
        }
        if let Some(q) = &r.qs {
            return self
                .err(q.referenced.line(), "`qs:` is not supported: write the query string in `url` (`/path?a=1`)");
        }
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
            let tpl = self.compile(&value.value.0, line, &format!("header {name}"))?;
            if let Some(v) = tpl.as_static()
                && hyper::header::HeaderValue::from_str(v).is_err()
            {
                return self.err(line, format!("header {name}: value is not a valid header value"));
            }
            headers.push((header, tpl));
        }
        let body = match (&r.body, &r.form) {
            (Some(_), Some(f)) => return self.err(f.referenced.line(), "a request takes `body` or `form`, not both"),
            (Some(b), None) if !b.value.is_empty() => BodySpec::from_text_in(&b.value, self.env, self.scope())
                .or_else(|e| self.err(b.referenced.line(), self.template_error("body", &e)))?,
            (None, Some(f)) => {
                let mut fields = Vec::new();
                for (k, v) in &f.value {
                    let value = self.compile(&v.value.0, v.referenced.line(), &format!("form field {k}"))?;
                    fields.push(FormField::new(k, value, true));
                }
                BodySpec::Form(fields)
            }
            _ if sign_default_body => BodySpec::default_echo(),
            _ => BodySpec::Empty,
        };
        let label = r.name.clone().unwrap_or_else(|| format!("{method} {}", r.url.value));
        let command = body.command_key().unwrap_or(CommandKey::Static(label.clone()));
        let expect_answers = match &r.expect_answers {
            None => 1,
            Some(n) if n.value > MAX_EXPECT_ANSWERS => {
                return self.err(
                    n.referenced.line(),
                    format!(
                        "expectAnswers {} is more than {MAX_EXPECT_ANSWERS} (Slack takes at most 5 posts per \
                         response_url)",
                        n.value
                    ),
                );
            }
            Some(n) => {
                if !body.has_response_url() && n.value > 0 {
                    self.note(format!(
                        "expectAnswers (line {}) on a request without a response_url field: the bot cannot answer \
                         it, so no answer is expected",
                        n.referenced.line()
                    ));
                }
                n.value as u8
            }
        };
        // After the request's own templates: a step cannot send what its answer captures.
        let inspect = self.inspect(r)?;
        let mut spec = RequestSpec::new(method, url, headers, body, command, label);
        spec.expect_answers = expect_answers;
        spec.inspect = inspect.map(Arc::new);
        Ok(spec)
    }

    /// `capture` and `expect` of a request; the captured names come into scope for the
    /// expectations and the later steps.
    fn inspect(&mut self, r: &RawRequest) -> Result<Option<Inspect>, ProfileError> {
        let mut inspect = Inspect::default();
        if let Some(captures) = &r.capture {
            let key_line = captures.referenced.line();
            if captures.value.0.len() > MAX_CHECKS {
                return self.err(key_line, format!("more than {MAX_CHECKS} captures in one request"));
            }
            for c in &captures.value.0 {
                let line = match c.referenced.line() {
                    0 => key_line,
                    l => l,
                };
                inspect.captures.push(self.capture(&c.value, line)?);
            }
        }
        if let Some(expectations) = &r.expect {
            let key_line = expectations.referenced.line();
            if expectations.value.0.len() > MAX_CHECKS {
                return self.err(key_line, format!("more than {MAX_CHECKS} expectations in one request"));
            }
            for e in &expectations.value.0 {
                let line = match e.referenced.line() {
                    0 => key_line,
                    l => l,
                };
                self.expectations(&e.value, line, &mut inspect.expectations)?;
            }
        }
        Ok((!inspect.is_empty()).then_some(inspect))
    }

    fn capture(&mut self, c: &RawCapture, line: u64) -> Result<Capture, ProfileError> {
        let other = [
            ("regexp", c.regexp.as_ref()),
            ("group", c.group.as_ref()),
            ("flags", c.flags.as_ref()),
            ("xpath", c.xpath.as_ref()),
            ("selector", c.selector.as_ref()),
            ("attr", c.attr.as_ref()),
            ("index", c.index.as_ref()),
            ("transform", c.transform.as_ref()),
        ];
        if let Some((key, v)) = other.iter().find_map(|(k, v)| v.map(|v| (k, v))) {
            return self.err(
                v.referenced.line(),
                format!("capture `{key}` is not supported: capture with `json: \"$.path\"` or `header: name`"),
            );
        }
        let source = match (&c.json, &c.header) {
            (Some(j), None) => CaptureSource::Json(
                JsonPath::parse(&j.value).or_else(|e| self.err(j.referenced.line(), format!("capture json: {e}")))?,
            ),
            (None, Some(h)) => {
                CaptureSource::Header(hyper::header::HeaderName::from_bytes(h.value.trim().as_bytes()).or_else(
                    |_| self.err(h.referenced.line(), format!("capture header `{}` is not a header name", h.value)),
                )?)
            }
            (Some(_), Some(h)) => return self.err(h.referenced.line(), "a capture takes `json` or `header`, not both"),
            (None, None) => return self.err(line, "a capture needs `json: \"$.path\"` or `header: name`"),
        };
        let Some(name) = &c.name else {
            return self.err(line, "a capture needs `as: name`: the name later steps read as {{ name }}");
        };
        let name_line = name.referenced.line();
        let name = name.value.as_str();
        if !vars::is_name(name) {
            return self
                .err(name_line, format!("capture `as: {name}` is not a usable name (letters, digits, `_`, `-`, `.`)"));
        }
        if self.vars.as_ref().is_some_and(|b| b.slot(name).is_some()) {
            return self
                .err(name_line, format!("capture `as: {name}` is already a config.variables name or payload field"));
        }
        let slot = match self.capture_names.iter().position(|n| n == name) {
            Some(i) => i,
            None if self.capture_names.len() >= MAX_CAPTURE_NAMES => {
                return self.err(name_line, format!("more than {MAX_CAPTURE_NAMES} captured names"));
            }
            None => {
                self.capture_names.push(name.to_owned());
                self.capture_names.len() - 1
            }
        };
        if !self.in_scope.iter().any(|(n, _)| n == name) {
            self.in_scope.push((name.to_owned(), slot));
        }
        Ok(Capture { source, slot, strict: c.strict.unwrap_or(true) })
    }

    fn expectations(&self, e: &RawExpectation, line: u64, out: &mut Vec<Expectation>) -> Result<(), ProfileError> {
        let other = [
            ("notStatusCode", e.not_status_code.as_ref()),
            ("notHasProperty", e.not_has_property.as_ref()),
            ("hasHeader", e.has_header.as_ref()),
            ("headerEquals", e.header_equals.as_ref()),
            ("matchesRegexp", e.matches_regexp.as_ref()),
            ("cdnHit", e.cdn_hit.as_ref()),
        ];
        if let Some((key, v)) = other.iter().find_map(|(k, v)| v.map(|v| (k, v))) {
            return self.err(
                v.referenced.line(),
                format!("expect `{key}` is not supported (supported: statusCode, contentType, hasProperty, equals)"),
            );
        }
        let before = out.len();
        if let Some(codes) = &e.status_code {
            let l = codes.referenced.line();
            let values = match &codes.value {
                RawVariable::One(v) => std::slice::from_ref(v),
                RawVariable::Many(vs) => vs.as_slice(),
            };
            if values.is_empty() || values.len() > 100 {
                return self.err(l, "expect statusCode takes a status code or a list of 1 to 100 of them");
            }
            let mut parsed = Vec::with_capacity(values.len());
            for v in values {
                match v.0.trim().parse::<u16>() {
                    Ok(c) if (100..=599).contains(&c) => parsed.push(c),
                    _ => return self.err(l, format!("expect statusCode `{}` is not an HTTP status (100-599)", v.0)),
                }
            }
            out.push(Expectation::StatusCode(parsed));
        }
        if let Some(t) = &e.content_type {
            let l = t.referenced.line();
            let want = t.value.trim();
            let parsed = if want.eq_ignore_ascii_case("json") {
                ContentType::Json
            } else if !want.is_empty() && hyper::header::HeaderValue::from_str(want).is_ok() && want.len() <= 256 {
                ContentType::Exactly(want.to_ascii_lowercase())
            } else {
                return self.err(l, format!("expect contentType `{want}` is not a media type (or `json`)"));
            };
            out.push(Expectation::ContentType(parsed));
        }
        if let Some(p) = &e.has_property {
            let l = p.referenced.line();
            if p.value.contains("{{") {
                return self.err(l, "expect hasProperty takes a property path, not a template");
            }
            let path =
                JsonPath::parse_property(&p.value).or_else(|e| self.err(l, format!("expect hasProperty: {e}")))?;
            out.push(Expectation::HasProperty(path));
        }
        if let Some(values) = &e.equals {
            let l = values.referenced.line();
            let RawVariable::Many(vs) = &values.value else {
                return self.err(l, "expect equals takes a list of at least two values to compare");
            };
            if vs.len() < 2 || vs.len() > 16 {
                return self.err(l, "expect equals takes a list of 2 to 16 values to compare");
            }
            let templates = vs.iter().map(|v| self.compile(&v.0, l, "expect equals")).collect::<Result<Vec<_>, _>>()?;
            out.push(Expectation::Equals(templates));
        }
        if out.len() == before {
            return self.err(line, "an empty expectation: use statusCode, contentType, hasProperty or equals");
        }
        Ok(())
    }
}

/// The `as:` names of a flow's captures, loops included (bounded like the loops themselves).
fn declared_captures(steps: &[Spanned<RawStep>], depth: usize, out: &mut Vec<String>) {
    if depth > MAX_LOOP_DEPTH {
        return;
    }
    for step in steps {
        let r = &step.value;
        for req in [&r.get, &r.post, &r.put, &r.patch, &r.delete].into_iter().flatten() {
            for c in req.capture.iter().flat_map(|c| &c.value.0) {
                if let Some(name) = &c.value.name
                    && out.len() < MAX_CAPTURE_NAMES
                    && !out.contains(&name.value)
                {
                    out.push(name.value.clone());
                }
            }
        }
        if let Some(inner) = &r.loop_steps {
            declared_captures(inner, depth + 1, out);
        }
    }
}
