//! The pure half of `hookgate webhooks`: which events an endpoint needs, the marker written
//! into a webhook's description, and the plan that turns the sender's webhooks into what the
//! configuration wants. No I/O here, so every decision is unit-tested.
//!
//! Senders never return a webhook's secret (nor Databricks' `authorization`), so "is the secret
//! still right?" cannot be answered by comparing values. Instead the description carries a
//! fingerprint: the first 12 hex digits of HMAC-SHA256 keyed with the secret over a fixed label.
//! It changes when the secret changes and reveals nothing usable about a random secret.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cli::samples::DATABRICKS_EVENTS;
use crate::config::RouteConfig;
use crate::event::counterpart;

/// The event types MLflow 3.17 accepts for a webhook (`mlflow.entities.webhook`:
/// `VALID_ENTITY_ACTIONS`), in its order.
pub const MLFLOW_EVENTS: &[&str] = &[
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "prompt.created",
    "prompt_version.created",
    "prompt_tag.set",
    "prompt_tag.deleted",
    "prompt_version_tag.set",
    "prompt_version_tag.deleted",
    "prompt_alias.created",
    "prompt_alias.deleted",
    "budget_policy.exceeded",
];

/// Databricks accepts this event only on registry-wide webhooks (no `model_name`).
const REGISTRY_WIDE_ONLY: &str = "REGISTERED_MODEL_CREATED";

/// Which registry API a webhook lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    Databricks,
    Mlflow,
}

impl SenderKind {
    /// Every event this sender can emit, in its own naming and documented order.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            SenderKind::Databricks => DATABRICKS_EVENTS,
            SenderKind::Mlflow => MLFLOW_EVENTS,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SenderKind::Databricks => "Databricks",
            SenderKind::Mlflow => "MLflow",
        }
    }

    /// `name` (either naming, any case) in this sender's own spelling, if it can emit it.
    pub fn translate(self, name: &str) -> Option<&'static str> {
        let own = |n: &str| {
            self.events()
                .iter()
                .copied()
                .find(|e| e.eq_ignore_ascii_case(n))
        };
        own(name).or_else(|| counterpart(name).and_then(own))
    }
}

/// Events a webhook should subscribe to, and the route events left out because this sender
/// cannot emit them (shown to the user, so a route that can never fire is noticed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventChoice {
    /// In the sender's naming and documented order, each once.
    pub events: Vec<String>,
    /// `(route name, event as written)`.
    pub dropped: Vec<(String, String)>,
}

/// The events the routes that can match `endpoint` use, in `sender`'s naming.
///
/// A route can match the endpoint when its `endpoints` list is empty or names it. `*` (or no
/// `events`) means every event the sender can emit. `model_scoped`: a Databricks webhook for
/// one model, which cannot subscribe to `REGISTERED_MODEL_CREATED`.
pub fn route_events(
    routes: &[RouteConfig],
    endpoint: &str,
    sender: SenderKind,
    model_scoped: bool,
) -> Result<EventChoice, String> {
    let relevant: Vec<&RouteConfig> = routes
        .iter()
        .filter(|r| r.endpoints.is_empty() || r.endpoints.iter().any(|e| e == endpoint))
        .collect();
    if relevant.is_empty() {
        return Err(format!(
            "no route can match endpoint '{endpoint}', so it needs no events; add a route for \
             it, or name the events with --events"
        ));
    }
    let mut wanted = BTreeSet::new();
    let mut dropped = Vec::new();
    for route in relevant {
        if route.events.is_empty() || route.events.iter().any(|e| e == "*") {
            wanted.extend(sender.events().iter().copied());
            continue;
        }
        for e in &route.events {
            match sender.translate(e) {
                Some(own) => {
                    wanted.insert(own);
                }
                None => dropped.push((route.name.clone(), e.clone())),
            }
        }
    }
    if model_scoped && sender == SenderKind::Databricks && wanted.remove(REGISTRY_WIDE_ONLY) {
        dropped.push((
            "(model-specific webhook)".into(),
            REGISTRY_WIDE_ONLY.to_string(),
        ));
    }
    let events = in_sender_order(sender, &wanted);
    if events.is_empty() {
        return Err(format!(
            "the routes for endpoint '{endpoint}' use no event that {} can send; name the \
             events with --events",
            sender.label()
        ));
    }
    Ok(EventChoice { events, dropped })
}

/// Events given on the command line (either naming), in `sender`'s naming. Unlike route events,
/// a name the sender cannot emit is an error: the user asked for it explicitly.
pub fn given_events(
    names: &[String],
    sender: SenderKind,
    model_scoped: bool,
) -> Result<Vec<String>, String> {
    let mut wanted = BTreeSet::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let own = sender.translate(name).ok_or_else(|| {
            format!(
                "{} cannot send event '{name}'; it sends: {}",
                sender.label(),
                sender.events().join(", ")
            )
        })?;
        if model_scoped && own == REGISTRY_WIDE_ONLY {
            return Err(format!(
                "{REGISTRY_WIDE_ONLY} is only available on registry-wide webhooks (without --model)"
            ));
        }
        wanted.insert(own);
    }
    if wanted.is_empty() {
        return Err("--events names no event".into());
    }
    Ok(in_sender_order(sender, &wanted))
}

fn in_sender_order(sender: SenderKind, wanted: &BTreeSet<&str>) -> Vec<String> {
    sender
        .events()
        .iter()
        .filter(|e| wanted.contains(*e))
        .map(|e| e.to_string())
        .collect()
}

/// First 12 hex digits of HMAC-SHA256(key = `value`, message = `label`).
fn fingerprint(value: &str, label: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(value.as_bytes()).expect("HMAC takes any key");
    mac.update(label.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(12);
    hex
}

/// The fingerprint of a webhook secret, as recorded in the description (`fp=`).
pub fn secret_fingerprint(secret: &str) -> String {
    fingerprint(secret, "hookgate-secret-fingerprint")
}

/// The fingerprint of a Databricks `authorization` header value (`auth=`).
pub fn authorization_fingerprint(authorization: &str) -> String {
    fingerprint(authorization, "hookgate-authorization-fingerprint")
}

const MARKER: &str = "managed by hookgate:";

/// What hookgate writes into the description of a webhook it manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub endpoint: String,
    /// Secret fingerprint; `None` for an endpoint without a secret (`fp=none`).
    pub fp: Option<String>,
    /// Authorization fingerprint, when the webhook sends an `Authorization` header.
    pub auth: Option<String>,
}

/// An endpoint name as written in a marker: one word (whitespace becomes `_`).
pub fn endpoint_word(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

impl Marker {
    pub fn new(endpoint: &str, fp: Option<String>, auth: Option<String>) -> Marker {
        Marker {
            endpoint: endpoint_word(endpoint),
            fp,
            auth,
        }
    }

    /// Whether this marker names the endpoint called `name`.
    pub fn is_for_endpoint(&self, name: &str) -> bool {
        self.endpoint == endpoint_word(name)
    }

    /// `managed by hookgate: endpoint=databricks fp=ab12cd34ef56[ auth=…]`.
    pub fn description(&self) -> String {
        let mut s = format!(
            "{MARKER} endpoint={} fp={}",
            self.endpoint,
            self.fp.as_deref().unwrap_or("none")
        );
        if let Some(a) = &self.auth {
            s.push_str(" auth=");
            s.push_str(a);
        }
        s
    }

    /// The marker in a description, if it has one (other text around it is allowed).
    pub fn parse(description: &str) -> Option<Marker> {
        let rest = &description[description.find(MARKER)? + MARKER.len()..];
        let mut marker = Marker {
            endpoint: String::new(),
            fp: None,
            auth: None,
        };
        // Fingerprints are hex: text after them (a closing bracket someone added) is not theirs.
        let hex = |v: &str| -> String { v.chars().take_while(char::is_ascii_hexdigit).collect() };
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some(("endpoint", v)) => marker.endpoint = v.to_string(),
                Some(("fp", v)) if !v.starts_with("none") => marker.fp = Some(hex(v)),
                Some(("auth", v)) => marker.auth = Some(hex(v)),
                _ => {}
            }
        }
        (!marker.endpoint.is_empty()).then_some(marker)
    }
}

/// A webhook as the sender lists it, in one shape for both senders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Webhook {
    pub id: String,
    /// MLflow's webhook name.
    pub name: Option<String>,
    /// `None` for a Databricks job webhook.
    pub url: Option<String>,
    /// In the sender's naming.
    pub events: Vec<String>,
    /// As the sender says it (`ACTIVE`, `TEST_MODE`, `DISABLED`).
    pub status: String,
    pub description: Option<String>,
    /// Databricks: the model of a model-specific webhook; `None` = registry-wide.
    pub model: Option<String>,
    /// Databricks: `http_url_spec.enable_ssl_verification`.
    pub ssl_verification: Option<bool>,
    /// Databricks job webhooks: job id and workspace, for display.
    pub job: Option<String>,
}

/// What the configuration wants the sender to have for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Public URL + endpoint path.
    pub url: String,
    /// Databricks model scope; `None` = registry-wide (always for MLflow).
    pub model: Option<String>,
    /// In the sender's naming.
    pub events: Vec<String>,
    pub marker: Marker,
}

/// What an existing webhook lacks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    pub events_added: Vec<String>,
    pub events_removed: Vec<String>,
    /// The URL is spelled differently (same address after normalisation).
    pub url: bool,
    /// Secret, authorization or TLS verification must be sent again.
    pub credentials: bool,
    /// The description is not exactly the marker.
    pub description: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    pub fn events_changed(&self) -> bool {
        !self.events_added.is_empty() || !self.events_removed.is_empty()
    }

    /// One line for the plan: `events +A -B; url; secret; description`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.events_changed() {
            let mut e = String::from("events");
            for a in &self.events_added {
                e.push_str(&format!(" +{a}"));
            }
            for r in &self.events_removed {
                e.push_str(&format!(" -{r}"));
            }
            parts.push(e);
        }
        if self.url {
            parts.push("url".into());
        }
        if self.credentials {
            parts.push("secret".into());
        }
        if self.description {
            parts.push("description".into());
        }
        parts.join("; ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Update { id: String, changes: Changes },
    Leave { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Things worth saying that change nothing (a managed webhook now at another URL).
    pub notes: Vec<String>,
}

impl Plan {
    /// `true` when applying it would send nothing.
    pub fn is_noop(&self) -> bool {
        self.actions
            .iter()
            .all(|a| matches!(a, Action::Leave { .. }))
    }
}

/// Compare URLs the way a sender reaches them: scheme and host case, default port and a
/// trailing `/` do not matter.
pub fn same_url(a: &str, b: &str) -> bool {
    fn norm(u: &str) -> String {
        match url::Url::parse(u.trim()) {
            Ok(mut p) => {
                let path = p.path().trim_end_matches('/').to_string();
                p.set_path(&path);
                p.to_string().trim_end_matches('/').to_string()
            }
            Err(_) => u.trim().trim_end_matches('/').to_string(),
        }
    }
    norm(a) == norm(b)
}

/// Whether `w` is a webhook for the desired endpoint: same URL (normalised) and same model
/// scope. Only these are ever changed; everything else on the sender is left alone.
pub fn is_for(desired: &Desired, w: &Webhook) -> bool {
    w.model == desired.model && w.url.as_deref().is_some_and(|u| same_url(u, &desired.url))
}

/// Desired vs existing → what to create, update and leave.
///
/// Every webhook for the endpoint is brought in line (there may be more than one, e.g. one made
/// by hand); if there is none, one is created. Status is never changed: it is the user's
/// (`activate`, `disable`). A webhook whose marker names this endpoint but that points elsewhere
/// (the public URL changed) is left alone with a note, because it may belong to another
/// deployment of the same configuration.
pub fn plan(desired: &Desired, existing: &[Webhook]) -> Plan {
    let mut out = Plan::default();
    let want: BTreeSet<&str> = desired.events.iter().map(String::as_str).collect();
    for w in existing {
        if !is_for(desired, w) {
            let marked_for_us = w
                .description
                .as_deref()
                .and_then(Marker::parse)
                .is_some_and(|m| m.endpoint == desired.marker.endpoint);
            if marked_for_us && w.model == desired.model {
                out.notes.push(format!(
                    "webhook {} is marked for endpoint '{}' but sends to {}; left alone (delete \
                     it if it is stale)",
                    w.id,
                    desired.marker.endpoint,
                    w.url.as_deref().unwrap_or("a job")
                ));
            }
            continue;
        }
        let have: BTreeSet<&str> = w.events.iter().map(String::as_str).collect();
        let marker = w.description.as_deref().and_then(Marker::parse);
        let credentials_known = marker.as_ref().is_some_and(|m| {
            m.endpoint == desired.marker.endpoint
                && m.fp == desired.marker.fp
                && m.auth == desired.marker.auth
        });
        let changes = Changes {
            events_added: desired
                .events
                .iter()
                .filter(|e| !have.contains(e.as_str()))
                .cloned()
                .collect(),
            events_removed: w
                .events
                .iter()
                .filter(|e| !want.contains(e.as_str()))
                .cloned()
                .collect(),
            url: w.url.as_deref() != Some(desired.url.as_str()),
            credentials: !credentials_known || w.ssl_verification == Some(false),
            description: w.description.as_deref() != Some(desired.marker.description().as_str()),
        };
        out.actions.push(if changes.is_empty() {
            Action::Leave { id: w.id.clone() }
        } else {
            Action::Update {
                id: w.id.clone(),
                changes,
            }
        });
    }
    if out.actions.is_empty() {
        out.actions.push(Action::Create);
    } else if out.actions.len() > 1 {
        out.notes.push(format!(
            "{} webhooks send to {}: the sender delivers every event once per webhook; delete \
             all but one",
            out.actions.len(),
            desired.url
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, events: &[&str], endpoints: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            to: vec!["t".into()],
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn star_means_every_event_of_the_sender() {
        let routes = [route("all", &["*"], &[])];
        let d = route_events(&routes, "databricks", SenderKind::Databricks, false).unwrap();
        assert_eq!(d.events, strings(DATABRICKS_EVENTS));
        assert_eq!(d.events.len(), 12);
        let m = route_events(&routes, "mlflow", SenderKind::Mlflow, false).unwrap();
        assert_eq!(m.events, strings(MLFLOW_EVENTS));
        // No `events` at all is the same as `*`.
        let routes = [route("none", &[], &[])];
        let m = route_events(&routes, "mlflow", SenderKind::Mlflow, false).unwrap();
        assert_eq!(m.events.len(), MLFLOW_EVENTS.len());
    }

    #[test]
    fn names_are_translated_and_unsendable_ones_dropped() {
        let routes = [
            route(
                "mixed",
                &[
                    "model_version.created",
                    "comment_created",
                    "MODEL_VERSION_TAG_SET",
                ],
                &[],
            ),
            route("alias", &["model_version_alias.created"], &["mlflow"]),
            route(
                "other endpoint",
                &["TRANSITION_REQUEST_CREATED"],
                &["elsewhere"],
            ),
        ];
        let d = route_events(&routes, "databricks", SenderKind::Databricks, false).unwrap();
        assert_eq!(
            d.events,
            strings(&[
                "MODEL_VERSION_CREATED",
                "COMMENT_CREATED",
                "MODEL_VERSION_TAG_SET"
            ])
        );
        assert!(d.dropped.is_empty(), "{:?}", d.dropped);

        let m = route_events(&routes, "mlflow", SenderKind::Mlflow, false).unwrap();
        assert_eq!(
            m.events,
            strings(&[
                "model_version.created",
                "model_version_tag.set",
                "model_version_alias.created"
            ])
        );
        assert_eq!(
            m.dropped,
            vec![("mixed".to_string(), "comment_created".to_string())]
        );
    }

    #[test]
    fn no_route_for_the_endpoint_suggests_events_flag() {
        let routes = [route("x", &["*"], &["mlflow"])];
        let e = route_events(&routes, "databricks", SenderKind::Databricks, false).unwrap_err();
        assert!(e.contains("--events"), "{e}");
        let routes = [route("x", &["COMMENT_CREATED"], &[])];
        let e = route_events(&routes, "mlflow", SenderKind::Mlflow, false).unwrap_err();
        assert!(e.contains("--events"), "{e}");
    }

    #[test]
    fn model_specific_databricks_webhooks_cannot_have_registered_model_created() {
        let routes = [route("all", &["*"], &[])];
        let d = route_events(&routes, "databricks", SenderKind::Databricks, true).unwrap();
        assert_eq!(d.events.len(), 11);
        assert!(!d.events.iter().any(|e| e == "REGISTERED_MODEL_CREATED"));
        assert_eq!(d.dropped.len(), 1);
        assert!(
            given_events(
                &strings(&["registered_model.created"]),
                SenderKind::Databricks,
                true
            )
            .is_err()
        );
    }

    #[test]
    fn given_events_are_checked_and_translated() {
        let got = given_events(
            &strings(&[
                "model_version.created",
                " COMMENT_CREATED",
                "MODEL_VERSION_CREATED",
            ]),
            SenderKind::Databricks,
            false,
        )
        .unwrap();
        assert_eq!(got, strings(&["MODEL_VERSION_CREATED", "COMMENT_CREATED"]));
        let e = given_events(&strings(&["COMMENT_CREATED"]), SenderKind::Mlflow, false);
        assert!(e.unwrap_err().contains("model_version.created"));
        assert!(given_events(&strings(&[""]), SenderKind::Mlflow, false).is_err());
    }

    #[test]
    fn fingerprints_are_stable_short_and_keyed() {
        let fp = secret_fingerprint("anyRandomString");
        assert_eq!(fp.len(), 12);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(fp, secret_fingerprint("anyRandomString"));
        assert_ne!(fp, secret_fingerprint("anyRandomString2"));
        assert_ne!(fp, authorization_fingerprint("anyRandomString"));
        // HMAC-SHA256(key="anyRandomString", "hookgate-secret-fingerprint"), computed independently.
        assert_eq!(fp, "dc3593a3e583");
    }

    #[test]
    fn marker_round_trips_and_tolerates_other_text() {
        let m = Marker {
            endpoint: "databricks".into(),
            fp: Some("ab12cd34ef56".into()),
            auth: None,
        };
        assert_eq!(
            m.description(),
            "managed by hookgate: endpoint=databricks fp=ab12cd34ef56"
        );
        assert_eq!(Marker::parse(&m.description()), Some(m.clone()));
        let noisy = format!("Slack relay ({}) - do not edit", m.description());
        assert_eq!(Marker::parse(&noisy).unwrap().fp, m.fp);
        let none = Marker {
            endpoint: "x".into(),
            fp: None,
            auth: Some("0123456789ab".into()),
        };
        assert_eq!(
            none.description(),
            "managed by hookgate: endpoint=x fp=none auth=0123456789ab"
        );
        assert_eq!(Marker::parse(&none.description()), Some(none));
        assert_eq!(Marker::parse("Slack notifications"), None);
        // An endpoint name with spaces is written as one word and still recognised.
        let spaced = Marker::new("prod registry", Some("ab12cd34ef56".into()), None);
        let parsed = Marker::parse(&spaced.description()).unwrap();
        assert!(parsed.is_for_endpoint("prod registry"));
        assert!(!parsed.is_for_endpoint("prod"));
        assert_eq!(parsed, spaced);
    }

    fn desired() -> Desired {
        Desired {
            url: "https://gw.example.com/hooks/databricks".into(),
            model: None,
            events: strings(&["MODEL_VERSION_CREATED", "COMMENT_CREATED"]),
            marker: Marker {
                endpoint: "databricks".into(),
                fp: Some("ab12cd34ef56".into()),
                auth: None,
            },
        }
    }

    fn in_sync(id: &str) -> Webhook {
        let d = desired();
        Webhook {
            id: id.into(),
            url: Some(d.url.clone()),
            events: vec!["COMMENT_CREATED".into(), "MODEL_VERSION_CREATED".into()],
            status: "ACTIVE".into(),
            description: Some(d.marker.description()),
            ssl_verification: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_there_means_create() {
        let other = Webhook {
            id: "slack".into(),
            url: Some("https://hooks.slack.com/services/x".into()),
            events: strings(&["MODEL_VERSION_CREATED"]),
            ..Default::default()
        };
        let p = plan(&desired(), &[other]);
        assert_eq!(p.actions, vec![Action::Create]);
        assert!(!p.is_noop());
        assert!(p.notes.is_empty());
    }

    #[test]
    fn an_up_to_date_webhook_is_left_alone_whatever_its_status_and_event_order() {
        let mut w = in_sync("1");
        w.status = "TEST_MODE".into();
        let p = plan(&desired(), &[w]);
        assert_eq!(p.actions, vec![Action::Leave { id: "1".into() }]);
        assert!(p.is_noop());
    }

    #[test]
    fn differences_become_one_update_each() {
        let mut events = in_sync("1");
        events.events = strings(&["MODEL_VERSION_CREATED", "MODEL_VERSION_TAG_SET"]);
        let mut secret = in_sync("2");
        secret.description =
            Some("managed by hookgate: endpoint=databricks fp=000000000000".into());
        let mut by_hand = in_sync("3");
        by_hand.description = Some("made with curl".into());
        let mut url = in_sync("4");
        url.url = Some("https://GW.example.com:443/hooks/databricks/".into());
        let mut tls = in_sync("5");
        tls.ssl_verification = Some(false);
        let p = plan(&desired(), &[events, secret, by_hand, url, tls]);
        let changes: Vec<(String, String)> = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Update { id, changes } => (id.clone(), changes.describe()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (
                    "1".into(),
                    "events +COMMENT_CREATED -MODEL_VERSION_TAG_SET".into()
                ),
                ("2".into(), "secret; description".into()),
                ("3".into(), "secret; description".into()),
                ("4".into(), "url".into()),
                ("5".into(), "secret".into()),
            ]
        );
        assert_eq!(
            p.notes.len(),
            1,
            "duplicates are pointed out: {:?}",
            p.notes
        );
        assert!(
            p.notes[0].starts_with("5 webhooks send to"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn a_changed_bearer_is_a_credentials_change() {
        let mut d = desired();
        d.marker.auth = Some(authorization_fingerprint("Bearer new"));
        let p = plan(&d, &[in_sync("1")]);
        match &p.actions[..] {
            [Action::Update { changes, .. }] => {
                assert!(changes.credentials && changes.description && !changes.url)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_models_and_moved_webhooks_are_left_alone() {
        let mut model = in_sync("m");
        model.model = Some("fraud-detector".into());
        let mut moved = in_sync("old");
        moved.url = Some("https://old-gw.example.com/hooks/databricks".into());
        let p = plan(&desired(), &[model.clone(), moved]);
        assert_eq!(p.actions, vec![Action::Create]);
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("old"), "{:?}", p.notes);

        // A model-specific desired webhook only sees that model's webhooks.
        let mut d = desired();
        d.model = Some("fraud-detector".into());
        let p = plan(&d, &[in_sync("registry-wide"), model]);
        assert_eq!(p.actions, vec![Action::Leave { id: "m".into() }]);
    }

    #[test]
    fn same_url_ignores_only_spelling() {
        assert!(same_url(
            "https://a.example.com/x",
            "HTTPS://A.example.com:443/x/"
        ));
        assert!(!same_url(
            "https://a.example.com/x",
            "https://a.example.com/y"
        ));
        assert!(!same_url(
            "https://a.example.com/x",
            "http://a.example.com/x"
        ));
    }
}
