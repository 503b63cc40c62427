//! `hookgate webhooks`: manage the sender-side webhooks that point at this gateway.
//!
//! The gateway's configuration already knows what a webhook for an endpoint must look like:
//! URL = `server.public_url` + the endpoint's path, secret = the endpoint's first (current)
//! secret, `authorization` = its bearer token (Databricks), events = those its routes can use.
//! These commands register exactly that with the sender, so the secret is never copied by hand:
//!
//! - `list`: the sender's webhooks, marking those that send to this gateway;
//! - `create`: one webhook for the endpoint, in test mode unless `--active`;
//! - `test ID`, `activate ID`, `disable ID`, `delete ID`: the sender's lifecycle calls;
//! - `sync [--dry-run]`: print a plan (see [`plan::plan`]), then create or update what differs.
//!
//! The sender is chosen by the endpoint's scheme: Databricks registry webhooks
//! (`DATABRICKS_HOST`, `DATABRICKS_TOKEN`) or MLflow webhooks (`MLFLOW_TRACKING_URI`, with
//! `MLFLOW_TRACKING_TOKEN` or `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`). Secrets and
//! tokens are never printed; text from the sender is scrubbed of them before it is shown.

pub mod api;
pub mod databricks;
pub mod mlflow;
pub mod plan;
pub mod sender;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::{self, Config, EndpointConfig};
use crate::secret::Secret;
use crate::verify::Scheme;

use api::{Api, Auth, Redactor};
use plan::{
    Action, Desired, Marker, SenderKind, Webhook, authorization_fingerprint, given_events,
    route_events, same_url, secret_fingerprint,
};
use sender::{NewWebhook, Sender, State, Update, UrlSpec};

#[derive(clap::Args, Debug)]
pub struct WebhooksArgs {
    /// Configuration file (the gateway's: endpoints, secrets, routes, server.public_url).
    #[arg(
        long,
        short,
        env = "HOOKGATE_CONFIG",
        default_value = "routes.toml",
        global = true
    )]
    pub config: PathBuf,
    /// The configured endpoint the webhooks are for; may be left out when there is only one.
    /// Its scheme picks the sender (Databricks or MLflow).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// The sender's URL: Databricks workspace (default $DATABRICKS_HOST) or MLflow tracking
    /// server (default $MLFLOW_TRACKING_URI).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// API token (default $DATABRICKS_TOKEN or $MLFLOW_TRACKING_TOKEN). Prefer the variable: a
    /// flag shows in the process list.
    #[arg(long, global = true, value_parser = secret_arg)]
    pub token: Option<Secret>,
    /// MLflow basic auth user (default $MLFLOW_TRACKING_USERNAME).
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// MLflow basic auth password (default $MLFLOW_TRACKING_PASSWORD).
    #[arg(long, global = true, value_parser = secret_arg)]
    pub password: Option<Secret>,
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

/// Credentials on the command line are held as [`Secret`], so `Debug` of the arguments shows
/// none of them.
fn secret_arg(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// List the sender's webhooks, marking those that send to this gateway.
    List {
        /// Databricks: only the webhooks of this registered model.
        #[arg(long)]
        model: Option<String>,
    },
    /// Create a webhook for the endpoint (test mode unless --active).
    Create(TargetArgs),
    /// Ask the sender to fire a test event at a webhook; print what the gateway answered.
    Test {
        id: String,
        /// The event to test with, either naming (default: the sender picks one of the
        /// webhook's events).
        #[arg(long)]
        event: Option<String>,
    },
    /// Let a webhook fire on real registry events (status ACTIVE).
    Activate { id: String },
    /// Stop a webhook from firing (status DISABLED).
    Disable { id: String },
    /// Delete a webhook.
    Delete { id: String },
    /// Make the sender's webhooks for the endpoint match the configuration: print the plan,
    /// then create what is missing and update events, URL and secret that differ.
    Sync {
        #[command(flatten)]
        target: TargetArgs,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Databricks: a webhook for this registered model only (default: registry-wide).
    #[arg(long)]
    pub model: Option<String>,
    /// Events to subscribe to, in either naming, comma-separated or repeated (default: the
    /// events the endpoint's routes can use).
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Create webhooks ACTIVE at once. Default: test mode, i.e. Databricks TEST_MODE; MLflow
    /// has none, so DISABLED there, which MLflow's test call still reaches.
    #[arg(long)]
    pub active: bool,
}

/// Run a `hookgate webhooks` command with the process environment.
pub async fn run(args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    let cfg = crate::cli::load_config(&args.config)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = pick_endpoint(&cfg, args.endpoint.as_deref())?;
    let sender = connect(endpoint, &args, &env)?;
    match &args.command {
        WebhooksCommand::List { model } => list(&cfg, endpoint, &sender, model.as_deref()).await,
        WebhooksCommand::Create(target) => create(&cfg, endpoint, &sender, target).await,
        WebhooksCommand::Test { id, event } => test(&sender, id, event.as_deref()).await,
        WebhooksCommand::Activate { id } => set_state(&sender, id, State::Active).await,
        WebhooksCommand::Disable { id } => set_state(&sender, id, State::Disabled).await,
        WebhooksCommand::Delete { id } => {
            sender.delete(id).await?;
            println!("deleted webhook {id}");
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Sync { target, dry_run } => {
            sync(&cfg, endpoint, &sender, target, *dry_run).await
        }
    }
}

fn pick_endpoint<'a>(cfg: &'a Config, name: Option<&str>) -> anyhow::Result<&'a EndpointConfig> {
    let names = || {
        cfg.endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => cfg.endpoints.iter().find(|e| e.name == n).ok_or_else(|| {
            anyhow::anyhow!(
                "no endpoint named '{n}' in the configuration (endpoints: {})",
                names()
            )
        }),
        None => match cfg.endpoints.as_slice() {
            [only] => Ok(only),
            _ => anyhow::bail!("name the endpoint with --endpoint (one of: {})", names()),
        },
    }
}

/// The `Authorization` header value the gateway expects for a configured bearer: a value with
/// a scheme (`Bearer X`) as is, a bare token as `Bearer X` (the way ingress reads it).
fn authorization_value(bearer: &Secret) -> Secret {
    let v = bearer.expose().trim();
    if v.contains(char::is_whitespace) {
        Secret::new(v)
    } else {
        Secret::new(format!("Bearer {v}"))
    }
}

/// The API client for the endpoint's sender, with credentials from flags or the environment.
fn connect(
    endpoint: &EndpointConfig,
    args: &WebhooksArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Sender> {
    let mut redactor = Redactor::default();
    for s in &endpoint.secrets {
        redactor.add(s);
    }
    if let Some(b) = &endpoint.bearer {
        redactor.add(b);
        redactor.add(&authorization_value(b));
    }
    let flag = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let secret_flag = |v: &Option<Secret>| v.clone().filter(|v| !v.expose().trim().is_empty());
    match endpoint.scheme {
        Scheme::Databricks => {
            let host = flag(&args.host)
                .or_else(|| env("DATABRICKS_HOST"))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "set DATABRICKS_HOST to the workspace URL (or pass --host) to manage \
                         webhooks of Databricks endpoint '{}'",
                        endpoint.name
                    )
                })?;
            // The Databricks tools accept a bare workspace host name.
            let host = if host.contains("://") {
                host
            } else {
                format!("https://{host}")
            };
            let token = secret_flag(&args.token)
                .or_else(|| env("DATABRICKS_TOKEN").map(Secret::new))
                .ok_or_else(|| {
                    anyhow::anyhow!("set DATABRICKS_TOKEN (or pass --token) to call Databricks")
                })?;
            redactor.add(&token);
            let api = Api::new("Databricks", &host, Auth::Bearer(token), redactor)?;
            Ok(Sender::Databricks(databricks::Databricks { api }))
        }
        Scheme::Mlflow => {
            let uri = flag(&args.host)
                .or_else(|| env("MLFLOW_TRACKING_URI"))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "set MLFLOW_TRACKING_URI to the MLflow tracking server (or pass --host) \
                         to manage webhooks of MLflow endpoint '{}'",
                        endpoint.name
                    )
                })?;
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                anyhow::bail!(
                    "MLFLOW_TRACKING_URI must be the http(s) URL of an MLflow tracking server \
                     (webhooks live in `mlflow server`); on Databricks use a databricks endpoint \
                     and its registry webhooks"
                );
            }
            let token =
                secret_flag(&args.token).or_else(|| env("MLFLOW_TRACKING_TOKEN").map(Secret::new));
            let auth = if let Some(t) = token {
                Auth::Bearer(t)
            } else {
                let user = flag(&args.username).or_else(|| env("MLFLOW_TRACKING_USERNAME"));
                let password = secret_flag(&args.password)
                    .or_else(|| env("MLFLOW_TRACKING_PASSWORD").map(Secret::new));
                match (user, password) {
                    (Some(user), Some(password)) => Auth::Basic { user, password },
                    (None, None) => Auth::None,
                    _ => anyhow::bail!(
                        "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for basic auth"
                    ),
                }
            };
            match &auth {
                Auth::Bearer(t) => redactor.add(t),
                Auth::Basic { password, .. } => redactor.add(password),
                Auth::None => {}
            }
            let api = Api::new("MLflow", &uri, auth, redactor)?;
            Ok(Sender::Mlflow(mlflow::Mlflow { api }))
        }
    }
}

/// Public URL + endpoint path: where the sender must deliver.
fn endpoint_url(cfg: &Config, endpoint: &EndpointConfig) -> anyhow::Result<String> {
    let public = cfg.server.public_url.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "server.public_url is not set: it is the URL senders reach this gateway at (e.g. \
             https://hooks.example.com), needed to register it"
        )
    })?;
    Ok(join_url(public, &endpoint.path))
}

fn join_url(public: &str, path: &str) -> String {
    format!(
        "{}/{}",
        public.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// What the endpoint's webhook should be, and the credentials to send.
struct Target {
    desired: Desired,
    spec: UrlSpec,
    state: State,
}

fn target(
    cfg: &Config,
    endpoint: &EndpointConfig,
    kind: SenderKind,
    args: &TargetArgs,
) -> anyhow::Result<Target> {
    let model = args.model.clone().filter(|m| !m.trim().is_empty());
    if kind == SenderKind::Mlflow {
        if model.is_some() {
            anyhow::bail!(
                "MLflow webhooks are registry-wide and take no --model; narrow by model with a \
                 route's `models`"
            );
        }
        // Loading refuses such an endpoint already; this guards a configuration made in code.
        if endpoint.bearer.is_some() {
            anyhow::bail!(
                "endpoint '{}' has a bearer token: {}",
                endpoint.name,
                config::MLFLOW_BEARER_REFUSED
            );
        }
    }
    if endpoint.secrets.is_empty() {
        eprintln!(
            "warning: endpoint '{}' has no secret, so the sender will not sign its requests",
            endpoint.name
        );
    }
    let url = endpoint_url(cfg, endpoint)?;
    let events = if args.events.is_empty() {
        let choice = route_events(&cfg.routes, &endpoint.name, kind, model.is_some())
            .map_err(anyhow::Error::msg)?;
        for (route, event) in &choice.dropped {
            eprintln!(
                "note: {route}: {} does not send {event}; not subscribed",
                kind.label()
            );
        }
        choice.events
    } else {
        given_events(&args.events, kind, model.is_some()).map_err(anyhow::Error::msg)?
    };
    let secret = endpoint.secrets.first().cloned();
    let authorization = match kind {
        SenderKind::Databricks => endpoint.bearer.as_ref().map(authorization_value),
        SenderKind::Mlflow => None,
    };
    let marker = Marker::new(
        &endpoint.name,
        secret.as_ref().map(|s| secret_fingerprint(s.expose())),
        authorization
            .as_ref()
            .map(|a| authorization_fingerprint(a.expose())),
    );
    Ok(Target {
        desired: Desired {
            url: url.clone(),
            model,
            events,
            marker,
        },
        spec: UrlSpec {
            url,
            secret,
            authorization,
        },
        state: if args.active {
            State::Active
        } else {
            State::Test
        },
    })
}

fn new_webhook(endpoint: &EndpointConfig, t: &Target) -> NewWebhook {
    NewWebhook {
        name: mlflow::webhook_name(&endpoint.name),
        spec: t.spec.clone(),
        events: t.desired.events.clone(),
        description: t.desired.marker.description(),
        state: t.state,
        model: t.desired.model.clone(),
    }
}

fn scope(model: Option<&str>) -> String {
    match model {
        Some(m) => format!("model {m}"),
        None => "registry-wide".into(),
    }
}

async fn list(
    cfg: &Config,
    endpoint: &EndpointConfig,
    sender: &Sender,
    model: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if sender.kind() == SenderKind::Mlflow && model.is_some() {
        anyhow::bail!("MLflow webhooks are registry-wide and take no --model");
    }
    let hooks = sender.list(model).await?;
    let ours_fp = endpoint
        .secrets
        .first()
        .map(|s| secret_fingerprint(s.expose()));
    println!(
        "{} webhooks at {}: {}{}",
        sender.kind().label(),
        sender.base(),
        hooks.len(),
        if hooks.is_empty() {
            ""
        } else {
            " (* = sends to this gateway)"
        }
    );
    if cfg.server.public_url.is_none() {
        eprintln!(
            "note: server.public_url is not set, so webhooks sending to this gateway are not marked"
        );
    }
    for w in &hooks {
        let gateway_endpoint = cfg.server.public_url.as_deref().and_then(|public| {
            cfg.endpoints.iter().find(|e| {
                w.url
                    .as_deref()
                    .is_some_and(|u| same_url(u, &join_url(public, &e.path)))
            })
        });
        let to = w
            .url
            .clone()
            .or_else(|| w.job.clone())
            .unwrap_or_else(|| "?".into());
        println!(
            "{} {}  {:<9}  {}",
            if gateway_endpoint.is_some() { "*" } else { " " },
            w.id,
            w.status,
            sender.redact(&to)
        );
        if let Some(e) = gateway_endpoint {
            let marker = w.description.as_deref().and_then(Marker::parse);
            let secret = if e.name != endpoint.name {
                "" // Another endpoint's secret is not compared here.
            } else {
                match marker {
                    Some(m) if m.is_for_endpoint(&e.name) && m.fp == ours_fp => ", secret current",
                    Some(m) if m.is_for_endpoint(&e.name) => {
                        ", secret differs from the configuration"
                    }
                    _ => ", secret unknown (not created by hookgate)",
                }
            };
            println!("      endpoint: {}{secret}", e.name);
        }
        if let Some(n) = &w.name {
            println!("      name:     {n}");
        }
        if sender.kind() == SenderKind::Databricks {
            println!("      scope:    {}", scope(w.model.as_deref()));
        }
        println!("      events:   {}", w.events.join(", "));
        if let Some(d) = &w.description {
            println!("      description: {}", sender.redact(d));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(
    cfg: &Config,
    endpoint: &EndpointConfig,
    sender: &Sender,
    args: &TargetArgs,
) -> anyhow::Result<ExitCode> {
    let t = target(cfg, endpoint, sender.kind(), args)?;
    // A second webhook to the same URL would deliver every event twice.
    let existing: Vec<Webhook> = sender
        .list(t.desired.model.as_deref())
        .await?
        .into_iter()
        .filter(|w| plan::is_for(&t.desired, w))
        .collect();
    if !existing.is_empty() {
        let ids: Vec<&str> = existing.iter().map(|w| w.id.as_str()).collect();
        anyhow::bail!(
            "{} already has a webhook for endpoint '{}' ({}) sending to {}: bring it up to \
             date with `hookgate webhooks sync`, or delete it first",
            sender.kind().label(),
            endpoint.name,
            ids.join(", "),
            t.desired.url
        );
    }
    let created = sender.create(&new_webhook(endpoint, &t)).await?;
    println!(
        "created webhook {} ({}) for endpoint '{}'",
        created.id,
        sender.state_name(t.state),
        endpoint.name
    );
    println!("  url:    {}", t.desired.url);
    if sender.kind() == SenderKind::Databricks {
        println!("  scope:  {}", scope(t.desired.model.as_deref()));
    }
    println!("  events: {}", t.desired.events.join(", "));
    let e = &endpoint.name;
    if t.state == State::Test {
        println!("next: hookgate webhooks test {} --endpoint {e}", created.id);
        println!(
            "      hookgate webhooks activate {} --endpoint {e}",
            created.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn test(sender: &Sender, id: &str, event: Option<&str>) -> anyhow::Result<ExitCode> {
    let event =
        match event {
            Some(e) => Some(sender.kind().translate(e).ok_or_else(|| {
                anyhow::anyhow!("{} cannot send event '{e}'", sender.kind().label())
            })?),
            None => None,
        };
    let outcome = sender.test(id, event).await?;
    if let Some(err) = &outcome.error {
        println!(
            "{} could not deliver the test event: {}",
            sender.kind().label(),
            sender.redact(err)
        );
        return Ok(ExitCode::from(1));
    }
    let Some(status) = outcome.status else {
        println!(
            "{} reported no answer from the webhook's URL",
            sender.kind().label()
        );
        return Ok(ExitCode::from(1));
    };
    println!("test event sent by webhook {id}; the receiver answered HTTP {status}");
    if let Some(body) = outcome.body.as_deref().filter(|b| !b.is_empty()) {
        println!("{}", sender.redact(body).trim_end());
    }
    Ok(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn set_state(sender: &Sender, id: &str, state: State) -> anyhow::Result<ExitCode> {
    let updated = sender
        .update(
            id,
            &Update {
                state: Some(state),
                ..Update::default()
            },
        )
        .await?;
    let status = if updated.status.is_empty() {
        sender.state_name(state).to_string()
    } else {
        updated.status
    };
    println!("webhook {id} is now {status}");
    Ok(ExitCode::SUCCESS)
}

async fn sync(
    cfg: &Config,
    endpoint: &EndpointConfig,
    sender: &Sender,
    args: &TargetArgs,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let t = target(cfg, endpoint, sender.kind(), args)?;
    let existing = sender.list(t.desired.model.as_deref()).await?;
    let plan = plan::plan(&t.desired, &existing);

    println!(
        "plan for endpoint '{}' ({}, {}) at {}:",
        endpoint.name,
        t.desired.url,
        scope(t.desired.model.as_deref()),
        sender.base()
    );
    for action in &plan.actions {
        match action {
            Action::Create => println!(
                "  create  new webhook, {}, events: {}",
                sender.state_name(t.state),
                t.desired.events.join(", ")
            ),
            Action::Update { id, changes } => {
                println!("  update  {id}: {}", changes.describe())
            }
            Action::Leave { id } => println!("  keep    {id}: up to date"),
        }
    }
    for note in &plan.notes {
        println!("  note: {note}");
    }
    if plan.is_noop() {
        println!("nothing to change");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(ExitCode::SUCCESS);
    }
    for action in &plan.actions {
        match action {
            Action::Create => {
                let w = sender.create(&new_webhook(endpoint, &t)).await?;
                println!("created {} ({})", w.id, sender.state_name(t.state));
            }
            Action::Update { id, changes } => {
                let update = Update {
                    events: changes.events_changed().then(|| t.desired.events.clone()),
                    spec: (changes.url || changes.credentials).then(|| t.spec.clone()),
                    description: changes.description.then(|| t.desired.marker.description()),
                    state: None,
                };
                sender.update(id, &update).await?;
                println!("updated {id}");
            }
            Action::Leave { .. } => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WebhooksArgs,
    }

    fn args(argv: &[&str]) -> WebhooksArgs {
        let mut full = vec!["hookgate"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).unwrap().args
    }

    fn endpoint(scheme: Scheme) -> EndpointConfig {
        EndpointConfig {
            name: "e".into(),
            path: "/hooks/e".into(),
            scheme,
            secrets: vec![Secret::new("whsec-value")],
            bearer: None,
            tolerance: std::time::Duration::from_secs(300),
            allow_unauthenticated: false,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn credentials_come_from_flags_or_the_senders_variables() {
        let d = endpoint(Scheme::Databricks);
        let vars = [
            ("DATABRICKS_HOST", "adb-1.example.net"),
            ("DATABRICKS_TOKEN", "dapi-1"),
        ];
        let s = connect(&d, &args(&["list"]), &env(&vars)).unwrap();
        assert_eq!(s.kind(), SenderKind::Databricks);
        assert_eq!(s.base(), "https://adb-1.example.net");
        let s = connect(
            &d,
            &args(&["list", "--host", "http://127.0.0.1:9"]),
            &env(&vars),
        )
        .unwrap();
        assert_eq!(s.base(), "http://127.0.0.1:9");
        let e = connect(&d, &args(&["list"]), &env(&vars[..1]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("DATABRICKS_TOKEN"), "{e}");
        assert!(
            connect(&d, &args(&["list", "--token", "t"]), &env(&vars[..1])).is_ok(),
            "a flag stands in for the variable"
        );

        let m = endpoint(Scheme::Mlflow);
        let e = connect(&m, &args(&["list"]), &env(&[])).err().unwrap();
        assert!(e.to_string().contains("MLFLOW_TRACKING_URI"), "{e}");
        let e = connect(
            &m,
            &args(&["list"]),
            &env(&[("MLFLOW_TRACKING_URI", "databricks")]),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("http(s)"), "{e}");
        let uri = ("MLFLOW_TRACKING_URI", "https://mlflow.example.com/");
        let s = connect(&m, &args(&["list"]), &env(&[uri])).unwrap();
        assert_eq!(s.base(), "https://mlflow.example.com");
        let e = connect(
            &m,
            &args(&["list"]),
            &env(&[uri, ("MLFLOW_TRACKING_USERNAME", "u")]),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("MLFLOW_TRACKING_PASSWORD"), "{e}");
        assert!(
            connect(
                &m,
                &args(&["list", "--username", "u", "--password", "p"]),
                &env(&[uri])
            )
            .is_ok()
        );
    }

    #[test]
    fn command_line_credentials_do_not_show_in_debug() {
        let a = args(&["--token", "dapi-secret-token", "list"]);
        assert!(!format!("{a:?}").contains("dapi-secret-token"));
    }

    #[test]
    fn authorization_value_matches_what_ingress_accepts() {
        assert_eq!(
            authorization_value(&Secret::new("AbcdEfg1294")).expose(),
            "Bearer AbcdEfg1294"
        );
        assert_eq!(
            authorization_value(&Secret::new(" Bearer AbcdEfg1294 ")).expose(),
            "Bearer AbcdEfg1294"
        );
    }

    #[test]
    fn endpoint_urls_join_with_one_slash() {
        assert_eq!(
            join_url("https://gw.example.com", "/hooks/databricks"),
            "https://gw.example.com/hooks/databricks"
        );
        assert_eq!(
            join_url("https://gw.example.com/base/", "/hooks/mlflow"),
            "https://gw.example.com/base/hooks/mlflow"
        );
    }
}
