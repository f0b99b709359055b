//! `response_url`: the per-command webhook Slack gives us, and the allow-list that keeps a
//! forged one from turning the bot into an SSRF proxy.
//!
//! Real Slack only hands out `https://hooks.slack.com/...`. The check is done on the parsed
//! URL (scheme and exact host, after WHATWG normalisation, so `2130706433` is `127.0.0.1` and
//! `user@host` tricks name the real host), never by substring. The URL carries a secret
//! token in its path, so `Debug` and `Display` show only scheme, host and a hint.

use url::{Host, Url};

/// A `response_url` that parsed and passed the allow-list.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl(Url);

impl ResponseUrl {
    /// The full URL, token included. Only the HTTP client should call this.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// A form that is safe to log: scheme, host, port and the first path segment.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let first = url.path_segments().and_then(|mut s| s.next()).unwrap_or("");
        match url.port() {
            Some(port) => format!("{}://{}:{}/{}/[redacted]", url.scheme(), url.host_str().unwrap_or(""), port, first),
            None => format!("{}://{}/{}/[redacted]", url.scheme(), url.host_str().unwrap_or(""), first),
        }
    }
}

impl std::fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for ResponseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Why a `response_url` was refused (HTTP 400 at the router, a permanent failure at a worker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseUrlError {
    #[error("response_url is not a valid absolute URL")]
    Invalid,
    #[error("response_url is longer than {0} bytes")]
    TooLong(usize),
    #[error("response_url must not carry credentials")]
    Credentials,
    #[error("response_url host {0} is not allow-listed")]
    HostNotAllowed(String),
    #[error("response_url scheme {0} is not allowed for this host")]
    SchemeNotAllowed(String),
    #[error("response_url must not name a port for this host")]
    PortNotAllowed,
}

/// Longest `response_url` accepted. Slack's are about 100 bytes.
pub const MAX_RESPONSE_URL_LEN: usize = 2048;

/// One allowed host. Slack's own host only over https; local hosts (added with
/// `--allow-response-host`) over http or https and on any port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    host: Host<String>,
    allow_plain_http: bool,
}

/// The hosts a worker may post to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
}

/// Slack's only response host.
pub const SLACK_RESPONSE_HOST: &str = "hooks.slack.com";

impl Default for AllowedHosts {
    /// `https://hooks.slack.com` only.
    fn default() -> Self {
        AllowedHosts {
            hosts: vec![AllowedHost { host: Host::Domain(SLACK_RESPONSE_HOST.to_owned()), allow_plain_http: false }],
        }
    }
}

impl AllowedHosts {
    /// Adds a host given as `127.0.0.1`, `localhost`, `[::1]` or `hooks.example.com`. Hosts
    /// added here may be reached over plain http, which is what local testing needs.
    pub fn allow(&mut self, host: &str) -> Result<(), ResponseUrlError> {
        let host = Host::parse(host.trim()).map_err(|_| ResponseUrlError::Invalid)?;
        let host = match host {
            Host::Domain(d) => Host::Domain(d.to_ascii_lowercase()),
            other => other,
        };
        self.hosts.retain(|h| h.host != host);
        self.hosts.push(AllowedHost { host, allow_plain_http: true });
        Ok(())
    }

    /// The allowed hosts, for help texts and startup logs.
    pub fn describe(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| if h.allow_plain_http { format!("http(s)://{}", h.host) } else { format!("https://{}", h.host) })
            .collect()
    }

    /// Parses and checks a `response_url`.
    pub fn check(&self, raw: &str) -> Result<ResponseUrl, ResponseUrlError> {
        if raw.len() > MAX_RESPONSE_URL_LEN {
            return Err(ResponseUrlError::TooLong(MAX_RESPONSE_URL_LEN));
        }
        let url = Url::parse(raw).map_err(|_| ResponseUrlError::Invalid)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ResponseUrlError::Credentials);
        }
        let host = url.host().ok_or(ResponseUrlError::Invalid)?.to_owned();
        let allowed = self
            .hosts
            .iter()
            .find(|h| h.host == host)
            .ok_or_else(|| ResponseUrlError::HostNotAllowed(host.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if allowed.allow_plain_http => {}
            other => return Err(ResponseUrlError::SchemeNotAllowed(other.to_owned())),
        }
        // Slack's URLs never name a port; another port on its host is not Slack.
        if !allowed.allow_plain_http && url.port().is_some() {
            return Err(ResponseUrlError::PortNotAllowed);
        }
        Ok(ResponseUrl(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: &str = "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN";

    #[test]
    fn default_allows_slack_over_https_only() {
        let hosts = AllowedHosts::default();
        assert!(hosts.check(SLACK).is_ok());
        assert_eq!(
            hosts.check("http://hooks.slack.com/commands/x"),
            Err(ResponseUrlError::SchemeNotAllowed("http".into()))
        );
    }

    #[test]
    fn refuses_lookalike_and_ssrf_hosts() {
        let hosts = AllowedHosts::default();
        for url in [
            "https://hooks.slack.com.evil.example/commands/x",
            "https://evil.example/hooks.slack.com/commands/x",
            "https://hooks.slack.com@evil.example/commands/x",
            "https://evilhooks.slack.com/x",
            "https://127.0.0.1/x",
            "https://2130706433/x",
            "https://[::1]/x",
            "https://0x7f.0.0.1/x",
            "https://hooks.slack.com:8443/x",
            "https://evil.example#@hooks.slack.com/x",
            "https://[::ffff:127.0.0.1]/x",
            "file:///etc/passwd",
            "gopher://hooks.slack.com/x",
            "hooks.slack.com/commands/x",
            "",
        ] {
            assert!(hosts.check(url).is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn credentials_in_url_are_refused_even_for_allowed_host() {
        let hosts = AllowedHosts::default();
        assert_eq!(hosts.check("https://user:pw@hooks.slack.com/x"), Err(ResponseUrlError::Credentials));
    }

    #[test]
    fn local_hosts_can_be_allowed_over_http() {
        let mut hosts = AllowedHosts::default();
        hosts.allow("127.0.0.1").unwrap();
        hosts.allow("[::1]").unwrap();
        assert!(hosts.check("http://127.0.0.1:8080/hook/1").is_ok());
        // Decimal and hex spellings normalise to the same address, which is allowed.
        assert!(hosts.check("http://2130706433:8080/hook/1").is_ok());
        assert!(hosts.check("http://[::1]:9/hook").is_ok());
        assert!(hosts.check("http://127.0.0.2/hook").is_err());
        assert!(hosts.check("http://localhost/hook").is_err());
    }

    #[test]
    fn host_names_compare_case_insensitively() {
        let hosts = AllowedHosts::default();
        assert!(hosts.check("https://HOOKS.Slack.com/commands/x").is_ok());
    }

    #[test]
    fn redacted_form_hides_the_token() {
        let url = AllowedHosts::default().check(SLACK).unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("96rGlfmibIGlgcZRskXaIFfN"), "{shown}");
        assert!(!shown.contains("397700885554"), "{shown}");
        assert!(shown.contains("hooks.slack.com/commands/[redacted]"));
    }

    #[test]
    fn overlong_url_is_refused() {
        let url = format!("{SLACK}/{}", "a".repeat(MAX_RESPONSE_URL_LEN));
        assert_eq!(AllowedHosts::default().check(&url), Err(ResponseUrlError::TooLong(MAX_RESPONSE_URL_LEN)));
    }
}
