//! The command line: `serve`, `check`, `explain`, `sign`, `send`, `deliveries`, `webhooks`.

pub mod deliveries;
pub mod explain;
pub mod samples;
pub mod send;
pub mod webhooks;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::verify::Scheme;

/// Load the configuration file a command runs with. The error names the file once, also when
/// it is about the file as a whole.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).map_err(|e| {
        anyhow::anyhow!(
            "invalid configuration {}: {}",
            path.display(),
            e.in_file(path)
        )
    })
}

#[derive(Parser, Debug)]
#[command(
    name = "hookgate",
    version,
    about = "A verifying, durable gateway for MLflow Model Registry webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(long, short, env = "HOOKGATE_CONFIG", default_value = "routes.toml")]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate the whole configuration and summarise it; non-zero exit on any error.
    Check(ConfigArg),
    /// Say what the gateway would do with a request file (verification, routes, outbound
    /// requests with secrets redacted); nothing is sent or stored.
    Explain(ExplainArgs),
    /// Inspect and replay the outbox of the configured store.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Print the signature header(s) for a body (read from FILE, or stdin).
    Sign(SignArgs),
    /// Post a realistic signed sample event and print the answer.
    Send(SendArgs),
    /// Manage the sender's webhooks for an endpoint (Databricks registry webhooks, MLflow
    /// webhooks): list, create, test, activate, disable, delete, sync.
    Webhooks(webhooks::WebhooksArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeArg {
    Databricks,
    Mlflow,
}

impl From<SchemeArg> for Scheme {
    fn from(s: SchemeArg) -> Scheme {
        match s {
            SchemeArg::Databricks => Scheme::Databricks,
            SchemeArg::Mlflow => Scheme::Mlflow,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    #[arg(long, value_enum)]
    pub scheme: SchemeArg,
    /// The webhook secret (or set HOOKGATE_SECRET, which keeps it out of the process list).
    #[arg(long, env = "HOOKGATE_SECRET", hide_env_values = true)]
    pub secret: String,
    /// MLflow: the delivery id to sign (default: a new UUID).
    #[arg(long)]
    pub delivery_id: Option<String>,
    /// MLflow: the unix timestamp to sign (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// The body; stdin when absent. Signed byte for byte, trailing newline included.
    pub file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The gateway endpoint URL, e.g. http://127.0.0.1:8080/hooks/databricks
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum)]
    pub scheme: SchemeArg,
    /// The webhook secret (or set HOOKGATE_SECRET).
    #[arg(long, env = "HOOKGATE_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Event name, in either naming (MODEL_VERSION_CREATED or model_version.created).
    #[arg(long)]
    pub event: String,
    #[arg(long, default_value = "fraud-detector")]
    pub model: String,
    #[arg(long, default_value = "1")]
    pub version: String,
    /// Also send `Authorization: Bearer <token>`.
    #[arg(long, env = "HOOKGATE_BEARER", hide_env_values = true)]
    pub bearer: Option<String>,
    /// For an https:// URL: trust only the certificates in this PEM file (a private CA, or the
    /// gateway's self-signed certificate) instead of the system's.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// Print the request instead of sending it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A request file: {"method", "path", "headers", "body"} (the test-vector format).
    pub request: PathBuf,
    /// Judge MLflow timestamps against this unix time instead of now (to explain a recorded
    /// request as of when it was sent).
    #[arg(long)]
    pub now: Option<i64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        status: Option<String>,
        #[arg(long)]
        target: Option<String>,
        /// At most this many (1..10000, as the admin API takes).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put deliveries back in the queue (due now, with a fresh attempt budget).
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// Delivery ids.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        ids: Vec<i64>,
        /// Every dead delivery (of --target, if given).
        #[arg(long)]
        dead: bool,
        #[arg(long, requires = "dead")]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
