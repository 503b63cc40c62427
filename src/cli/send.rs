//! `hookgate sign` and `hookgate send`: the sender's side of the protocols, for testing a
//! deployment by hand.

use std::io::Read;

use crate::cli::samples::sample_body;
use crate::cli::{SendArgs, SignArgs};
use crate::verify::{Scheme, databricks, mlflow};

/// The signature headers a sender would attach to `body`.
pub fn signature_headers(
    scheme: Scheme,
    secret: &str,
    body: &[u8],
    delivery_id: Option<String>,
    timestamp: Option<i64>,
) -> Vec<(&'static str, String)> {
    match scheme {
        Scheme::Databricks => vec![(
            "X-Databricks-Signature",
            databricks::sign(secret.as_bytes(), body),
        )],
        Scheme::Mlflow => {
            let id = delivery_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let ts = timestamp.unwrap_or_else(|| crate::app::now_ms() / 1000);
            let sig = mlflow::sign(secret.as_bytes(), &id, ts, body);
            vec![
                ("X-MLflow-Delivery-Id", id),
                ("X-MLflow-Timestamp", ts.to_string()),
                ("X-MLflow-Signature", sig),
            ]
        }
    }
}

pub fn sign(args: SignArgs) -> anyhow::Result<String> {
    let mut body = Vec::new();
    match &args.file {
        Some(p) => {
            body =
                std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
        }
        None => {
            std::io::stdin().read_to_end(&mut body)?;
        }
    }
    let headers = signature_headers(
        args.scheme.into(),
        &args.secret,
        &body,
        args.delivery_id,
        args.timestamp,
    );
    Ok(headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect())
}

pub async fn send(args: SendArgs) -> anyhow::Result<bool> {
    let scheme: Scheme = args.scheme.into();
    let body = sample_body(
        scheme,
        &args.event,
        &args.model,
        &args.version,
        crate::app::now_ms(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let headers = signature_headers(scheme, &args.secret, body.as_bytes(), None, None);
    if args.dry_run {
        println!("POST {}", args.url);
        println!("Content-Type: application/json");
        for (k, v) in &headers {
            println!("{k}: {v}");
        }
        if args.bearer.is_some() {
            println!("Authorization: [redacted]");
        }
        println!();
        println!("{body}");
        return Ok(true);
    }
    let mut client = crate::targets::client_builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &args.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("cannot read --ca {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--ca {}: no PEM certificate in it", ca.display()))?;
        client = client.tls_certs_only(certs);
    }
    let client = client.build()?;
    let mut req = client
        .post(&args.url)
        .header("Content-Type", "application/json")
        .body(body.clone());
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    if let Some(b) = &args.bearer {
        req = req.header("Authorization", format!("Bearer {b}"));
    }
    let resp = req.send().await.map_err(|e| {
        anyhow::anyhow!("could not reach {}: {}", args.url, causes(&e.without_url()))
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("sent {} ({} bytes) to {}", args.event, body.len(), args.url);
    println!("HTTP {}", status);
    println!("{}", text.trim_end());
    Ok(status.is_success())
}

/// An error and its causes, outermost first: reqwest's own message ("error sending request")
/// says nothing of why (refused, an unknown issuer, a name mismatch); its sources do.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
