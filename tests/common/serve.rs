//! `hookgate serve` as a child process: the binary on the ephemeral ports of its configuration,
//! its addresses read from its log, everything it writes kept for the test to read.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::delivery::Run;

/// The binary with a clean environment for what the tests control: no configuration path, log
/// settings or CLI secrets inherited from the caller; `env` then set, and run in `cwd`.
pub fn command<I, S>(args: I, env: &[(&str, &str)], cwd: &Path) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("HOOKGATE_CONFIG")
        .env_remove("HOOKGATE_LOG_FORMAT")
        .env_remove("HOOKGATE_SECRET")
        .env_remove("HOOKGATE_BEARER")
        .env_remove("RUST_LOG")
        .env("HOOKGATE_LOG", "info")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Run the binary to completion (at most 30 s).
pub async fn run<I, S>(args: I, env: &[(&str, &str)], cwd: &Path) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        command(args, env, cwd).stdin(Stdio::null()).output(),
    )
    .await
    .expect("the hookgate binary exits within 30 s")
    .expect("the hookgate binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `hookgate serve`.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// Append every line of `from` to `into`.
fn collect(
    from: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

/// The ingress and admin addresses of the "listening" line, in either log format.
fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let f = &v["fields"];
        if f["message"] != "listening" {
            return None;
        }
        return Some((
            f["listen"].as_str()?.parse().ok()?,
            f["admin"].as_str()?.parse().ok()?,
        ));
    }
    if !line.contains(" listening ") {
        return None;
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|a| a.parse().ok())
    };
    Some((field("listen=")?, field("admin=")?))
}

impl Served {
    /// Start `hookgate serve` plus `args` with `env` in `cwd`, and wait (up to 30 s) for its
    /// "listening" line (text or JSON log). `Err` with its output when it exits first.
    pub async fn start(args: &[&OsStr], env: &[(&str, &str)], cwd: &Path) -> Result<Served, Run> {
        let cmd = command(
            std::iter::once(OsStr::new("serve")).chain(args.iter().copied()),
            env,
            cwd,
        );
        Served::spawn(cmd).await
    }

    /// Start `cmd` (a `hookgate serve` command line the caller built, e.g. with an environment
    /// of its own) and wait for its "listening" line, as [`Served::start`] does.
    pub async fn spawn(mut cmd: Command) -> Result<Served, Run> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hookgate binary runs");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        let mut served = Served {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            stdout,
            stderr,
            readers,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = served.stderr().lines().find_map(listening);
            if let Some((addr, admin)) = found {
                served.addr = addr;
                served.admin = admin;
                return Ok(served);
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                let code = status.code().unwrap_or(-1);
                return Err(served.output(code).await);
            }
            assert!(
                Instant::now() < deadline,
                "hookgate serve did not log its addresses within 30 s:\n{}",
                served.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// What it wrote to stderr (its log) so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        super::scrape(&super::client(), &self.admin_url("/metrics")).await
    }

    /// Wait (up to 10 s) until the metric sample `series` reads `want`.
    pub async fn wait_metric(&self, series: &str, want: f64) {
        super::wait_for_metric(&super::client(), &self.admin_url("/metrics"), series, want).await
    }

    /// SIGTERM, then wait (up to 20 s) for it to exit; everything it wrote.
    pub async fn stop(mut self) -> Run {
        let pid = self.child.id().expect("still running").to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(st.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("hookgate serve exits within 20 s of SIGTERM")
            .unwrap();
        self.output(status.code().unwrap_or(-1)).await
    }

    /// SIGKILL, as a crash would; waits for it to be gone. Everything it wrote.
    pub async fn kill(mut self) -> Run {
        self.child.kill().await.expect("SIGKILL and wait");
        self.output(-9).await
    }

    async fn output(&mut self, code: i32) -> Run {
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        Run {
            code,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr(),
        }
    }
}
