//! The scheduling queue, after kube-scheduler's: an active heap (higher priority first,
//! then first come), a back-off queue for pods that failed recently (1 s doubling to
//! 10 s per attempt), and a pool of unschedulable pods that wait for a cluster event
//! one of the plugins that rejected them cares about — or five minutes — before they
//! are tried again. Pure: the caller passes the time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::plugins::PluginSet;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are tried again after this long even if nothing happened.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// The back-off after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(1u32 << shift)
        .min(MAX_BACKOFF)
}

/// A pod in the queue, or handed out for one attempt.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub uid: String,
    /// Attempts so far, this one included once popped.
    pub attempts: u32,
    /// Orders equal priorities: first come, first tried.
    order: u64,
    backoff_until: Option<Instant>,
    rejectors: PluginSet,
    unschedulable_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Waiting for its scheduling gates to be removed.
    Gated,
}

struct Entry {
    qp: QueuedPod,
    place: Place,
    /// Heap and back-off entries of older generations are stale.
    generation: u64,
}

#[derive(PartialEq, Eq)]
struct HeapKey {
    priority: i32,
    order: Reverse<u64>,
    generation: u64,
    uid: String,
}

impl Ord for HeapKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then(self.order.cmp(&o.order))
    }
}

impl PartialOrd for HeapKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// Whether an update may change the outcome of scheduling (not a status write).
fn changed_for_scheduling(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

#[derive(Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<HeapKey>,
    backoff: BTreeMap<(Instant, u64), (String, u64)>,
    seq: u64,
    /// How many unschedulable pods each plugin rejected (bit `i` counts at `i`), and
    /// how many no plugin did: an event no waiting pod cares about costs nothing.
    rejected_by: [u32; 16],
    rejected_by_none: u32,
}

impl SchedulingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Counts (active, backoff, unschedulable or gated), for tests and logs.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in self.entries.values() {
            match e.place {
                Place::Active => c.0 += 1,
                Place::Backoff => c.1 += 1,
                Place::Unschedulable | Place::Gated => c.2 += 1,
            }
        }
        c
    }

    fn count_rejectors(&mut self, s: PluginSet, by: i32) {
        if s.is_empty() {
            self.rejected_by_none = self.rejected_by_none.saturating_add_signed(by);
        }
        for (i, c) in self.rejected_by.iter_mut().enumerate() {
            if s.0 & (1 << i) != 0 {
                *c = c.saturating_add_signed(by);
            }
        }
    }

    fn place(&mut self, mut qp: QueuedPod, place: Place) {
        let uid = qp.uid.clone();
        let generation = self.next_seq();
        match place {
            Place::Active => self.active.push(HeapKey {
                priority: priority(&qp.pod),
                order: Reverse(qp.order),
                generation,
                uid: uid.clone(),
            }),
            Place::Backoff => {
                let at = qp.backoff_until.unwrap_or_else(Instant::now);
                self.backoff
                    .insert((at, generation), (uid.clone(), generation));
            }
            Place::Unschedulable => self.count_rejectors(qp.rejectors, 1),
            Place::Gated => {}
        }
        if place != Place::Unschedulable {
            qp.unschedulable_since = None;
        }
        if let Some(old) = self.entries.insert(
            uid,
            Entry {
                qp,
                place,
                generation,
            },
        ) && old.place == Place::Unschedulable
        {
            self.count_rejectors(old.qp.rejectors, -1);
        }
    }

    /// Active if its back-off is over, else back-off.
    fn wake(&mut self, qp: QueuedPod, now: Instant) {
        let place = if qp.backoff_until.is_some_and(|t| t > now) {
            Place::Backoff
        } else {
            Place::Active
        };
        self.place(qp, place);
    }

    /// A pending pod appeared or changed.
    pub fn upsert(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(e) = self.entries.get_mut(&uid) else {
            let order = self.next_seq();
            let qp = QueuedPod {
                uid,
                attempts: 0,
                order,
                backoff_until: None,
                rejectors: PluginSet::EMPTY,
                unschedulable_since: None,
                pod: pod.clone(),
            };
            let place = if gated(&pod) {
                Place::Gated
            } else {
                Place::Active
            };
            self.place(qp, place);
            return;
        };
        let meaningful = changed_for_scheduling(&e.qp.pod, &pod);
        let reprioritised = priority(&e.qp.pod) != priority(&pod);
        e.qp.pod = pod.clone();
        match e.place {
            Place::Active if reprioritised => {
                let qp = e.qp.clone();
                self.place(qp, Place::Active);
            }
            Place::Active | Place::Backoff => {}
            Place::Unschedulable if meaningful => {
                let qp = e.qp.clone();
                self.wake(qp, now);
            }
            Place::Gated if !gated(&pod) => {
                let qp = e.qp.clone();
                self.place(qp, Place::Active);
            }
            Place::Unschedulable | Place::Gated => {}
        }
    }

    pub fn remove(&mut self, uid: &str) {
        if let Some(e) = self.entries.remove(uid)
            && e.place == Place::Unschedulable
        {
            self.count_rejectors(e.qp.rejectors, -1);
        }
    }

    /// Keeps only the pods `keep` approves (a resync after the watch lagged).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.entries.keys().filter(|u| !keep(u)).cloned().collect();
        for uid in gone {
            self.remove(&uid);
        }
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(entry) = self.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (uid, generation) = entry.remove();
            if let Some(e) = self.entries.get(&uid)
                && e.generation == generation
                && e.place == Place::Backoff
            {
                let qp = e.qp.clone();
                self.place(qp, Place::Active);
            }
        }
    }

    /// The next pod to try, taken out of the queue until it is requeued.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        while let Some(k) = self.active.pop() {
            let live = self
                .entries
                .get(&k.uid)
                .is_some_and(|e| e.generation == k.generation && e.place == Place::Active);
            if !live {
                continue;
            }
            let mut qp = self.entries.remove(&k.uid)?.qp;
            qp.attempts += 1;
            return Some(qp);
        }
        None
    }

    /// The attempt found no node: the pod waits for an event one of `rejectors` cares
    /// about (any event when empty).
    pub fn requeue_unschedulable(&mut self, mut qp: QueuedPod, rejectors: PluginSet, now: Instant) {
        qp.backoff_until = Some(now + backoff(qp.attempts));
        qp.rejectors = rejectors;
        qp.unschedulable_since = Some(now);
        qp.order = self.next_seq();
        self.place(qp, Place::Unschedulable);
    }

    /// The attempt failed for another reason (a bind error): retry after the back-off.
    pub fn requeue_backoff(&mut self, mut qp: QueuedPod, now: Instant) {
        qp.backoff_until = Some(now + backoff(qp.attempts.max(1)));
        qp.order = self.next_seq();
        self.place(qp, Place::Backoff);
    }

    /// A cluster event that may help pods rejected by `helps`: they are tried again (after
    /// their back-off). Returns how many moved.
    pub fn on_event(&mut self, helps: PluginSet, now: Instant) -> usize {
        if helps.is_empty() {
            return 0;
        }
        let interested = self.rejected_by_none > 0
            || self
                .rejected_by
                .iter()
                .enumerate()
                .any(|(i, c)| *c > 0 && helps.0 & (1 << i) != 0);
        if !interested {
            return 0;
        }
        let moving: Vec<QueuedPod> = self
            .entries
            .values()
            .filter(|e| {
                e.place == Place::Unschedulable
                    && (e.qp.rejectors.is_empty() || e.qp.rejectors.intersects(helps))
            })
            .map(|e| e.qp.clone())
            .collect();
        let n = moving.len();
        for qp in moving {
            self.wake(qp, now);
        }
        n
    }

    /// Unschedulable pods that waited [`MAX_UNSCHEDULABLE`] are tried again.
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let stale: Vec<QueuedPod> = self
            .entries
            .values()
            .filter(|e| {
                e.place == Place::Unschedulable
                    && e.qp
                        .unschedulable_since
                        .is_some_and(|t| now.duration_since(t) >= MAX_UNSCHEDULABLE)
            })
            .map(|e| e.qp.clone())
            .collect();
        for qp in stale {
            self.wake(qp, now);
        }
    }

    /// When the earliest back-off ends, if any pod is backing off.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.keys().next().map(|(t, _)| *t)
    }

    /// Whether a pod is ready to be popped now.
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::Plugin;
    use serde_json::json;

    fn pod(uid: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
                "spec": {"containers": [], "priority": priority}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), Duration::from_secs(10));
        assert_eq!(backoff(50), Duration::from_secs(10));
    }

    #[test]
    fn priority_then_arrival() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("low", 0), now);
        q.upsert(pod("high", 10), now);
        q.upsert(pod("low2", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop(now).map(|p| p.uid)).collect();
        assert_eq!(order, vec!["high", "low", "low2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn unschedulable_pods_wait_for_a_relevant_event_and_back_off() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("p", 0), t0);
        let p = q.pop(t0).unwrap();
        assert_eq!(p.attempts, 1);
        q.requeue_unschedulable(p, Plugin::TaintToleration.bit(), t0);
        assert!(q.pop(t0).is_none());
        // A pod deletion does not help a taint.
        assert_eq!(q.on_event(Plugin::NodeResourcesFit.bit(), t0), 0);
        assert_eq!(q.counts(), (0, 0, 1));
        // A node change does, but the pod is still backing off (1 s).
        assert_eq!(q.on_event(Plugin::TaintToleration.bit(), t0), 1);
        assert_eq!(q.counts(), (0, 1, 0));
        assert!(q.pop(t0 + Duration::from_millis(500)).is_none());
        assert_eq!(q.next_backoff(), Some(t0 + Duration::from_secs(1)));
        let p = q.pop(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(p.attempts, 2);
        // Second failure: 2 s, and an event after it moves the pod straight to active.
        q.requeue_unschedulable(p, PluginSet::EMPTY, t0 + Duration::from_secs(1));
        assert_eq!(
            q.on_event(Plugin::NodeAffinity.bit(), t0 + Duration::from_secs(4)),
            1
        );
        assert!(q.pop(t0 + Duration::from_secs(4)).is_some());
    }

    #[test]
    fn status_writes_do_not_wake_and_spec_changes_do() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("p", 0), t0);
        let p = q.pop(t0).unwrap();
        q.requeue_unschedulable(p, Plugin::NodeAffinity.bit(), t0);
        let mut with_status = (*pod("p", 0)).clone();
        with_status.status = Some(Default::default());
        q.upsert(Arc::new(with_status), t0 + Duration::from_secs(5));
        assert_eq!(q.counts(), (0, 0, 1));
        let mut relabelled = (*pod("p", 0)).clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        q.upsert(Arc::new(relabelled), t0 + Duration::from_secs(5));
        assert_eq!(q.counts(), (1, 0, 0));
    }

    #[test]
    fn gated_pods_wait_for_their_gates() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        let mut g = (*pod("g", 0)).clone();
        g.spec.as_mut().unwrap().scheduling_gates =
            Some(vec![serde_json::from_value(json!({"name": "x"})).unwrap()]);
        q.upsert(Arc::new(g), t0);
        assert!(q.pop(t0).is_none());
        q.upsert(pod("g", 0), t0);
        assert_eq!(q.pop(t0).unwrap().uid, "g");
    }

    #[test]
    fn long_waiters_are_flushed_and_bind_failures_back_off() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.upsert(pod("p", 0), t0);
        q.upsert(pod("b", 0), t0);
        let p = q.pop(t0).unwrap();
        q.requeue_unschedulable(p, Plugin::NodePorts.bit(), t0);
        let b = q.pop(t0).unwrap();
        q.requeue_backoff(b, t0);
        assert!(q.pop(t0).is_none());
        assert_eq!(q.pop(t0 + Duration::from_secs(1)).unwrap().uid, "b");
        q.flush_unschedulable(t0 + Duration::from_secs(299));
        assert!(q.pop(t0 + Duration::from_secs(299)).is_none());
        q.flush_unschedulable(t0 + MAX_UNSCHEDULABLE);
        assert_eq!(q.pop(t0 + MAX_UNSCHEDULABLE).unwrap().uid, "p");
        q.remove("p");
        assert!(q.is_empty());
    }
}
