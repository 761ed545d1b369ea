//! Watch fan-out: one shared ring of recent events instead of a queue per watcher.
//!
//! The writer appends committed events to the ring and bumps a `tokio::sync::watch`
//! revision; every watcher keeps only a cursor (the last revision it has passed). A watcher
//! whose cursor is older than the ring reads the log from sqlite instead, so starting a watch
//! far back costs disk reads, not memory. Once a watcher has been served from the ring, falling
//! out of it again means it consumed slower than writes arrived: it gets `WatchLagged` and
//! must re-list. Writers never wait for watchers and memory is bounded by the ring.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::sync::watch;

use super::super::{Event, Result, Revision, StoreError, WatchStream};
use super::read::{self, ReadPool};

/// How many events one step of a watch stream hands over (and how many ring slots one lock
/// hold may scan), bounding both latency for other watchers and per-step memory.
const STEP_EVENTS: usize = 512;

pub(super) struct Ring {
    events: VecDeque<Arc<Event>>,
    /// The revision just before the oldest event held: the ring holds every event in
    /// `(base, base + events.len()]`, one per revision.
    base: Revision,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(head: Revision, max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            base: head,
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    fn push(&mut self, event: Event) {
        self.bytes += event_size(&event);
        self.events.push_back(Arc::new(event));
        while self.events.len() > self.max_events
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            match self.events.pop_front() {
                Some(old) => {
                    self.bytes -= event_size(&old);
                    self.base = old.revision();
                }
                None => break,
            }
        }
    }
}

fn event_size(e: &Event) -> usize {
    let kv = |kv: &super::super::KeyValue| kv.key.len() + kv.value.len() + 64;
    kv(&e.kv) + e.prev.as_ref().map_or(0, kv) + 64
}

/// What the writer and the watchers share.
pub(super) struct Hub {
    ring: Mutex<Ring>,
    /// A receiver kept only to hand out clones; the writer owns the sender, so when the
    /// writer stops every watcher's `changed()` fails and its stream ends.
    published: watch::Receiver<Revision>,
}

/// What a watcher finds in the ring past its cursor.
enum RingRead {
    /// Matching events and the revision the scan reached (its new cursor).
    Events(Vec<Arc<Event>>, Revision),
    /// The ring no longer holds the revision after the cursor.
    Behind,
}

impl Hub {
    pub fn new(ring: Ring) -> (Self, watch::Sender<Revision>) {
        let (tx, rx) = watch::channel(ring.base);
        (
            Self {
                ring: Mutex::new(ring),
                published: rx,
            },
            tx,
        )
    }

    /// Appends committed events (in revision order) and wakes the watchers.
    pub fn publish(&self, events: Vec<Event>, sender: &watch::Sender<Revision>) {
        let Some(last) = events.last().map(|e| e.revision()) else {
            return;
        };
        {
            let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            for event in events {
                ring.push(event);
            }
        }
        sender.send_replace(last);
    }

    fn read(&self, prefix: &str, after: Revision) -> RingRead {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if after < ring.base {
            return RingRead::Behind;
        }
        let start = usize::try_from(after - ring.base).unwrap_or(usize::MAX);
        let mut cursor = after;
        let mut out = Vec::new();
        for event in ring.events.iter().skip(start).take(STEP_EVENTS * 8) {
            cursor = event.revision();
            if event.kv.key.starts_with(prefix) {
                out.push(Arc::clone(event));
                if out.len() == STEP_EVENTS {
                    break;
                }
            }
        }
        RingRead::Events(out, cursor)
    }
}

struct Watcher {
    hub: Arc<Hub>,
    reads: Arc<ReadPool>,
    published: watch::Receiver<Revision>,
    prefix: String,
    /// Every event up to here has been delivered or skipped as not matching.
    cursor: Revision,
    /// Set once served from the ring; from then on, falling behind it is lag.
    live: bool,
    done: bool,
}

impl Watcher {
    /// The next non-empty batch of items, or `None` when the stream is over.
    async fn step(&mut self) -> Option<Vec<Result<Event>>> {
        loop {
            if self.done {
                return None;
            }
            // Mark the current revision seen before looking, so a publish that lands after
            // the look still wakes `changed()` below.
            let published = *self.published.borrow_and_update();
            match self.hub.read(&self.prefix, self.cursor) {
                RingRead::Events(events, cursor) => {
                    self.live = true;
                    self.cursor = cursor;
                    if !events.is_empty() {
                        // Copied here, outside the ring's lock, so the writer never waits
                        // for a watcher's memcpy.
                        return Some(events.into_iter().map(|e| Ok(Event::clone(&e))).collect());
                    }
                    if self.cursor < published {
                        continue;
                    }
                    if self.published.changed().await.is_err() {
                        return self.end(StoreError::Internal(format!(
                            "sqlite store closed while watching {}",
                            self.prefix
                        )));
                    }
                }
                RingRead::Behind if self.live => {
                    tracing::debug!(prefix = %self.prefix, cursor = self.cursor, "watcher lagged");
                    return self.end(StoreError::WatchLagged {
                        prefix: self.prefix.clone(),
                    });
                }
                RingRead::Behind => {
                    let prefix = self.prefix.clone();
                    let after = self.cursor;
                    let history = self
                        .reads
                        .run(move |tx, path| read::history(tx, path, &prefix, after, STEP_EVENTS))
                        .await;
                    match history {
                        Ok((events, cursor)) => {
                            self.cursor = cursor;
                            if !events.is_empty() {
                                return Some(events.into_iter().map(Ok).collect());
                            }
                        }
                        Err(e) => return self.end(e),
                    }
                }
            }
        }
    }

    fn end(&mut self, error: StoreError) -> Option<Vec<Result<Event>>> {
        self.done = true;
        Some(vec![Err(error)])
    }
}

/// A watch stream over `prefix` starting after revision `after`; the caller has checked
/// `after` against the compacted revision.
pub(super) fn stream(
    hub: Arc<Hub>,
    reads: Arc<ReadPool>,
    prefix: &str,
    after: Revision,
) -> WatchStream {
    let watcher = Watcher {
        published: hub.published.clone(),
        hub,
        reads,
        prefix: prefix.to_owned(),
        cursor: after.max(0),
        live: false,
        done: false,
    };
    futures::stream::unfold(watcher, |mut w| async move {
        let batch = w.step().await?;
        Some((futures::stream::iter(batch), w))
    })
    .flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::{Hub, Ring, RingRead};
    use crate::store::{Event, EventType, KeyValue};

    fn event(rev: i64, key: &str, value_len: usize) -> Event {
        Event {
            kind: EventType::Create,
            kv: KeyValue {
                key: key.to_owned(),
                value: vec![b'x'; value_len],
                create_revision: rev,
                mod_revision: rev,
            },
            prev: None,
        }
    }

    fn revisions(read: RingRead) -> Option<(Vec<i64>, i64)> {
        match read {
            RingRead::Events(events, cursor) => {
                Some((events.iter().map(|e| e.revision()).collect(), cursor))
            }
            RingRead::Behind => None,
        }
    }

    #[test]
    fn ring_keeps_the_newest_events_within_its_bounds() {
        let (hub, tx) = Hub::new(Ring::new(10, 4, usize::MAX));
        let batch = (11..=16).map(|r| event(r, if r % 2 == 0 { "/a/x" } else { "/b/x" }, 8));
        hub.publish(batch.collect(), &tx);
        assert_eq!(*tx.borrow(), 16);
        // Only 13..=16 are held: a cursor before 12 must go to disk.
        assert!(revisions(hub.read("", 11)).is_none());
        assert_eq!(
            revisions(hub.read("", 12)),
            Some((vec![13, 14, 15, 16], 16))
        );
        // Non-matching events still advance the cursor.
        assert_eq!(revisions(hub.read("/a/", 12)), Some((vec![14, 16], 16)));
        assert_eq!(revisions(hub.read("/a/", 16)), Some((vec![], 16)));
        assert_eq!(revisions(hub.read("/a/", 20)), Some((vec![], 20)));

        let (hub, tx) = Hub::new(Ring::new(0, 100, 1000));
        hub.publish((1..=10).map(|r| event(r, "/k", 300)).collect(), &tx);
        let held = revisions(hub.read("", 9)).map(|(revs, _)| revs.len());
        assert_eq!(held, Some(1));
        assert!(revisions(hub.read("", 7)).is_none());
    }
}
