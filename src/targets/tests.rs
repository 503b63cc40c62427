//! Cross-kind tests: templates, the target set, redaction, and `deliver` against a local server.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::testutil::*;
use super::*;
use crate::config::{
    DatabricksJobConfig, GithubConfig, GitlabConfig, HttpConfig, JenkinsConfig, LogConfig,
    ParameterStyle, SlackConfig,
};
use crate::event::Tag;
use crate::secret::Secret;

fn slack(url: &str, text: Option<&str>) -> TargetKind {
    TargetKind::Slack(SlackConfig {
        url: Secret::new(url),
        blocks: false,
        username: None,
        icon_emoji: None,
        icon_url: None,
        registry_url: None,
        text: text.map(str::to_string),
        body: None,
    })
}

fn http_kind(url: &str, body: Option<&str>) -> TargetKind {
    TargetKind::Http(HttpConfig {
        url: url.into(),
        method: "POST".into(),
        headers: BTreeMap::new(),
        body: body.map(str::to_string),
        signing_secret: None,
    })
}

fn render_text(template: &str, e: &Event) -> String {
    let t = build(
        "t",
        TargetKind::Http(HttpConfig {
            body: Some(template.into()),
            ..match http_kind("https://x.example/", None) {
                TargetKind::Http(c) => c,
                _ => unreachable!(),
            }
        }),
    );
    body_str(&http_request(&t, e)).to_string()
}

#[test]
fn template_context() {
    let mut e = databricks_event();
    e.tags = vec![
        Tag {
            key: "team".into(),
            value: Some("fraud".into()),
        },
        Tag {
            key: "gone".into(),
            value: None,
        },
    ];
    e.counterpart = Some("model_version.stage_transitioned");
    let out = render_text(
        "{{ event.name }}|{{ event.counterpart }}|{{ event.source }}|{{ event.id }}|\
         {{ event.endpoint }}|{{ event.model }}|{{ event.version }}|{{ event.from_stage }}|\
         {{ event.to_stage }}|{{ event.alias }}|{{ event.tags.team }}|{{ event.tags.gone }}|\
         {{ event.comment }}|{{ event.timestamp_ms }}|{{ event.webhook_id }}|\
         {{ payload.model_name }}|{{ payload.data.name }}|{{ target }}|{{ attempt }}",
        &e,
    );
    assert_eq!(
        out,
        format!(
            "MODEL_VERSION_TRANSITIONED_STAGE|model_version.stage_transitioned|databricks|\
             {EVENT_ID}|registry|Airline_Delay_SparkML|8|None|Production||fraud|||\
             1589859029343|c5596721253c4b429368cf6f4341b88a|Airline_Delay_SparkML||t|1"
        )
    );
    assert_eq!(render_text("{{ event.text }}", &e), e.describe());
    assert_eq!(render_text("{{ raw }}", &e), DATABRICKS_BODY);

    let e = mlflow_event();
    assert_eq!(
        render_text(
            "{{ event.source }}|{{ event.alias }}|{{ event.to_stage }}|{{ payload.data.alias }}|\
             {{ payload.entity }}.{{ payload.action }}|{{ event.tags | length }}",
            &e
        ),
        "mlflow|champion||champion|model_version_alias.created|0"
    );
    let round_trip: serde_json::Value =
        serde_json::from_str(&render_text("{{ payload | tojson }}", &e)).unwrap();
    assert_eq!(round_trip, e.json);
}

#[test]
fn template_syntax_error_fails_build_with_the_key_path() {
    let err = build_err(
        "ml-slack",
        slack("https://hooks.slack.com/x", Some("{{ event.model")),
    );
    assert_eq!(err.path, "targets.ml-slack.text");
    assert!(err.message.starts_with("syntax error"), "{err}");
    assert!(err.message.contains("line 1"), "{err}");
}

#[test]
fn render_time_error_fails_build() {
    let err = build_err(
        "ml-slack",
        slack(
            "https://hooks.slack.com/x",
            Some("{{ event.model | no_such_filter }}"),
        ),
    );
    assert_eq!(err.path, "targets.ml-slack.text");
    assert!(err.message.contains("no_such_filter"), "{err}");
}

#[test]
fn render_error_at_delivery_is_a_template_error() {
    // Fine for the sample (Databricks), fails for MLflow events.
    let t = build(
        "s",
        slack(
            "https://hooks.slack.com/x",
            Some("{% if event.source == 'mlflow' %}{{ event.model | no_such_filter }}{% endif %}"),
        ),
    );
    let err = t.prepare(&context(&mlflow_event())).unwrap_err();
    assert!(matches!(err, RenderError::Template { .. }));
    assert!(
        err.to_string()
            .starts_with("template error: targets.s.text: "),
        "{err}"
    );
}

#[tokio::test]
async fn template_error_at_delivery_gives_up() {
    let t = build(
        "s",
        slack(
            "http://127.0.0.1:9/x",
            Some("{% if event.source == 'mlflow' %}{{ event.model | no_such_filter }}{% endif %}"),
        ),
    );
    let d = t
        .deliver(Some(&http_client()), &context(&mlflow_event()))
        .await;
    assert_eq!(d.status_code, None);
    match d.outcome {
        Outcome::GiveUp { reason } => assert!(reason.starts_with("template error: "), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn targets_build_get_names_iter() {
    let cfgs = BTreeMap::from([
        (
            "b-log".to_string(),
            target_config(TargetKind::Log(LogConfig::default())),
        ),
        (
            "a-slack".to_string(),
            target_config(slack("https://hooks.slack.com/x", None)),
        ),
    ]);
    let targets = Targets::build(&cfgs).unwrap();
    assert_eq!(targets.names().collect::<Vec<_>>(), ["a-slack", "b-log"]);
    assert_eq!(targets.get("a-slack").unwrap().kind(), "slack");
    assert_eq!(targets.get("b-log").unwrap().name(), "b-log");
    assert!(targets.get("nope").is_none());
    assert_eq!(targets.iter().count(), 2);
    assert_eq!(targets.len(), 2);

    let mut bad = cfgs.clone();
    bad.insert(
        "c-http".into(),
        target_config(http_kind("https://x.example/", Some("{% for %}"))),
    );
    assert_eq!(
        Targets::build(&bad).unwrap_err().0[0].path,
        "targets.c-http.body"
    );
}

/// One target of every kind, each with a distinctive secret: none of them shows anywhere.
#[test]
fn no_secret_is_ever_shown() {
    let kinds: Vec<(TargetKind, &[&str])> = vec![
        (
            slack("https://hooks.slack.com/services/T1/B1/SLACKzzSECRET", None),
            &["SLACKzzSECRET", "T1/B1"],
        ),
        (
            TargetKind::Github(GithubConfig {
                repository: "o/r".into(),
                token: Secret::new("GITHUBzzSECRET"),
                api_url: "https://api.github.com".into(),
                event_type: None,
                workflow: None,
                git_ref: None,
                inputs: BTreeMap::new(),
                client_payload: BTreeMap::new(),
            }),
            &["GITHUBzzSECRET"],
        ),
        (
            TargetKind::Gitlab(GitlabConfig {
                project: "1".into(),
                token: Secret::new("GITLABzzSECRET"),
                git_ref: "main".into(),
                base_url: "https://gitlab.com".into(),
                variables: BTreeMap::new(),
            }),
            &["GITLABzzSECRET"],
        ),
        (
            TargetKind::Jenkins(JenkinsConfig {
                url: "https://ci.example".into(),
                job: "j".into(),
                user: Some("u".into()),
                api_token: Some(Secret::new("JENKINSAPIzzSECRET")),
                trigger_token: Some(Secret::new("JENKINSTRIGGERzzSECRET")),
                parameters: BTreeMap::new(),
            }),
            &["JENKINSAPIzzSECRET", "JENKINSTRIGGERzzSECRET"],
        ),
        (
            TargetKind::Http(HttpConfig {
                url: "https://x.example/hook".into(),
                method: "POST".into(),
                headers: BTreeMap::from([(
                    "Authorization".into(),
                    Secret::new("Bearer HTTPHDRzzSECRET"),
                )]),
                body: None,
                signing_secret: Some(Secret::new("HTTPSIGNzzSECRET")),
            }),
            &["HTTPHDRzzSECRET", "HTTPSIGNzzSECRET"],
        ),
        (
            TargetKind::DatabricksJob(DatabricksJobConfig {
                workspace_url: "https://adb-1.azuredatabricks.net".into(),
                job_id: 7,
                token: Secret::new("DATABRICKSzzSECRET"),
                parameters: ParameterStyle::JobParameters,
                event_message: None,
            }),
            &["DATABRICKSzzSECRET"],
        ),
    ];
    for (kind, secrets) in kinds {
        let cfg = target_config(kind);
        let t = Target::build("t", &cfg).unwrap();
        let cfg_debug = format!("{cfg:?}");
        let targets = Targets::build(&BTreeMap::from([("t".to_string(), cfg)])).unwrap();
        for e in [databricks_event(), mlflow_event()] {
            let req = http_request(&t, &e);
            let shown = req.redacted();
            assert!(
                shown
                    .headers
                    .iter()
                    .all(|(_, v)| !v.contains("Bearer ") && !v.contains("Basic ")),
                "{shown}"
            );
            for s in secrets {
                assert_no_secret(&t, &req, s);
                assert!(!format!("{targets:?}").contains(s));
                assert!(!cfg_debug.contains(s), "{cfg_debug}");
            }
        }
    }
}

#[test]
fn redacted_request_serializes_and_displays() {
    let t = build(
        "s",
        slack("https://hooks.slack.com/services/T/B/X", Some("hi")),
    );
    let req = http_request(&t, &databricks_event());
    let shown = req.redacted();
    assert_eq!(
        serde_json::to_value(&shown).unwrap(),
        json!({
            "method": "POST",
            "url": "https://hooks.slack.com/[redacted]",
            "headers": {"Content-Type": "application/json"},
            "body": "{\"text\":\"hi\"}",
        })
    );
    assert_eq!(
        shown.to_string(),
        "POST https://hooks.slack.com/[redacted]\nContent-Type: application/json\n\n{\"text\":\"hi\"}\n"
    );
    assert_eq!(req.to_string(), shown.to_string());
}

#[test]
fn header_values_that_http_refuses_fail_prepare() {
    let mut c = match http_kind("https://x.example/", None) {
        TargetKind::Http(c) => c,
        _ => unreachable!(),
    };
    c.headers = BTreeMap::from([("X-Model".into(), Secret::new("{{ event.model }}"))]);
    let t = build("h", TargetKind::Http(c));
    let mut e = mlflow_event();
    e.model = Some("evil\r\nX-Injected: 1".into());
    let err = t.prepare(&context(&e)).unwrap_err();
    assert_eq!(err.path(), "targets.h.headers");
    assert!(!err.to_string().contains("evil"));
}

// ---------------------------------------------------------------------------------------------
// deliver() against a local server.

/// A one-answer-per-connection HTTP/1.1 server on 127.0.0.1:0. Every request received (head and
/// body, as text) is sent on the channel. `response` = None: accept and never answer.
async fn serve(response: Option<&'static str>) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Bounded: tests make a handful of calls at most.
        for _ in 0..16 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(response) = response else {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                };
                let request = read_request(&mut sock).await;
                let _ = tx.send(request);
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), rx)
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn with_timeout(kind: TargetKind, timeout: Duration) -> Target {
    let mut cfg = target_config(kind);
    cfg.retry.timeout = timeout;
    Target::build("t", &cfg).unwrap()
}

#[tokio::test]
async fn deliver_200_is_delivered_with_the_exact_request() {
    let (base, mut rx) = serve(Some(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    ))
    .await;
    let t = build("t", http_kind(&format!("{base}/hook"), None));
    let e = mlflow_event();
    let d = t.deliver(Some(&http_client()), &context(&e)).await;
    assert_eq!(
        d,
        Delivery {
            outcome: Outcome::Delivered { status: 200 },
            status_code: Some(200)
        }
    );
    let got = rx.recv().await.unwrap();
    assert!(got.starts_with("POST /hook HTTP/1.1\r\n"), "{got}");
    let lower = got.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nidempotency-key: {EVENT_ID}\r\n")),
        "{got}"
    );
    assert!(lower.contains(&format!(
        "\r\nuser-agent: {}\r\n",
        USER_AGENT.to_ascii_lowercase()
    )));
    assert!(got.ends_with(&format!("\r\n\r\n{MLFLOW_BODY}")), "{got}");
}

#[tokio::test]
async fn deliver_503_with_retry_after_is_retried() {
    let (base, _rx) = serve(Some(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
    ))
    .await;
    let t = build("t", http_kind(&format!("{base}/hook"), None));
    let d = t
        .deliver(Some(&http_client()), &context(&databricks_event()))
        .await;
    assert_eq!(
        d,
        Delivery {
            outcome: Outcome::Retry {
                reason: "http 503: busy".into(),
                retry_after: Some(Duration::from_secs(7)),
            },
            status_code: Some(503)
        }
    );
}

#[tokio::test]
async fn deliver_404_channel_not_found_gives_up() {
    let (base, mut rx) = serve(Some(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 17\r\nConnection: close\r\n\r\nchannel_not_found",
    ))
    .await;
    let t = build(
        "t",
        slack(&format!("{base}/services/T/B/SLACKzzSECRET"), None),
    );
    let d = t
        .deliver(Some(&http_client()), &context(&databricks_event()))
        .await;
    assert_eq!(
        d.outcome,
        Outcome::GiveUp {
            reason: "http 404: channel_not_found".into()
        }
    );
    assert_eq!(d.status_code, Some(404));
    let got = rx.recv().await.unwrap();
    assert!(got.starts_with("POST /services/T/B/SLACKzzSECRET HTTP/1.1\r\n"));
}

#[tokio::test]
async fn deliver_redirect_is_not_followed() {
    let (base, mut rx) = serve(Some(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ))
    .await;
    let t = build("t", http_kind(&format!("{base}/hook"), None));
    let d = t
        .deliver(Some(&http_client()), &context(&databricks_event()))
        .await;
    assert_eq!(
        d.outcome,
        Outcome::GiveUp {
            reason: "http 302: unexpected redirect".into()
        }
    );
    rx.recv().await.unwrap();
    assert!(rx.try_recv().is_err(), "only one request was made");
}

#[tokio::test]
async fn deliver_connection_refused_is_a_connect_error_without_the_url() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let t = build(
        "t",
        slack(&format!("http://{addr}/services/T/B/SLACKzzSECRET"), None),
    );
    let d = t
        .deliver(Some(&http_client()), &context(&databricks_event()))
        .await;
    assert_eq!(d.status_code, None);
    match &d.outcome {
        Outcome::Retry {
            reason,
            retry_after: None,
        } => {
            assert!(reason.starts_with("connect error"), "{reason}");
            assert!(!reason.contains("SLACKzzSECRET"), "{reason}");
            assert!(!reason.contains("127.0.0.1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deliver_timeout_is_retried() {
    let (base, _rx) = serve(None).await;
    let t = with_timeout(
        http_kind(&format!("{base}/hook"), None),
        Duration::from_millis(200),
    );
    let started = std::time::Instant::now();
    let d = t
        .deliver(Some(&http_client()), &context(&databricks_event()))
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        d,
        Delivery {
            outcome: Outcome::Retry {
                reason: "timeout".into(),
                retry_after: None
            },
            status_code: None
        }
    );
}

#[test]
fn the_idempotency_key_is_the_event_id_until_a_replay_gives_a_new_one() {
    let event = mlflow_event();
    let mut ctx = context(&event);
    assert_eq!(ctx.idempotency_key(), EVENT_ID);
    ctx.attempt = 5;
    assert_eq!(ctx.idempotency_key(), EVENT_ID, "retries keep it");
    ctx.replayed_at_ms = Some(1_795_617_200_000);
    assert_eq!(
        ctx.idempotency_key(),
        format!("{EVENT_ID}:replay-1795617200000")
    );
}
