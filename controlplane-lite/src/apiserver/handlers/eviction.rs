//! `pods/eviction`: a delete that respects PodDisruptionBudgets, as kube-apiserver's
//! eviction subresource. A pod that already cannot count towards a budget (finished,
//! pending, being deleted) is deleted at once; otherwise the one budget that selects it
//! must allow a disruption, which the eviction takes (`disruptionsAllowed - 1`, the pod
//! recorded in `disruptedPods` so the disruption controller does not count it while it
//! goes), and only then is the pod deleted with the Eviction's deleteOptions.

use http::StatusCode;
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::write::decode_body;
use super::{Api, Reply, Request, decode_stored, delete_object, encode_for_store};
use crate::apiserver::handlers::DeleteOptions;
use crate::apiserver::object;
use crate::apiserver::registry::{self, ResourceInfo};
use crate::apiserver::response;
use crate::apiserver::status::ApiError;

/// The StatusCause type kube-apiserver gives a refusal on a budget's account.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// What a 429 of the eviction says (kubectl drain prints it while it retries).
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";
/// Upstream's MaxDisruptedPodSize: evictions the controller has not yet confirmed.
const MAX_DISRUPTED_PODS: usize = 2000;
/// Conflicts on the budget's status retried before giving up (upstream's EvictionsRetry).
const RETRIES: usize = 5;

fn pdb_info() -> Result<&'static ResourceInfo, ApiError> {
    registry::lookup("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))
}

pub async fn evict(api: &Api, req: &Request, name: &str) -> Reply {
    let pods = req.res.info;
    let eviction = decode_body(req)?;
    if eviction
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Eviction")
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind (Eviction)",
            eviction["kind"].as_str().unwrap_or_default()
        )));
    }
    if let Some(n) = object::meta(&eviction)
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && n != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let mut opts = eviction
        .get("deleteOptions")
        .filter(|v| v.is_object())
        .map(DeleteOptions::from_json)
        .unwrap_or_default();
    opts.check()?;
    opts.dry_run |= req.dry_run();
    let ns = req.namespace();
    let Some((pod, _)) = api.read(pods, ns, name).await? else {
        return Err(ApiError::not_found(pods, name));
    };
    if can_ignore_budget(&pod) {
        return delete_pod(api, pods, ns, name, &opts).await;
    }
    let budgets = matching_budgets(api, ns, &pod).await?;
    let budget = match budgets.as_slice() {
        [] => return delete_pod(api, pods, ns, name, &opts).await,
        [one] => one,
        _ => {
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let ready = is_ready(&pod);
    // An unready pod is no loss to a budget that lets them go, nor to one that is met
    // without it; it is deleted only as it is now (the precondition stops a pod that
    // became ready meanwhile from going without the budget's say).
    let mut unready_pass =
        !ready && budget.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
    if !unready_pass {
        unready_pass =
            take_disruption(api, ns, object::name(budget), name, ready, opts.dry_run).await?;
    }
    if unready_pass && opts.precondition_rv.is_none() {
        opts.precondition_rv = Some(object::resource_version(&pod).to_string());
    }
    delete_pod(api, pods, ns, name, &opts).await
}

/// Takes one disruption from the budget, retrying on conflicts; `Ok(true)` when the pod
/// is unready and the budget healthy without it, so nothing is taken.
async fn take_disruption(
    api: &Api,
    ns: Option<&str>,
    budget: &str,
    pod: &str,
    ready: bool,
    dry_run: bool,
) -> Result<bool, ApiError> {
    let info = pdb_info()?;
    let mut last = ApiError::conflict(info, budget);
    for _ in 0..RETRIES {
        let Some((mut pdb, kv)) = api.read(info, ns, budget).await? else {
            return Err(ApiError::not_found(info, budget));
        };
        let status = |k: &str| {
            pdb.pointer(&format!("/status/{k}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let (current, desired) = (status("currentHealthy"), status("desiredHealthy"));
        if !ready && current >= desired && desired > 0 {
            return Ok(true);
        }
        check_budget(&pdb, budget)?;
        if dry_run {
            return Ok(false);
        }
        let allowed = status("disruptionsAllowed") - 1;
        let st = object::entry(&mut pdb, &["status"]);
        st["disruptionsAllowed"] = json!(allowed);
        let disrupted = object::entry(st, &["disruptedPods"]);
        if !disrupted.is_object() {
            *disrupted = json!({});
        }
        disrupted[pod] = json!(object::now_rfc3339());
        if allowed == 0 {
            set_insufficient(st);
        }
        let key = api.key(info, ns, budget);
        match api
            .store
            .update(&key, encode_for_store(&pdb)?, kv.mod_revision)
            .await
            .map_err(|e| ApiError::from_store(info, budget, e))
        {
            Ok(_) => return Ok(false),
            Err(e) if e.code == 409 => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Whether the budget, as its status stands, lets one more pod go.
pub fn check_budget(pdb: &Value, name: &str) -> Result<(), ApiError> {
    let generation = object::meta(pdb)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = pdb
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if observed < generation {
        return Err(too_many_requests(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    let status = |k: &str| {
        pdb.pointer(&format!("/status/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let forbidden = |why: &str| {
        ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: {why}"
        ))
    };
    if status("disruptionsAllowed") < 0 {
        return Err(forbidden("pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if status("disruptionsAllowed") == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status("desiredHealthy"),
                status("currentHealthy")
            ),
            0,
        ));
    }
    Ok(())
}

fn too_many_requests(cause: String, retry_after: u32) -> ApiError {
    let mut details = json!({"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(429, "TooManyRequests", VIOLATES_BUDGET)
    }
}

/// The DisruptionAllowed condition once the last allowed disruption is taken.
fn set_insufficient(status: &mut Value) {
    let conds = object::entry(status, &["conditions"]);
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let already = list.iter().any(|c| {
        c.get("type") == Some(&json!("DisruptionAllowed"))
            && c.get("status") == Some(&json!("False"))
            && c.get("reason") == Some(&json!("InsufficientPods"))
    });
    if already {
        return;
    }
    list.retain(|c| c.get("type") != Some(&json!("DisruptionAllowed")));
    list.push(json!({
        "type": "DisruptionAllowed",
        "status": "False",
        "reason": "InsufficientPods",
        "message": "",
        "lastTransitionTime": object::now_rfc3339(),
    }));
}

/// Finished, not yet running, or already going: no budget counts this pod as healthy.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || object::is_deleting(pod)
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True"))
            })
        })
}

/// The budgets in the pod's namespace whose selector matches it (an absent selector
/// matches nothing, an empty one everything, as in policy/v1).
async fn matching_budgets(
    api: &Api,
    ns: Option<&str>,
    pod: &Value,
) -> Result<Vec<Value>, ApiError> {
    let info = pdb_info()?;
    let listed = api
        .store
        .list(&api.prefix(info, ns), None, 0, None)
        .await
        .map_err(|e| ApiError::from_store(info, "", e))?;
    let labels = object::labels(pod);
    let mut out = Vec::new();
    for kv in &listed.kvs {
        let pdb = decode_stored(kv)?;
        let Ok(sel) = selector(&pdb) else {
            continue;
        };
        if sel.matches(&labels) {
            out.push(pdb);
        }
    }
    Ok(out)
}

fn selector(pdb: &Value) -> Result<Selector, String> {
    match pdb.pointer("/spec/selector").filter(|v| !v.is_null()) {
        None => Ok(Selector::nothing()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| e.to_string())
            .and_then(|ls| Selector::from_label_selector(&ls).map_err(|e| e.to_string())),
    }
}

async fn delete_pod(
    api: &Api,
    pods: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Reply {
    let mut opts = opts.clone();
    if !opts.dry_run {
        mark_disruption_target(api, pods, ns, name, &mut opts).await?;
    }
    delete_object(api, pods, ns, name, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(response::json(StatusCode::CREATED, &status))
}

/// Sets the pod's `DisruptionTarget` condition before it is deleted, as kube-apiserver
/// does, so whoever watches it (its controller, a Job's pod failure policy) knows why it
/// goes. The deleteOptions' preconditions hold for this write too; a resourceVersion
/// precondition then moves to the version written, since that change is the eviction's own.
async fn mark_disruption_target(
    api: &Api,
    pods: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &mut DeleteOptions,
) -> Result<(), ApiError> {
    for _ in 0..16 {
        let Some((mut pod, kv)) = api.read(pods, ns, name).await? else {
            return Err(ApiError::not_found(pods, name));
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != object::uid(&pod)
        {
            return Err(ApiError::conflict_msg(
                pods,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(&pod)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != object::resource_version(&pod)
        {
            return Err(ApiError::conflict_msg(
                pods,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    object::resource_version(&pod)
                ),
            ));
        }
        if !set_disruption_target(&mut pod) {
            return Ok(());
        }
        let key = api.key(pods, ns, name);
        match api
            .store
            .update(&key, encode_for_store(&pod)?, kv.mod_revision)
            .await
        {
            Ok(rev) => {
                if opts.precondition_rv.is_some() {
                    opts.precondition_rv = Some(rev.to_string());
                }
                return Ok(());
            }
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(pods, name, e)),
        }
    }
    Err(ApiError::conflict(pods, name))
}

/// Adds or updates the condition; false when it already says so.
fn set_disruption_target(pod: &mut Value) -> bool {
    let want = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    });
    let conds = object::entry(pod, &["status", "conditions"]);
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    let same = |c: &Value| {
        ["type", "status", "reason", "message"]
            .iter()
            .all(|k| c.get(*k) == want.get(*k))
    };
    match list
        .iter_mut()
        .find(|c| c.get("type") == Some(&json!("DisruptionTarget")))
    {
        Some(c) if same(c) => false,
        Some(c) => {
            let changed = c.get("status") != want.get("status");
            let mut next = want.clone();
            next["lastProbeTime"] = Value::Null;
            next["lastTransitionTime"] = if changed {
                json!(object::now_rfc3339())
            } else {
                c.get("lastTransitionTime").cloned().unwrap_or(Value::Null)
            };
            *c = next;
            true
        }
        None => {
            let mut next = want;
            next["lastProbeTime"] = Value::Null;
            next["lastTransitionTime"] = json!(object::now_rfc3339());
            list.push(next);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(generation: i64, observed: i64, allowed: i64) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                       "desiredHealthy": 2, "currentHealthy": 2},
        })
    }

    #[test]
    fn budgets_refuse_as_upstream() {
        assert!(check_budget(&pdb(1, 1, 1), "web").is_ok());
        let e = check_budget(&pdb(1, 1, 0), "web").expect_err("no disruption left");
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (429, "TooManyRequests", VIOLATES_BUDGET)
        );
        let details = e.details.expect("details");
        assert_eq!(details["causes"][0]["reason"], DISRUPTION_BUDGET_CAUSE);
        assert_eq!(
            details["causes"][0]["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        let e = check_budget(&pdb(2, 1, 1), "web").expect_err("not yet observed");
        assert_eq!(e.code, 429);
        assert_eq!(e.details.expect("details")["retryAfterSeconds"], 10);
        assert_eq!(
            check_budget(&pdb(1, 1, -1), "web").map_err(|e| e.code),
            Err(403)
        );
    }

    #[test]
    fn which_pods_skip_the_budget() {
        assert!(can_ignore_budget(
            &json!({"status": {"phase": "Succeeded"}})
        ));
        assert!(can_ignore_budget(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_budget(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
        assert!(
            selector(&json!({"spec": {}}))
                .expect("nothing")
                .is_nothing()
        );
        assert!(
            selector(&json!({"spec": {"selector": {}}}))
                .expect("all")
                .is_empty()
        );
    }

    #[test]
    fn evicted_pods_say_why() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(set_disruption_target(&mut pod));
        let c = &pod["status"]["conditions"][1];
        assert_eq!(
            (&c["type"], &c["reason"], &c["message"]),
            (
                &json!("DisruptionTarget"),
                &json!("EvictionByEvictionAPI"),
                &json!("Eviction API: evicting")
            )
        );
        assert!(!set_disruption_target(&mut pod), "already set");
    }

    #[test]
    fn the_last_disruption_flips_the_condition() {
        let mut st = json!({"conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]});
        set_insufficient(&mut st);
        assert_eq!(st["conditions"].as_array().map(Vec::len), Some(1));
        assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");
    }
}
