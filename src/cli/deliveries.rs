//! `hookgate deliveries list|replay`: the outbox of the configured store, read and changed
//! directly (the gateway need not run; when it does, it picks replays up within a second).

use std::sync::Arc;

use crate::app::now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbox::{DeliveryFilter, DeliveryRow, DeliveryStatus, ReplaySelector, Store};

async fn open(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.store.url, Arc::new(Metrics::new()))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open store {}: {e}",
                crate::app::redact_url(&config.store.url)
            )
        })
}

pub async fn list(
    config: &Config,
    status: Option<&str>,
    target: Option<String>,
    limit: u32,
    json: bool,
) -> anyhow::Result<String> {
    if let Some(t) = target.as_deref()
        && !config.targets.contains_key(t)
    {
        // Still listed: deliveries of a target taken out of the file stay in the store.
        eprintln!("note: the configuration has no target named {t:?}");
    }
    let store = open(config).await?;
    let filter = DeliveryFilter {
        status: status.and_then(DeliveryStatus::parse),
        target,
        limit,
    };
    let rows = store.list_deliveries(&filter).await?;
    store.close().await;
    Ok(if json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        table(&rows, now_ms())
    })
}

pub async fn replay(
    config: &Config,
    ids: Vec<i64>,
    dead: bool,
    target: Option<String>,
    json: bool,
) -> anyhow::Result<String> {
    let store = open(config).await?;
    let asked = ids.len() as u64;
    let sel = if dead {
        ReplaySelector::Status {
            status: DeliveryStatus::Dead,
            target,
        }
    } else {
        ReplaySelector::Ids(ids)
    };
    // Only to targets the configuration has: a replayed delivery to another would be pending
    // with no lane to claim it.
    let configured: Vec<String> = config.targets.keys().cloned().collect();
    let n = store.replay_configured(sel, now_ms(), &configured).await;
    let left = if dead && n.is_ok() {
        dead_letters_left(&store, config).await
    } else {
        Ok(Vec::new())
    };
    store.close().await;
    let n = n?;
    // Ids the store did not take are a mistake worth an exit code (a typo, or a delivery that
    // is still pending); `--dead` with nothing dead is not.
    if !dead && n < asked {
        const WHY: &str = "the others do not exist, are pending, or are to a target the \
                           configuration does not have (only dead or delivered deliveries to \
                           configured targets are replayed)";
        if n == 0 {
            anyhow::bail!("replayed none of the {asked} deliveries: {WHY}");
        }
        eprintln!("note: replayed {n} of the {asked} deliveries: {WHY}");
    }
    for (target, count) in left? {
        eprintln!(
            "note: left {count} dead deliveries to {target:?}, which the configuration does not \
             have: restore the target, then replay them"
        );
    }
    Ok(if json {
        format!("{}\n", serde_json::json!({ "replayed": n }))
    } else {
        format!("replayed {n} deliveries\n")
    })
}

/// Dead letters of targets the configuration does not have, counted per target: what a
/// `replay --dead` leaves (up to the list limit; a note, not an inventory).
async fn dead_letters_left(store: &Store, config: &Config) -> anyhow::Result<Vec<(String, u64)>> {
    let rows = store
        .list_deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            target: None,
            limit: 10_000,
        })
        .await?;
    let mut left = std::collections::BTreeMap::<String, u64>::new();
    for r in rows
        .into_iter()
        .filter(|r| !config.targets.contains_key(&r.target))
    {
        *left.entry(r.target).or_default() += 1;
    }
    Ok(left.into_iter().collect())
}

/// A plain-text table, one delivery per line.
pub fn table(rows: &[DeliveryRow], now_ms: i64) -> String {
    let header = [
        "ID",
        "STATUS",
        "TARGET",
        "ATTEMPTS",
        "EVENT",
        "MODEL",
        "WHEN",
        "LAST ERROR",
    ];
    let mut cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let when = match r.status {
                DeliveryStatus::Pending => {
                    format!("due {}", relative(r.next_attempt_at_ms - now_ms))
                }
                _ => relative(r.updated_at_ms - now_ms),
            };
            [
                r.id.to_string(),
                r.status.to_string(),
                r.target.clone(),
                r.attempts.to_string(),
                r.event.clone(),
                r.model.clone().unwrap_or_default(),
                when,
                r.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    cells.insert(0, header.map(str::to_string));
    let mut widths = [0usize; 8];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no deliveries)\n");
    }
    out
}

/// `in 3s`, `5m ago`: coarse, for people.
fn relative(delta_ms: i64) -> String {
    let secs = delta_ms.abs() / 1000;
    let amount = match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if delta_ms >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_shows_due_times() {
        let row = DeliveryRow {
            id: 7,
            event_id: "e".into(),
            endpoint: "databricks".into(),
            event: "MODEL_VERSION_CREATED".into(),
            model: Some("fraud".into()),
            target: "ml-slack".into(),
            status: DeliveryStatus::Pending,
            attempts: 2,
            next_attempt_at_ms: 61_000,
            last_error: Some("http 503".into()),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let dead = DeliveryRow {
            id: 12,
            status: DeliveryStatus::Dead,
            updated_at_ms: -7_200_000,
            last_error: Some("http 404: channel_not_found".into()),
            ..row.clone()
        };
        let t = table(&[row, dead], 1_000);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("ID  STATUS   TARGET    ATTEMPTS"),
            "{t}"
        );
        assert!(
            lines[1].contains("pending")
                && lines[1].contains("due in 1m")
                && lines[1].ends_with("http 503"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("12  dead") && lines[2].contains("2h ago"),
            "{t}"
        );
        assert_eq!(table(&[], 0).lines().last(), Some("(no deliveries)"));
    }
}
