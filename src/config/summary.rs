//! The human summary `hookgate check` prints: what the gateway will listen on, accept, and send
//! where.
//!
//! It shows counts and hosts, never values that may be credentials: secrets are counted, the
//! store URL loses its user info and query, and a target shows only the host it sends to (a
//! Slack webhook URL *is* its secret, and generic URLs often carry tokens in path or query).

use std::fmt::Write as _;

use super::{Config, RetryConfig, RouteConfig, TargetConfig, TargetKind};

impl Config {
    /// A multi-line description of the configuration, safe to print and log.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_summary(&mut out);
        out
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        let s = &self.server;
        writeln!(out, "listeners")?;
        writeln!(
            out,
            "  ingress  {}  ({}max body {}, max {} connections)",
            s.listen,
            if s.tls.is_some() { "HTTPS, " } else { "" },
            bytesize::ByteSize(s.max_body),
            s.max_connections
        )?;
        writeln!(
            out,
            "  admin    {}  (/metrics, /healthz, /readyz; admin API {})",
            s.admin_listen,
            if self.admin.token.is_some() {
                "on"
            } else {
                "off"
            }
        )?;
        if let Some(url) = &s.public_url {
            writeln!(out, "  public   {}", redact_url(url))?;
        }
        writeln!(
            out,
            "store      {}  (retention {}, dead letters {})",
            redact_url(&self.store.url),
            humantime::format_duration(self.store.retention),
            humantime::format_duration(self.store.dead_retention)
        )?;
        writeln!(out, "retry      {}", retry_line(&self.retry))?;

        writeln!(out)?;
        writeln!(out, "endpoints ({})", self.endpoints.len())?;
        let name_w = width(self.endpoints.iter().map(|e| e.name.as_str()));
        let path_w = width(self.endpoints.iter().map(|e| e.path.as_str()));
        for e in &self.endpoints {
            let scheme = e.scheme.as_str();
            write!(
                out,
                "  {:name_w$}  {:path_w$}  {:10}  secrets: {}  bearer: {}",
                e.name,
                e.path,
                scheme,
                e.secrets.len(),
                if e.bearer.is_some() { "yes" } else { "no" },
            )?;
            if e.scheme == crate::verify::Scheme::Mlflow {
                write!(
                    out,
                    "  tolerance: {}",
                    humantime::format_duration(e.tolerance)
                )?;
            }
            if e.secrets.is_empty() && e.bearer.is_none() {
                write!(out, "  UNAUTHENTICATED")?;
            }
            writeln!(out)?;
        }

        writeln!(out)?;
        writeln!(out, "targets ({})", self.targets.len())?;
        let name_w = width(self.targets.keys().map(String::as_str));
        for (name, target) in &self.targets {
            let (kind, destination) = describe_target(target);
            write!(out, "  {name:name_w$}  {kind:14}  {destination}")?;
            write!(out, "  (concurrency {}", target.concurrency)?;
            if let Some(rate) = target.rate_per_sec {
                write!(out, ", {rate}/s")?;
            }
            if target.retry != self.retry {
                write!(out, "; retry {}", retry_line(&target.retry))?;
            }
            writeln!(out, ")")?;
        }

        writeln!(out)?;
        writeln!(out, "routes ({})", self.routes.len())?;
        for route in &self.routes {
            writeln!(out, "  {}", route_line(route))?;
        }
        if self.routes.is_empty() {
            writeln!(
                out,
                "  (none: every event is accepted, counted and logged only)"
            )?;
        }
        Ok(())
    }
}

fn width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

fn retry_line(r: &RetryConfig) -> String {
    format!(
        "timeout {}, initial {}, max delay {}, max {} attempts, max age {}, max Retry-After {}",
        humantime::format_duration(r.timeout),
        humantime::format_duration(r.initial),
        humantime::format_duration(r.max_delay),
        r.max_attempts,
        humantime::format_duration(r.max_age),
        humantime::format_duration(r.max_retry_after),
    )
}

/// Kind name and destination (host plus non-secret identifiers) of a target.
fn describe_target(target: &TargetConfig) -> (&'static str, String) {
    match &target.kind {
        TargetKind::Slack(c) => ("slack", host(c.url.expose())),
        TargetKind::Github(c) => {
            let how = match &c.workflow {
                Some(workflow) => format!("workflow {workflow}"),
                None => "repository_dispatch".to_string(),
            };
            (
                "github",
                format!("{} {} {how}", host(&c.api_url), c.repository),
            )
        }
        TargetKind::Gitlab(c) => (
            "gitlab",
            format!(
                "{} project {} ref {}",
                host(&c.base_url),
                c.project,
                c.git_ref
            ),
        ),
        TargetKind::Jenkins(c) => ("jenkins", format!("{} job {}", host(&c.url), c.job)),
        TargetKind::Http(c) => ("http", format!("{} {}", c.method, host(&c.url))),
        TargetKind::DatabricksJob(c) => (
            "databricks_job",
            format!("{} job {}", host(&c.workspace_url), c.job_id),
        ),
        TargetKind::Log(c) => (
            "log",
            match &c.path {
                Some(path) => path.display().to_string(),
                None => "standard output".to_string(),
            },
        ),
    }
}

/// `host[:port]` of a URL, nothing else.
pub(crate) fn host(url: &str) -> String {
    url.trim()
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| {
            let authority = uri.authority()?;
            Some(match authority.port_u16() {
                Some(port) => format!("{}:{port}", authority.host()),
                None => authority.host().to_string(),
            })
        })
        .unwrap_or_else(|| "(invalid URL)".to_string())
}

/// A URL without user info and query (`postgres://user:pw@db/x?sslpassword=..` →
/// `postgres://db/x`): both may hold credentials.
pub(crate) fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

fn route_line(route: &RouteConfig) -> String {
    let models = if route.models.is_empty() {
        "all models".to_string()
    } else {
        route.models.join(", ")
    };
    let mut filters = Vec::new();
    for (label, values) in [
        ("endpoints", &route.endpoints),
        ("from_stage", &route.from_stage),
        ("to_stage", &route.to_stage),
        ("aliases", &route.aliases),
    ] {
        if !values.is_empty() {
            filters.push(format!("{label}: {}", values.join(", ")));
        }
    }
    if !route.tags.is_empty() {
        let tags: Vec<String> = route
            .tags
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        filters.push(format!("tags: {}", tags.join(", ")));
    }
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!(" [{}]", filters.join("; "))
    };
    format!(
        "{}: {} × {}{} → {}",
        route.name,
        route.events.join(", "),
        models,
        filters,
        route.to.join(", ")
    )
}
