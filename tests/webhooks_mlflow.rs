//! `hookgate webhooks` against a real MLflow 3.17.2 tracking server, end to end: the CLI
//! registers the in-process gateway as an MLflow webhook, MLflow's test call reaches it, and a
//! real registry action (a new model version) arrives signed, verifies, and is relayed byte for
//! byte to a fake target.
//!
//! Needs the `mlflow` executable named by `HOOKGATE_TEST_MLFLOW` (`scripts/install-mlflow.sh`
//! installs one and prints its path). Without it the test is reported as ignored, not passed,
//! which is why this file has its own harness.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use common::fake::FakeTarget;

const ENV: &str = "HOOKGATE_TEST_MLFLOW";
const SECRET: &str = "mlflow-e2e-secret-4b7d9f1a";
const MODEL: &str = "hookgate-e2e-model";

fn main() {
    let args = Arguments::from_args();
    let mlflow = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty());
    let skipped = mlflow.is_none();
    let mut trial = Trial::test("mlflow_server_registers_tests_and_delivers", move || {
        let mlflow = mlflow.ok_or_else(|| Failed::from(format!("{ENV} is not set")))?;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?
            .block_on(round_trip(PathBuf::from(mlflow)));
        Ok(())
    });
    if skipped {
        eprintln!(
            "webhooks_mlflow: ignored: set {ENV} to an `mlflow` 3.17.2 executable \
             (bash scripts/install-mlflow.sh prints one) to run it"
        );
        trial = trial
            .with_kind(format!("needs {ENV}"))
            .with_ignored_flag(true);
    }
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// A running `mlflow server`, stopped with its whole process group (it starts uvicorn workers)
/// when dropped, whether the test passed or panicked.
struct MlflowServer {
    child: std::process::Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MlflowServer {
    async fn start(mlflow: &Path) -> MlflowServer {
        use std::os::unix::process::CommandExt;

        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("mlflow.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(mlflow)
            .args([
                "server",
                "--backend-store-uri",
                &format!("sqlite:///{}", dir.path().join("mlflow.db").display()),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            // The gateway is on 127.0.0.1 and speaks plain HTTP: MLflow refuses both by default.
            .env("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
            .env("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", mlflow.display()));
        let mut server = MlflowServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let client = common::client();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mlflow server exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(r) = client.get(format!("{}/health", self.url)).send().await
                && r.status().is_success()
            {
                eprintln!("mlflow server up after {:?}", started.elapsed());
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "mlflow server not healthy within 180 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.url)
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = std::process::Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The parent is gone; make sure its workers are too.
                signal("-KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal("-KILL");
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway, in process, on listeners bound before its configuration is written (the
/// configuration's `server.public_url` is the gateway's own address).
struct Gateway {
    addr: SocketAddr,
    config: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(target: &FakeTarget) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let ingress = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ingress.local_addr().unwrap();
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://{addr}"
shutdown_grace = "5s"

[store]
url = "sqlite://{db}"

[[endpoints]]
name = "mlflow"
path = "/hooks/mlflow"
scheme = "mlflow"
secrets = ["{SECRET}"]

[targets.relay]
kind = "http"
url = "{relay}"

[retry]
initial = "100ms"
max_delay = "1s"

[[routes]]
name = "registry events"
events = ["REGISTERED_MODEL_CREATED", "model_version.created", "model_version_alias.created", "COMMENT_CREATED"]
to = ["relay"]
"#,
            db = dir.path().join("hookgate.db").display(),
            relay = target.url("/relay"),
        );
        let config = dir.path().join("routes.toml");
        std::fs::write(&config, &toml).unwrap();
        let cfg = hookgate::config::load(&config).expect("test config is valid");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hookgate::app::run(cfg, ingress, admin, async {
                let _ = stopped.await;
            })
            .await
            .expect("gateway runs");
        });
        Gateway {
            addr,
            config,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("gateway stops")
            .expect("gateway task did not panic");
    }
}

#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn cli(gateway: &Gateway, mlflow: &MlflowServer, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("webhooks")
        .args(args)
        .args(["--endpoint", "mlflow", "--config"])
        .arg(&gateway.config)
        .env_clear()
        .env("MLFLOW_TRACKING_URI", &mlflow.url)
        .output()
        .await
        .unwrap();
    let o = Output {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !o.stdout.contains(SECRET) && !o.stderr.contains(SECRET),
        "the secret was printed: {o:#?}"
    );
    assert_eq!(o.code, Some(0), "{args:?} failed: {o:#?}");
    o
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Value {
    let r = client.post(url).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {v}");
    v
}

async fn round_trip(mlflow_exe: PathBuf) {
    let started = Instant::now();
    let target = FakeTarget::start().await;
    let gateway = Gateway::start(&target).await;
    let mlflow = MlflowServer::start(&mlflow_exe).await;
    let client = common::client();

    // create: registered in MLflow's "test mode" (DISABLED), with the routes' events.
    let out = cli(&gateway, &mlflow, &["create"]).await;
    let id = out
        .stdout
        .split_whitespace()
        .nth(2)
        .expect("created webhook <id>")
        .to_string();
    assert!(
        out.stdout
            .starts_with(&format!("created webhook {id} (DISABLED)")),
        "{out:#?}"
    );
    assert!(out.stderr.contains("COMMENT_CREATED"), "dropped: {out:#?}");
    let listed: Value = client
        .get(mlflow.api("webhooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hooks = listed["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{listed}");
    let hook = &hooks[0];
    assert_eq!(hook["webhook_id"], id.as_str());
    assert_eq!(hook["name"], "hookgate-mlflow");
    assert_eq!(hook["url"], format!("http://{}/hooks/mlflow", gateway.addr));
    assert_eq!(hook["status"], "DISABLED");
    let mut events: Vec<String> = hook["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}.{}",
                e["entity"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "MODEL_VERSION.CREATED",
            "MODEL_VERSION_ALIAS.CREATED",
            "REGISTERED_MODEL.CREATED"
        ]
    );
    let fp = hookgate::cli::webhooks::plan::secret_fingerprint(SECRET);
    assert_eq!(
        hook["description"],
        format!("managed by hookgate: endpoint=mlflow fp={fp}")
    );

    // test: MLflow signs its example payload with the registered secret; the gateway accepts it.
    let out = cli(&gateway, &mlflow, &["test", &id]).await;
    assert!(out.stdout.contains("answered HTTP 200"), "{out:#?}");
    assert!(out.stdout.contains("\"status\":\"accepted\""), "{out:#?}");

    // sync right after create: the real server's answers read back as up to date.
    let out = cli(&gateway, &mlflow, &["sync"]).await;
    assert!(out.stdout.contains("nothing to change"), "{out:#?}");

    let out = cli(&gateway, &mlflow, &["activate", &id]).await;
    assert!(out.stdout.contains("is now ACTIVE"), "{out:#?}");
    let out = cli(&gateway, &mlflow, &["list"]).await;
    assert!(out.stdout.contains(&format!("* {id}  ACTIVE")), "{out:#?}");
    assert!(out.stdout.contains("secret current"), "{out:#?}");

    // A real registry action: MLflow sends `model_version.created` to the gateway, which
    // verifies it and relays the body as received.
    post(
        &client,
        &mlflow.api("registered-models/create"),
        json!({"name": MODEL}),
    )
    .await;
    post(
        &client,
        &mlflow.api("model-versions/create"),
        json!({"name": MODEL, "source": "s3://hookgate-e2e/models/1"}),
    )
    .await;
    let relayed_event = |event: &str| {
        target.requests().into_iter().find(|r| {
            r.header("X-Hookgate-Event") == Some(event)
                && serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|v| v["data"]["name"] == MODEL)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let relayed = loop {
        // registered_model.created was subscribed too and arrives the same way.
        if let (Some(r), Some(_)) = (
            relayed_event("model_version.created"),
            relayed_event("registered_model.created"),
        ) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the events for {MODEL} were not relayed within 30 s; the target got {:#?}",
            target.requests()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body: Value = serde_json::from_slice(&relayed.body).unwrap();
    assert_eq!(body["entity"], "model_version");
    assert_eq!(body["action"], "created");
    assert_eq!(body["data"]["version"], "1");
    // Byte for byte: MLflow serialises with Python's `json.dumps` separators, which a
    // re-serialisation by the gateway would have changed.
    let text = relayed.text();
    assert!(
        text.starts_with("{\"entity\": \"model_version\", \"action\": \"created\""),
        "{text}"
    );
    let out = cli(&gateway, &mlflow, &["delete", &id]).await;
    assert!(out.stdout.contains("deleted"), "{out:#?}");
    let out = cli(&gateway, &mlflow, &["list"]).await;
    assert!(out.stdout.contains(": 0"), "{out:#?}");

    gateway.stop().await;
    drop(mlflow);
    eprintln!("round trip took {:?}", started.elapsed());
}
