//! Stage 4, route: decide which targets an event goes to. Pure: data plus functions, no I/O.
//!
//! The rule table is compiled once from `[[routes]]` (at start and on reload) into a
//! [`RouteTable`]; every request then only runs [`RouteTable::targets_for`]. Invariants:
//!
//! - Every route whose criteria ALL hold fires; an absent or empty criterion means "any".
//! - The result is the union of the firing routes' `to` lists: each target once, in order of
//!   first appearance (route order, then `to` order), so deliveries are deterministic.
//! - Everything that can be wrong in a route (bad glob, unknown target, unknown stage) fails in
//!   [`RouteTable::compile`] with the key path (`routes[2].models[0]`), never at delivery time.
//! - Matching does not allocate per criterion: globs are one precompiled [`GlobSet`] per route,
//!   the model name becomes one [`Candidate`] per event, and comparisons borrow.
//! - An event that matches nothing gets an empty list; it is still accepted (the caller counts
//!   and logs it).
//!
//! [`RouteTable::explain`] reports, for `hookgate explain`, the first criterion each route fails on.

use std::fmt::{self, Write as _};

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::{ConfigError, RouteConfig};
use crate::event::Event;

/// The registry's stage names (MLflow's fixed set). Stage criteria are validated against it so a
/// typo such as `"Prod"` fails at start instead of silently never matching.
const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// The compiled rule table: built once, shared read-only by every request.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Target names referenced by any route, interned; `Route::to` indexes into this, which lets
    /// [`RouteTable::targets_for`] de-duplicate with a flag per target instead of string compares.
    targets: Vec<String>,
}

/// One compiled `[[routes]]` entry. The original lists are kept for `explain` messages.
#[derive(Debug, Clone)]
struct Route {
    name: String,
    /// `true` when `events` is empty or contains `*`: the event criterion is skipped entirely.
    any_event: bool,
    events: Vec<String>,
    /// `None` when `models` is empty (any model, and events without a model too).
    models: Option<GlobSet>,
    model_patterns: Vec<String>,
    endpoints: Vec<String>,
    from_stage: Vec<String>,
    to_stage: Vec<String>,
    aliases: Vec<String>,
    tags: Vec<(String, Option<String>)>,
    /// Indexes into [`RouteTable::targets`], in the order written.
    to: Vec<usize>,
}

/// The verdict on one route for one event, as `hookgate explain` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteMatch {
    /// The route's `name`.
    pub name: String,
    /// Whether every criterion held.
    pub matched: bool,
    /// The first criterion that failed, in words; `None` when the route matched.
    pub why_not: Option<String>,
    /// The route's targets (whether or not it matched), so explain can show what would fire.
    pub to: Vec<String>,
}

/// The first criterion a route failed on. Cheap to produce on the hot path (no allocation);
/// only `explain` turns it into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    Event,
    Model,
    Endpoint,
    FromStage,
    ToStage,
    Alias,
    /// Index of the first tag criterion the event does not satisfy.
    Tag(usize),
}

impl RouteTable {
    /// Compile and validate `[[routes]]` against the configured target names.
    ///
    /// Errors name the key path, e.g. `routes[1].models[0]: bad glob '{a': ...` or
    /// `routes[0].to[2]: unknown target 'x'`. Indexes are zero-based, as in the file's order.
    pub fn compile(
        routes: &[RouteConfig],
        target_names: &[&str],
    ) -> Result<RouteTable, ConfigError> {
        let mut table = RouteTable::default();
        for (i, rc) in routes.iter().enumerate() {
            let route = table.compile_route(i, rc, target_names)?;
            table.routes.push(route);
        }
        Ok(table)
    }

    fn compile_route(
        &mut self,
        i: usize,
        rc: &RouteConfig,
        target_names: &[&str],
    ) -> Result<Route, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            path: format!("routes[{i}].{key}"),
            message,
        };

        for (j, e) in rc.events.iter().enumerate() {
            if e.trim().is_empty() {
                return Err(err(format!("events[{j}]"), "empty event name".into()));
            }
        }

        let models = if rc.models.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for (j, pattern) in rc.models.iter().enumerate() {
                if pattern.is_empty() {
                    return Err(err(format!("models[{j}]"), "empty glob".into()));
                }
                // Settings spelled out rather than left to defaults: model names are not paths,
                // so `*` also crosses `/`; names are case-sensitive in both registries.
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(false)
                    .case_insensitive(false)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| {
                        err(
                            format!("models[{j}]"),
                            format!("bad glob '{pattern}': {}", e.kind()),
                        )
                    })?;
                set.add(glob);
            }
            // Building can still fail (e.g. the combined regex exceeds its size limit).
            Some(
                set.build()
                    .map_err(|e| err("models".into(), format!("bad globs: {e}")))?,
            )
        };

        for (key, stages) in [("from_stage", &rc.from_stage), ("to_stage", &rc.to_stage)] {
            for (j, s) in stages.iter().enumerate() {
                if !STAGES.iter().any(|known| known.eq_ignore_ascii_case(s)) {
                    return Err(err(
                        format!("{key}[{j}]"),
                        format!("unknown stage '{s}' (expected one of {})", List(&STAGES)),
                    ));
                }
            }
        }

        for (j, (key, _)) in rc.tags.iter().enumerate() {
            if key.is_empty() {
                return Err(err(format!("tags[{j}]"), "empty tag key".into()));
            }
        }

        if rc.to.is_empty() {
            return Err(err(
                "to".into(),
                "a route must name at least one target".into(),
            ));
        }
        let mut to = Vec::with_capacity(rc.to.len());
        for (j, target) in rc.to.iter().enumerate() {
            if !target_names.contains(&target.as_str()) {
                return Err(err(
                    format!("to[{j}]"),
                    format!("unknown target '{target}'"),
                ));
            }
            to.push(self.intern(target));
        }

        Ok(Route {
            name: rc.name.clone(),
            any_event: rc.events.is_empty() || rc.events.iter().any(|e| e == "*"),
            events: rc.events.clone(),
            models,
            model_patterns: rc.models.clone(),
            endpoints: rc.endpoints.clone(),
            from_stage: rc.from_stage.clone(),
            to_stage: rc.to_stage.clone(),
            aliases: rc.aliases.clone(),
            tags: rc.tags.clone(),
            to,
        })
    }

    fn intern(&mut self, target: &str) -> usize {
        match self.targets.iter().position(|t| t == target) {
            Some(k) => k,
            None => {
                self.targets.push(target.to_string());
                self.targets.len() - 1
            }
        }
    }

    /// The targets an event received on `endpoint` goes to: the union of every matching route's
    /// `to`, each target once, in order of first appearance. Empty when nothing matches.
    pub fn targets_for(&self, endpoint: &str, event: &Event) -> Vec<String> {
        let candidate = model_candidate(event);
        let mut seen = vec![false; self.targets.len()];
        let mut out = Vec::new();
        for route in &self.routes {
            if route.check(endpoint, event, candidate.as_ref()).is_err() {
                continue;
            }
            for &t in &route.to {
                if !seen[t] {
                    seen[t] = true;
                    out.push(self.targets[t].clone());
                }
            }
        }
        out
    }

    /// Names of the routes that match, in table order.
    pub fn matching_routes(&self, endpoint: &str, event: &Event) -> Vec<&str> {
        let candidate = model_candidate(event);
        self.routes
            .iter()
            .filter(|r| r.check(endpoint, event, candidate.as_ref()).is_ok())
            .map(|r| r.name.as_str())
            .collect()
    }

    /// For every route, in table order: did it match, and if not, the first criterion it failed.
    pub fn explain(&self, endpoint: &str, event: &Event) -> Vec<RouteMatch> {
        let candidate = model_candidate(event);
        self.routes
            .iter()
            .map(|r| {
                let miss = r.check(endpoint, event, candidate.as_ref()).err();
                RouteMatch {
                    name: r.name.clone(),
                    matched: miss.is_none(),
                    why_not: miss.map(|m| r.describe_miss(m, endpoint, event)),
                    to: r.to.iter().map(|&t| self.targets[t].clone()).collect(),
                }
            })
            .collect()
    }

    /// Route names in table order (for `hookgate check`).
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.name.as_str())
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// `true` when there are no routes (every event is accepted and routed nowhere).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The model name prepared once per event for all routes' glob sets (globset derives the
/// basename/extension it uses for fast paths here, so it is not redone per route).
fn model_candidate(event: &Event) -> Option<Candidate<'_>> {
    event
        .model
        .as_deref()
        .map(|m| Candidate::from_bytes(m.as_bytes()))
}

/// Whether the event carries the name `wanted`, in either naming.
///
/// [`Event::has_name`] is the authority (case, `*`, both namings). The explicit `counterpart`
/// comparison is redundant once it covers both namings, and keeps routing correct with any
/// `has_name` that only compares the primary name; it costs one comparison.
fn event_named(event: &Event, wanted: &str) -> bool {
    event.has_name(wanted)
        || event
            .counterpart
            .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
}

/// `true` when the criterion is absent (empty) or `value` satisfies `eq` with one of its entries.
fn any_of(list: &[String], value: Option<&str>, eq: impl Fn(&str, &str) -> bool) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|x| eq(x, v)))
}

fn stage_eq(a: &str, b: &str) -> bool {
    // Databricks sends "Production", clients and humans write "production": same stage.
    a.eq_ignore_ascii_case(b)
}

fn exact_eq(a: &str, b: &str) -> bool {
    a == b
}

impl Route {
    /// All criteria, cheapest and most telling first; the first failure is reported.
    fn check(
        &self,
        endpoint: &str,
        event: &Event,
        model: Option<&Candidate<'_>>,
    ) -> Result<(), Miss> {
        if !self.any_event && !self.events.iter().any(|e| event_named(event, e)) {
            return Err(Miss::Event);
        }
        if let Some(globs) = &self.models {
            // An event without a model (e.g. a future registry-wide kind) cannot satisfy a
            // model filter: a route scoped to models must not fire for events about none.
            if !model.is_some_and(|c| globs.is_match_candidate(c)) {
                return Err(Miss::Model);
            }
        }
        if !any_of(&self.endpoints, Some(endpoint), exact_eq) {
            return Err(Miss::Endpoint);
        }
        if !any_of(&self.from_stage, event.from_stage.as_deref(), stage_eq) {
            return Err(Miss::FromStage);
        }
        if !any_of(&self.to_stage, event.to_stage.as_deref(), stage_eq) {
            return Err(Miss::ToStage);
        }
        // Aliases are user-chosen identifiers: case-sensitive, as MLflow stores them.
        if !any_of(&self.aliases, event.alias.as_deref(), exact_eq) {
            return Err(Miss::Alias);
        }
        // Every listed tag must be present. A key-only criterion accepts any value, including
        // none (a deleted-tag event); a key=value criterion needs that exact value.
        for (k, (key, value)) in self.tags.iter().enumerate() {
            let present = event.tags.iter().any(|t| {
                t.key == *key && (value.is_none() || t.value.as_deref() == value.as_deref())
            });
            if !present {
                return Err(Miss::Tag(k));
            }
        }
        Ok(())
    }

    fn describe_miss(&self, miss: Miss, endpoint: &str, event: &Event) -> String {
        fn absent_or(what: &str, value: Option<&str>, list: &[String]) -> String {
            match value {
                Some(v) => format!("{what} {v} not in {}", List(list)),
                None => format!("event has no {what}; route needs one of {}", List(list)),
            }
        }
        match miss {
            Miss::Event => {
                let mut s = format!("event {}", event.name);
                if let Some(c) = event.counterpart {
                    let _ = write!(s, " ({c})");
                }
                let _ = write!(s, " not in {}", List(&self.events));
                s
            }
            Miss::Model => match &event.model {
                Some(m) => format!("model {m} matches none of {}", List(&self.model_patterns)),
                None => format!(
                    "event has no model; route needs one of {}",
                    List(&self.model_patterns)
                ),
            },
            Miss::Endpoint => format!("endpoint {endpoint} not in {}", List(&self.endpoints)),
            Miss::FromStage => {
                absent_or("from_stage", event.from_stage.as_deref(), &self.from_stage)
            }
            Miss::ToStage => absent_or("to_stage", event.to_stage.as_deref(), &self.to_stage),
            Miss::Alias => absent_or("alias", event.alias.as_deref(), &self.aliases),
            Miss::Tag(k) => {
                let (key, value) = &self.tags[k];
                let mut s = match value {
                    Some(v) => format!("tag {key}={v} not on event"),
                    None => format!("tag {key} not on event"),
                };
                // Say what the event has under that key, so a wrong value is told from a
                // missing key.
                let have: Vec<String> = event
                    .tags
                    .iter()
                    .filter(|t| t.key == *key)
                    .map(|t| match &t.value {
                        Some(v) => format!("{key}={v}"),
                        None => format!("{key} without a value"),
                    })
                    .collect();
                if !have.is_empty() {
                    let _ = write!(s, " (event has {})", have.join(", "));
                }
                s
            }
        }
    }
}

/// Formats a list as `[a, b, c]` for messages.
struct List<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{x}")?;
        }
        f.write_char(']')
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::event::Tag;
    use crate::verify::Scheme;

    const TARGETS: &[&str] = &["slack", "ci", "job", "log"];

    fn event(name: &str, model: Option<&str>) -> Event {
        Event {
            scheme: Scheme::Databricks,
            name: name.to_string(),
            counterpart: None,
            model: model.map(str::to_string),
            version: Some("1".into()),
            from_stage: None,
            to_stage: None,
            alias: None,
            tags: vec![],
            comment: None,
            text: None,
            sender_timestamp_ms: None,
            webhook_id: None,
            json: serde_json::Value::Null,
            raw: Bytes::new(),
        }
    }

    fn created(model: &str) -> Event {
        event("MODEL_VERSION_CREATED", Some(model))
    }

    fn tag(key: &str, value: Option<&str>) -> Tag {
        Tag {
            key: key.into(),
            value: value.map(str::to_string),
        }
    }

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn route(name: &str, to: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            to: strings(to),
            ..Default::default()
        }
    }

    fn table(routes: Vec<RouteConfig>) -> RouteTable {
        RouteTable::compile(&routes, TARGETS).expect("routes compile")
    }

    fn models(globs: &[&str]) -> RouteTable {
        table(vec![RouteConfig {
            models: strings(globs),
            ..route("r", &["slack"])
        }])
    }

    fn hits(t: &RouteTable, e: &Event) -> bool {
        !t.targets_for("databricks", e).is_empty()
    }

    #[test]
    fn prefix_glob() {
        let t = models(&["fraud-*"]);
        assert!(hits(&t, &created("fraud-detector")));
        assert!(hits(&t, &created("fraud-")));
        assert!(!hits(&t, &created("anti-fraud-detector")));
        assert!(
            !hits(&t, &created("Fraud-detector")),
            "globs are case-sensitive"
        );
    }

    #[test]
    fn star_glob_matches_any_model_but_needs_one() {
        let t = models(&["*"]);
        assert!(hits(&t, &created("anything")));
        assert!(hits(&t, &created("main.default.model")));
        assert!(!hits(&t, &event("REGISTERED_MODEL_CREATED", None)));
    }

    #[test]
    fn exact_name_is_anchored() {
        let t = models(&["fraud"]);
        assert!(hits(&t, &created("fraud")));
        assert!(
            !hits(&t, &created("fraud-detector")),
            "an exact name is not a prefix"
        );
        assert!(!hits(&t, &created("my-fraud")));
    }

    #[test]
    fn alternates_glob() {
        let t = models(&["{churn,fraud}-model"]);
        assert!(hits(&t, &created("churn-model")));
        assert!(hits(&t, &created("fraud-model")));
        assert!(!hits(&t, &created("churn-model-v2")));
        assert!(!hits(&t, &created("other-model")));
    }

    #[test]
    fn star_crosses_dots_and_slashes() {
        // Unity Catalog names are `catalog.schema.model`; model names are not paths.
        let t = models(&["prod.*"]);
        assert!(hits(&t, &created("prod.ml.fraud")));
        assert!(hits(&t, &created("prod.a/b")));
        assert!(!hits(&t, &created("dev.ml.fraud")));
    }

    #[test]
    fn any_glob_of_several() {
        let t = models(&["a-*", "b"]);
        assert!(hits(&t, &created("a-1")));
        assert!(hits(&t, &created("b")));
        assert!(!hits(&t, &created("b-1")));
    }

    #[test]
    fn no_models_criterion_matches_events_without_a_model() {
        let t = table(vec![route("all", &["log"])]);
        assert_eq!(t.targets_for("x", &event("SOMETHING_NEW", None)), ["log"]);
    }

    #[test]
    fn events_criterion() {
        let t = table(vec![RouteConfig {
            events: strings(&["MODEL_VERSION_CREATED", "COMMENT_CREATED"]),
            ..route("r", &["slack"])
        }]);
        assert!(hits(&t, &created("m")));
        assert!(
            hits(&t, &event("comment_created", Some("m"))),
            "case-insensitive"
        );
        assert!(!hits(&t, &event("MODEL_VERSION_TAG_SET", Some("m"))));
    }

    #[test]
    fn star_event_matches_everything_even_unknown_kinds() {
        let t = table(vec![RouteConfig {
            events: strings(&["*"]),
            ..route("r", &["slack"])
        }]);
        assert!(hits(&t, &event("prompt.created", None)));
        assert!(hits(&t, &created("m")));
    }

    #[test]
    fn both_namings() {
        let mut e = created("m");
        e.counterpart = Some("model_version.created");
        for name in ["model_version.created", "MODEL_VERSION_CREATED"] {
            let t = table(vec![RouteConfig {
                events: strings(&[name]),
                ..route("r", &["slack"])
            }]);
            assert!(hits(&t, &e), "route written as {name}");
        }

        let mut oss = event("model_version.created", Some("m"));
        oss.scheme = Scheme::Mlflow;
        oss.counterpart = Some("MODEL_VERSION_CREATED");
        let t = table(vec![RouteConfig {
            events: strings(&["MODEL_VERSION_CREATED"]),
            ..route("r", &["slack"])
        }]);
        assert!(hits(&t, &oss));
    }

    #[test]
    fn stages_are_case_insensitive_and_all_must_hold() {
        let t = table(vec![RouteConfig {
            from_stage: strings(&["Staging"]),
            to_stage: strings(&["production", "Archived"]),
            ..route("r", &["slack"])
        }]);
        let mut e = event("MODEL_VERSION_TRANSITIONED_STAGE", Some("m"));
        e.from_stage = Some("staging".into());
        e.to_stage = Some("Production".into());
        assert!(hits(&t, &e));
        e.to_stage = Some("ARCHIVED".into());
        assert!(hits(&t, &e));
        e.from_stage = Some("None".into());
        assert!(!hits(&t, &e), "from_stage fails");
        e.from_stage = None;
        assert!(
            !hits(&t, &e),
            "an event without a stage does not match a stage filter"
        );
    }

    #[test]
    fn aliases_are_case_sensitive() {
        let t = table(vec![RouteConfig {
            aliases: strings(&["champion", "challenger"]),
            ..route("r", &["slack"])
        }]);
        let mut e = event("model_version_alias.created", Some("m"));
        e.alias = Some("champion".into());
        assert!(hits(&t, &e));
        e.alias = Some("Champion".into());
        assert!(!hits(&t, &e));
        e.alias = None;
        assert!(!hits(&t, &e));
    }

    fn tags_route(tags: &[(&str, Option<&str>)]) -> RouteTable {
        table(vec![RouteConfig {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            ..route("r", &["slack"])
        }])
    }

    fn tagged(tags: &[(&str, Option<&str>)]) -> Event {
        let mut e = event("MODEL_VERSION_TAG_SET", Some("m"));
        e.tags = tags.iter().map(|(k, v)| tag(k, *v)).collect();
        e
    }

    #[test]
    fn tag_key_only() {
        let t = tags_route(&[("validated", None)]);
        assert!(hits(&t, &tagged(&[("validated", Some("true"))])));
        assert!(
            hits(&t, &tagged(&[("validated", None)])),
            "deleted tag still has the key"
        );
        assert!(!hits(&t, &tagged(&[("other", Some("true"))])));
        assert!(!hits(&t, &tagged(&[])));
    }

    #[test]
    fn tag_key_value() {
        let t = tags_route(&[("env", Some("prod"))]);
        assert!(hits(
            &t,
            &tagged(&[("a", Some("b")), ("env", Some("prod"))])
        ));
        assert!(!hits(&t, &tagged(&[("env", Some("dev"))])), "wrong value");
        assert!(
            !hits(&t, &tagged(&[("env", Some("PROD"))])),
            "values are exact"
        );
        assert!(
            !hits(&t, &tagged(&[("env", None)])),
            "a deleted tag has no value"
        );
        assert!(
            !hits(&t, &tagged(&[("other", Some("prod"))])),
            "missing key"
        );
    }

    #[test]
    fn every_listed_tag_must_be_present() {
        let t = tags_route(&[("env", Some("prod")), ("validated", None)]);
        assert!(hits(
            &t,
            &tagged(&[("validated", Some("yes")), ("env", Some("prod"))])
        ));
        assert!(!hits(&t, &tagged(&[("env", Some("prod"))])));
        assert!(!hits(&t, &tagged(&[("validated", Some("yes"))])));
    }

    #[test]
    fn endpoint_filter() {
        let t = table(vec![RouteConfig {
            endpoints: strings(&["mlflow"]),
            ..route("r", &["slack"])
        }]);
        let e = created("m");
        assert_eq!(t.targets_for("mlflow", &e), ["slack"]);
        assert!(t.targets_for("databricks", &e).is_empty());
    }

    #[test]
    fn union_each_target_once_in_first_appearance_order() {
        let t = table(vec![
            route("a", &["ci", "slack"]),
            route("b", &["slack", "job", "ci"]),
            RouteConfig {
                models: strings(&["nope"]),
                ..route("c", &["log"])
            },
            route("d", &["job", "ci", "ci"]),
        ]);
        let e = created("m");
        assert_eq!(t.targets_for("x", &e), ["ci", "slack", "job"]);
        assert_eq!(t.matching_routes("x", &e), ["a", "b", "d"]);
    }

    #[test]
    fn no_match_is_empty() {
        let t = table(vec![RouteConfig {
            events: strings(&["COMMENT_CREATED"]),
            ..route("r", &["slack"])
        }]);
        assert!(t.targets_for("x", &created("m")).is_empty());
        assert!(t.matching_routes("x", &created("m")).is_empty());
        assert!(
            RouteTable::default()
                .targets_for("x", &created("m"))
                .is_empty()
        );
    }

    #[test]
    fn explain_names_first_failing_criterion() {
        let t = table(vec![
            RouteConfig {
                events: strings(&["COMMENT_CREATED"]),
                models: strings(&["nope"]),
                ..route("by-event", &["slack"])
            },
            RouteConfig {
                models: strings(&["fraud-*", "churn"]),
                ..route("by-model", &["slack"])
            },
            RouteConfig {
                endpoints: strings(&["mlflow"]),
                ..route("by-endpoint", &["ci"])
            },
            RouteConfig {
                to_stage: strings(&["Production"]),
                ..route("by-stage", &["job"])
            },
            RouteConfig {
                aliases: strings(&["champion"]),
                ..route("by-alias", &["job"])
            },
            RouteConfig {
                tags: vec![("env".into(), Some("prod".into()))],
                ..route("by-tag", &["job"])
            },
            route("all", &["log", "slack"]),
        ]);
        let mut e = created("m");
        e.counterpart = Some("model_version.created");
        e.tags = vec![tag("env", Some("dev"))];
        let got = t.explain("databricks", &e);
        let why: Vec<Option<&str>> = got.iter().map(|m| m.why_not.as_deref()).collect();
        assert_eq!(
            why,
            [
                Some(
                    "event MODEL_VERSION_CREATED (model_version.created) not in [COMMENT_CREATED]"
                ),
                Some("model m matches none of [fraud-*, churn]"),
                Some("endpoint databricks not in [mlflow]"),
                Some("event has no to_stage; route needs one of [Production]"),
                Some("event has no alias; route needs one of [champion]"),
                Some("tag env=prod not on event (event has env=dev)"),
                None,
            ]
        );
        assert_eq!(
            got.last().unwrap(),
            &RouteMatch {
                name: "all".into(),
                matched: true,
                why_not: None,
                to: strings(&["log", "slack"]),
            }
        );
        assert!(got[..6].iter().all(|m| !m.matched));
    }

    #[test]
    fn explain_model_missing_and_stage_mismatch() {
        let t = table(vec![
            RouteConfig {
                models: strings(&["x"]),
                ..route("m", &["slack"])
            },
            RouteConfig {
                from_stage: strings(&["Staging"]),
                ..route("s", &["slack"])
            },
        ]);
        let mut e = event("REGISTERED_MODEL_CREATED", None);
        e.from_stage = Some("None".into());
        let why: Vec<String> = t
            .explain("d", &e)
            .into_iter()
            .filter_map(|m| m.why_not)
            .collect();
        assert_eq!(
            why,
            [
                "event has no model; route needs one of [x]",
                "from_stage None not in [Staging]",
            ]
        );
    }

    fn compile_err(rc: RouteConfig) -> String {
        let routes = vec![route("ok", &["slack"]), rc];
        RouteTable::compile(&routes, TARGETS)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn compile_errors_name_the_key_path() {
        assert_eq!(
            compile_err(route("r", &["slack", "nowhere"])),
            "routes[1].to[1]: unknown target 'nowhere'"
        );
        assert_eq!(
            compile_err(route("r", &[])),
            "routes[1].to: a route must name at least one target"
        );
        let e = compile_err(RouteConfig {
            models: strings(&["ok-*", "{a,b"]),
            ..route("r", &["slack"])
        });
        assert!(
            e.starts_with("routes[1].models[1]: bad glob '{a,b': unclosed alternate group"),
            "{e}"
        );
        let e = compile_err(RouteConfig {
            models: strings(&["[z-a]"]),
            ..route("r", &["slack"])
        });
        assert!(
            e.starts_with("routes[1].models[0]: bad glob '[z-a]'"),
            "{e}"
        );
        assert_eq!(
            compile_err(RouteConfig {
                models: strings(&[""]),
                ..route("r", &["slack"])
            }),
            "routes[1].models[0]: empty glob"
        );
        assert_eq!(
            compile_err(RouteConfig {
                to_stage: strings(&["Production", "Prod"]),
                ..route("r", &["slack"])
            }),
            "routes[1].to_stage[1]: unknown stage 'Prod' (expected one of [None, Staging, Production, Archived])"
        );
        assert_eq!(
            compile_err(RouteConfig {
                events: strings(&[" "]),
                ..route("r", &["slack"])
            }),
            "routes[1].events[0]: empty event name"
        );
        assert_eq!(
            compile_err(RouteConfig {
                tags: vec![(String::new(), None)],
                ..route("r", &["slack"])
            }),
            "routes[1].tags[0]: empty tag key"
        );
    }

    #[test]
    fn table_accessors() {
        let t = table(vec![route("a", &["slack"]), route("b", &["ci"])]);
        assert_eq!(t.len(), 2);
        assert!(!t.is_empty());
        assert_eq!(t.route_names().collect::<Vec<_>>(), ["a", "b"]);
    }
}

/// Properties of matching over generated route tables and parsed events.
#[cfg(test)]
mod props {
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use proptest::sample::{Index, select};

    use super::*;
    use crate::event::props::{body, parse_body, scheme};

    const TARGETS: &[&str] = &["slack", "ci", "job", "log"];
    const ENDPOINTS: &[&str] = &["databricks", "mlflow", "staging"];
    const EVENTS: &[&str] = &[
        "*",
        "MODEL_VERSION_CREATED",
        "model_version.created",
        "model_version_tag.set",
        "comment_created",
        "prompt.created",
        "unknown",
        "unknown.unknown",
    ];
    const MODELS: &[&str] = &["*", "fraud-*", "{champion,fraud-detector}", "?*", "prod.*"];
    const STAGE_NAMES: &[&str] = &["None", "Staging", "production", "ARCHIVED"];
    const WORDS: &[&str] = &["champion", "created", "", "set", "Production"];
    const TAG_KEYS: &[&str] = &["key", "name", "k"];

    /// Criteria drawn from the same vocabulary as the generated events, so that routes both
    /// match and miss.
    fn route(name: String) -> impl Strategy<Value = RouteConfig> {
        let events = select(EVENTS);
        let models = select(MODELS);
        let stages = select(STAGE_NAMES);
        let words = select(WORDS);
        (
            vec(events, 0..3),
            vec(models, 0..2),
            vec(select(ENDPOINTS), 0..2),
            vec(stages.clone(), 0..2),
            vec(stages, 0..2),
            vec(words.clone(), 0..2),
            vec((select(TAG_KEYS), option::of(words)), 0..2),
            vec(select(TARGETS), 1..4),
        )
            .prop_map(
                move |(events, models, endpoints, from, to_stage, aliases, tags, to)| {
                    let owned = |xs: Vec<&str>| xs.into_iter().map(str::to_owned).collect();
                    RouteConfig {
                        name: name.clone(),
                        events: owned(events),
                        models: owned(models),
                        endpoints: owned(endpoints),
                        from_stage: owned(from),
                        to_stage: owned(to_stage),
                        aliases: owned(aliases),
                        tags: tags
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                            .collect(),
                        to: owned(to),
                    }
                },
            )
    }

    fn routes() -> impl Strategy<Value = Vec<RouteConfig>> {
        (0usize..6).prop_flat_map(|n| (0..n).map(|i| route(format!("r{i}"))).collect::<Vec<_>>())
    }

    fn compile(routes: &[RouteConfig]) -> RouteTable {
        RouteTable::compile(routes, TARGETS).expect("generated routes are valid")
    }

    /// What `targets_for` promises, from `explain`'s verdicts: the matching routes' targets,
    /// each once, in order of first appearance.
    fn union_of_matches(verdicts: &[RouteMatch]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for target in verdicts.iter().filter(|m| m.matched).flat_map(|m| &m.to) {
            if !out.contains(target) {
                out.push(target.clone());
            }
        }
        out
    }

    proptest! {
        // Each case compiles its tables' glob sets (a regex build apiece): half the default
        // number of cases keeps these two under a second.
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn matching_is_deterministic_and_agrees_with_explain(
            routes in routes(),
            scheme in scheme(),
            body in body(),
            endpoint in select(ENDPOINTS),
        ) {
            let table = compile(&routes);
            let event = parse_body(scheme, &body);
            let targets = table.targets_for(endpoint, &event);
            prop_assert_eq!(&table.targets_for(endpoint, &event), &targets);
            prop_assert_eq!(&compile(&routes).targets_for(endpoint, &event), &targets);
            prop_assert_eq!(&table.clone().targets_for(endpoint, &event), &targets);

            let verdicts = table.explain(endpoint, &event);
            prop_assert_eq!(verdicts.len(), routes.len());
            for verdict in &verdicts {
                prop_assert_eq!(verdict.why_not.is_none(), verdict.matched);
            }
            prop_assert_eq!(&union_of_matches(&verdicts), &targets);
            let matched: Vec<&str> =
                verdicts.iter().filter(|m| m.matched).map(|m| m.name.as_str()).collect();
            prop_assert_eq!(table.matching_routes(endpoint, &event), matched);
        }

        #[test]
        fn a_catch_all_route_matches_every_event(
            routes in routes(),
            catch_all in route("all".into()),
            star in any::<bool>(),
            at in any::<Index>(),
            scheme in scheme(),
            body in body(),
            endpoint in select(ENDPOINTS),
        ) {
            // `events = ["*"]` (or no `events` at all) and no other criterion.
            let catch_all = RouteConfig {
                name: catch_all.name,
                events: if star { vec!["*".into()] } else { Vec::new() },
                to: catch_all.to,
                ..Default::default()
            };
            let event = parse_body(scheme, &body);
            let without = compile(&routes).targets_for(endpoint, &event);
            let mut with_routes = routes.clone();
            let at = at.index(routes.len() + 1);
            with_routes.insert(at, catch_all.clone());
            let table = compile(&with_routes);

            prop_assert!(table.matching_routes(endpoint, &event).contains(&"all"));
            let targets = table.targets_for(endpoint, &event);
            for target in &catch_all.to {
                prop_assert!(targets.contains(target), "{} not in {:?}", target, targets);
            }
            // Adding a route takes no target away; appended, it only adds after the others,
            // and first, its own targets lead.
            for target in &without {
                prop_assert!(targets.contains(target), "{} lost from {:?}", target, targets);
            }
            if at == routes.len() {
                prop_assert_eq!(&targets[..without.len()], &without[..]);
            }
            if at == 0 {
                let own = union_of_matches(&[RouteMatch {
                    name: catch_all.name.clone(),
                    matched: true,
                    why_not: None,
                    to: catch_all.to.clone(),
                }]);
                prop_assert_eq!(&targets[..own.len()], &own[..]);
            }
        }
    }
}
