//! The README's commands, run as the built binary: `check`, `sign`, `send` (against the real
//! gateway on 127.0.0.1:0, in the clear and over HTTPS), and a bearer-token endpoint end to end.

mod common;

use std::path::Path;

use common::delivery::{Run, hookgate, write_config};
use common::*;
use serde_json::Value;

/// `hookgate send --scheme databricks` of `event` to `url`, signed with `secret`, plus `extra`.
async fn send_databricks(url: &str, secret: &str, event: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "send",
        "--url",
        url,
        "--scheme",
        "databricks",
        "--secret",
        secret,
        "--event",
        event,
    ];
    args.extend_from_slice(extra);
    hookgate(args).await
}

/// `hookgate check` on a file expected to fail: its stderr, once the exit code is 1.
async fn check_fails(path: &Path) -> String {
    let out = hookgate(["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.stderr
}

#[tokio::test]
async fn check_passes_the_shipped_file_and_names_every_key_path_that_is_wrong() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("routes.toml");
    let out = hookgate(["check", "--config", shipped.to_str().unwrap()]).await;
    let stdout = out.stdout;
    assert_eq!(out.code, 0, "{stdout}{}", out.stderr);
    assert!(stdout.trim_end().ends_with(": OK"), "{stdout}");
    assert!(stdout.contains("/hooks/databricks"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(
        dir.path(),
        r#"
[server]
listen = "127.0.0.1:0"
max_body = "lots"

[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["s"]
colour = "blue"
"#,
    );
    let stderr = check_fails(&bad).await;
    assert!(stderr.contains("server.max_body"), "{stderr}");
    assert!(stderr.contains("endpoints[0].colour"), "{stderr}");
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    // A file that reads well but whose targets do not build: each one is reported.
    write_config(
        dir.path(),
        r#"
[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["s"]

[targets.ci]
kind = "http"
url = "https://ci.example/hook"
body = "{% for %}"

[targets.chat]
kind = "slack"
url = "https://hooks.slack.example/services/T0/B0/X"
text = "{{ event.name | no_such_filter }}"

[targets.audit]
kind = "log"
"#,
    );
    let stderr = check_fails(&bad).await;
    for path in ["targets.chat.text", "targets.ci.body"] {
        assert!(stderr.contains(path), "{path} in {stderr}");
    }
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    // The certificate files are read too, as start-up would.
    let with_tls = |tls: &str| {
        let endpoint = "[[endpoints]]\nname = \"registry\"\npath = \"/hooks/registry\"\n\
                        scheme = \"databricks\"\nsecrets = [\"s\"]\n";
        write_config(dir.path(), &format!("{tls}\n{endpoint}"))
    };
    with_tls(&tls_section(
        Path::new("/nonexistent/cert.pem"),
        Path::new("/nonexistent/key.pem"),
    ));
    let stderr = check_fails(&bad).await;
    assert!(
        stderr.contains("server.tls.cert: cannot be read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server.tls.key: cannot be read"),
        "{stderr}"
    );

    // Readable ones: the summary says HTTPS and until when the chain is valid.
    let good = with_tls(&tls_section(
        &tls_fixture("server.pem"),
        &tls_fixture("server.key"),
    ));
    let out = hookgate(["check", "--config", good.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("(HTTPS, max body"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("tls        chain valid until 2126-11-08T09:01:00Z\n"),
        "{}",
        out.stdout
    );
}

/// A configuration in `dir` with one Databricks endpoint and the store at `url`.
fn with_store(dir: &Path, url: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
url = "{url}"

[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["s"]
"#
        ),
    )
}

/// `serve` on `cfg`, run to completion: it listens first, then cannot open its store and
/// exits. What it printed.
async fn serve_until_exit(dir: &Path, cfg: &Path) -> Run {
    common::serve::run(
        [
            std::ffi::OsStr::new("serve"),
            "--config".as_ref(),
            cfg.as_os_str(),
        ],
        &[],
        dir,
    )
    .await
}

/// A PostgreSQL URL whose `sslmode` needs TLS (which this build lacks) is refused by `check`
/// as by `serve`: at its key path, once, without the password, and without connecting.
#[tokio::test]
async fn check_refuses_a_postgres_url_that_serve_would_refuse_without_connecting() {
    use common::serve::{Served, run};
    use std::ffi::OsStr;
    const PASSWORD: &str = "pw-XYZZY-4711";
    const WANT: &str = "store.url: sslmode (or PGSSLMODE) requires TLS";
    // Where the URLs point: a connection attempt would show up as a pending accept.
    let db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    db.set_nonblocking(true).unwrap();
    let port = db.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let with_url = |query: &str| {
        with_store(
            dir.path(),
            &format!("postgres://hookgate:{PASSWORD}@127.0.0.1:{port}/hookgate{query}"),
        )
    };
    let cfg = with_url("?sslmode=require");
    let args = [OsStr::new("--config"), cfg.as_os_str()];
    let check = |env: &'static [(&'static str, &'static str)]| {
        run([OsStr::new("check"), args[0], args[1]], env, dir.path())
    };
    let no_password = |out: &Run| {
        assert!(!out.stdout.contains(PASSWORD), "{}", out.stdout);
        assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    };

    let out = check(&[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(WANT), "{}", out.stderr);
    assert!(out.stderr.contains("1 error(s)"), "{}", out.stderr);
    no_password(&out);

    // `serve` says the same, once (the error used to be printed twice over).
    let Err(out) = Served::start(&args, &[], dir.path()).await else {
        panic!("serve started with sslmode=require");
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr.matches("requires TLS").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(WANT), "{}", out.stderr);
    no_password(&out);

    // From the environment, as sqlx reads it when the URL has no sslmode.
    with_url("");
    let out = check(&[("PGSSLMODE", "verify-full")]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(WANT), "{}", out.stderr);
    // Plain TCP is fine, and the summary shows the store without its password.
    let out = check(&[("PGSSLMODE", "disable")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("store      postgres://127.0.0.1:{port}/hookgate")),
        "{}",
        out.stdout
    );
    no_password(&out);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    // A misspelt parameter is ignored at start (and logged): `check` says so too.
    with_url("?pasword=x");
    let out = check(&[("PGSSLMODE", "disable")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains(r#"warning: store.url: unknown parameter "pasword" is ignored"#),
        "{}",
        out.stderr
    );
    no_password(&out);

    assert_eq!(
        db.accept().map(drop).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "something connected to the database"
    );
}

/// An error opening the store is printed once, not once per layer that wraps it.
#[tokio::test]
async fn serve_prints_a_store_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("hookgate.db");
    let cfg = with_store(dir.path(), &format!("sqlite://{}", missing.display()));
    let out = serve_until_exit(dir.path(), &cfg).await;
    assert_eq!(out.code, 2, "{out:?}");
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {}", out.stderr));
    assert!(
        error.starts_with("error: store: database error: "),
        "{error}"
    );
    assert_eq!(
        error.matches("unable to open database file").count(),
        1,
        "{error}"
    );
}

/// A PostgreSQL server that refuses the connection: the error says so, not only that a pool
/// timed out waiting.
#[tokio::test]
async fn serve_names_why_it_could_not_reach_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::delivery::closed_port();
    let url = format!("postgres://hookgate@127.0.0.1:{port}/hookgate?sslmode=disable");
    let cfg = with_store(dir.path(), &url);
    let out = serve_until_exit(dir.path(), &cfg).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("refused"), "{}", out.stderr);
    assert!(!out.stderr.contains("pool timed out"), "{}", out.stderr);
}

#[tokio::test]
async fn check_refuses_values_the_gateway_could_not_run_with() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(
        dir.path(),
        r#"
[server]
listen = "0.0.0.0:18085"
admin_listen = "127.0.0.1:18085"

[retry]
timeout = "292271000y"

[[endpoints]]
name = "registry"
path = "/hooks/modèle"
scheme = "databricks"
secrets = ["s"]

[[endpoints]]
name = "mlflow"
path = "/hooks/mlflow"
scheme = "mlflow"
secrets = ["s"]
bearer = "t"

[targets.chat]
kind = "log"
rate = 1e-20

[[routes]]
to = ["chat"]
"#,
    );
    let stderr = check_fails(&bad).await;
    let file = bad.display();
    for line in [
        format!(
            "{file}: server.admin_listen: cannot be bound beside server.listen: both use port 18085, which 0.0.0.0 takes on every IPv4 address; use another port"
        ),
        format!("{file}: retry.timeout: must be at most 100 years"),
        format!(
            "{file}: endpoints[0].path: must be written as senders send it, percent-encoded: \"/hooks/mod%C3%A8le\" (they encode non-ASCII characters and \" < > ` {{ }} | \\ ^, and requests are matched on the path as sent)"
        ),
        format!(
            "{file}: endpoints[1].bearer: {}",
            hookgate::config::MLFLOW_BEARER_REFUSED
        ),
        format!(
            "{file}: targets.chat.rate: must be between 1/86400 (one message a day) and 1000000 messages per second; omit it for no limit"
        ),
        format!("{file}: 5 error(s)"),
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "{line}\nnot in:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn a_file_that_cannot_be_read_or_parsed_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexist.toml");
    let io = std::fs::read_to_string(&missing).unwrap_err();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[server\n").unwrap();
    let parse = "invalid TOML: TOML parse error at line 1, column 8: invalid table header; \
                 expected `.`, `]`";
    for (path, problem) in [
        (&missing, format!("cannot read configuration file: {io}")),
        (&broken, parse.to_string()),
    ] {
        let file = path.to_str().unwrap();
        let stderr = check_fails(path).await;
        assert_eq!(stderr, format!("{file}: {problem}\n{file}: 1 error(s)\n"));
        let out = hookgate(["serve", "--config", file]).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        let want = format!("error: invalid configuration {file}: {problem}");
        assert!(
            out.stderr.lines().any(|l| l == want),
            "{want}\nnot in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn sign_prints_the_headers_the_senders_send() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, file) in [
        ("databricks", "databricks/MODEL_VERSION_CREATED.json"),
        ("mlflow", "mlflow/model_version.created.json"),
    ] {
        let v: Value =
            serde_json::from_slice(&std::fs::read(fixtures().join(file)).unwrap()).unwrap();
        let body = dir.path().join("body.json");
        std::fs::write(&body, v["body"].as_str().unwrap()).unwrap();
        let h = |name: &str| v["headers"][name].as_str().unwrap().to_string();
        let mut args = vec![
            "sign".to_string(),
            "--scheme".into(),
            scheme.into(),
            "--secret".into(),
            v["secret"].as_str().unwrap().into(),
        ];
        let want = if scheme == "mlflow" {
            args.extend([
                "--delivery-id".into(),
                h("X-MLflow-Delivery-Id"),
                "--timestamp".into(),
                h("X-MLflow-Timestamp"),
            ]);
            format!(
                "X-MLflow-Delivery-Id: {}\nX-MLflow-Timestamp: {}\nX-MLflow-Signature: {}\n",
                h("X-MLflow-Delivery-Id"),
                h("X-MLflow-Timestamp"),
                h("X-MLflow-Signature")
            )
        } else {
            format!("X-Databricks-Signature: {}\n", h("X-Databricks-Signature"))
        };
        args.push(body.to_str().unwrap().into());
        let out = hookgate(&args).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout, want, "{file}");
    }
}

#[tokio::test]
async fn send_delivers_a_signed_sample_and_reports_a_refusal() {
    let g = Gateway::start("").await;
    let url = g.url("/hooks/databricks");
    let out = send_databricks(
        &url,
        DATABRICKS_SECRET,
        "MODEL_VERSION_TRANSITIONED_STAGE",
        &["--model", "churn"],
    )
    .await;
    let stdout = out.stdout;
    assert_eq!(out.code, 0, "{stdout}{}", out.stderr);
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    let answer: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(answer["status"], "accepted", "{stdout}");
    assert_eq!(answer["model"], "churn");
    let id = answer["event_id"].as_str().unwrap();
    assert_eq!(stored_event_ids(&g.db).await, [id]);

    let out = send_databricks(&url, "not-the-secret", "MODEL_VERSION_CREATED", &[]).await;
    let stdout = out.stdout;
    assert_eq!(out.code, 1, "{stdout}");
    assert!(stdout.contains("HTTP 401"), "{stdout}");
    assert!(stdout.contains("bad_signature"), "{stdout}");
    assert!(!stdout.contains("not-the-secret"), "{stdout}");
    assert_eq!(
        count_rows(&g.db, "events").await,
        1,
        "the refusal stored nothing"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_bearer_endpoint_refuses_a_missing_or_wrong_token() {
    let g = Gateway::start(
        r#"
[[endpoints]]
name = "ci"
path = "/hooks/ci"
scheme = "databricks"
secrets = ["ci-secret"]
bearer = "ci-token"
"#,
    )
    .await;
    let body = r#"{"event":"MODEL_VERSION_CREATED","webhook_id":"w","event_timestamp":1,"model_name":"m","version":"1"}"#;
    let sig = hookgate::verify::databricks::sign(b"ci-secret", body.as_bytes());
    let post = async |auth: Option<&str>| {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Databricks-Signature", sig.as_str()),
        ];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        g.post_raw("POST", "/hooks/ci", &headers, body.as_bytes().to_vec())
            .await
    };
    let (s, v) = post(None).await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (401, Some("missing_token")),
        "{v}"
    );
    let (s, v) = post(Some("Bearer ci-tokem")).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("bad_token")), "{v}");
    let (s, v) = post(Some("Basic ci-token")).await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("bad_token")), "{v}");
    assert_eq!(count_rows(&g.db, "events").await, 0);
    let (s, v) = post(Some("Bearer ci-token")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("accepted")), "{v}");

    // `send --bearer` sends the token too.
    let out = send_databricks(
        &g.url("/hooks/ci"),
        "ci-secret",
        "COMMENT_CREATED",
        &["--bearer", "ci-token"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(count_rows(&g.db, "events").await, 2);
    g.stop().await;
}

#[tokio::test]
async fn send_reaches_an_https_gateway_that_its_ca_file_vouches_for() {
    let g = Gateway::start(&tls_section(
        &tls_fixture("server.pem"),
        &tls_fixture("server.key"),
    ))
    .await;
    let url = g.url("/hooks/databricks");
    assert!(url.starts_with("https://"), "{url}");
    let send = async |extra: &[&str]| {
        send_databricks(&url, DATABRICKS_SECRET, "MODEL_VERSION_CREATED", extra).await
    };
    let ca = tls_fixture("ca.pem");
    let out = send(&["--ca", ca.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("HTTP 200"), "{}", out.stdout);

    // Without it the system's roots are asked, which do not know the test CA: an error (2),
    // not a refusal (1).
    let out = send(&[]).await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("could not reach"), "{}", out.stderr);
    // ... that says why, not only "error sending request".
    assert!(
        out.stderr.contains("UnknownIssuer") || out.stderr.contains("unknown issuer"),
        "{}",
        out.stderr
    );
    // A file with no certificate in it is named.
    let key = tls_fixture("server.key");
    let out = send(&["--ca", key.to_str().unwrap()]).await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("no PEM certificate"), "{}", out.stderr);
    assert_eq!(count_rows(&g.db, "events").await, 1);
    g.stop().await;
}
