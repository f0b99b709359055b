//! Command-line arguments of `chatops loadtest` and `chatops mock-slack` (clap derive), for
//! the `chatops` binary to flatten into its subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// `chatops loadtest`: open-model load test of a Slack bot, with client-observed E2E.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Exit codes: 0 all thresholds hold, 1 a threshold failed, 2 profile or argument error.")]
pub struct LoadtestArgs {
    /// The profile to run, as in `artillery run FILE`: an Artillery-style YAML file or a
    /// built-in name. Same as --profile; give one of the two.
    #[arg(value_name = "PROFILE", conflicts_with = "profile")]
    pub profile_arg: Option<String>,

    /// Built-in profile (smoke, minimal, light, standard, full) or an Artillery-style YAML file.
    #[arg(long, value_name = "NAME|FILE", required_unless_present_any = ["list_profiles", "profile_arg"])]
    pub profile: Option<String>,

    /// List the built-in profiles and exit.
    #[arg(long)]
    pub list_profiles: bool,

    /// Base URL of the bot (overrides the profile's config.target): http:// or https://.
    /// An https target is verified against the system's root certificates.
    #[arg(long, value_name = "URL", conflicts_with = "spawn")]
    pub target: Option<String>,

    /// Accept any TLS certificate from an https:// target (self-signed test setups). The
    /// results' notes and stderr say the certificate was not verified.
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Read the bot's Prometheus metrics (queue depth, jobs in flight, DLQ size) from this
    /// URL once per time-series interval and store them in the results' time series
    /// (e.g. http://bot:9464/metrics; `/metrics` is added to a bare host). Implied by
    /// --spawn, which scrapes the spawned bot.
    #[arg(long, value_name = "URL")]
    pub scrape: Option<String>,

    /// Slack signing secret used to sign every request. Prefer --signing-secret-file or the
    /// SLACK_SIGNING_SECRET environment variable: a value on the command line is visible to
    /// every user of the machine in `ps` and stays in shell history.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_secret)]
    pub signing_secret: Option<SecretString>,

    /// Read the signing secret from this file (one trailing newline ignored, like `serve`);
    /// takes precedence over --signing-secret and SLACK_SIGNING_SECRET.
    #[arg(long, value_name = "FILE", env = "CHATOPS_SIGNING_SECRET_FILE")]
    pub signing_secret_file: Option<PathBuf>,

    /// Start an embedded `chatops serve` (temporary data dir, random secret, metrics on a
    /// free port) and target it, scraping its /metrics like --scrape.
    #[arg(long)]
    pub spawn: bool,

    /// Multiply every arrival rate (and arrivalCount) by this factor.
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = parse_positive)]
    pub rate_scale: f64,

    /// Multiply every phase duration by this factor.
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = parse_positive)]
    pub duration_scale: f64,

    /// Most requests in flight; arrivals beyond it are dropped and counted, never delayed.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,

    /// Generator threads, each with its own connections (0: one per CPU).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub threads: u64,

    /// Per-request HTTP timeout (overrides config.http.timeout), e.g. 10s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub timeout: Option<Duration>,

    /// After the last phase, wait at most this long (and at most --response-window) for
    /// every expected answer still outstanding at the receiver.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration_arg)]
    pub drain_timeout: Duration,

    /// Answers count when they arrive within this time of the request's scheduled send;
    /// this also bounds the memory kept per request.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration_arg)]
    pub response_window: Duration,

    /// Do not run the response receiver (response_url fields are sent as written).
    #[arg(long)]
    pub no_receiver: bool,

    /// Address the response receiver listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub receiver_listen: SocketAddr,

    /// Base URL the bot must post answers to, when not the receiver's own address
    /// (e.g. through a tunnel); requests get `<URL>/hook/<request-id>`.
    #[arg(long, value_name = "URL")]
    pub receiver_url: Option<String>,

    /// Results file [default: results/test-YYYYMMDD-HHMMSS.json].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write one NDJSON line per request (id, command, times) to this file.
    #[arg(long, value_name = "FILE")]
    pub record_requests: Option<PathBuf>,

    /// Fail when the error rate exceeds this percentage.
    #[arg(long, value_name = "PERCENT")]
    pub max_error_rate: Option<f64>,

    /// Fail when the ack p95 (ms, from scheduled time) exceeds this.
    #[arg(long, value_name = "MS")]
    pub p95: Option<f64>,

    /// Fail when the ack p99 (ms, from scheduled time) exceeds this.
    #[arg(long, value_name = "MS")]
    pub p99: Option<f64>,

    /// Fail when the first-response E2E p95 (ms) exceeds this.
    #[arg(long, value_name = "MS")]
    pub e2e_p95: Option<f64>,

    /// Fail when the first-response E2E p99 (ms) exceeds this.
    #[arg(long, value_name = "MS")]
    pub e2e_p99: Option<f64>,

    /// Fail when more commands than this get no answer at the receiver.
    #[arg(long, value_name = "N")]
    pub max_lost: Option<u64>,

    /// Fail when more commands than this get some but not all of their expected answers
    /// (the profile's `expectAnswers`, 1 by default) within the response window.
    #[arg(long, value_name = "N")]
    pub max_incomplete: Option<u64>,

    /// Serve a live dashboard of the run in the browser at this address, e.g.
    /// 127.0.0.1:8089 (port 0: any free port; the URL is printed on stderr). It has no
    /// login: keep it on loopback.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<SocketAddr>,

    /// How long the dashboard keeps serving the final results after the test, e.g. 10m
    /// (0: exit at once); Ctrl-C stops it sooner. Default: until Ctrl-C when stderr is a
    /// terminal, 0 otherwise (CI). After a run that failed to run, only when given.
    #[arg(long, value_name = "DURATION", requires = "dashboard", value_parser = parse_duration_arg)]
    pub dashboard_linger: Option<Duration>,

    /// No live line and no summary table (failed thresholds are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Print the results JSON to stdout.
    #[arg(long)]
    pub json: bool,
}

impl LoadtestArgs {
    /// The profile to run, from the positional argument or `--profile` (clap refuses both).
    pub fn profile_name(&self) -> Option<&str> {
        self.profile_arg.as_deref().or(self.profile.as_deref())
    }
}

/// `chatops mock-slack`: a stand-alone response_url receiver that prints each post.
#[derive(Debug, Clone, clap::Args)]
pub struct MockSlackArgs {
    /// Address to listen on; posts go to `http://ADDR/hook/<id>`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Exit after this many posts.
    #[arg(long, value_name = "N")]
    pub max_posts: Option<u64>,

    /// Print each post's raw body instead of its message text.
    #[arg(long)]
    pub raw: bool,
}

fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.is_empty() {
        return Err("the signing secret is empty".into());
    }
    Ok(SecretString::from(s))
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    crate::profile::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(argv: &[&str]) -> Result<LoadtestArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadtest").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_are_sensible() {
        let a = parse(&["--profile", "smoke"]).unwrap();
        assert_eq!(a.rate_scale, 1.0);
        assert_eq!(a.drain_timeout, Duration::from_secs(30));
        assert_eq!(a.receiver_listen.port(), 0);
        assert!(a.receiver_listen.ip().is_loopback());
    }

    #[test]
    fn refuses_bad_arguments() {
        for argv in [
            &[][..],
            &["--profile", "smoke", "--rate-scale", "0"],
            &["--profile", "smoke", "--rate-scale", "-1"],
            &["--profile", "smoke", "--duration-scale", "NaN"],
            &["--profile", "smoke", "--drain-timeout", "soon"],
            &["--profile", "smoke", "--max-in-flight", "0"],
            &["--profile", "smoke", "--target", "http://x", "--spawn"],
            &["--profile", "smoke", "--signing-secret", ""],
            &["--profile", "smoke", "--receiver-listen", "not-an-addr"],
            &["--profile", "smoke", "--insecure=yes"],
            &["--profile", "smoke", "--dashboard", "localhost"],
            &["--profile", "smoke", "--dashboard", "127.0.0.1:99999"],
            &["--profile", "smoke", "--dashboard-linger", "10s"],
            &["--profile", "smoke", "--dashboard", "127.0.0.1:0", "--dashboard-linger", "soon"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
        assert!(parse(&["--list-profiles"]).is_ok());
    }

    #[test]
    fn profile_is_positional_or_a_flag_but_not_both() {
        let positional = parse(&["profiles/echo.yml", "--target", "http://127.0.0.1:1"]).unwrap();
        assert_eq!(positional.profile_name(), Some("profiles/echo.yml"));
        let flag = parse(&["--profile", "smoke"]).unwrap();
        assert_eq!(flag.profile_name(), Some("smoke"));
        let both = parse(&["echo.yml", "--profile", "smoke"]).unwrap_err().to_string();
        assert!(both.contains("--profile") && both.contains("PROFILE"), "{both}");
        let none = parse(&["--target", "http://127.0.0.1:1"]).unwrap_err().to_string();
        assert!(none.contains("--profile") || none.contains("PROFILE"), "{none}");
        assert!(parse(&["a.yml", "b.yml"]).is_err(), "one profile per run");
    }

    #[test]
    fn the_dashboard_takes_an_address_and_an_optional_linger() {
        let a = parse(&["--profile", "smoke", "--dashboard", "127.0.0.1:0"]).unwrap();
        assert_eq!(a.dashboard, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(a.dashboard_linger, None);
        let a = parse(&["--profile", "smoke", "--dashboard", "[::1]:8089", "--dashboard-linger", "0"]).unwrap();
        assert_eq!(a.dashboard.map(|d| d.port()), Some(8089));
        assert_eq!(a.dashboard_linger, Some(Duration::ZERO));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let a = parse(&["--profile", "smoke", "--signing-secret", "s3cr3t-value"]).unwrap();
        assert!(!format!("{a:?}").contains("s3cr3t-value"));
    }
}
