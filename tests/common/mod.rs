//! Test harness: the real gateway on 127.0.0.1:0 with its own SQLite file, fixture loading, and
//! fake targets that record what they receive and answer as scripted.
#![allow(dead_code)]

pub mod delivery;
pub mod fake;
pub mod outbox;
pub mod postgres;
pub mod removed_target;
pub mod serve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const DATABRICKS_SECRET: &str = "anyRandomString";
pub const MLFLOW_SECRET: &str = "mlflow-test-secret";

/// A request file in the `vectors` format.
#[derive(Debug, Clone)]
pub struct Vector {
    pub file: String,
    pub secret: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub expected: Value,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vectors")
}

pub fn load_vectors(dir: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for p in entries {
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        out.push(Vector {
            file: p.file_name().unwrap().to_string_lossy().into_owned(),
            secret: v["secret"].as_str().unwrap_or("").to_string(),
            method: v["method"].as_str().unwrap().to_string(),
            path: v["path"].as_str().unwrap().to_string(),
            headers: v["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            body: v["body"].as_str().unwrap().to_string(),
            expected: v["expected"].clone(),
        });
    }
    assert!(!out.is_empty(), "no vectors in {dir}");
    out
}

/// The base configuration used by most tests: the two vector endpoints, a store in `dir`.
pub fn base_config(db: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
max_body = "256KiB"
shutdown_grace = "5s"
header_read_timeout = "2s"
body_read_timeout = "2s"

[store]
url = "sqlite://{db}"

[admin]
token = "admin-token"

[[endpoints]]
name = "databricks"
path = "/hooks/databricks"
scheme = "databricks"
secrets = ["not-this-one", "{DATABRICKS_SECRET}"]

[[endpoints]]
name = "mlflow"
path = "/mlflow/webhook"
scheme = "mlflow"
secrets = ["{MLFLOW_SECRET}"]
tolerance = "36500d"

# The receiver side of `bad-wrong-secret.json`: the file is signed with the real secret, but
# this receiver is configured with another one.
[[endpoints]]
name = "mlflow-other-secret"
path = "/mlflow/other-secret"
scheme = "mlflow"
secrets = ["not-the-secret"]
tolerance = "36500d"

[[endpoints]]
name = "mlflow-fresh"
path = "/mlflow/fresh"
scheme = "mlflow"
secrets = ["{MLFLOW_SECRET}"]

{extra}
"#,
        db = db.display()
    )
}

/// A running in-process gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub db: PathBuf,
    pub client: reqwest::Client,
    /// `https` when the configuration has `server.tls`.
    pub scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn client() -> reqwest::Client {
    client_for_test_ca().build().unwrap()
}

/// Post a Databricks `body` to `url` signed with `secret`, as a sender would: the status and
/// the JSON answer.
pub async fn post_databricks_to(url: &str, secret: &str, body: &str) -> (u16, Value) {
    let sig = hookgate::verify::databricks::sign(secret.as_bytes(), body.as_bytes());
    let r = client()
        .post(url)
        .header("X-Databricks-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A file of `tests/fixtures/tls` (see its `make.sh`).
pub fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A `[server.tls]` table serving `cert` and `key`; more keys may follow it.
pub fn tls_section(cert: &Path, key: &Path) -> String {
    format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// The certificate authority that signed `tests/fixtures/tls/*.pem`.
pub fn test_ca() -> reqwest::Certificate {
    let pem = std::fs::read(tls_fixture("ca.pem")).unwrap();
    reqwest::Certificate::from_pem(&pem).unwrap()
}

/// The test client's settings; it trusts only [`test_ca`] and records what each TLS
/// connection presented (`reqwest::tls::TlsInfo` in a response's extensions).
pub fn client_for_test_ca() -> reqwest::ClientBuilder {
    hookgate::targets::client_builder()
        .tls_certs_only([test_ca()])
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        // Shorter than the test servers' 2 s header timeout: a pooled connection is never
        // reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(1))
}

impl Gateway {
    /// Start with `base_config` plus `extra` TOML, in a fresh temporary directory.
    pub async fn start(extra: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hookgate.db");
        let toml = base_config(&db, extra);
        let mut g = Gateway::start_with(&toml, db).await;
        g._dir = Some(dir);
        g
    }

    /// Start with a complete TOML text (its store URL must point at `db`).
    pub async fn start_with(toml: &str, db: PathBuf) -> Gateway {
        Gateway::start_env(toml, db, HashMap::new()).await
    }

    pub async fn start_env(toml: &str, db: PathBuf, env: HashMap<String, String>) -> Gateway {
        let cfg = hookgate::config::load_with(toml, &|k: &str| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("test config invalid: {e}"));
        Gateway::start_config(cfg, db, None).await
    }

    /// Start from the configuration file `path` (its store URL must point at `db`); each message
    /// on the returned sender asks for a reload of that file.
    pub async fn start_reloadable(
        path: &Path,
        db: PathBuf,
    ) -> (Gateway, tokio::sync::mpsc::Sender<()>) {
        let read = {
            let path = path.to_path_buf();
            move || {
                let toml = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                hookgate::config::load_with(&toml, &|_: &str| None).map_err(|e| e.to_string())
            }
        };
        let cfg = read().unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let (tx, requests) = tokio::sync::mpsc::channel(1);
        let reloads = hookgate::app::Reloads {
            requests,
            load: Box::new(read),
        };
        (Gateway::start_config(cfg, db, Some(reloads)).await, tx)
    }

    async fn start_config(
        cfg: hookgate::config::Config,
        db: PathBuf,
        reloads: Option<hookgate::app::Reloads>,
    ) -> Gateway {
        let scheme = if cfg.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let ingress = TcpListener::bind(cfg.server.listen).await.unwrap();
        let admin = TcpListener::bind(cfg.server.admin_listen).await.unwrap();
        let addr = ingress.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hookgate::app::run_with_reloads(
                cfg,
                ingress,
                admin,
                async {
                    let _ = stopped.await;
                },
                reloads,
            )
            .await
            .expect("gateway runs");
        });
        let g = Gateway {
            addr,
            admin: admin_addr,
            db,
            client: client(),
            scheme,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        };
        g.wait_ready().await;
        g
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Send a vector file's request as recorded (method, path, headers, body).
    pub async fn send_vector(&self, v: &Vector) -> (u16, Value) {
        self.send_vector_to(v, &v.path).await
    }

    pub async fn send_vector_to(&self, v: &Vector, path: &str) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .filter(|(k, _)| !is_hop_header(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post_raw(&v.method, path, &headers, v.body.as_bytes().to_vec())
            .await
    }

    pub async fn post_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// Post a Databricks body signed with the vectors' secret.
    pub async fn post_databricks(&self, body: &str) -> (u16, Value) {
        self.post_databricks_signed(DATABRICKS_SECRET, body).await
    }

    /// Post a Databricks body to `/hooks/databricks`, signed with `secret`.
    pub async fn post_databricks_signed(&self, secret: &str, body: &str) -> (u16, Value) {
        let sig = hookgate::verify::databricks::sign(secret.as_bytes(), body.as_bytes());
        self.post_raw(
            "POST",
            "/hooks/databricks",
            &[
                ("Content-Type", "application/json"),
                ("X-Databricks-Signature", &sig),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        scrape(&self.client, &self.admin_url("/metrics")).await
    }

    /// Wait (up to 10 s) until the metric sample `series` reads `want`.
    pub async fn wait_metric(&self, series: &str, want: f64) {
        wait_for_metric(&self.client, &self.admin_url("/metrics"), series, want).await
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.admin_url(path))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_post(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.admin_url(path))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Stop the gateway gracefully and wait for it.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("gateway stops within 20 s")
                .expect("gateway task did not panic");
        }
    }
}

fn is_hop_header(k: &str) -> bool {
    matches!(
        k.to_ascii_lowercase().as_str(),
        "host" | "content-length" | "connection" | "accept-encoding"
    )
}

/// Rows in a table of a store file, read through a separate connection.
pub async fn count_rows(db: &Path, table: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let sql = match table {
        "events" => "SELECT COUNT(*) FROM events",
        "deliveries" => "SELECT COUNT(*) FROM deliveries",
        "attempts" => "SELECT COUNT(*) FROM attempts",
        other => panic!("unknown table {other}"),
    };
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}

/// Event ids stored, in arrival order.
pub async fn stored_event_ids(db: &Path) -> Vec<String> {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events ORDER BY id")
        .fetch_all(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    ids
}

/// Re-sign an MLflow vector with a current timestamp (its secret is in the file).
pub fn resign_mlflow_now(v: &Vector) -> Vector {
    let mut v = v.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id = v
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-MLflow-Delivery-Id"))
        .unwrap()
        .1
        .clone();
    let sig = hookgate::verify::mlflow::sign(v.secret.as_bytes(), &id, now, v.body.as_bytes());
    for (k, val) in v.headers.iter_mut() {
        if k.eq_ignore_ascii_case("X-MLflow-Timestamp") {
            *val = now.to_string();
        } else if k.eq_ignore_ascii_case("X-MLflow-Signature") {
            *val = sig.clone();
        }
    }
    v
}

/// The text of a `/metrics` scrape at `url`.
pub async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Scrape `url` until the metric sample `series` reads `want` (up to 10 s).
pub async fn wait_for_metric(client: &reqwest::Client, url: &str, series: &str, want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = metric(&scrape(client, url).await, series);
        if got == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} is {got:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of a metric sample line, e.g. `hookgate_requests_total{endpoint="x",status="200"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
