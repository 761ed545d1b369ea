//! A de-duplicating work queue, as client-go's: a key added any number of times while it
//! waits is processed once; a key being processed is not handed to a second worker, and if
//! it was added meanwhile it comes back once the first is done. Failed keys come back after
//! a per-key exponential back-off; keys can also be scheduled for later.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The first retry of a failing key, doubling up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(5);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct State<K> {
    queue: VecDeque<K>,
    /// Waiting in `queue` or to be re-added when done.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Scheduled additions, by time (a counter keeps equal times distinct); a key is
    /// scheduled at most once, at its earliest time.
    delayed: BTreeMap<(Instant, u64), K>,
    scheduled: HashMap<K, (Instant, u64)>,
    seq: u64,
    failures: HashMap<K, u32>,
    shut_down: bool,
}

/// The queue; clones share it.
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                delayed: BTreeMap::new(),
                scheduled: HashMap::new(),
                seq: 0,
                failures: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `key` now.
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.shut_down || !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed (at once if it is zero).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let mut s = self.lock();
        if s.shut_down {
            return;
        }
        let at = Instant::now() + delay;
        if let Some(&(when, seq)) = s.scheduled.get(&key) {
            if when <= at {
                return;
            }
            s.delayed.remove(&(when, seq));
        }
        s.seq += 1;
        let seq = s.seq;
        s.delayed.insert((at, seq), key.clone());
        s.scheduled.insert(key, (at, seq));
        drop(s);
        // A worker may be sleeping until a later time.
        self.notify.notify_one();
    }

    /// Adds `key` after its back-off, which doubles with every failure until
    /// [`WorkQueue::forget`].
    pub fn add_rate_limited(&self, key: K) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let backoff = BASE_BACKOFF
            .saturating_mul(
                1u32.checked_shl(n.saturating_sub(1).min(31))
                    .unwrap_or(u32::MAX),
            )
            .min(MAX_BACKOFF);
        self.add_after(key, backoff);
    }

    /// Clears `key`'s failure count.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How often `key` failed since it was last forgotten.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, waiting for one; `None` once shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                let now = Instant::now();
                while let Some(entry) = s.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    s.scheduled.remove(&key);
                    if s.dirty.insert(key.clone()) && !s.processing.contains(&key) {
                        s.queue.push_back(key);
                    }
                }
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    // Others may be waiting for the rest.
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                s.delayed.keys().next().map(|(t, _)| *t)
            };
            match wait {
                Some(t) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys waiting now (not counting scheduled or in-process ones).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every waiter with `None`; nothing is queued any more.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn duplicates_collapse_and_processing_keys_wait() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Added while being processed: not handed out again until done.
        q.add("a");
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await.unwrap(), "a");
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delays_and_back_off() {
        let q = WorkQueue::new();
        q.add_after("later", Duration::from_secs(10));
        q.add_rate_limited("failing");
        let t0 = Instant::now();
        assert_eq!(q.get().await.unwrap(), "failing");
        assert!(t0.elapsed() >= BASE_BACKOFF);
        q.done(&"failing");
        q.add_rate_limited("failing");
        q.add_rate_limited("failing");
        assert_eq!(q.failures(&"failing"), 3);
        assert_eq!(q.get().await.unwrap(), "failing");
        q.done(&"failing");
        q.forget(&"failing");
        assert_eq!(q.failures(&"failing"), 0);
        assert_eq!(q.get().await.unwrap(), "later");
        assert!(t0.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test]
    async fn shut_down_wakes_waiters() {
        let q: WorkQueue<&str> = WorkQueue::new();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.get().await });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
    }
}
