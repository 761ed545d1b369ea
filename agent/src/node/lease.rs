use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{LEASE_DURATION_SECONDS, LEASE_NAMESPACE, NodeError};

/// The node's Lease: its renewals are the heartbeat the node lifecycle controller reads.
pub struct LeaseKeeper {
    api: Api<Lease>,
    node: String,
}

impl LeaseKeeper {
    pub fn new(client: kube::Client, node: &str) -> LeaseKeeper {
        LeaseKeeper {
            api: Api::namespaced(client, LEASE_NAMESPACE),
            node: node.to_string(),
        }
    }

    pub async fn renew(&self) -> Result<(), NodeError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let patch = json!({ "spec": { "holderIdentity": self.node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now } });
        match self
            .api
            .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.node.clone()),
                        namespace: Some(LEASE_NAMESPACE.to_string()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.node.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
                    .map_err(|source| NodeError::Api {
                        action: "create the lease of",
                        node: self.node.clone(),
                        source,
                    })
            }
            Err(source) => Err(NodeError::Api {
                action: "renew the lease of",
                node: self.node.clone(),
                source,
            }),
        }
    }
}
