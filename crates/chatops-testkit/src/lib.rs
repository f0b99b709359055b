//! Fixtures for tests that need real programs. [`NatsServer`] runs Debian's `nats-server`
//! with JetStream on a free port and a temporary store directory, so a test can kill and
//! restart its own broker. When the binary is missing the fixture fails loudly with the
//! install command: tests that need a broker never pass silently without one. [`chromium`]
//! drives a real headless Chromium for the pages the tools serve or write (the report, the
//! load test's dashboard), with the same rule for a missing browser.

pub mod chromium;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server -js` child process. Killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// Extra command-line options, kept across restarts (e.g. `--user`/`--pass`).
    extra_args: Vec<String>,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer").field("port", &self.port).finish_non_exhaustive()
    }
}

/// Where the `nats-server` binary is.
pub fn nats_server_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    if let Some(path) = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("nats-server")).find(|p| p.exists()))
    {
        return path;
    }
    panic!(
        "nats-server is not installed; these tests need a real broker. Install it with \
         `sudo apt-get install nats-server` (scripts/test.sh does this for you)."
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free local port")
}

impl NatsServer {
    /// Starts a broker with JetStream on a free port; waits until it accepts connections.
    pub fn start() -> NatsServer {
        Self::start_with_args(&[])
    }

    /// [`NatsServer::start`] with extra `nats-server` options, e.g. `["--user", "u",
    /// "--pass", "p"]` for a broker that requires a login.
    pub fn start_with_args(extra_args: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("a temp dir for the store"),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on port {} within 15 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: the broker dies without flushing anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the broker keeps its connections open but answers nothing (a stalled
    /// broker, as seen by its clients), until [`NatsServer::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`NatsServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let child = self.child.as_ref().expect("the broker is running");
        let status = Command::new("kill").args([which, &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill {which} of the broker");
    }

    /// Starts the broker again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
