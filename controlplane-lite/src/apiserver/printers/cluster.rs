//! Cluster plumbing kinds: Lease, RoleBinding, ClusterRoleBinding,
//! PriorityClass, RuntimeClass, Mutating/ValidatingWebhookConfiguration.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use super::format::{
    age, age_column, col, int, list, name, name_column, opt_bool, opt_int, opt_text, row, text,
    wide,
};

// ---- Lease ------------------------------------------------------------------

pub(super) static LEASE: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
        ),
        age_column(),
    ],
    cells: lease,
};

fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![name(obj), text(obj, "/spec/holderIdentity"), age(obj, now)]
}

// ---- RoleBinding, ClusterRoleBinding ----------------------------------------

pub(super) static ROLE_BINDING: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Role",
            "string",
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
        ),
        age_column(),
        wide("Users", "string", "Users in the roleBinding"),
        wide("Groups", "string", "Groups in the roleBinding"),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the roleBinding",
        ),
    ],
    cells: role_binding,
};

pub(super) static CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Role",
            "string",
            "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
        ),
        age_column(),
        wide("Users", "string", "Users in the clusterRoleBinding"),
        wide("Groups", "string", "Groups in the clusterRoleBinding"),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the clusterRoleBinding",
        ),
    ],
    cells: role_binding,
};

fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in list(obj, "/subjects") {
        let subject_name = text(subject, "/name");
        match text(subject, "/kind") {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, "/namespace")))
            }
            _ => {}
        }
    }
    row![
        name(obj),
        format!(
            "{}/{}",
            text(obj, "/roleRef/kind"),
            text(obj, "/roleRef/name")
        ),
        age(obj, now),
        users.join(", "),
        groups.join(", "),
        service_accounts.join(", "),
    ]
}

// ---- PriorityClass ----------------------------------------------------------

pub(super) static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Value",
            "integer",
            "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
        ),
        col(
            "Global-Default",
            "boolean",
            "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.",
        ),
        age_column(),
        col(
            "PreemptionPolicy",
            "string",
            "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
        ),
    ],
    cells: priority_class,
};

fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![
        name(obj),
        int(obj, "/value"),
        opt_bool(obj, "/globalDefault").unwrap_or(false),
        age(obj, now),
        // The API server defaults the policy to PreemptLowerPriority.
        opt_text(obj, "/preemptionPolicy").unwrap_or("PreemptLowerPriority"),
    ]
}

// ---- RuntimeClass -----------------------------------------------------------

pub(super) static RUNTIME_CLASS: Printer = Printer {
    // Kubernetes looks the Handler description up in ObjectMeta's docs, which
    // have none, so it is empty there too.
    columns: &[name_column(), col("Handler", "string", ""), age_column()],
    cells: runtime_class,
};

fn runtime_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![name(obj), text(obj, "/handler"), age(obj, now)]
}

// ---- Webhook configurations -------------------------------------------------

pub(super) static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        age_column(),
    ],
    cells: webhook_configuration,
};

fn webhook_configuration(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![
        name(obj),
        list(obj, "/webhooks").len() as i64,
        age(obj, now)
    ]
}

// ---- CertificateSigningRequest ----------------------------------------------

pub(super) static CERTIFICATE_SIGNING_REQUEST: Printer = Printer {
    columns: &[
        name_column(),
        age_column(),
        col(
            "SignerName",
            "string",
            "signerName indicates the requested signer, and is a qualified name.",
        ),
        col(
            "Requestor",
            "string",
            "Name of the user who requested the CSR",
        ),
        col(
            "RequestedDuration",
            "string",
            "expirationSeconds is the requested duration of validity of the issued certificate.",
        ),
        col(
            "Condition",
            "string",
            "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
        ),
    ],
    cells: certificate_signing_request,
};

/// `Approved`, `Denied` or `Pending`, then `,Failed` and `,Issued` as they apply, as
/// kubectl shows a CSR's state.
pub(super) fn csr_condition(obj: &Value) -> String {
    let has = |t: &str| {
        list(obj, "/status/conditions")
            .iter()
            .any(|c| text(c, "/type") == t)
    };
    let mut s = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        s.push_str(",Failed");
    }
    if !text(obj, "/status/certificate").is_empty() {
        s.push_str(",Issued");
    }
    s
}

fn certificate_signing_request(obj: &Value, now: Timestamp) -> Vec<Value> {
    let duration = opt_int(obj, "/spec/expirationSeconds").map_or_else(
        || "<none>".to_string(),
        |s| super::human_duration(jiff::SignedDuration::from_secs(s)),
    );
    row![
        name(obj),
        age(obj, now),
        text(obj, "/spec/signerName"),
        text(obj, "/spec/username"),
        duration,
        csr_condition(obj),
    ]
}
