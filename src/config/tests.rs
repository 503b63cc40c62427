//! Tests of the whole loading pipeline, through the public functions.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

/// A value that must never show up in any output: `Debug`, `summary()` or an error.
const SECRET: &str = "s3cr3t-XYZZY-7f9a";

/// The `routes.toml` of SPEC section 7, verbatim.
const SPEC_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"          # webhook ingress only
admin_listen = "127.0.0.1:9090"    # /metrics, /healthz, /readyz, /admin/* (never public)
max_body = "256KiB"
shutdown_grace = "30s"
# tls = { cert = "cert.pem", key = "key.pem" }

[store]
url = "sqlite://hookgate.db"       # embedded default; "postgres://..." for several replicas

[admin]
token = "${HOOKGATE_ADMIN_TOKEN:-}" # bearer token for /admin/*; empty = admin API off

[retry]                            # defaults for every target; a target may override
timeout = "15s"
initial = "1s"
max_delay = "10m"
max_attempts = 12
max_age = "24h"

[[endpoints]]
name = "databricks"
path = "/hooks/databricks"
scheme = "databricks"              # or "mlflow"
secrets = ["${DATABRICKS_WEBHOOK_SECRET}"]   # one or more; tried in turn
bearer = "${DATABRICKS_WEBHOOK_TOKEN:-}"      # optional Authorization: Bearer check
# tolerance = "5m"                 # mlflow: allowed clock skew of X-MLflow-Timestamp
# allow_unauthenticated = false    # an endpoint with no secret and no bearer refuses to start

[targets.ml-slack]
kind = "slack"                     # slack | github | gitlab | jenkins | http | databricks_job | log
url = "${SLACK_WEBHOOK_URL}"

[targets.deploy-job]
kind = "databricks_job"
workspace_url = "https://adb-123.azuredatabricks.net"
job_id = 42
token = "${DATABRICKS_TOKEN}"

[[routes]]
name = "production requests to slack"
events = ["TRANSITION_REQUEST_TO_PRODUCTION_CREATED"]   # either naming; "*" = all
models = ["fraud-*"]               # globs; absent = all
# endpoints, from_stage, to_stage, aliases, tags = { key = "value" } narrow it further
to = ["ml-slack"]
"#;

fn spec_env() -> Vec<(&'static str, String)> {
    vec![
        ("DATABRICKS_WEBHOOK_SECRET", format!("whsec-{SECRET}")),
        (
            "SLACK_WEBHOOK_URL",
            format!("https://hooks.slack.com/services/T000/B000/{SECRET}"),
        ),
        ("DATABRICKS_TOKEN", format!("dapi-{SECRET}")),
    ]
}

/// The smallest valid file.
const MINIMAL: &str = r#"
[[endpoints]]
name = "db"
path = "/hooks/db"
scheme = "databricks"
secrets = ["abc"]
"#;

/// `base` plus `extra`; top-level keys (before any table header) go first, as TOML requires.
fn with(base: &str, extra: &str) -> String {
    if extra.trim_start().starts_with('[') {
        format!("{base}\n{extra}")
    } else {
        format!("{extra}\n{base}")
    }
}

/// The endpoints, targets and routes of the SPEC example, without its sections.
fn spec_core() -> &'static str {
    &SPEC_EXAMPLE[SPEC_EXAMPLE.find("[[endpoints]]").unwrap()..]
}

/// Load with both kinds of environment (a lookup function, and an enumerable set) and check
/// they agree on success.
fn ok(text: &str, vars: &[(&str, String)]) -> Config {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let by_fn = load_with(text, &lookup).unwrap_or_else(|e| panic!("load_with failed:\n{e}"));
    let by_vars = load_str(text, &Env::from_vars(vars.iter().cloned()))
        .unwrap_or_else(|e| panic!("load_str failed:\n{e}"));
    assert_eq!(format!("{by_fn:?}"), format!("{by_vars:?}"));
    by_fn
}

fn ok0(text: &str) -> Config {
    ok(text, &[])
}

/// All errors, from the enumerable environment; checks none leaks the secret.
fn errors(text: &str, vars: &[(&str, String)]) -> Vec<ConfigError> {
    let errs = match load_str(text, &Env::from_vars(vars.iter().cloned())) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e.0,
    };
    for e in &errs {
        assert!(!e.to_string().contains(SECRET), "secret leaked: {e}");
        assert!(!e.to_string().contains("XYZZY"), "secret leaked: {e}");
    }
    // The single-error form carries the same information.
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    if let Err(e) = load_with(text, &lookup) {
        assert!(!e.to_string().contains("XYZZY"), "secret leaked: {e}");
    }
    errs
}

/// The message of the error at `path`; panics listing all errors if there is none.
fn error_at(text: &str, vars: &[(&str, String)], path: &str) -> String {
    let errs = errors(text, vars);
    match errs.iter().find(|e| e.path == path) {
        Some(e) => e.message.clone(),
        None => panic!("no error at {path}; got:\n{}", ConfigErrors(errs.clone())),
    }
}

fn error_at0(text: &str, path: &str) -> String {
    error_at(text, &[], path)
}

fn secret_vars() -> Vec<(&'static str, String)> {
    vec![("S", SECRET.to_string())]
}

// ---------------------------------------------------------------------------------------------
// Whole files and defaults

/// The shipped `routes.toml`.
const SHIPPED: &str = include_str!("../../routes.toml");

#[test]
fn shipped_demo_secrets_are_refused_beyond_loopback() {
    // The list the check uses is the file's fallbacks, so the two cannot drift apart.
    let fallbacks: Vec<&str> = SHIPPED
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(":-").skip(1))
        .filter_map(|rest| rest.split('}').next())
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(fallbacks, super::build::DEMO_SECRETS);

    // On loopback (the quickstart) they are accepted.
    let c = ok0(SHIPPED);
    assert!(c.server.listen.ip().is_loopback());
    // Reachable from elsewhere they are not, and the error names each secret's key path.
    let public = [("HOOKGATE_SERVER__LISTEN", "0.0.0.0:8080".to_string())];
    let errs = errors(SHIPPED, &public);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["endpoints[0].secrets[0]", "endpoints[1].secrets[0]"]
    );
    assert!(
        errs[0].message.contains("demo fallback"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].message.contains("0.0.0.0:8080"),
        "{}",
        errs[0].message
    );
    assert!(!errs[0].to_string().contains("demo-databricks-secret"));
    // With the variables set, the same public listener loads.
    let set = [
        ("HOOKGATE_SERVER__LISTEN", "0.0.0.0:8080".to_string()),
        ("DATABRICKS_WEBHOOK_SECRET", "a-real-secret".to_string()),
        ("MLFLOW_WEBHOOK_SECRET", "another-real-secret".to_string()),
    ];
    assert_eq!(ok(SHIPPED, &set).endpoints.len(), 2);
}

#[test]
fn spec_example_loads() {
    let c = ok(SPEC_EXAMPLE, &spec_env());
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.server.admin_listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.max_body, 256 * 1024);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.store.url, "sqlite://hookgate.db");
    assert!(c.admin.token.is_none());
    assert_eq!(c.retry, RetryConfig::default());

    assert_eq!(c.endpoints.len(), 1);
    let e = &c.endpoints[0];
    assert_eq!(
        (e.name.as_str(), e.path.as_str()),
        ("databricks", "/hooks/databricks")
    );
    assert_eq!(e.scheme, Scheme::Databricks);
    assert_eq!(e.secrets.len(), 1);
    assert_eq!(e.secrets[0].expose(), format!("whsec-{SECRET}"));
    assert!(e.bearer.is_none());
    assert!(!e.allow_unauthenticated);
    let auth = e.auth();
    assert_eq!(auth.secrets.len(), 1);
    assert_eq!(auth.tolerance, Duration::from_secs(300));

    assert_eq!(c.targets.len(), 2);
    let TargetKind::Slack(slack) = &c.targets["ml-slack"].kind else {
        panic!("ml-slack is not slack")
    };
    assert!(
        slack
            .url
            .expose()
            .starts_with("https://hooks.slack.com/services/")
    );
    assert!(!slack.blocks);
    let TargetKind::DatabricksJob(job) = &c.targets["deploy-job"].kind else {
        panic!("deploy-job is not a databricks job")
    };
    assert_eq!(job.workspace_url, "https://adb-123.azuredatabricks.net");
    assert_eq!(job.job_id, 42);
    assert_eq!(job.token.expose(), format!("dapi-{SECRET}"));
    assert_eq!(job.parameters, ParameterStyle::JobParameters);
    for t in c.targets.values() {
        assert_eq!(t.concurrency, 4);
        assert_eq!(t.rate_per_sec, None);
        assert_eq!(t.retry, c.retry);
    }

    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!(r.name, "production requests to slack");
    assert_eq!(r.events, ["TRANSITION_REQUEST_TO_PRODUCTION_CREATED"]);
    assert_eq!(r.models, ["fraud-*"]);
    assert_eq!(r.to, ["ml-slack"]);
    assert!(r.endpoints.is_empty() && r.from_stage.is_empty() && r.to_stage.is_empty());
    assert!(r.aliases.is_empty() && r.tags.is_empty());
}

#[test]
fn spec_example_missing_secret_names_path_and_variable() {
    let mut env = spec_env();
    env.retain(|(k, _)| *k != "DATABRICKS_WEBHOOK_SECRET");
    let errs = errors(SPEC_EXAMPLE, &env);
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["endpoints[0].secrets[0]: environment variable DATABRICKS_WEBHOOK_SECRET is not set"],
        "one error, and no follow-up 'no secret' error for the same cause"
    );
}

#[test]
fn server_tls_names_two_files_and_nothing_else() {
    let c = ok(
        &with(
            MINIMAL,
            "[server]\ntls = { cert = \"${TLS_DIR}/cert.pem\", key = \" key.pem \" }",
        ),
        &[("TLS_DIR", "/etc/hookgate".to_string())],
    );
    assert_eq!(
        c.server.tls,
        Some(TlsFiles {
            cert: "/etc/hookgate/cert.pem".into(),
            key: "key.pem".into(),
            watch: Duration::from_secs(60),
        })
    );
    let off = ok0(&with(
        MINIMAL,
        "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\", watch = \"0s\" }",
    ));
    assert_eq!(off.server.tls.unwrap().watch, Duration::ZERO);
    assert!(c.summary().contains("(HTTPS, max body"), "{}", c.summary());
    assert!(!ok0(MINIMAL).summary().contains("HTTPS"));

    let unknown = error_at0(
        &with(
            MINIMAL,
            "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\", chain = \"x\" }",
        ),
        "server.tls.chain",
    );
    assert!(unknown.contains("unknown key"), "{unknown}");
    let missing = error_at0(
        &with(MINIMAL, "[server]\ntls = { cert = \"c.pem\" }"),
        "server.tls.key",
    );
    assert!(missing.contains("missing"), "{missing}");
    let empty = error_at(
        &with(
            MINIMAL,
            "[server]\ntls = { cert = \"${NO_CERT:-}\", key = \"k.pem\" }",
        ),
        &[],
        "server.tls.cert",
    );
    assert_eq!(empty, "must name a PEM file");
}

#[test]
fn every_default() {
    let c = ok0(MINIMAL);
    let s = &c.server;
    assert_eq!(s.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(
        s.admin_listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(s.max_body, 262_144);
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.body_read_timeout, Duration::from_secs(30));
    assert_eq!(s.max_connections, 1024);
    assert_eq!(s.public_url, None);
    assert_eq!(s.tls, None);
    assert_eq!(c.store.url, "sqlite://hookgate.db");
    assert_eq!(c.store.retention, Duration::from_secs(7 * 86_400));
    assert!(c.admin.token.is_none());
    let r = &c.retry;
    assert_eq!(r.timeout, Duration::from_secs(15));
    assert_eq!(r.initial, Duration::from_secs(1));
    assert_eq!(r.max_delay, Duration::from_secs(600));
    assert_eq!(r.max_attempts, 12);
    assert_eq!(r.max_age, Duration::from_secs(86_400));
    assert_eq!(r.max_retry_after, Duration::from_secs(3600));
    let e = &c.endpoints[0];
    assert_eq!(e.tolerance, Duration::from_secs(300));
    assert!(!e.allow_unauthenticated);
    assert!(e.bearer.is_none());
    assert!(c.targets.is_empty() && c.routes.is_empty());
}

#[test]
fn admin_token_from_interpolation_and_empty_is_off() {
    let text = with(MINIMAL, "[admin]\ntoken = \"${HOOKGATE_ADMIN_TOKEN:-}\"");
    assert!(ok0(&text).admin.token.is_none());
    let c = ok(&text, &[("HOOKGATE_ADMIN_TOKEN", "adm".to_string())]);
    assert_eq!(c.admin.token.unwrap().expose(), "adm");
    assert!(
        ok0(&with(MINIMAL, "[admin]\ntoken = \"\""))
            .admin
            .token
            .is_none()
    );
}

#[test]
fn all_sections_explicit() {
    let text = with(
        MINIMAL,
        r#"
[server]
listen = "0.0.0.0:80"
admin_listen = "[::1]:9999"
max_body = 1000
shutdown_grace = "1m 30s"
header_read_timeout = "2s"
body_read_timeout = "3s"
max_connections = 10
public_url = "https://hooks.example.com/"

[store]
url = "postgres://db.internal/hookgate"
retention = "30d"

[retry]
max_retry_after = "5m"
"#,
    );
    let c = ok0(&text);
    assert_eq!(c.server.listen.port(), 80);
    assert_eq!(
        c.server.admin_listen,
        "[::1]:9999".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.max_body, 1000);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(90));
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(2));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(3));
    assert_eq!(c.server.max_connections, 10);
    assert_eq!(
        c.server.public_url.as_deref(),
        Some("https://hooks.example.com")
    );
    assert_eq!(c.store.url, "postgres://db.internal/hookgate");
    assert_eq!(c.store.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(c.retry.max_retry_after, Duration::from_secs(300));
    assert_eq!(c.retry.max_attempts, 12);
}

#[test]
fn store_dead_retention_defaults_to_30_days_and_is_never_shorter_than_retention() {
    let days = |n: u64| Duration::from_secs(n * 86_400);
    let store = |keys: &str| ok0(&with(MINIMAL, &format!("[store]\n{keys}"))).store;
    assert_eq!(store("").dead_retention, days(30));
    let s = store("retention = \"1d\"\ndead_retention = \"90d\"");
    assert_eq!((s.retention, s.dead_retention), (days(1), days(90)));
    // Equal is allowed; unset follows a retention longer than its default, so a file that was
    // valid before the key existed still is.
    assert_eq!(
        store("retention = \"7d\"\ndead_retention = \"7d\"").dead_retention,
        days(7)
    );
    assert_eq!(store("retention = \"60d\"").dead_retention, days(60));

    let msg = error_at0(
        &with(
            MINIMAL,
            "[store]\nretention = \"7d\"\ndead_retention = \"1d\"",
        ),
        "store.dead_retention",
    );
    assert!(msg.contains("at least store.retention (7days)"), "{msg}");
    let msg = error_at0(
        &with(MINIMAL, "[store]\ndead_retention = \"soon\""),
        "store.dead_retention",
    );
    assert!(msg.contains("duration"), "{msg}");
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_STORE__DEAD_RETENTION", "1h".into())],
        "store.dead_retention",
    );
    assert!(msg.contains("at least store.retention"), "{msg}");
}

#[test]
fn a_postgres_url_the_store_would_refuse_is_an_error_at_store_url() {
    // This build has no TLS for PostgreSQL: opening the store refuses these before it
    // connects, so loading (and `hookgate check`) refuses them too, without the password.
    for mode in ["require", "verify-ca", "verify-full"] {
        let text = with(
            MINIMAL,
            &format!("[store]\nurl = \"postgres://app:${{S}}@db:5432/hg?sslmode={mode}\""),
        );
        let msg = error_at(&text, &secret_vars(), "store.url");
        assert!(msg.contains("requires TLS"), "{mode}: {msg}");
    }
    for mode in ["disable", "prefer", "allow"] {
        let text = with(
            MINIMAL,
            &format!("[store]\nurl = \"postgresql://db/hg?sslmode={mode}\""),
        );
        ok0(&text);
    }
    let msg = error_at(
        &with(
            MINIMAL,
            "[store]\nurl = \"postgres://app:${S}@db:notaport/hg\"",
        ),
        &secret_vars(),
        "store.url",
    );
    assert!(msg.contains("not a URL"), "{msg}");
}

#[test]
fn sizes() {
    for (value, bytes) in [
        ("\"256KiB\"", 262_144),
        ("\"1MB\"", 1_000_000),
        ("\"1 MiB\"", 1_048_576),
        ("\"2048\"", 2048),
        ("4096", 4096),
        ("\"1.5MiB\"", 1_572_864),
        ("\"2 kib\"", 2048),
        ("\"15EiB\"", 15 << 60),
        ("\"18446744073709551615\"", u64::MAX),
    ] {
        let c = ok0(&with(MINIMAL, &format!("[server]\nmax_body = {value}")));
        assert_eq!(c.server.max_body, bytes, "{value}");
    }
}

#[test]
fn size_errors_read_as_one_sentence_and_name_the_key() {
    let form = r#"expected a size such as "256KiB", "1MB" or a number of bytes"#;
    let fraction = r#"a number of bytes is whole; a fraction needs a unit: "1.5MiB""#;
    let too_large = "too large: a size is at most 16 EiB less one byte";
    for (value, want) in [
        (
            "1.5",
            format!("{form}, found a decimal number ({fraction})"),
        ),
        ("\"1.5\"", format!("{form} ({fraction})")),
        ("\"1.5 B\"", format!("{form} ({fraction})")),
        ("true", format!("{form}, found a boolean")),
        ("[1]", format!("{form}, found a list")),
        ("\"16EiB\"", too_large.to_string()),
        ("\"18446744073709551616\"", too_large.to_string()),
        ("\"20000000 TB\"", too_large.to_string()),
        ("\"16.5EiB\"", too_large.to_string()),
        ("\"lots\"", form.to_string()),
        ("\"1..5MiB\"", form.to_string()),
        (
            "\"12 parsecs\"",
            format!("{form} (units: B, KB, KiB, MB, MiB, GB, GiB)"),
        ),
    ] {
        let errs = errors(
            &with(MINIMAL, &format!("[server]\nmax_body = {value}")),
            &[],
        );
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, [format!("server.max_body: {want}")], "{value}");
    }
}

#[test]
fn durations_are_at_most_100_years_at_every_key() {
    let c = ok0(&with(
        MINIMAL,
        "[retry]\nmax_age = \"100y\"\nmax_delay = \"36500d\"",
    ));
    assert_eq!(c.retry.max_age, Duration::from_secs(100 * 31_557_600));
    let tolerance = "[[endpoints]]\nname = \"m\"\npath = \"/m\"\nscheme = \"mlflow\"\n\
                     secrets = \"one\"\ntolerance = \"101y\"\n";
    for (extra, path) in [
        ("[retry]\ntimeout = \"292271000y\"", "retry.timeout"),
        // Past humantime's own limit (u64 seconds): the same answer.
        ("[retry]\ntimeout = \"600000000000y\"", "retry.timeout"),
        (
            "[retry]\nmax_retry_after = \"101y\"",
            "retry.max_retry_after",
        ),
        (
            "[server]\nshutdown_grace = \"36526d\"",
            "server.shutdown_grace",
        ),
        (
            "[server]\nbody_read_timeout = \"100y 1s\"",
            "server.body_read_timeout",
        ),
        (
            "[server.tls]\ncert = \"c\"\nkey = \"k\"\nwatch = \"200y\"",
            "server.tls.watch",
        ),
        ("[store]\nretention = \"1000y\"", "store.retention"),
        (
            "[targets.x]\nkind = \"log\"\ntimeout = \"101y\"",
            "targets.x.timeout",
        ),
        (
            "[targets.x]\nkind = \"log\"\n[targets.x.retry]\nmax_age = \"101y\"",
            "targets.x.retry.max_age",
        ),
        (tolerance, "endpoints[1].tolerance"),
    ] {
        let errs = errors(&with(MINIMAL, extra), &[]);
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [format!("{path}: must be at most 100 years")],
            "{extra}"
        );
    }
    // The other errors are phrased once: "expected a duration ...", never "expected expected".
    let msg = error_at0(
        &with(MINIMAL, "[server]\nshutdown_grace = [1]"),
        "server.shutdown_grace",
    );
    assert_eq!(
        msg,
        r#"expected a duration such as "30s", "5m", "7d" or "1h 30m", found a list"#
    );
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

#[test]
fn env_overrides_sections_with_typed_values() {
    let vars = [
        ("HOOKGATE_SERVER__LISTEN", "127.0.0.1:0".to_string()),
        ("HOOKGATE_SERVER__ADMIN_LISTEN", "127.0.0.1:0".to_string()),
        ("HOOKGATE_SERVER__MAX_BODY", "1MiB".to_string()),
        ("HOOKGATE_SERVER__MAX_CONNECTIONS", "7".to_string()),
        ("HOOKGATE_STORE__URL", "sqlite://other.db".to_string()),
        ("HOOKGATE_RETRY__MAX_ATTEMPTS", "3".to_string()),
        ("HOOKGATE_RETRY__INITIAL", "250ms".to_string()),
    ];
    let c = ok(SPEC_EXAMPLE, &[&spec_env()[..], &vars[..]].concat());
    assert_eq!(
        c.server.listen,
        "127.0.0.1:0".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.admin_listen.port(), 0);
    assert_eq!(c.server.max_body, 1_048_576);
    assert_eq!(c.server.max_connections, 7);
    assert_eq!(c.store.url, "sqlite://other.db");
    assert_eq!(c.retry.max_attempts, 3);
    assert_eq!(c.retry.initial, Duration::from_millis(250));
    // Targets inherit the overridden global policy.
    assert_eq!(c.targets["ml-slack"].retry.max_attempts, 3);
}

#[test]
fn env_overrides_create_missing_sections() {
    let c = ok(
        MINIMAL,
        &[("HOOKGATE_SERVER__LISTEN", "127.0.0.1:0".into())],
    );
    assert_eq!(c.server.listen.port(), 0);
}

#[test]
fn variables_without_double_underscore_are_not_overrides() {
    let vars = [
        ("HOOKGATE_CONFIG", "/etc/hookgate/routes.toml".to_string()),
        ("HOOKGATE_LOG", "debug".to_string()),
        ("HOOKGATE_ADMIN_TOKEN", "tok".to_string()),
        ("HOOKGATE_", "x".to_string()),
        ("OTHER__THING", "x".to_string()),
    ];
    let c = ok(MINIMAL, &vars);
    assert!(
        c.admin.token.is_none(),
        "HOOKGATE_ADMIN_TOKEN is not admin.token"
    );
}

#[test]
fn env_overrides_targets_endpoints_and_routes() {
    let vars = [
        &spec_env()[..],
        &[
            (
                "HOOKGATE_TARGETS__ML_SLACK__URL",
                "https://hooks.slack.com/services/other".to_string(),
            ),
            ("HOOKGATE_TARGETS__ML_SLACK__RATE", "1".to_string()),
            ("HOOKGATE_TARGETS__DEPLOY_JOB__JOB_ID", "43".to_string()),
            (
                "HOOKGATE_TARGETS__DEPLOY_JOB__RETRY__MAX_ATTEMPTS",
                "2".to_string(),
            ),
            ("HOOKGATE_ENDPOINTS__0__BEARER", "tok".to_string()),
            (
                "HOOKGATE_ENDPOINTS__0__SECRETS",
                "[one, \"two\"]".to_string(),
            ),
            ("HOOKGATE_ROUTES__0__MODELS", "[a-*, b]".to_string()),
        ][..],
    ]
    .concat();
    let c = ok(SPEC_EXAMPLE, &vars);
    let TargetKind::Slack(slack) = &c.targets["ml-slack"].kind else {
        panic!()
    };
    assert_eq!(slack.url.expose(), "https://hooks.slack.com/services/other");
    assert_eq!(c.targets["ml-slack"].rate_per_sec, Some(1.0));
    let TargetKind::DatabricksJob(job) = &c.targets["deploy-job"].kind else {
        panic!()
    };
    assert_eq!(job.job_id, 43);
    assert_eq!(c.targets["deploy-job"].retry.max_attempts, 2);
    assert_eq!(c.targets["ml-slack"].retry.max_attempts, 12);
    let e = &c.endpoints[0];
    assert_eq!(e.bearer.as_ref().unwrap().expose(), "tok");
    let secrets: Vec<&str> = e.secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, ["one", "two"]);
    assert_eq!(c.routes[0].models, ["a-*", "b"]);
}

#[test]
fn env_list_values_are_typed_per_item_and_only_where_a_list_fits() {
    let vars = [
        &spec_env()[..],
        &[
            ("HOOKGATE_ENDPOINTS__0__SECRETS", "[007, abc]".to_string()),
            (
                "HOOKGATE_ROUTES__0__TO",
                "[ml-slack, deploy-job]".to_string(),
            ),
            ("HOOKGATE_ADMIN__TOKEN", "[not-a-list]".to_string()),
        ][..],
    ]
    .concat();
    let c = ok(SPEC_EXAMPLE, &vars);
    let secrets: Vec<&str> = c.endpoints[0].secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, ["007", "abc"]);
    assert_eq!(c.routes[0].to, ["ml-slack", "deploy-job"]);
    assert_eq!(c.admin.token.unwrap().expose(), "[not-a-list]");
    // Not a flat list: the value is one string.
    let vars = [
        &spec_env()[..],
        &[("HOOKGATE_ROUTES__0__EVENTS", "[a, [b]]".to_string())][..],
    ]
    .concat();
    assert_eq!(ok(SPEC_EXAMPLE, &vars).routes[0].events, ["[a, [b]]"]);
}

#[test]
fn env_override_booleans_and_interpolation() {
    let text = r#"
[[endpoints]]
name = "open"
path = "/open"
scheme = "mlflow"
"#;
    let c = ok(
        text,
        &[
            (
                "HOOKGATE_ENDPOINTS__0__ALLOW_UNAUTHENTICATED",
                "true".into(),
            ),
            (
                "HOOKGATE_STORE__URL",
                "postgres://app:${PGPASS}@db/x".into(),
            ),
            ("PGPASS", SECRET.into()),
        ],
    );
    assert!(c.endpoints[0].allow_unauthenticated);
    assert_eq!(c.store.url, format!("postgres://app:{SECRET}@db/x"));
    assert!(!format!("{c:?}").contains(SECRET));
    assert!(!c.summary().contains(SECRET));
}

#[test]
fn misspelt_override_is_an_error_when_env_is_enumerable() {
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_SERVER__LISTN", "127.0.0.1:0".into())],
        "server.listn",
    );
    assert!(
        msg.starts_with("unknown key, expected one of listen, admin_listen"),
        "{msg}"
    );
    assert!(msg.contains("HOOKGATE_SERVER__LISTN"), "{msg}");

    let msg = error_at(MINIMAL, &[("HOOKGATE_SERVR__LISTEN", "x".into())], "servr");
    assert!(
        msg.contains("unknown key") && msg.contains("HOOKGATE_SERVR__LISTEN"),
        "{msg}"
    );
}

#[test]
fn misspelt_override_is_not_seen_through_a_lookup_function() {
    // A lookup function cannot list variables: only names of keys that can exist are probed.
    let lookup = |name: &str| (name == "HOOKGATE_SERVER__LISTN").then(|| "x".to_string());
    assert!(load_with(MINIMAL, &lookup).is_ok());
}

#[test]
fn override_errors() {
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_ENDPOINTS__3__BEARER", "x".into())],
        "endpoints",
    );
    assert!(
        msg.contains("names entry 3") && msg.contains("has 1 entries"),
        "{msg}"
    );
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_ENDPOINTS__0__NAME__X", "x".into())],
        "endpoints[0].name",
    );
    assert!(msg.contains("not a table"), "{msg}");
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_SERVER____LISTEN", "x".into())],
        "HOOKGATE_SERVER____LISTEN",
    );
    assert!(msg.contains("empty key segment"), "{msg}");
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_RETRY__MAX_ATTEMPTS", "many".into())],
        "retry.max_attempts",
    );
    assert!(msg.contains("expected a non-negative integer"), "{msg}");
    let msg = error_at(
        MINIMAL,
        &[("HOOKGATE_STORE__URL", "${NOPE}".into())],
        "store.url",
    );
    assert!(
        msg.contains("NOPE is not set") && msg.contains("HOOKGATE_STORE__URL"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Interpolation

#[test]
fn interpolation_in_strings() {
    let text = r#"
[server]
public_url = "https://${HOST:-gw.example.com}/base"

[store]
url = "sqlite://${DATA_DIR:-/var/lib/hookgate}/db.sqlite?cost=$$5"

[[endpoints]]
name = "db"
path = "/hooks/${ENDPOINT_SUFFIX}"
scheme = "databricks"
secrets = ["${NEW_SECRET:-}", "${OLD_SECRET:-}", "lit$$eral"]
bearer = "${TOKEN:-}"

[retry]
max_attempts = "${ATTEMPTS:-5}"
"#;
    let c = ok(
        text,
        &[
            ("ENDPOINT_SUFFIX", "databricks".into()),
            ("OLD_SECRET", "old".into()),
            ("DATA_DIR", "".into()),
        ],
    );
    assert_eq!(
        c.server.public_url.as_deref(),
        Some("https://gw.example.com/base")
    );
    assert_eq!(c.store.url, "sqlite:///var/lib/hookgate/db.sqlite?cost=$5");
    assert_eq!(c.endpoints[0].path, "/hooks/databricks");
    let secrets: Vec<&str> = c.endpoints[0].secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, ["old", "lit$eral"], "empty entries are dropped");
    assert!(c.endpoints[0].bearer.is_none());
    assert_eq!(c.retry.max_attempts, 5);
}

#[test]
fn interpolation_errors_name_path_and_variable_only() {
    let text = with(
        MINIMAL,
        "[targets.t]\nkind = \"log\"\npath = \"${LOG_DIR}/x\"",
    );
    let vars = [("LOG_DIR_X", SECRET.to_string())];
    assert_eq!(
        error_at(&text, &vars, "targets.t.path"),
        "environment variable LOG_DIR is not set"
    );
    let text = with(MINIMAL, "[store]\nurl = \"sqlite://${S\"");
    assert!(error_at(&text, &secret_vars(), "store.url").contains("unterminated"));
    // Deep nesting is an error at its key, not a stack overflow.
    let deep = format!("{}x{}", "${NOPE:-".repeat(20_000), "}".repeat(20_000));
    let text = with(MINIMAL, &format!("[store]\nurl = \"{deep}\""));
    assert_eq!(
        error_at(&text, &secret_vars(), "store.url"),
        "defaults nested more than 32 deep at `${NOPE:-`"
    );
}

// ---------------------------------------------------------------------------------------------
// Unknown keys, at every level

#[test]
fn unknown_keys_name_their_path() {
    let cases: &[(&str, &str)] = &[
        ("[servr]\nlisten = \"127.0.0.1:1\"", "servr"),
        ("[server]\nlistn = \"127.0.0.1:1\"", "server.listn"),
        ("[store]\nuri = \"x\"", "store.uri"),
        ("[admin]\ntokn = \"x\"", "admin.tokn"),
        ("[retry]\nmax_attempt = 1", "retry.max_attempt"),
        (
            "[targets.s]\nkind = \"slack\"\nurl = \"https://h\"\nchanel = \"#x\"",
            "targets.s.chanel",
        ),
        (
            "[targets.g]\nkind = \"github\"\nrepository = \"o/r\"\ntoken = \"t\"\nbranch = \"m\"",
            "targets.g.branch",
        ),
        (
            "[targets.l]\nkind = \"gitlab\"\nproject = \"1\"\ntoken = \"t\"\nref = \"m\"\nbranch = \"m\"",
            "targets.l.branch",
        ),
        (
            "[targets.j]\nkind = \"jenkins\"\nurl = \"https://j\"\njob = \"x\"\ntoken = \"t\"",
            "targets.j.token",
        ),
        (
            "[targets.h]\nkind = \"http\"\nurl = \"https://h\"\nheader = {}",
            "targets.h.header",
        ),
        (
            "[targets.d]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = 1\ntoken = \"t\"\njob = 1",
            "targets.d.job",
        ),
        (
            "[targets.o]\nkind = \"log\"\nfile = \"x\"",
            "targets.o.file",
        ),
        (
            "[targets.o]\nkind = \"log\"\nretry = { max_attempt = 1 }",
            "targets.o.retry.max_attempt",
        ),
        ("[[routes]]\nto = []\ntoo = [\"x\"]", "routes[0].too"),
    ];
    for (extra, path) in cases {
        let msg = error_at0(&with(MINIMAL, extra), path);
        assert!(
            msg.starts_with("unknown key, expected one of"),
            "{path}: {msg}"
        );
    }
    let msg = error_at0(
        &with(
            MINIMAL,
            "[[endpoints]]\nname = \"b\"\npath = \"/b\"\nscheme = \"mlflow\"\nsecret = \"x\"",
        ),
        "endpoints[1].secret",
    );
    assert!(msg.contains("secrets"), "lists the valid keys: {msg}");
}

#[test]
fn unknown_target_key_lists_common_and_kind_keys() {
    let msg = error_at0(
        &with(
            MINIMAL,
            "[targets.s]\nkind = \"slack\"\nurl = \"https://h\"\nbogus = 1",
        ),
        "targets.s.bogus",
    );
    for key in [
        "url",
        "blocks",
        "kind",
        "timeout",
        "concurrency",
        "rate",
        "retry",
    ] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad values

#[test]
fn bad_values_name_their_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[server]\nshutdown_grace = \"30 parsecs\"",
            "server.shutdown_grace",
            "duration",
        ),
        (
            "[server]\nshutdown_grace = \"30\"",
            "server.shutdown_grace",
            "unit is missing",
        ),
        (
            "[server]\nshutdown_grace = 30",
            "server.shutdown_grace",
            "duration",
        ),
        ("[server]\nmax_body = \"lots\"", "server.max_body", "size"),
        (
            "[server]\nmax_body = \"12 parsecs\"",
            "server.max_body",
            "size",
        ),
        ("[server]\nmax_body = -1", "server.max_body", "negative"),
        (
            "[server]\nmax_body = 0",
            "server.max_body",
            "greater than zero",
        ),
        (
            "[server]\nlisten = \"localhost:8080\"",
            "server.listen",
            "socket address",
        ),
        ("[server]\nlisten = 8080", "server.listen", "socket address"),
        (
            "[server]\nmax_connections = 0",
            "server.max_connections",
            "at least 1",
        ),
        (
            "[server]\nmax_connections = \"x\"",
            "server.max_connections",
            "integer",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:1\"",
            "server.admin_listen",
            "differ",
        ),
        (
            "[server]\npublic_url = \"gw.example.com\"",
            "server.public_url",
            "absolute",
        ),
        (
            "[store]\nurl = \"mysql://db/x\"",
            "store.url",
            "unsupported",
        ),
        (
            "[store]\nretention = \"0s\"",
            "store.retention",
            "greater than zero",
        ),
        (
            "[retry]\nmax_attempts = 0",
            "retry.max_attempts",
            "at least 1",
        ),
        (
            "[retry]\nmax_attempts = -3",
            "retry.max_attempts",
            "non-negative integer",
        ),
        (
            "[retry]\ninitial = \"1h\"\nmax_delay = \"1m\"",
            "retry.max_delay",
            "initial",
        ),
        (
            "[retry]\ntimeout = \"0s\"",
            "retry.timeout",
            "greater than zero",
        ),
        ("[retry]\nmax_age = 1979-05-27", "retry.max_age", "duration"),
        ("server = 5", "server", "expected a table, found an integer"),
        (
            "[targets.x]\nkind = \"smoke-signal\"",
            "targets.x.kind",
            "slack, github",
        ),
        (
            "[targets.x]\nurl = \"https://h\"",
            "targets.x.kind",
            "missing required key",
        ),
        (
            "[targets.x]\nkind = \"log\"\nconcurrency = 0",
            "targets.x.concurrency",
            "at least 1",
        ),
        (
            "[targets.x]\nkind = \"log\"\nrate = -1.0",
            "targets.x.rate",
            "between 1/86400",
        ),
        (
            "[targets.x]\nkind = \"log\"\nrate = \"fast\"",
            "targets.x.rate",
            "number",
        ),
        (
            "[targets.x]\nkind = \"log\"\ntimeout = \"soon\"",
            "targets.x.timeout",
            "duration",
        ),
        (
            "[targets.\"bad name\"]\nkind = \"log\"",
            "targets.\"bad name\"",
            "invalid target name",
        ),
        ("[targets]\nx = 1", "targets.x", "expected a table"),
        ("targets = 1", "targets", "expected a table of targets"),
        ("[routes]\nto = []", "routes", "[[routes]]"),
    ];
    for (extra, path, needle) in cases {
        let msg = error_at0(&with(MINIMAL, extra), path);
        assert!(msg.contains(needle), "{path}: {msg:?} lacks {needle:?}");
    }
}

#[test]
fn bad_scheme_and_endpoint_paths() {
    let endpoint = |i: usize, name: &str, path: &str, scheme: &str| {
        format!(
            "[[endpoints]]\nname = \"{name}\"\npath = \"{path}\"\nscheme = \"{scheme}\"\n\
             secrets = [\"s{i}\"]\n"
        )
    };
    let text = [
        endpoint(0, "a", "/a", "databricks"),
        endpoint(1, "b", "/b", "github"),
    ]
    .concat();
    let msg = error_at0(&text, "endpoints[1].scheme");
    assert_eq!(msg, "unknown value, expected one of databricks, mlflow");

    let text = [
        endpoint(0, "a", "/a", "databricks"),
        endpoint(1, "a", "/a", "mlflow"),
        endpoint(2, "c", "no-slash", "mlflow"),
        endpoint(3, "d", "/healthz", "mlflow"),
        endpoint(4, "e", "/metrics", "mlflow"),
        endpoint(5, "f", "/x?y=1", "mlflow"),
    ]
    .concat();
    let errs = errors(&text, &[]);
    let find = |p: &str| {
        errs.iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("no error at {p}: {errs:?}"))
            .message
            .clone()
    };
    assert!(
        find("endpoints[1].name").contains("duplicate endpoint name \"a\" (also endpoints[0])")
    );
    assert!(find("endpoints[1].path").contains("duplicate endpoint path"));
    assert!(find("endpoints[2].path").contains("must start with /"));
    assert!(find("endpoints[3].path").contains("reserved"));
    assert!(find("endpoints[4].path").contains("reserved"));
    assert!(find("endpoints[5].path").contains("no query"));
}

#[test]
fn missing_or_misshapen_endpoints() {
    let msg = error_at0("", "endpoints");
    assert!(msg.contains("at least one [[endpoints]]"), "{msg}");
    let msg = error_at0("[endpoints]\nname = \"x\"", "endpoints");
    assert!(
        msg.contains("[[endpoints]]") && msg.contains("found a table"),
        "{msg}"
    );
    let msg = error_at0(
        "[[endpoints]]\nname = \"x\"\npath = \"/x\"",
        "endpoints[0].scheme",
    );
    assert_eq!(msg, "missing required key");
}

#[test]
fn unauthenticated_endpoint_refused_unless_allowed() {
    let text = "[[endpoints]]\nname = \"open\"\npath = \"/open\"\nscheme = \"databricks\"\n\
                secrets = [\"${NOT_SET:-}\"]\nbearer = \"\"\n";
    let errs = errors(text, &[]);
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "endpoints[0]: no secret and no bearer token; set allow_unauthenticated = true to \
             accept unauthenticated requests"
        ]
    );
    let c = ok0(&format!("{text}allow_unauthenticated = true\n"));
    assert!(c.endpoints[0].secrets.is_empty() && c.endpoints[0].bearer.is_none());
    assert!(c.summary().contains("UNAUTHENTICATED"));
    // A bearer token alone is enough.
    let c = ok0(&text.replace("bearer = \"\"", "bearer = \"tok\""));
    assert_eq!(c.endpoints[0].bearer.as_ref().unwrap().expose(), "tok");
}

#[test]
fn mlflow_tolerance() {
    let text = "[[endpoints]]\nname = \"m\"\npath = \"/m\"\nscheme = \"mlflow\"\n\
                secrets = \"one\"\ntolerance = \"90s\"\n";
    let c = ok0(text);
    assert_eq!(c.endpoints[0].scheme, Scheme::Mlflow);
    assert_eq!(c.endpoints[0].tolerance, Duration::from_secs(90));
    assert_eq!(
        c.endpoints[0].secrets.len(),
        1,
        "a single string is one secret"
    );
    let msg = error_at0(&text.replace("90s", "0s"), "endpoints[0].tolerance");
    assert!(msg.contains("greater than zero"));
}

#[test]
fn an_mlflow_endpoint_takes_no_bearer() {
    let text = "[[endpoints]]\nname = \"m\"\npath = \"/m\"\nscheme = \"mlflow\"\n\
                secrets = \"one\"\nbearer = \"tok\"\n";
    let errs = errors(&with(MINIMAL, text), &[]);
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [format!("endpoints[1].bearer: {MLFLOW_BEARER_REFUSED}")]
    );
    // Set by an override, the same.
    let vars = [("HOOKGATE_ENDPOINTS__0__BEARER", "tok".to_string())];
    let msg = error_at(
        &text.replace("bearer = \"tok\"\n", ""),
        &vars,
        "endpoints[0].bearer",
    );
    assert_eq!(msg, MLFLOW_BEARER_REFUSED);
    // An empty one is no bearer (`"${TOKEN:-}"`), and a Databricks endpoint may have one.
    let c = ok0(&text.replace("\"tok\"", "\"${NOT_SET:-}\""));
    assert!(c.endpoints[0].bearer.is_none());
    let c = ok0(&text.replace("mlflow", "databricks"));
    assert!(c.endpoints[0].bearer.is_some());
}

#[test]
fn endpoint_paths_are_written_as_senders_send_them() {
    let endpoint = |path: &str| {
        format!(
            "[[endpoints]]\nname = \"e\"\npath = \"{path}\"\nscheme = \"databricks\"\nsecrets = \"s\"\n"
        )
    };
    let why = r#"(they encode non-ASCII characters and " < > ` { } | \ ^, and requests are matched on the path as sent)"#;
    for (path, encoded) in [
        ("/hooks/modèle", "/hooks/mod%C3%A8le"),
        ("/hooks/モデル", "/hooks/%E3%83%A2%E3%83%87%E3%83%AB"),
        ("/hooks/{model}", "/hooks/%7Bmodel%7D"),
        ("/a|b^c", "/a%7Cb%5Ec"),
        ("/a<b>`c", "/a%3Cb%3E%60c"),
        (r"/a\\b", "/a%5Cb"),
        (r#"/a\"b"#, "/a%22b"),
    ] {
        let msg = error_at0(&endpoint(path), "endpoints[0].path");
        assert_eq!(
            msg,
            format!("must be written as senders send it, percent-encoded: \"{encoded}\" {why}"),
            "{path}"
        );
        // The suggestion is accepted as it stands.
        let c = ok0(&endpoint(encoded));
        assert_eq!(c.endpoints[0].path, encoded);
    }
}

#[test]
fn target_rates_are_from_one_a_day_to_a_million_a_second() {
    let target = |rate: &str| {
        with(
            MINIMAL,
            &format!("[targets.x]\nkind = \"log\"\nrate = {rate}"),
        )
    };
    for (rate, want) in [("0.00002", 0.00002), ("1.0", 1.0), ("1000000", 1_000_000.0)] {
        assert_eq!(
            ok0(&target(rate)).targets["x"].rate_per_sec,
            Some(want),
            "{rate}"
        );
    }
    let want = "must be between 1/86400 (one message a day) and 1000000 messages per second; \
                omit it for no limit";
    for rate in [
        "1e-20", "0.00001", "0", "-1", "1000001", "1e300", "inf", "nan",
    ] {
        assert_eq!(error_at0(&target(rate), "targets.x.rate"), want, "{rate}");
    }
}

#[test]
fn listeners_that_cannot_both_be_bound_are_refused() {
    let server = |listen: &str, admin: &str| {
        with(
            MINIMAL,
            &format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\""),
        )
    };
    let v4 = "cannot be bound beside server.listen: both use port 18085, which 0.0.0.0 takes on \
              every IPv4 address; use another port";
    let v6 = "cannot be bound beside server.listen: both use port 18085, which [::] takes on \
              every IPv6 address, and on every IPv4 address too (a dual-stack socket); use \
              another port";
    for (listen, admin, want) in [
        ("0.0.0.0:18085", "127.0.0.1:18085", v4),
        ("127.0.0.1:18085", "0.0.0.0:18085", v4),
        ("0.0.0.0:18085", "[::ffff:127.0.0.1]:18085", v4),
        ("[::]:18085", "127.0.0.1:18085", v6),
        ("[::]:18085", "0.0.0.0:18085", v6),
        ("[::1]:18085", "[::]:18085", v6),
    ] {
        let msg = error_at0(&server(listen, admin), "server.admin_listen");
        assert_eq!(msg, want, "{listen} {admin}");
    }
    // Different ports, port 0 (each listener gets its own), or an IPv4 wildcard beside an IPv6
    // address: both bind.
    for (listen, admin) in [
        ("0.0.0.0:8080", "127.0.0.1:9090"),
        ("[::]:8080", "[::1]:9090"),
        ("0.0.0.0:0", "127.0.0.1:0"),
        ("0.0.0.0:18085", "[::1]:18085"),
        ("10.0.0.1:18085", "127.0.0.1:18085"),
    ] {
        let c = ok0(&server(listen, admin));
        assert_eq!(c.server.admin_listen.to_string(), admin);
    }
}

// ---------------------------------------------------------------------------------------------
// Targets

const ALL_KINDS: &str = r#"
[targets.slack]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/x"
blocks = true
username = "hookgate"
text = "{{ event.text }}"
rate = 1.0

[targets.gh]
kind = "github"
repository = "acme/models"
token = "ghp"
event_type = "model-promoted"
client_payload = { model = "{{ model }}" }

[targets.gh-wf]
kind = "github"
repository = "acme/models"
token = "ghp"
api_url = "https://ghe.example.com/api/v3/"
workflow = "deploy.yml"
ref = "main"
inputs = { version = "{{ version }}" }

[targets.gl]
kind = "gitlab"
project = "acme/models"
token = "glptt"
ref = "main"
variables = { MODEL = "{{ model }}" }

[targets.jk]
kind = "jenkins"
url = "https://ci.example.com/"
job = "deploy"
user = "bot"
api_token = "jt"
parameters = { MODEL = "{{ model }}" }

[targets.jk-trigger]
kind = "jenkins"
url = "https://ci.example.com"
job = "folder/job/deploy"
trigger_token = "tt"

[targets.web]
kind = "http"
url = "https://example.com/hook"
method = "put"
headers = { Authorization = "Bearer x", X-Team = "ml" }
body = "{}"
signing_secret = "${HTTP_SIGNING:-}"
concurrency = 1

[targets.job]
kind = "databricks_job"
workspace_url = "https://adb-1.azuredatabricks.net/"
job_id = "7"
token = "dapi"
parameters = "notebook_params"

[targets.audit]
kind = "log"
path = "/var/log/hookgate/events.jsonl"
"#;

#[test]
fn every_target_kind_loads() {
    let c = ok0(&with(MINIMAL, ALL_KINDS));
    assert_eq!(c.targets.len(), 9);
    let kind = |n: &str| &c.targets[n].kind;

    let TargetKind::Slack(s) = kind("slack") else {
        panic!()
    };
    assert!(s.blocks);
    assert_eq!(s.username.as_deref(), Some("hookgate"));
    assert_eq!(c.targets["slack"].rate_per_sec, Some(1.0));

    let TargetKind::Github(g) = kind("gh") else {
        panic!()
    };
    assert_eq!(g.repository, "acme/models");
    assert_eq!(g.api_url, "https://api.github.com");
    assert_eq!(g.event_type.as_deref(), Some("model-promoted"));
    assert_eq!(g.client_payload["model"], "{{ model }}");
    let TargetKind::Github(g) = kind("gh-wf") else {
        panic!()
    };
    assert_eq!(
        g.api_url, "https://ghe.example.com/api/v3",
        "trailing / trimmed"
    );
    assert_eq!(g.git_ref.as_deref(), Some("main"));
    assert_eq!(g.inputs["version"], "{{ version }}");

    let TargetKind::Gitlab(l) = kind("gl") else {
        panic!()
    };
    assert_eq!(l.base_url, "https://gitlab.com");
    assert_eq!(l.git_ref, "main");
    assert_eq!(l.variables["MODEL"], "{{ model }}");

    let TargetKind::Jenkins(j) = kind("jk") else {
        panic!()
    };
    assert_eq!(j.url, "https://ci.example.com");
    assert_eq!(j.user.as_deref(), Some("bot"));
    assert!(j.trigger_token.is_none());
    let TargetKind::Jenkins(j) = kind("jk-trigger") else {
        panic!()
    };
    assert_eq!(j.trigger_token.as_ref().unwrap().expose(), "tt");

    let TargetKind::Http(h) = kind("web") else {
        panic!()
    };
    assert_eq!(h.method, "PUT", "methods are normalised to upper case");
    assert_eq!(h.headers["X-Team"].expose(), "ml");
    assert!(h.signing_secret.is_none(), "empty optional secret is None");
    assert_eq!(c.targets["web"].concurrency, 1);

    let TargetKind::DatabricksJob(d) = kind("job") else {
        panic!()
    };
    assert_eq!(d.workspace_url, "https://adb-1.azuredatabricks.net");
    assert_eq!(d.job_id, 7);
    assert_eq!(d.parameters, ParameterStyle::NotebookParams);

    let TargetKind::Log(l) = kind("audit") else {
        panic!()
    };
    assert_eq!(
        l.path.as_deref(),
        Some(std::path::Path::new("/var/log/hookgate/events.jsonl"))
    );
}

#[test]
fn target_validation() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[targets.x]\nkind = \"slack\"\nurl = \"ftp://hooks.slack.com/x\"",
            "targets.x.url",
            "http",
        ),
        (
            "[targets.x]\nkind = \"slack\"\nurl = \"\"",
            "targets.x.url",
            "must not be empty",
        ),
        (
            "[targets.x]\nkind = \"slack\"",
            "targets.x.url",
            "missing required key",
        ),
        (
            "[targets.x]\nkind = \"github\"\nrepository = \"acme\"\ntoken = \"t\"",
            "targets.x.repository",
            "owner/repo",
        ),
        (
            "[targets.x]\nkind = \"github\"\nrepository = \"a/b/c\"\ntoken = \"t\"",
            "targets.x.repository",
            "owner/repo",
        ),
        (
            "[targets.x]\nkind = \"github\"\nrepository = \"a/b\"\ntoken = \"t\"\nevent_type = \"e\"\nworkflow = \"w\"",
            "targets.x.workflow",
            "not both",
        ),
        (
            "[targets.x]\nkind = \"github\"\nrepository = \"a/b\"\ntoken = \"${T:-}\"",
            "targets.x.token",
            "must not be empty",
        ),
        (
            "[targets.x]\nkind = \"gitlab\"\nproject = \"1\"\ntoken = \"t\"\nref = \"m\"\nbase_url = \"gitlab.local\"",
            "targets.x.base_url",
            "absolute",
        ),
        (
            "[targets.x]\nkind = \"jenkins\"\nurl = \"https://u:p@ci\"\njob = \"j\"",
            "targets.x.url",
            "credentials",
        ),
        (
            "[targets.x]\nkind = \"jenkins\"\nurl = \"https://ci\"\njob = \"j\"\nuser = \"u\"",
            "targets.x.api_token",
            "required when user",
        ),
        (
            "[targets.x]\nkind = \"http\"\nurl = \"https://h\"\nmethod = \"YEET\"",
            "targets.x.method",
            "unknown HTTP method",
        ),
        (
            "[targets.x]\nkind = \"http\"\nurl = \"https://h\"\nheaders = { \"Bad Header\" = \"v\" }",
            "targets.x.headers.\"Bad Header\"",
            "invalid header name",
        ),
        (
            "[targets.x]\nkind = \"http\"\nurl = \"https://h\"\nheaders = { X = \"a\\nb\" }",
            "targets.x.headers.X",
            "invalid header value",
        ),
        (
            "[targets.x]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = 0\ntoken = \"t\"",
            "targets.x.job_id",
            "positive",
        ),
        (
            "[targets.x]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = \"abc\"\ntoken = \"t\"",
            "targets.x.job_id",
            "integer",
        ),
        (
            "[targets.x]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = 1\ntoken = \"t\"\nparameters = \"positional\"",
            "targets.x.parameters",
            "job_parameters, notebook_params",
        ),
    ];
    for (extra, path, needle) in cases {
        let msg = error_at0(&with(MINIMAL, extra), path);
        assert!(msg.contains(needle), "{path}: {msg:?} lacks {needle:?}");
    }
}

#[test]
fn retry_overrides_merge_over_global() {
    let text = with(
        MINIMAL,
        r#"
[retry]
max_attempts = 5
max_delay = "1m"

[targets.fast]
kind = "log"
timeout = "3s"
retry = { initial = "2s", max_attempts = 20 }

[targets.slow]
kind = "log"
[targets.slow.retry]
timeout = "2m"
max_age = "2d"
max_retry_after = "10m"

[targets.plain]
kind = "log"
"#,
    );
    let c = ok0(&text);
    let global = RetryConfig {
        max_attempts: 5,
        max_delay: Duration::from_secs(60),
        ..RetryConfig::default()
    };
    assert_eq!(c.retry, global);
    assert_eq!(
        c.targets["fast"].retry,
        RetryConfig {
            timeout: Duration::from_secs(3),
            initial: Duration::from_secs(2),
            max_attempts: 20,
            ..global.clone()
        }
    );
    assert_eq!(
        c.targets["slow"].retry,
        RetryConfig {
            timeout: Duration::from_secs(120),
            max_age: Duration::from_secs(2 * 86_400),
            max_retry_after: Duration::from_secs(600),
            ..global.clone()
        }
    );
    assert_eq!(c.targets["plain"].retry, global);

    let msg = error_at0(
        &with(
            MINIMAL,
            "[targets.x]\nkind = \"log\"\ntimeout = \"1s\"\nretry = { timeout = \"2s\" }",
        ),
        "targets.x.retry.timeout",
    );
    assert!(msg.contains("not both"), "{msg}");
    let msg = error_at0(
        &with(
            MINIMAL,
            "[targets.x]\nkind = \"log\"\nretry = { max_attempts = 0 }",
        ),
        "targets.x.retry.max_attempts",
    );
    assert!(msg.contains("at least 1"), "{msg}");
    let msg = error_at0(
        &with(
            MINIMAL,
            "[targets.x]\nkind = \"log\"\nretry = { initial = \"1h\" }",
        ),
        "targets.x.retry.initial",
    );
    assert!(msg.contains("max_delay"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Routes

const TWO_TARGETS: &str = r#"
[targets.a]
kind = "log"
[targets.b]
kind = "log"
"#;

#[test]
fn routes_defaults_and_shapes() {
    let text = format!(
        "{MINIMAL}{TWO_TARGETS}{}",
        r#"
[[routes]]
to = "a"

[[routes]]
name = "champions"
events = ["model_version_alias.created", "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION"]
models = ["fraud-*", "exact-model", "{a,b}-*"]
endpoints = ["db"]
from_stage = "Staging"
to_stage = ["Production"]
aliases = "champion"
tags = ["validated"]
to = ["a", "b", "a"]

[[routes]]
aliases = ["champion", "challenger"]
tags = { validated = "true", owner = "*" }
to = ["b"]
"#
    );
    let c = ok0(&text);
    let r = &c.routes[0];
    assert_eq!(r.name, "routes[0]");
    assert_eq!(r.events, ["*"]);
    assert!(r.models.is_empty());
    assert_eq!(r.to, ["a"]);

    let r = &c.routes[1];
    assert_eq!(r.name, "champions");
    assert_eq!(r.events.len(), 2);
    assert_eq!(r.models, ["fraud-*", "exact-model", "{a,b}-*"]);
    assert_eq!(r.endpoints, ["db"]);
    assert_eq!(r.from_stage, ["Staging"]);
    assert_eq!(r.to_stage, ["Production"]);
    assert_eq!(r.aliases, ["champion"]);
    assert_eq!(r.tags, [("validated".to_string(), None)]);
    assert_eq!(r.to, ["a", "b"], "a target is named once");

    let r = &c.routes[2];
    assert_eq!(r.name, "routes[2]");
    assert_eq!(r.aliases, ["champion", "challenger"]);
    assert_eq!(
        r.tags,
        [
            ("validated".to_string(), Some("true".to_string())),
            ("owner".to_string(), None)
        ]
    );
}

#[test]
fn route_validation() {
    let base = format!("{MINIMAL}{TWO_TARGETS}");
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[routes]]\nto = [\"nope\"]",
            "routes[0].to[0]",
            "unknown target \"nope\" (known: a, b)",
        ),
        ("[[routes]]\nto = []", "routes[0].to", "at least one target"),
        (
            "[[routes]]\nname = \"x\"",
            "routes[0].to",
            "missing required key",
        ),
        (
            "[[routes]]\nendpoints = [\"db\", \"mlflow\"]\nto = [\"a\"]",
            "routes[0].endpoints[1]",
            "unknown endpoint \"mlflow\" (known: db)",
        ),
        (
            "[[routes]]\nevents = []\nto = [\"a\"]",
            "routes[0].events",
            "empty",
        ),
        (
            "[[routes]]\nevents = [\"\"]\nto = [\"a\"]",
            "routes[0].events[0]",
            "must not be empty",
        ),
        (
            "[[routes]]\nmodels = []\nto = [\"a\"]",
            "routes[0].models",
            "empty",
        ),
        (
            "[[routes]]\ntags = {}\nto = [\"a\"]",
            "routes[0].tags",
            "empty",
        ),
        (
            "[[routes]]\ntags = 3\nto = [\"a\"]",
            "routes[0].tags",
            "list of tag keys",
        ),
        (
            "[[routes]]\naliases = 3\nto = [\"a\"]",
            "routes[0].aliases",
            "a string or a list",
        ),
        (
            "[[routes]]\nname = \"n\"\nto = [\"a\"]\n[[routes]]\nname = \"n\"\nto = [\"b\"]",
            "routes[1].name",
            "duplicate route name",
        ),
    ];
    for (extra, path, needle) in cases {
        let msg = error_at0(&with(&base, extra), path);
        assert!(msg.contains(needle), "{path}: {msg:?} lacks {needle:?}");
    }

    let text = with(
        &base,
        "[[routes]]\nto = [\"a\"]\n[[routes]]\nto = [\"a\"]\n\
         [[routes]]\nmodels = [\"ok-*\", \"fraud-[\"]\nto = [\"a\"]",
    );
    let msg = error_at0(&text, "routes[2].models[1]");
    assert!(msg.starts_with("invalid glob"), "{msg}");
}

#[test]
fn a_broken_target_does_not_cascade_into_routes() {
    let text =
        format!("{MINIMAL}[targets.a]\nkind = \"slack\"\nurl = 5\n[[routes]]\nto = [\"a\"]\n");
    let errs = errors(&text, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "targets.a.url");
}

// ---------------------------------------------------------------------------------------------
// Reporting

#[test]
fn all_errors_are_reported() {
    let text = r#"
[server]
listn = "x"
max_body = "lots"
shutdown_grace = "soon"

[[endpoints]]
name = "a"
path = "a"
scheme = "databricks"
secrets = ["x"]

[[routes]]
to = ["missing"]
"#;
    let errs = errors(text, &[]);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "server.listn",
            "server.max_body",
            "server.shutdown_grace",
            "endpoints[0].path",
            "routes[0].to[0]"
        ]
    );

    let one = load_with(text, &|_| None).unwrap_err();
    assert_eq!(one.path, "server.listn");
    let shown = one.to_string();
    assert!(
        shown.contains("endpoints[0].path: must start with /"),
        "{shown}"
    );
    assert!(shown.contains("routes[0].to[0]: unknown target"), "{shown}");
    assert_eq!(ConfigErrors(errs).to_string().lines().count(), 5);
}

#[test]
fn toml_syntax_errors_do_not_echo_the_source() {
    let text = format!("[admin]\ntoken = \"{SECRET}\nx = 1\n");
    let errs = errors(&text, &[]);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "<config>");
    assert!(errs[0].message.contains("line 2"), "{}", errs[0].message);
}

#[test]
fn load_reads_a_file_and_names_it_when_missing() {
    let dir = std::env::temp_dir().join(format!("hookgate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.toml");
    std::fs::write(&file, MINIMAL).unwrap();
    let c = load(&file).expect("loads");
    assert_eq!(c.endpoints[0].name, "db");

    let missing = dir.join("nope.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.path, missing.display().to_string());
    assert!(e.message.contains("cannot read configuration file"), "{e}");

    std::fs::write(&file, "[[endpoints]\n").unwrap();
    let e = load(&file).unwrap_err();
    assert_eq!(e.path, file.display().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_error_about_the_whole_file_does_not_name_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexist.toml");
    let io = std::fs::read_to_string(&missing).unwrap_err();
    let e = load(&missing).unwrap_err();
    assert_eq!(
        e.in_file(&missing),
        format!("cannot read configuration file: {io}")
    );

    let file = dir.path().join("routes.toml");
    std::fs::write(&file, "[server\n").unwrap();
    let e = load(&file).unwrap_err();
    assert_eq!(
        e.in_file(&file),
        "invalid TOML: TOML parse error at line 1, column 8: invalid table header; \
         expected `.`, `]`"
    );

    // An error about a key keeps its path.
    std::fs::write(&file, format!("{MINIMAL}\n[server]\nmax_body = 0\n")).unwrap();
    let e = load(&file).unwrap_err();
    assert_eq!(
        e.in_file(&file),
        "server.max_body: must be greater than zero"
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets stay secret

/// A file that puts the secret in every secret-bearing place.
fn secret_everywhere() -> String {
    format!(
        "{SPEC_EXAMPLE}{}",
        r#"
[[endpoints]]
name = "mlflow"
path = "/hooks/mlflow"
scheme = "mlflow"
secrets = ["${S}", "old-${S}"]

[targets.gh]
kind = "github"
repository = "acme/models"
token = "${S}"

[targets.gl]
kind = "gitlab"
project = "1"
token = "${S}"
ref = "main"

[targets.jk]
kind = "jenkins"
url = "https://ci.example.com"
job = "deploy"
user = "bot"
api_token = "${S}"
trigger_token = "${S}"

[targets.web]
kind = "http"
url = "https://example.com/hook"
headers = { Authorization = "Bearer ${S}" }
signing_secret = "${S}"

[[routes]]
name = "everything"
to = ["gh", "gl", "jk", "web", "deploy-job"]
"#
    )
}

fn secret_env() -> Vec<(&'static str, String)> {
    let mut env = spec_env();
    env.extend([
        ("S", SECRET.to_string()),
        ("HOOKGATE_ADMIN_TOKEN", SECRET.to_string()),
        ("DATABRICKS_WEBHOOK_TOKEN", SECRET.to_string()),
        (
            "HOOKGATE_STORE__URL",
            format!("postgres://app:{SECRET}@db:5432/hg?password={SECRET}"),
        ),
    ]);
    env
}

#[test]
fn secrets_never_appear_in_debug_or_summary() {
    let c = ok(&secret_everywhere(), &secret_env());
    // They did arrive.
    assert_eq!(c.admin.token.as_ref().unwrap().expose(), SECRET);
    assert!(c.store.url.contains(SECRET));
    assert_eq!(c.endpoints[1].secrets[0].expose(), SECRET);

    let debug = format!("{c:?}");
    assert!(!debug.contains("XYZZY"), "Debug leaks: {debug}");
    let pretty = format!("{c:#?}");
    assert!(!pretty.contains("XYZZY"));
    let summary = c.summary();
    assert!(!summary.contains("XYZZY"), "summary leaks: {summary}");
}

#[test]
fn secrets_never_appear_in_errors() {
    // Each puts the secret where it does not belong; `errors` asserts it is not echoed.
    let bad: &[(&str, &str)] = &[
        ("[server]\nlisten = \"${S}\"", "server.listen"),
        ("[server]\nmax_body = \"${S}\"", "server.max_body"),
        ("[server]\nmax_body = \"1${S}\"", "server.max_body"),
        (
            "[server]\nshutdown_grace = \"1${S}\"",
            "server.shutdown_grace",
        ),
        (
            "[server]\nmax_connections = \"${S}\"",
            "server.max_connections",
        ),
        ("[server]\npublic_url = \"${S}\"", "server.public_url"),
        ("[store]\nurl = \"mysql://u:${S}@db\"", "store.url"),
        ("[retry]\nmax_attempts = \"${S}\"", "retry.max_attempts"),
        (
            "[[endpoints]]\nname = \"x\"\npath = \"/x\"\nscheme = \"${S}\"\nsecrets = [\"a\"]",
            "endpoints[1].scheme",
        ),
        (
            "[[endpoints]]\nname = \"x\"\npath = \"/x\"\nscheme = \"mlflow\"\nsecrets = [\"a\"]\nallow_unauthenticated = \"${S}\"",
            "endpoints[1].allow_unauthenticated",
        ),
        ("[targets.x]\nkind = \"${S}\"", "targets.x.kind"),
        (
            "[targets.x]\nkind = \"slack\"\nurl = \"${S}\"",
            "targets.x.url",
        ),
        (
            "[targets.x]\nkind = \"slack\"\nurl = \"ftp://${S}\"",
            "targets.x.url",
        ),
        (
            "[targets.x]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = \"${S}\"\ntoken = \"t\"",
            "targets.x.job_id",
        ),
        (
            "[targets.x]\nkind = \"databricks_job\"\nworkspace_url = \"https://w\"\njob_id = 1\ntoken = \"t\"\nparameters = \"${S}\"",
            "targets.x.parameters",
        ),
        (
            "[targets.x]\nkind = \"http\"\nurl = \"https://h\"\nmethod = \"${S}\"",
            "targets.x.method",
        ),
        (
            "[targets.x]\nkind = \"http\"\nurl = \"https://h\"\nheaders = { X = \"${S}\\n\" }",
            "targets.x.headers.X",
        ),
        (
            "[targets.x]\nkind = \"github\"\nrepository = \"${S}\"\ntoken = \"t\"",
            "targets.x.repository",
        ),
        (
            "[targets.x]\nkind = \"log\"\nrate = \"${S}\"",
            "targets.x.rate",
        ),
        (
            "[targets.x]\nkind = \"log\"\nconcurrency = \"${S}\"",
            "targets.x.concurrency",
        ),
        (
            "[targets.x]\nkind = \"log\"\ntimeout = \"${S}\"",
            "targets.x.timeout",
        ),
        (
            "[[routes]]\nmodels = [\"${S}[\"]\nto = [\"ml-slack\"]",
            "routes[1].models[0]",
        ),
        (
            "[[routes]]\nevents = 5\nto = [\"ml-slack\"]",
            "routes[1].events",
        ),
    ];
    let env = [&spec_env()[..], &secret_vars()[..]].concat();
    for (extra, path) in bad {
        // `error_at` → `errors` checks every message for the secret.
        error_at(&with(spec_core(), extra), &env, path);
    }
    // Through overrides, too.
    let mut env = env.clone();
    env.push(("HOOKGATE_SERVER__LISTEN", SECRET.to_string()));
    env.push(("HOOKGATE_RETRY__MAX_ATTEMPTS", format!("[{SECRET}]")));
    let errs = errors(SPEC_EXAMPLE, &env);
    assert_eq!(errs.len(), 2, "{errs:?}");
}

// ---------------------------------------------------------------------------------------------
// Summary

#[test]
fn summary_describes_without_secrets() {
    let c = ok(
        &with(
            &secret_everywhere(),
            ALL_KINDS
                .replace("[targets.gh]", "[targets.gh2]")
                .replace("[targets.gl]", "[targets.gl2]")
                .replace("[targets.jk]", "[targets.jk2]")
                .replace("[targets.web]", "[targets.web2]")
                .as_str(),
        ),
        &secret_env(),
    );
    let s = c.summary();
    for needle in [
        "ingress  127.0.0.1:8080",
        "admin    127.0.0.1:9090",
        "admin API on",
        "postgres://db:5432/hg",
        "databricks  /hooks/databricks",
        "secrets: 1  bearer: yes",
        "secrets: 2  bearer: no",
        "tolerance: 5m",
        "hooks.slack.com",
        "adb-123.azuredatabricks.net job 42",
        "api.github.com acme/models repository_dispatch",
        "ghe.example.com acme/models workflow deploy.yml",
        "gitlab.com project 1 ref main",
        "ci.example.com job deploy",
        "PUT example.com",
        "/var/log/hookgate/events.jsonl",
        "1/s",
        "production requests to slack: TRANSITION_REQUEST_TO_PRODUCTION_CREATED × fraud-* → ml-slack",
        "everything: * × all models → gh, gl, jk, web, deploy-job",
    ] {
        assert!(s.contains(needle), "summary lacks {needle:?}:\n{s}");
    }
    assert!(!s.contains("XYZZY"));
    assert!(
        !s.contains("/services/T000"),
        "only the Slack host is shown:\n{s}"
    );
}

#[test]
fn summary_shows_route_filters_and_target_retry() {
    let text = format!(
        "{MINIMAL}{TWO_TARGETS}{}",
        r#"
[targets.c]
kind = "log"
retry = { max_attempts = 2 }

[[routes]]
name = "promo"
events = ["model_version_alias.created"]
endpoints = ["db"]
aliases = ["champion"]
tags = { validated = "true", owner = "*" }
to = ["a", "c"]
"#
    );
    let s = ok0(&text).summary();
    assert!(
        s.contains(
            "promo: model_version_alias.created × all models [endpoints: db; aliases: champion; \
             tags: validated=true, owner] → a, c"
        ),
        "{s}"
    );
    assert!(s.contains("max 2 attempts"), "{s}");
    assert!(ok0(MINIMAL).summary().contains("routes (0)"));
}

#[test]
fn redact_url_drops_credentials() {
    use super::summary::redact_url;
    assert_eq!(
        redact_url("postgres://u:p@h:5432/db?sslmode=require"),
        "postgres://h:5432/db"
    );
    assert_eq!(redact_url("sqlite://hookgate.db"), "sqlite://hookgate.db");
    assert_eq!(redact_url("sqlite:hookgate.db"), "sqlite:hookgate.db");
    let store = StoreConfig {
        url: format!("postgres://u:{SECRET}@h/db"),
        ..StoreConfig::default()
    };
    assert!(!format!("{store:?}").contains(SECRET));
}

#[test]
fn env_list_syntax() {
    use super::tree::env_list_items as items;
    assert_eq!(items("[]").unwrap(), Vec::<String>::new());
    assert_eq!(items(" [ a , b ] ").unwrap(), ["a", "b"]);
    assert_eq!(items("[a,]").unwrap(), ["a"]);
    assert_eq!(
        items(r#"["a, b", " c ", "q\"x"]"#).unwrap(),
        ["a, b", " c ", "q\"x"]
    );
    assert_eq!(items("[1.50, true]").unwrap(), ["1.50", "true"]);
    assert_eq!(items("a, b"), None);
    assert_eq!(items("[a, [b]]"), None);
    assert_eq!(items(r#"["a" b]"#), None);
    assert_eq!(items(r#"["unterminated]"#), None);
}
