//! The small framework every controller (and the scheduler) is built on, in the manner of
//! kube-runtime: [`Informer`]s cache objects from a watch and broadcast their changes;
//! [`watch`] turns changes into keys on a de-duplicating [`WorkQueue`]; [`run`] reconciles
//! keys with a [`Reconciler`]; writes go through a [`Cluster`] — the API server in
//! production ([`KubeCluster`]), memory in unit tests ([`FakeCluster`]), so each controller
//! is tested without a server.

mod cluster;
mod controller;
mod events;
mod fake;
mod informer;
mod metrics;
mod queue;

pub use cluster::{Cluster, ClusterError, Delete, KubeCluster};
pub use controller::{
    ObjectKey, ReconcileError, Reconciler, Requeue, controller_owner, itself, run, watch,
};
pub use events::{EventSink, ObjectEvent};
pub use fake::FakeCluster;
pub use informer::{Change, Feed, Informer, Kind};
pub use queue::WorkQueue;
