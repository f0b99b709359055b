//! Load profiles: Artillery-shaped YAML (`config.target`, `config.phases`, `config.http`,
//! `config.ensure`, `scenarios[].flow`) parsed strictly, plus the built-in profiles by name.
//!
//! The YAML is read into raw serde structs that deny unknown fields, so a key we do not
//! understand is an error that names the key and its line (serde-saphyr reports both),
//! never silently ignored. The raw structs are then checked and converted into a
//! [`Profile`] with typed values: durations, compiled templates, compiled request specs,
//! parsed `ensure` conditions. Errors found in that second step carry the line of the value
//! through `serde_saphyr::Spanned`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

mod build;
#[cfg(test)]
mod compat_tests;
mod raw;
pub mod vars;

use build::*;
pub use raw::parse_duration;
use raw::*;

use crate::ensure::{Condition, Op};
use crate::request::{BodySpec, CommandKey, FormField, RequestSpec};
use crate::template::{Env, Template};

/// Largest profile file accepted; real ones are a few kilobytes.
pub const MAX_PROFILE_BYTES: usize = 1024 * 1024;
/// Highest arrival rate a phase may ask for after scaling (arrivals per second).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Longest phase after scaling.
pub const MAX_PHASE: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_PHASES: usize = 1000;
const MAX_SCENARIOS: usize = 1000;
const MAX_STEPS: usize = 100;
/// Most steps of one scenario once its `loop`s are unrolled.
pub const MAX_FLOW_STEPS: usize = 10_000;

/// Why a profile could not be loaded. Every variant is a usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile `{0}`: not a built-in profile ({names}) and no such file", names = builtin_names().join(", "))]
    NotFound(String),
    #[error("reading profile {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: profile is larger than {MAX_PROFILE_BYTES} bytes")]
    TooLarge(String),
    #[error("{source_name}: {message}")]
    Yaml { source_name: String, message: String },
    #[error("{source_name}: line {line}: {message}")]
    Invalid { source_name: String, line: u64, message: String },
    #[error("{0}")]
    Scale(String),
}

/// A checked profile, ready to schedule and fire.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The built-in name or the file path it came from.
    pub source: String,
    /// `config.target`, rendered (templates in the target are resolved once).
    pub target: Option<String>,
    pub phases: Vec<Phase>,
    pub http: HttpSettings,
    pub ensure: Vec<Condition>,
    pub scenarios: Vec<Scenario>,
    /// Things accepted but not acted on (e.g. `config.processor`), and warnings about
    /// Artillery keys that do not apply here; each is said once.
    pub notes: Vec<String>,
    /// `config.variables` and payload fields, for the templates; None when there are none.
    pub vars: Option<std::sync::Arc<vars::Bindings>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub duration: Duration,
    pub load: Load,
    /// Artillery's `maxVusers`: a cap on requests in flight during this phase.
    pub max_in_flight: Option<usize>,
}

/// How arrivals are spread over a phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `arrivalRate` (and `rampTo`): per-second rate, constant when `from == to`,
    /// otherwise a linear ramp.
    Rate { from: f64, to: f64 },
    /// `arrivalCount`: this many arrivals spread evenly over the phase.
    Count(u64),
    /// `pause`: no arrivals.
    Pause,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpSettings {
    /// Per-request timeout (`config.http.timeout`, Artillery's default 10 s).
    pub timeout: Duration,
    /// Artillery's `config.http.pool`: at most this many connections to the target.
    /// Requests beyond it wait in the generator for a free connection; their service time
    /// starts when they get one, their latency still counts from the scheduled time.
    /// None: one connection per concurrent request (bounded by the in-flight cap).
    pub pool: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { timeout: Duration::from_secs(10), pool: None }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub weight: u32,
    pub flow: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Request(Box<RequestSpec>),
    /// Artillery's `think: N`: the virtual user waits before its next step.
    Think(Duration),
}

/// One line of `--list-profiles`.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinProfile {
    pub name: &'static str,
    pub summary: &'static str,
    pub yaml: &'static str,
}

/// The built-in profiles, in the order `--list-profiles` shows them.
pub const BUILTIN: &[BuiltinProfile] = &[
    BuiltinProfile {
        name: "smoke",
        summary: "≈5 s: 5 s at 2/s of /echo (for tests and a quick check)",
        yaml: include_str!("../../profiles/smoke.yml"),
    },
    BuiltinProfile {
        name: "minimal",
        summary: "≈60 s: 5 s at 1/s (cold start), 25 s at 2/s, 10 s ramp 3→6/s, 20 s at 2/s of /echo",
        yaml: include_str!("../../profiles/minimal.yml"),
    },
    BuiltinProfile {
        name: "light",
        summary: "≈7 min: 30 s at 2/s, 120 s ramp 5→20, 180 s at 20, 60 s ramp 20→40, 30 s at 5 of /echo",
        yaml: include_str!("../../profiles/light.yml"),
    },
    BuiltinProfile {
        name: "standard",
        summary: "≈7 min, echo only: 30 s at 2/s, 120 s ramp 5→30, 180 s at 30, 60 s ramp 30→50, 30 s at 5",
        yaml: include_str!("../../profiles/standard.yml"),
    },
    BuiltinProfile {
        name: "full",
        summary: "≈12 min, /echo 40 /status 30 /deploy 20 /build 10: 60 s at 2/s, 180 s ramp 5→20, 300 s at 20, \
                  120 s ramp 20→45, 60 s at 5",
        yaml: include_str!("../../profiles/full.yml"),
    },
];

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|p| p.name).collect()
}

impl Profile {
    /// A built-in name, or else a file path.
    pub fn load(name_or_path: &str, env: &dyn Env) -> Result<Profile, ProfileError> {
        if let Some(b) = BUILTIN.iter().find(|b| b.name == name_or_path) {
            return Profile::parse(b.yaml, b.name, env);
        }
        let path = Path::new(name_or_path);
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ProfileError::NotFound(name_or_path.to_owned()),
            _ => ProfileError::Io { path: name_or_path.to_owned(), source: e },
        })?;
        if meta.len() > MAX_PROFILE_BYTES as u64 {
            return Err(ProfileError::TooLarge(name_or_path.to_owned()));
        }
        if meta.is_dir() {
            return Err(ProfileError::Io {
                path: name_or_path.to_owned(),
                source: std::io::Error::other("is a directory, not a profile file"),
            });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Io { path: name_or_path.to_owned(), source })?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Profile::parse_in(&text, name_or_path, Some(dir), env)
    }

    /// Parses YAML text; `source_name` names it in errors and in the results. A payload
    /// file is refused: it needs [`Profile::load`] or [`Profile::parse_in`] with a folder.
    pub fn parse(text: &str, source_name: &str, env: &dyn Env) -> Result<Profile, ProfileError> {
        Profile::parse_in(text, source_name, None, env)
    }

    /// Parses YAML text whose payload paths are relative to `base_dir`.
    pub fn parse_in(
        text: &str,
        source_name: &str,
        base_dir: Option<&Path>,
        env: &dyn Env,
    ) -> Result<Profile, ProfileError> {
        if text.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge(source_name.to_owned()));
        }
        let raw: RawProfile = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            ProfileError::Yaml { source_name: source_name.to_owned(), message: one_line(&e.to_string()) }
        })?;
        Builder {
            source_name,
            env,
            notes: Vec::new(),
            base_dir,
            vars: None,
            capture_names: Vec::new(),
            in_scope: Vec::new(),
            declared_captures: Vec::new(),
        }
        .build(raw)
    }

    /// Applies `--rate-scale` and `--duration-scale`. Counts (`arrivalCount`) scale with
    /// both, so that a count phase keeps its rate when its duration is scaled.
    pub fn scale(&mut self, rate: f64, duration: f64) -> Result<(), ProfileError> {
        if !(rate.is_finite() && rate > 0.0 && duration.is_finite() && duration > 0.0) {
            return Err(ProfileError::Scale("--rate-scale and --duration-scale must be positive numbers".into()));
        }
        for p in &mut self.phases {
            let secs = p.duration.as_secs_f64() * duration;
            if secs > MAX_PHASE.as_secs_f64() {
                return Err(ProfileError::Scale(format!(
                    "phase `{}` after scaling: duration is longer than {} s",
                    p.name,
                    MAX_PHASE.as_secs()
                )));
            }
            p.duration = Duration::from_secs_f64(secs);
            p.load = match p.load {
                Load::Rate { from, to } => Load::Rate { from: from * rate, to: to * rate },
                Load::Count(n) => Load::Count((n as f64 * rate * duration).round() as u64),
                Load::Pause => Load::Pause,
            };
            check_phase_limits(p).map_err(|m| ProfileError::Scale(format!("phase `{}` after scaling: {m}", p.name)))?;
        }
        Ok(())
    }

    /// Total planned test time.
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }
}

fn check_phase_limits(p: &Phase) -> Result<(), String> {
    if p.duration.is_zero() {
        return Err("duration must be more than zero".into());
    }
    if p.duration > MAX_PHASE {
        return Err(format!("duration is longer than {} s", MAX_PHASE.as_secs()));
    }
    let peak = match p.load {
        Load::Rate { from, to } => from.max(to),
        Load::Count(n) => n as f64 / p.duration.as_secs_f64(),
        Load::Pause => 0.0,
    };
    if peak > MAX_RATE {
        return Err(format!("arrival rate {peak:.0}/s is above the limit of {MAX_RATE:.0}/s"));
    }
    Ok(())
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1000;
    budget.max_anchors = 1000;
    budget.max_total_scalar_bytes = 4 * MAX_PROFILE_BYTES;
    budget.max_documents = 1;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.with_snippet = false;
    opts
}

/// serde-saphyr messages may span lines; a CLI error reads better on one.
fn one_line(msg: &str) -> String {
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    msg.lines().next().unwrap_or(msg).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        HashMap::from([("BOT_URL".to_owned(), "http://127.0.0.1:3999".to_owned())])
    }

    fn parse(yaml: &str) -> Result<Profile, ProfileError> {
        Profile::parse(yaml, "test.yml", &env())
    }

    const REPRESENTATIVE: &str = r#"
config:
  target: "{{ $processEnvironment.BOT_URL }}"
  processor: "./slack-processor.js"
  phases:
    - duration: 10
      arrivalRate: 1
      rampTo: 5
      name: Warm up
    - pause: 2s
    - duration: 1m
      arrivalRate: 5
      name: Sustained
    - duration: 5
      arrivalCount: 20
  http:
    timeout: 5
    pool: 50
  ensure:
    maxErrorRate: 1
    p95: 500
    thresholds:
      - http.response_time.p99: 800
    conditions:
      - expression: "e2e.p99 < 2000 and vusers.failed == 0"
        strict: false
scenarios:
  - name: echo
    weight: 3
    flow:
      - post:
          url: "/slack/commands"
          headers:
            Content-Type: application/x-www-form-urlencoded
          body: "token=x&team_id=T1&user_id=U{{ $randomString(8) }}&command=%2Fecho&text=hi+{{ $randomNumber(1, 100) }}&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2&trigger_id={{ $uuid }}"
          beforeRequest: generateSlackSignature
          afterResponse: captureMetrics
  - name: default body
    weight: 1
    flow:
      - post:
          url: "/slack/commands"
          beforeRequest: [generateSlackSignature]
      - think: 1
      - get:
          url: "/healthz"
"#;

    #[test]
    fn parses_a_representative_artillery_config() {
        let p = parse(REPRESENTATIVE).unwrap();
        assert_eq!(p.target.as_deref(), Some("http://127.0.0.1:3999"));
        assert_eq!(p.phases.len(), 4);
        assert_eq!(p.phases[0].load, Load::Rate { from: 1.0, to: 5.0 });
        assert_eq!(p.phases[0].name, "Warm up");
        assert_eq!(
            p.phases[1],
            Phase { name: "phase 2".into(), duration: Duration::from_secs(2), load: Load::Pause, max_in_flight: None }
        );
        assert_eq!(p.phases[2].duration, Duration::from_secs(60));
        assert_eq!(p.phases[3].load, Load::Count(20));
        assert_eq!(p.http, HttpSettings { timeout: Duration::from_secs(5), pool: Some(50) });
        let conds: Vec<_> = p.ensure.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            conds,
            [
                "http.response_time.p95 <= 500",
                "error_rate <= 1",
                "http.response_time.p99 < 800",
                "e2e.p99 < 2000 and vusers.failed == 0"
            ]
        );
        assert!(!p.ensure[3].strict);
        assert!(p.notes.iter().any(|n| n.contains("slack-processor.js") && n.contains("ignored")), "{:?}", p.notes);
        assert_eq!(p.scenarios.len(), 2);
        assert_eq!((p.scenarios[0].weight, p.scenarios[1].weight), (3, 1));
        assert_eq!(p.scenarios[1].flow.len(), 3);
        let Step::Request(first) = &p.scenarios[0].flow[0] else { panic!() };
        assert_eq!(first.command_name(), Some("/echo"));
        let Step::Request(default_body) = &p.scenarios[1].flow[0] else { panic!() };
        assert_eq!(default_body.command_name(), Some("/echo"), "generateSlackSignature fills an /echo body");
    }

    #[test]
    fn every_builtin_profile_parses_and_matches_the_issue() {
        let env = HashMap::new();
        for b in BUILTIN {
            let p = Profile::parse(b.yaml, b.name, &env).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert!(p.target.is_some(), "{}", b.name);
        }
        let secs = |name: &str| {
            let p = Profile::load(name, &env).unwrap();
            p.total_duration().as_secs()
        };
        assert_eq!(secs("smoke"), 5);
        assert_eq!(secs("minimal"), 60);
        assert_eq!(secs("light"), 420);
        assert_eq!(secs("standard"), 420);
        assert_eq!(secs("full"), 720);
        let full = Profile::load("full", &env).unwrap();
        let weights: Vec<_> = full.scenarios.iter().map(|s| (s.name.as_str(), s.weight)).collect();
        assert_eq!(weights, [("echo", 40), ("status", 30), ("deploy", 20), ("build", 10)]);
        let minimal = Profile::load("minimal", &env).unwrap();
        assert_eq!(minimal.phases[2].load, Load::Rate { from: 3.0, to: 6.0 });
    }

    /// Each unknown key is refused with its name and line.
    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let base = "config:\n  target: http://127.0.0.1:1\n  phases:\n    - duration: 1\n      arrivalRate: 1\nscenarios:\n  - flow:\n      - post:\n          url: /x\n";
        let cases = [
            ("top level", format!("{base}before:\n  flow: []\n"), "before", 10),
            ("config", base.replace("  phases:", "  environments:\n    a: 1\n  phases:"), "environments", 3),
            (
                "phase",
                base.replace("      arrivalRate: 1\n", "      arrivalRate: 1\n      arivalRate: 2\n"),
                "arivalRate",
                6,
            ),
            ("http", base.replace("  phases:", "  http:\n    extendedMetrics: true\n  phases:"), "extendedMetrics", 4),
            ("ensure", base.replace("  phases:", "  ensure:\n    p98: 10\n  phases:"), "p98", 4),
            ("scenario", base.replace("  - flow:", "  - engine: ws\n    flow:"), "engine", 7),
            ("request", format!("{base}          json: {{a: 1}}\n"), "json", 10),
            ("request", format!("{base}          cookie: {{a: 1}}\n"), "cookie", 10),
            ("step", base.replace("      - post:", "      - function:"), "function", 8),
        ];
        for (what, yaml, key, line) in cases {
            let err = parse(&yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{what}: {err}");
            assert!(err.contains(&format!("line {line}")), "{what}: expected line {line}: {err}");
            assert!(err.starts_with("test.yml: "), "{what}: {err}");
        }
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let base = "config:\n  target: http://127.0.0.1:1\n  phases:\n    - duration: 1\n      arrivalRate: 1\nscenarios:\n  - flow:\n      - post:\n          url: /x\n";
        let cases = [
            (base.replace("arrivalRate: 1", "arrivalRate: -1"), 4, "arrivalRate"),
            (base.replace("arrivalRate: 1", "arrivalRate: 1\n      arrivalCount: 3"), 4, "arrivalCount"),
            (base.replace("duration: 1", "duration: forever"), 4, "forever"),
            (base.replace("arrivalRate: 1", "arrivalRate: 5000000"), 4, "limit"),
            (format!("{base}          beforeRequest: setUser\n"), 10, "setUser"),
            (format!("{base}          afterResponse: logIt\n"), 10, "logIt"),
            (format!("{base}          body: \"text={{{{ user }}}}\"\n"), 10, "user"),
            (format!("{base}          headers:\n            \"bad header\": x\n"), 11, "header"),
            (
                base.replace("  phases:", "  ensure:\n    conditions:\n      - expression: p99 <\n  phases:"),
                5,
                "number",
            ),
            (base.replace("url: /x", "url: \"{{ $env.UNSET_VAR }}\""), 9, "UNSET_VAR"),
        ];
        for (yaml, line, needle) in cases {
            let err = parse(&yaml).unwrap_err().to_string();
            assert!(err.contains(&format!("line {line}")), "expected line {line}: {err}");
            assert!(err.contains(needle), "expected `{needle}`: {err}");
        }
    }

    #[test]
    fn refuses_malformed_and_hostile_yaml() {
        let cases = [
            "",
            "config: [",
            "- just a list",
            "config:\n  phases: []\nscenarios: []\n",
            "config:\n  target: x\n  target: y\n",
            "\u{0}\u{1}binary",
            // A billion-laughs style alias bomb is stopped by the parse budget.
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        ];
        for yaml in cases {
            assert!(parse(yaml).is_err(), "{yaml:?}");
        }
        let deep = format!("config: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).is_err());
        let huge = format!("config:\n  target: \"{}\"\n", "a".repeat(MAX_PROFILE_BYTES));
        assert!(matches!(parse(&huge), Err(ProfileError::TooLarge(_))));
    }

    /// Each built-in command's handler (crates/chatops-service/src/handlers/ and the
    /// default config's `answers`) posts this many times; the profiles wait for all of them.
    #[test]
    fn builtin_profiles_expect_every_answer_their_commands_post() {
        let want = HashMap::from([("/echo", 2u8), ("/status", 1), ("/deploy", 3), ("/build", 2)]);
        for b in BUILTIN {
            let p = Profile::parse(b.yaml, b.name, &HashMap::<String, String>::new()).unwrap();
            for s in &p.scenarios {
                for step in &s.flow {
                    let Step::Request(r) = step else { continue };
                    let cmd = r.command_name().unwrap();
                    assert_eq!(Some(&r.expect_answers), want.get(cmd), "{}: {cmd}", b.name);
                }
            }
        }
    }

    #[test]
    fn oversized_profile_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yml");
        std::fs::write(&path, vec![b'#'; MAX_PROFILE_BYTES + 1]).unwrap();
        let err = Profile::load(path.to_str().unwrap(), &env()).unwrap_err();
        assert!(matches!(err, ProfileError::TooLarge(_)), "{err}");
        assert!(matches!(Profile::load("no-such-profile", &env()), Err(ProfileError::NotFound(_))));
    }

    #[test]
    fn scaling_multiplies_rates_and_durations() {
        let mut p = Profile::load("minimal", &HashMap::new()).unwrap();
        p.scale(10.0, 0.5).unwrap();
        assert_eq!(p.total_duration(), Duration::from_secs(30));
        assert_eq!(p.phases[2].load, Load::Rate { from: 30.0, to: 60.0 });
        assert!(p.scale(0.0, 1.0).is_err());
        assert!(p.scale(f64::NAN, 1.0).is_err());
        assert!(p.scale(1e9, 1.0).is_err(), "scaled rate above the limit");
        let mut p = Profile::load("minimal", &HashMap::new()).unwrap();
        assert!(p.scale(1.0, 1e300).is_err(), "scaled duration out of range is an error, not a panic");
        assert!(p.scale(f64::MAX, f64::MIN_POSITIVE).is_err());
    }

    #[test]
    fn durations_accept_numbers_and_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "-1", "soon", "1e30", "NaN", "100000000h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
