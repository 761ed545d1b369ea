//! The scraper: every resolution, each Ready node's agent is asked for
//! `/metrics/resource` (through the API server's own connection to agents, with its
//! kubelet-client certificate) and the answer goes into the [`MetricsStore`]. Nodes are
//! scraped concurrently, each under a timeout, and each result is stored as soon as it
//! arrives, so an agent that is slow or gone holds up no other node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::Value;

use super::parse;
use super::storage::MetricsStore;
use crate::apiserver::handlers::{Api, decode_stored};
use crate::apiserver::nodes::error_text;
use crate::apiserver::registry;

/// The most of an answer read: kubelet's for a few hundred containers is well under this.
const MAX_ANSWER: usize = 32 << 20;

/// Whether a Node's Ready condition is True.
pub fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Every stored object of a resource, in a namespace or all of them.
pub async fn list_objects(
    api: &Api,
    info: &registry::ResourceInfo,
    namespace: Option<&str>,
) -> Result<Vec<Value>, crate::apiserver::status::ApiError> {
    let listed = api
        .store
        .list(&api.prefix(info, namespace), None, 0, None)
        .await
        .map_err(|e| crate::apiserver::status::ApiError::from_store(info, "", e))?;
    listed.kvs.iter().map(decode_stored).collect()
}

async fn ready_nodes(api: &Api) -> Result<Vec<String>, String> {
    let info = registry::lookup("", "v1", "nodes").ok_or("nodes are not served")?;
    let nodes = list_objects(api, info, None).await.map_err(|e| e.message)?;
    Ok(nodes
        .iter()
        .filter(|n| is_ready(n))
        .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// One node's `/metrics/resource` text.
async fn fetch(api: &Api, node: &str) -> Result<String, String> {
    let connector = api
        .nodes
        .as_ref()
        .ok_or("the API server has no client certificate for agents")?;
    let req = http::Request::get("/metrics/resource")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = connector
        .send(api, node, req)
        .await
        .map_err(|e| e.message)?;
    if res.status() != http::StatusCode::OK {
        let status = res.status();
        return Err(format!("{status}: {}", error_text(res).await));
    }
    let body = Limited::new(res.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())
}

/// Scrapes one node and stores what it says; the error, if any, for the log.
async fn scrape(api: &Api, store: &MetricsStore, node: &str, timeout: Duration) -> Option<String> {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let result = match tokio::time::timeout(timeout, fetch(api, node)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(r) => r.and_then(|text| parse::parse(&text, now_ms).map_err(|e| e.to_string())),
    };
    match result {
        Ok(s) => {
            store.store(node, s);
            None
        }
        Err(e) => {
            store.forget(node);
            Some(e)
        }
    }
}

/// Scrapes every Ready node every `store.resolution()` until aborted.
pub fn spawn(api: Arc<Api>, store: Arc<MetricsStore>) -> tokio::task::JoinHandle<()> {
    let resolution = store.resolution();
    // Most of a period, so a hung agent is given up on before the next round.
    let timeout = resolution.mul_f64(0.9).max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(resolution);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Nodes failing now, with their error: a failure is logged when it begins or
        // changes, not every round.
        let mut failing: HashMap<String, String> = HashMap::new();
        loop {
            ticker.tick().await;
            let nodes = match ready_nodes(&api).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "listing nodes to scrape");
                    continue;
                }
            };
            let names: HashSet<String> = nodes.iter().cloned().collect();
            store.retain(&names);
            failing.retain(|n, _| names.contains(n));
            let rounds = nodes.iter().map(|node| {
                let (api, store) = (&api, &store);
                async move { (node, scrape(api, store, node, timeout).await) }
            });
            for (node, error) in futures::future::join_all(rounds).await {
                match error {
                    None => {
                        if failing.remove(node).is_some() {
                            tracing::info!(%node, "scraping resource metrics again");
                        }
                    }
                    Some(e) => {
                        if failing.get(node) != Some(&e) {
                            tracing::warn!(%node, error = %e, "skipping node: cannot scrape its resource metrics");
                        } else {
                            tracing::debug!(%node, error = %e, "skipping node: cannot scrape its resource metrics");
                        }
                        failing.insert(node.clone(), e);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness() {
        let ready = serde_json::json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"},
        ]}});
        let unknown =
            serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert!(is_ready(&ready));
        assert!(!is_ready(&unknown));
        assert!(!is_ready(&serde_json::json!({})));
    }
}
