//! One interface over the two registries' webhook APIs: the operations `hookgate webhooks`
//! needs, in a shape both clients translate to their own requests.

use crate::secret::Secret;

use super::databricks::Databricks;
use super::mlflow::Mlflow;
use super::plan::{SenderKind, Webhook};

/// A webhook's lifecycle state, as the user thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Fires only when someone asks the sender to test it. Databricks `TEST_MODE`; MLflow has no
    /// such status, and its `DISABLED` behaves the same way (its test API still delivers).
    Test,
    Active,
    Disabled,
}

/// Where and how the sender delivers: sent whole, because Databricks replaces
/// `http_url_spec` as one value and neither sender can tell us the secret it has.
#[derive(Debug, Clone)]
pub struct UrlSpec {
    pub url: String,
    pub secret: Option<Secret>,
    /// The whole `Authorization` header value (`Bearer …`).
    pub authorization: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// MLflow requires a name; Databricks has none.
    pub name: String,
    pub spec: UrlSpec,
    pub events: Vec<String>,
    pub description: String,
    pub state: State,
    /// Databricks model-specific webhook.
    pub model: Option<String>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub events: Option<Vec<String>>,
    pub spec: Option<UrlSpec>,
    pub description: Option<String>,
    pub state: Option<State>,
}

/// What the sender reports after firing a test event at the webhook's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The status the receiver answered, when it answered.
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Why nothing was answered (MLflow: connection refused, TLS, …).
    pub error: Option<String>,
}

/// A registry's webhook API.
pub enum Sender {
    Databricks(Databricks),
    Mlflow(Mlflow),
}

impl Sender {
    pub fn kind(&self) -> SenderKind {
        match self {
            Sender::Databricks(_) => SenderKind::Databricks,
            Sender::Mlflow(_) => SenderKind::Mlflow,
        }
    }

    /// The API's base URL, for messages.
    pub fn base(&self) -> &str {
        match self {
            Sender::Databricks(d) => d.api.base(),
            Sender::Mlflow(m) => m.api.base(),
        }
    }

    /// Hide every credential this sender knows of in `text`.
    pub fn redact(&self, text: &str) -> String {
        match self {
            Sender::Databricks(d) => d.api.redactor.redact(text),
            Sender::Mlflow(m) => m.api.redactor.redact(text),
        }
    }

    /// How this sender names a state.
    pub fn state_name(&self, state: State) -> &'static str {
        match (self.kind(), state) {
            (SenderKind::Databricks, State::Test) => "TEST_MODE",
            (SenderKind::Mlflow, State::Test) => "DISABLED",
            (_, State::Active) => "ACTIVE",
            (_, State::Disabled) => "DISABLED",
        }
    }

    /// Every webhook (of `model` only, where the sender can filter).
    pub async fn list(&self, model: Option<&str>) -> anyhow::Result<Vec<Webhook>> {
        match self {
            Sender::Databricks(d) => d.list(model).await,
            Sender::Mlflow(m) => m.list().await,
        }
    }

    pub async fn create(&self, new: &NewWebhook) -> anyhow::Result<Webhook> {
        match self {
            Sender::Databricks(d) => d.create(new).await,
            Sender::Mlflow(m) => m.create(new).await,
        }
    }

    pub async fn update(&self, id: &str, update: &Update) -> anyhow::Result<Webhook> {
        match self {
            Sender::Databricks(d) => d.update(id, update).await,
            Sender::Mlflow(m) => m.update(id, update).await,
        }
    }

    /// Ask the sender to fire a test event (`event` in its naming, or its own choice).
    pub async fn test(&self, id: &str, event: Option<&str>) -> anyhow::Result<TestOutcome> {
        match self {
            Sender::Databricks(d) => d.test(id, event).await,
            Sender::Mlflow(m) => m.test(id, event).await,
        }
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Sender::Databricks(d) => d.delete(id).await,
            Sender::Mlflow(m) => m.delete(id).await,
        }
    }
}

/// What an update answered, as a webhook: an API may answer `{}` (Databricks' reference has no
/// answer body), and a status it did not send is unknown, not the ACTIVE a listing defaults to,
/// so the caller says what it asked for instead.
pub(super) fn updated(
    answer: &serde_json::Value,
    parse: impl Fn(&serde_json::Value) -> Webhook,
) -> Webhook {
    let mut w = parse(answer);
    let sent = answer
        .get("webhook")
        .unwrap_or(answer)
        .get("status")
        .is_some();
    if !sent {
        w.status.clear();
    }
    w
}
