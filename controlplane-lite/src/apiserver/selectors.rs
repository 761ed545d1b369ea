//! Label and field selectors from list and watch requests.

use serde_json::Value;
use skiff_api::{fields, labels};

use super::object;
use super::registry::ResourceInfo;
use super::route::Query;
use super::status::ApiError;

/// The field labels each kind can be selected on, besides metadata.name and
/// metadata.namespace (which every kind supports), as in Kubernetes.
fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        "PersistentVolumeClaim" => &["spec.volumeName"],
        _ => &[],
    }
}

#[derive(Default)]
pub struct Selectors {
    labels: Option<labels::Selector>,
    fields: Option<fields::FieldSelector>,
}

impl Selectors {
    pub fn from_query(info: &ResourceInfo, q: &Query) -> Result<Selectors, ApiError> {
        let labels =
            match q.get("labelSelector") {
                Some(s) => Some(labels::Selector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let fields = match q.get("fieldSelector") {
            Some(s) => {
                let sel = fields::FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let mut supported = vec!["metadata.name", "metadata.namespace"];
                supported.extend_from_slice(supported_fields(info.kind));
                sel.check_supported(&supported)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(sel)
            }
            None => None,
        };
        Ok(Selectors { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels
            && !l.matches(&object::labels(obj))
        {
            return false;
        }
        if let Some(f) = &self.fields {
            // `source` on events is the reporting component's name.
            let get = |path: &str| -> Option<String> {
                let p = if path == "source" {
                    "source.component"
                } else {
                    path
                };
                fields::value_at_path(obj, p)
            };
            if !f.matches(get) {
                return false;
            }
        }
        true
    }

    /// True when nothing but (at most) an exact `metadata.name` is selected on.
    pub fn only_pins_name(&self) -> bool {
        self.labels.is_none()
            && self.fields.as_ref().is_none_or(|f| {
                f.requirements().len() == 1 && f.requires_exact_match("metadata.name").is_some()
            })
    }

    /// When the field selector pins `metadata.name` exactly, the name (lets a get-by-name
    /// watch read one key instead of a whole collection).
    pub fn exact_name(&self) -> Option<String> {
        self.fields
            .as_ref()?
            .requires_exact_match("metadata.name")
            .map(str::to_string)
    }
}
