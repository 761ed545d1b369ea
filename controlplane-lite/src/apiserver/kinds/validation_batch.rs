//! Jobs and CronJobs: the generated Job selector, and the batch/v1 validation rules with
//! Kubernetes' field paths and wording (a bad cron string is a `422` on `spec.schedule`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use skiff_api::labels;

use crate::apiserver::object;
use crate::apiserver::status::Cause;
use crate::controllers::cronjob::schedule::{Schedule, load_zone};

type Causes = Vec<Cause>;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
/// A CronJob's Jobs are named `<cronjob>-<minutes since the epoch>`: 11 more characters.
const MAX_CRONJOB_NAME: usize = 52;
const MAX_INDEXED_COMPLETIONS: i64 = 100_000;

/// Unless `spec.manualSelector` is true, a new Job selects its pods by its own uid: the
/// template gets the `controller-uid` and `job-name` labels (both spellings) and the
/// selector matches the uid, as the Kubernetes API server does before validating a Job.
/// The Job itself takes the template's labels when it has none.
pub fn prepare_job(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let name = object::name(obj).to_string();
    let uid = object::uid(obj).to_string();
    let tlabels = object::entry(obj, &["spec", "template", "metadata", "labels"]);
    if !tlabels.is_object() {
        *tlabels = json!({});
    }
    if let Some(m) = tlabels.as_object_mut() {
        for (k, v) in [
            (LEGACY_JOB_NAME, &name),
            (JOB_NAME, &name),
            (LEGACY_CONTROLLER_UID, &uid),
            (CONTROLLER_UID, &uid),
        ] {
            m.entry(k).or_insert_with(|| json!(v));
        }
    }
    let template_labels = tlabels.clone();
    let match_labels = object::entry(obj, &["spec", "selector", "matchLabels"]);
    if !match_labels.is_object() {
        *match_labels = json!({});
    }
    if let Some(m) = match_labels.as_object_mut() {
        m.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
    }
    let job_labels = object::entry(obj, &["metadata", "labels"]);
    if job_labels.as_object().is_none_or(|m| m.is_empty()) {
        *job_labels = template_labels;
    }
}

fn int_at(obj: &Value, ptr: &str) -> Option<i64> {
    obj.pointer(ptr).and_then(Value::as_i64)
}

fn non_negative(obj: &Value, base: &str, field: &str, c: &mut Causes) {
    let ptr = format!("/{}/{field}", base.replace('.', "/"));
    if let Some(n) = int_at(obj, &ptr)
        && n < 0
    {
        c.push(Cause::invalid(
            format!("{base}.{field}"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// A Job spec at `base` (`spec`, or `spec.jobTemplate.spec` of a CronJob). The checks on
/// counts and the pod template already made by the generic rules are not repeated.
fn job_spec(obj: &Value, base: &str, cron_template: bool, c: &mut Causes) {
    let ptr = |f: &str| format!("/{}/{f}", base.replace('.', "/"));
    for f in ["activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        non_negative(obj, base, f, c);
    }
    if cron_template {
        for f in ["completions", "parallelism", "backoffLimit"] {
            non_negative(obj, base, f, c);
        }
        let rp = obj
            .pointer(&ptr("template/spec/restartPolicy"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if rp != "Never" && rp != "OnFailure" {
            c.push(Cause::not_supported(
                format!("{base}.template.spec.restartPolicy"),
                &json!(rp),
                &["OnFailure", "Never"],
            ));
        }
    }
    let mode = obj
        .pointer(&ptr("completionMode"))
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    match mode {
        "NonIndexed" => {}
        "Indexed" => match int_at(obj, &ptr("completions")) {
            None => c.push(Cause {
                reason: "FieldValueRequired",
                field: format!("{base}.completions"),
                message: "Required value: when completion mode is Indexed".into(),
            }),
            Some(n) if n > MAX_INDEXED_COMPLETIONS => c.push(Cause::invalid(
                format!("{base}.completions"),
                &json!(n),
                format!("must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"),
            )),
            Some(_) => {}
        },
        other => c.push(Cause::not_supported(
            format!("{base}.completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(p) = obj
        .pointer(&ptr("podReplacementPolicy"))
        .and_then(Value::as_str)
        && p != "TerminatingOrFailed"
        && p != "Failed"
    {
        c.push(Cause::not_supported(
            format!("{base}.podReplacementPolicy"),
            &json!(p),
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    if let Some(rules) = obj
        .pointer(&ptr("podFailurePolicy/rules"))
        .and_then(Value::as_array)
    {
        let rp = obj
            .pointer(&ptr("template/spec/restartPolicy"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if rp != "Never" {
            c.push(Cause::invalid(
                format!("{base}.template.spec.restartPolicy"),
                &json!(rp),
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
        for (i, r) in rules.iter().enumerate() {
            let field = format!("{base}.podFailurePolicy.rules[{i}]");
            let action = r.get("action").and_then(Value::as_str).unwrap_or("");
            if !matches!(action, "Count" | "FailIndex" | "FailJob" | "Ignore") {
                c.push(Cause::not_supported(
                    format!("{field}.action"),
                    &json!(action),
                    &["Count", "FailIndex", "FailJob", "Ignore"],
                ));
            }
            let codes = r.get("onExitCodes").filter(|v| !v.is_null());
            let conds = r.get("onPodConditions").filter(|v| !v.is_null());
            if codes.is_some() == conds.is_some() {
                c.push(Cause::invalid(
                    field.clone(),
                    &Value::String(String::new()),
                    "specifying one of OnExitCodes and OnPodConditions is required",
                ));
            }
            if let Some(codes) = codes {
                let op = codes.get("operator").and_then(Value::as_str).unwrap_or("");
                if op != "In" && op != "NotIn" {
                    c.push(Cause::not_supported(
                        format!("{field}.onExitCodes.operator"),
                        &json!(op),
                        &["In", "NotIn"],
                    ));
                }
            }
        }
    }
}

/// The generated or given selector must be present and match the template's labels.
fn job_selector(obj: &Value, c: &mut Causes) {
    let Some(sel) = obj.pointer("/spec/selector").filter(|v| !v.is_null()) else {
        c.push(Cause::required("spec.selector"));
        return;
    };
    let tmpl: BTreeMap<String, String> = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let parsed: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, _> =
        serde_json::from_value(sel.clone());
    match parsed
        .map_err(|e| e.to_string())
        .and_then(|s| labels::Selector::from_label_selector(&s).map_err(|e| e.to_string()))
    {
        Err(e) => c.push(Cause::invalid("spec.selector", sel, e)),
        Ok(s) if s.is_empty() => c.push(Cause::required("spec.selector")),
        Ok(s) if !s.matches(&tmpl) => c.push(Cause::invalid(
            "spec.template.metadata.labels",
            &json!(tmpl),
            "`selector` does not match template `labels`",
        )),
        Ok(_) => {}
    }
    if obj.pointer("/spec/manualSelector") != Some(&json!(true)) {
        let uid = object::uid(obj);
        if !uid.is_empty() && tmpl.get(CONTROLLER_UID).is_some_and(|v| v != uid) {
            c.push(Cause::invalid(
                format!("spec.template.metadata.labels[{CONTROLLER_UID}]"),
                &json!(tmpl.get(CONTROLLER_UID)),
                format!("must be '{uid}'"),
            ));
        }
    }
}

/// Rules of a Job beyond the generic ones in `validation.rs`.
pub fn job(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    job_spec(obj, "spec", false, c);
    job_selector(obj, c);
    if let Some(old) = old {
        for f in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex"] {
            let p = format!("/spec/{f}");
            if obj.pointer(&p) != old.pointer(&p) {
                c.push(Cause::invalid(
                    format!("spec.{f}"),
                    &obj.pointer(&p).cloned().unwrap_or(Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
}

/// The schedule and time zone of a CronJob, and the rest of its spec.
pub fn cron_job(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let name = object::name(obj);
    if name.len() > MAX_CRONJOB_NAME {
        c.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            format!("must be no more than {MAX_CRONJOB_NAME} characters"),
        ));
    }
    let zone = obj.pointer("/spec/timeZone").filter(|v| !v.is_null());
    if let Some(schedule) = obj
        .pointer("/spec/schedule")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if let Err(e) = Schedule::parse(schedule) {
            c.push(Cause::invalid("spec.schedule", &json!(schedule), e.0));
        }
        // A TZ in the schedule is kept on update when it was there before.
        let had_tz = old
            .and_then(|o| o.pointer("/spec/schedule"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("TZ"));
        if schedule.contains("TZ") {
            if !had_tz {
                c.push(Cause::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if zone.is_some() {
                c.push(Cause::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    if let Some(z) = zone {
        time_zone(z, c);
    }
    let policy = obj
        .pointer("/spec/concurrencyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Allow");
    if !matches!(policy, "Allow" | "Forbid" | "Replace") {
        c.push(Cause::not_supported(
            "spec.concurrencyPolicy",
            &json!(policy),
            &["Allow", "Forbid", "Replace"],
        ));
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(obj, "spec", f, c);
    }
    job_spec(obj, "spec.jobTemplate.spec", true, c);
}

fn time_zone(z: &Value, c: &mut Causes) {
    let Some(tz) = z.as_str() else {
        return;
    };
    if tz.is_empty() {
        c.push(Cause::invalid(
            "spec.timeZone",
            z,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let valid_part = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-+".contains(ch))
    };
    if !tz.split('/').all(valid_part) {
        c.push(Cause::invalid(
            "spec.timeZone",
            z,
            format!("unknown time zone {tz}"),
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("local") {
        c.push(Cause::invalid(
            "spec.timeZone",
            z,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
        return;
    }
    if let Err(e) = load_zone(tz) {
        c.push(Cause::invalid("spec.timeZone", z, e.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(schedule: &str, tz: Option<&str>) -> Value {
        json!({"metadata": {"name": "tick", "namespace": "default"}, "spec": {
            "schedule": schedule, "timeZone": tz,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}})
    }

    fn fields(v: &Value) -> Vec<String> {
        let mut c = Causes::new();
        cron_job(v, None, &mut c);
        c.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn cron_schedules_and_zones() {
        assert!(fields(&cron("*/5 * * * *", Some("Europe/Paris"))).is_empty());
        assert_eq!(
            fields(&cron("bad", None)),
            ["spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]"]
        );
        assert_eq!(
            fields(&cron("61 * * * *", None)),
            [
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
            ]
        );
        assert_eq!(
            fields(&cron("* * * * *", Some("Mars/Olympus"))),
            ["spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"]
        );
        assert_eq!(
            fields(&cron("* * * * *", Some("../etc"))),
            ["spec.timeZone: Invalid value: \"../etc\": unknown time zone ../etc"]
        );
        assert_eq!(
            fields(&cron("TZ=UTC * * * * *", None)),
            [
                "spec.schedule: Invalid value: \"TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            ]
        );
        let mut long = cron("@hourly", None);
        long["metadata"]["name"] = json!("x".repeat(53));
        assert_eq!(fields(&long).len(), 1);
        let mut bad_policy = cron("@hourly", None);
        bad_policy["spec"]["concurrencyPolicy"] = json!("Sometimes");
        assert!(fields(&bad_policy)[0].starts_with("spec.concurrencyPolicy: Unsupported value"));
    }

    #[test]
    fn generated_selector() {
        let mut j = json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        prepare_job(&mut j);
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {CONTROLLER_UID: "u-1"}})
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"],
            json!({CONTROLLER_UID: "u-1", JOB_NAME: "pi", LEGACY_CONTROLLER_UID: "u-1", LEGACY_JOB_NAME: "pi"})
        );
        assert_eq!(
            j["metadata"]["labels"],
            j["spec"]["template"]["metadata"]["labels"]
        );
        let mut c = Causes::new();
        job(&j, None, &mut c);
        assert!(c.is_empty(), "{c:?}");
        // A manual selector that does not match is refused.
        let mut m = json!({"metadata": {"name": "m", "namespace": "default", "uid": "u-2"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        prepare_job(&mut m);
        let mut c = Causes::new();
        job(&m, None, &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
        // Indexed needs completions.
        let mut i = j.clone();
        i["spec"]["completionMode"] = json!("Indexed");
        let mut c = Causes::new();
        job(&i, None, &mut c);
        assert_eq!(c[0].field, "spec.completions");
    }
}
