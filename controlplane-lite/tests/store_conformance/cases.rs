//! The backend-independent cases. Each gets a fresh, empty store. Absolute revision numbers
//! differ between backends (etcd starts at 1), so cases only compare revisions they got back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_controlplane::store::{
    DynStore, Event, EventType, KeyValue, Revision, StoreError, WatchStream,
};

const WAIT: Duration = Duration::from_secs(20);

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn kv(key: &str, value: &str, create: Revision, modified: Revision) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: v(value),
        create_revision: create,
        mod_revision: modified,
    }
}

pub async fn next_event(w: &mut WatchStream) -> Event {
    match tokio::time::timeout(WAIT, w.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {WAIT:?}"),
    }
}

pub async fn take_events(w: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(w).await);
    }
    out
}

/// Reads `n` events without keeping them; returns the last one's revision.
pub async fn drain_events(w: &mut WatchStream, n: usize) -> Revision {
    let mut last = 0;
    for _ in 0..n {
        let rev = next_event(w).await.revision();
        assert!(rev > last, "out of order: {rev} after {last}");
        last = rev;
    }
    last
}

/// Asserts that nothing arrives on `w` for a while.
pub async fn assert_quiet(w: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        panic!("expected no more watch items, got {item:?}");
    }
}

/// Asserts that watching `prefix` after `after` fails with `Compacted`, either from the
/// call or as the stream's first item.
pub async fn expect_watch_compacted(s: &DynStore, prefix: &str, after: Revision) {
    match s.watch(prefix, after).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, after),
        Err(e) => panic!("expected Compacted from watch after {after}, got {e}"),
        Ok(mut w) => match tokio::time::timeout(WAIT, w.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {
                assert!(w.next().await.is_none(), "watch goes on after Compacted");
            }
            other => panic!("expected Compacted from watch after {after}, got {other:?}"),
        },
    }
}

/// Walks a paginated list, checking the pagination contract on the way.
pub async fn walk(
    s: &DynStore,
    prefix: &str,
    limit: usize,
    revision: Option<Revision>,
) -> (Vec<KeyValue>, Revision) {
    let mut out: Vec<KeyValue> = Vec::new();
    let mut at = revision;
    let mut pages = 0;
    loop {
        let after = out.last().map(|kv| kv.key.clone());
        let page = s
            .list(prefix, after.as_deref(), limit, at)
            .await
            .expect("list page");
        pages += 1;
        assert!(page.kvs.len() <= limit, "page longer than the limit");
        if let Some(at) = at {
            assert_eq!(page.revision, at, "page served at another revision");
        }
        at = Some(page.revision);
        let more = page.more;
        if more {
            assert_eq!(page.kvs.len(), limit, "short page claims more");
        }
        out.extend(page.kvs);
        if !more {
            break;
        }
        assert!(pages < 10_000, "pagination does not end");
    }
    (out, at.unwrap_or_default())
}

/// A small deterministic generator, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub async fn create_get_duplicate(s: DynStore) {
    let (missing, rev0) = s.get("/t/a").await.unwrap();
    assert!(missing.is_none());
    assert_eq!(rev0, s.current_revision().await.unwrap());

    let r1 = s.create("/t/a", v("one")).await.unwrap();
    assert!(r1 > rev0);
    let (got, served) = s.get("/t/a").await.unwrap();
    assert_eq!(got, Some(kv("/t/a", "one", r1, r1)));
    assert!(served >= r1);

    match s.create("/t/a", v("two")).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, "/t/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A failed create writes nothing and uses no revision.
    assert_eq!(s.current_revision().await.unwrap(), r1);
    assert_eq!(
        s.get("/t/a").await.unwrap().0,
        Some(kv("/t/a", "one", r1, r1))
    );
    // Prefix-related keys are distinct keys.
    let r2 = s.create("/t/ab", v("x")).await.unwrap();
    assert!(r2 > r1);
    assert!(s.get("/t/").await.unwrap().0.is_none());
}

pub async fn update_compare_and_swap(s: DynStore) {
    let r1 = s.create("/u/a", v("1")).await.unwrap();
    let r2 = s.update("/u/a", v("2"), r1).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(
        s.get("/u/a").await.unwrap().0,
        Some(kv("/u/a", "2", r1, r2))
    );

    match s.update("/u/a", v("3"), r1).await {
        Err(StoreError::Conflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(key, "/u/a");
            assert_eq!(expected, r1);
            assert_eq!(actual, r2);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    for expected in [r1, 0] {
        match s.update("/u/missing", v("x"), expected).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "/u/missing"),
            other => panic!("expected NotFound (expected={expected}), got {other:?}"),
        }
    }
    assert!(s.get("/u/missing").await.unwrap().0.is_none());
    assert_eq!(s.current_revision().await.unwrap(), r2);
    assert_eq!(
        s.get("/u/a").await.unwrap().0,
        Some(kv("/u/a", "2", r1, r2))
    );

    // Same value again is still a change with a new revision.
    let r3 = s.update("/u/a", v("2"), r2).await.unwrap();
    assert!(r3 > r2);
}

pub async fn delete_with_and_without_expected(s: DynStore) {
    let ra = s.create("/d/a", v("a")).await.unwrap();
    let rb = s.create("/d/b", v("b")).await.unwrap();

    match s.delete("/d/a", Some(rb)).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!(expected, rb);
            assert_eq!(actual, ra);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(s.get("/d/a").await.unwrap().0.is_some());

    let (rd, old) = s.delete("/d/a", Some(ra)).await.unwrap();
    assert!(rd > rb);
    assert_eq!(old, kv("/d/a", "a", ra, ra));
    assert!(s.get("/d/a").await.unwrap().0.is_none());

    let (rd2, old) = s.delete("/d/b", None).await.unwrap();
    assert!(rd2 > rd);
    assert_eq!(old, kv("/d/b", "b", rb, rb));
    for expected in [None, Some(rb)] {
        match s.delete("/d/b", expected).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "/d/b"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert_eq!(s.current_revision().await.unwrap(), rd2);

    // A re-created key starts a new life.
    let ra2 = s.create("/d/a", v("again")).await.unwrap();
    assert!(ra2 > rd2);
    assert_eq!(
        s.get("/d/a").await.unwrap().0,
        Some(kv("/d/a", "again", ra2, ra2))
    );
}

pub async fn list_prefix_and_pagination(s: DynStore) {
    let mut want = Vec::new();
    // Created out of order; lists come back in key order.
    for i in (0..25).rev() {
        let key = format!("/p/a/{i:02}");
        let rev = s.create(&key, v(&format!("v{i}"))).await.unwrap();
        want.push(kv(&key, &format!("v{i}"), rev, rev));
    }
    want.sort_by(|a, b| a.key.cmp(&b.key));
    // Keys that share characters with the prefix but are not under it.
    s.create("/p/a", v("parent")).await.unwrap();
    s.create("/p/ab", v("sibling")).await.unwrap();
    s.create("/p/b/x", v("other")).await.unwrap();
    let head = s.current_revision().await.unwrap();

    let all = s.list("/p/a/", None, 0, None).await.unwrap();
    assert_eq!(all.kvs, want);
    assert!(!all.more);
    assert_eq!(all.revision, head);

    for (limit, more) in [(24, true), (25, false), (26, false), (1, true)] {
        let page = s.list("/p/a/", None, limit, None).await.unwrap();
        assert_eq!(page.kvs, want[..limit.min(25)].to_vec(), "limit {limit}");
        assert_eq!(page.more, more, "more with limit {limit}");
    }

    let (walked, _) = walk(&s, "/p/a/", 7, None).await;
    assert_eq!(walked, want);
    let (walked, _) = walk(&s, "/p/a/", 5, None).await;
    assert_eq!(walked, want);

    let page = s.list("/p/a/", Some("/p/a/09"), 3, None).await.unwrap();
    let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a/10", "/p/a/11", "/p/a/12"]);
    assert!(page.more);
    // start_after need not be a stored key, and may lie outside the prefix.
    let page = s.list("/p/a/", Some("/p/a/09x"), 1, None).await.unwrap();
    assert_eq!(page.kvs[0].key, "/p/a/10");
    let page = s.list("/p/a/", Some("/a"), 0, None).await.unwrap();
    assert_eq!(page.kvs, want);
    let page = s.list("/p/a/", Some("/p/a/24"), 0, None).await.unwrap();
    assert!(page.kvs.is_empty() && !page.more);
    let page = s.list("/p/a/", Some("/q"), 0, None).await.unwrap();
    assert!(page.kvs.is_empty() && !page.more);
    assert_eq!(page.revision, head);

    let everything = s.list("", None, 0, None).await.unwrap();
    assert_eq!(everything.kvs.len(), 28);
    let under_p = s.list("/p/", None, 0, None).await.unwrap();
    let keys: Vec<_> = under_p.kvs.iter().map(|kv| kv.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.first().map(String::as_str), Some("/p/a"));
    assert!(
        s.list("/nothing/", None, 0, None)
            .await
            .unwrap()
            .kvs
            .is_empty()
    );
}

/// Applies a pseudo-random sequence of writes, remembers the expected state after each,
/// then reads every one of those revisions back, whole and paginated.
pub async fn list_at_every_past_revision(s: DynStore) {
    s.create("/m", v("outside")).await.unwrap();
    s.create("/n/x", v("outside")).await.unwrap();
    let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut snapshots = vec![(s.current_revision().await.unwrap(), model.clone())];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..90 {
        let key = format!("/m/k{}", rng.next() % 9);
        let value = format!("value {i}");
        let rev = match model.get(&key).cloned() {
            None => {
                let rev = s.create(&key, v(&value)).await.unwrap();
                model.insert(key.clone(), kv(&key, &value, rev, rev));
                rev
            }
            Some(cur) if rng.next().is_multiple_of(3) => {
                let (rev, old) = s.delete(&key, Some(cur.mod_revision)).await.unwrap();
                assert_eq!(old, cur);
                model.remove(&key);
                rev
            }
            Some(cur) => {
                let rev = s.update(&key, v(&value), cur.mod_revision).await.unwrap();
                model.insert(key.clone(), kv(&key, &value, cur.create_revision, rev));
                rev
            }
        };
        // An unrelated write between, so snapshots also land on revisions outside the prefix.
        if i % 10 == 0 {
            let (cur, _) = s.get("/n/x").await.unwrap();
            let cur = cur.expect("/n/x exists");
            s.update("/n/x", v(&value), cur.mod_revision).await.unwrap();
        }
        snapshots.push((rev, model.clone()));
    }
    let head = s.current_revision().await.unwrap();
    snapshots.push((head, model.clone()));

    for (rev, snapshot) in &snapshots {
        let want: Vec<KeyValue> = snapshot.values().cloned().collect();
        let all = s.list("/m/", None, 0, Some(*rev)).await.unwrap();
        assert_eq!(all.revision, *rev);
        assert_eq!(all.kvs, want, "list at revision {rev}");
        assert!(!all.more);
        let (paged, at) = walk(&s, "/m/", 2, Some(*rev)).await;
        assert_eq!(at, *rev);
        assert_eq!(paged, want, "paginated list at revision {rev}");
        // A page starting in the middle.
        if let Some(mid) = want.get(want.len() / 2) {
            let page = s.list("/m/", Some(&mid.key), 2, Some(*rev)).await.unwrap();
            let tail: Vec<KeyValue> = want
                .iter()
                .filter(|kv| kv.key > mid.key)
                .take(2)
                .cloned()
                .collect();
            assert_eq!(page.kvs, tail, "page after {} at {rev}", mid.key);
        }
    }
    // The latest state, asked for without a revision.
    let latest = s.list("/m/", None, 0, None).await.unwrap();
    assert_eq!(latest.kvs, model.values().cloned().collect::<Vec<_>>());
}

pub async fn list_future_revision(s: DynStore) {
    s.create("/f/a", v("a")).await.unwrap();
    let head = s.current_revision().await.unwrap();
    match s.list("/f/", None, 0, Some(head + 100)).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!(requested, head + 100);
            assert_eq!(current, head);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    let at_head = s.list("/f/", None, 0, Some(head)).await.unwrap();
    assert_eq!(at_head.kvs.len(), 1);
    assert_eq!(at_head.revision, head);
}

pub async fn count_by_prefix(s: DynStore) {
    assert_eq!(s.count("/c/").await.unwrap(), 0);
    for i in 0..5 {
        s.create(&format!("/c/x/{i}"), v("x")).await.unwrap();
    }
    for i in 0..3 {
        s.create(&format!("/c/y/{i}"), v("y")).await.unwrap();
    }
    s.create("/c/xy", v("not under /c/x/")).await.unwrap();
    s.delete("/c/x/2", None).await.unwrap();
    assert_eq!(s.count("/c/x/").await.unwrap(), 4);
    assert_eq!(s.count("/c/y/").await.unwrap(), 3);
    assert_eq!(s.count("/c/").await.unwrap(), 8);
    assert_eq!(s.count("").await.unwrap(), 8);
    assert_eq!(s.count("/nothing/").await.unwrap(), 0);
}

pub async fn watch_history_from_zero_and_middle(s: DynStore) {
    let start = s.current_revision().await.unwrap();
    let r1 = s.create("/w/a", v("a1")).await.unwrap();
    let r2 = s.update("/w/a", v("a2"), r1).await.unwrap();
    let r3 = s.create("/w/b", v("b1")).await.unwrap();
    let (r4, _) = s.delete("/w/a", Some(r2)).await.unwrap();
    s.create("/x/other", v("not watched")).await.unwrap();

    let want = vec![
        Event {
            kind: EventType::Create,
            kv: kv("/w/a", "a1", r1, r1),
            prev: None,
        },
        Event {
            kind: EventType::Update,
            kv: kv("/w/a", "a2", r1, r2),
            prev: Some(kv("/w/a", "a1", r1, r1)),
        },
        Event {
            kind: EventType::Create,
            kv: kv("/w/b", "b1", r3, r3),
            prev: None,
        },
        Event {
            kind: EventType::Delete,
            kv: kv("/w/a", "a2", r1, r4),
            prev: Some(kv("/w/a", "a2", r1, r2)),
        },
    ];
    for after in [0, start] {
        let mut w = s.watch("/w/", after).await.unwrap();
        assert_eq!(take_events(&mut w, 4).await, want, "watch after {after}");
        assert_quiet(&mut w).await;
    }
    let mut w = s.watch("/w/", r2).await.unwrap();
    assert_eq!(take_events(&mut w, 2).await, want[2..].to_vec());
    let mut w4 = s.watch("/w/", r4).await.unwrap();

    // History then live, with nothing lost or repeated at the seam.
    let r5 = s.create("/w/c", v("c1")).await.unwrap();
    for w in [&mut w, &mut w4] {
        let e = next_event(w).await;
        assert_eq!(e.kv, kv("/w/c", "c1", r5, r5));
        assert_eq!(e.kind, EventType::Create);
        assert_eq!(e.revision(), r5);
        assert_quiet(w).await;
    }
}

pub async fn watch_live_in_order(s: DynStore) {
    let r0 = s.create("/l/k", v("0")).await.unwrap();
    let mut w = s.watch("/l/", r0).await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut rev = r0;
            let mut revs = Vec::new();
            for i in 1..=200 {
                rev = s.update("/l/k", v(&i.to_string()), rev).await.unwrap();
                revs.push(rev);
            }
            revs
        })
    };
    let events = take_events(&mut w, 200).await;
    let revs = writer.await.unwrap();
    let mut prev_rev = r0;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.kind, EventType::Update);
        assert_eq!(e.kv.value, v(&(i + 1).to_string()));
        assert_eq!(e.revision(), revs[i]);
        assert_eq!(e.kv.create_revision, r0);
        let prev = e.prev.as_ref().expect("update carries prev");
        assert_eq!(prev.mod_revision, prev_rev);
        assert_eq!(prev.value, v(&i.to_string()));
        prev_rev = e.revision();
    }
    assert_quiet(&mut w).await;
}

pub async fn watch_prefix_filter(s: DynStore) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/f/a/", start).await.unwrap();
    let mut everything = s.watch("", start).await.unwrap();
    let r1 = s.create("/f/a/1", v("1")).await.unwrap();
    s.create("/f/b/1", v("x")).await.unwrap();
    s.create("/f/ab", v("x")).await.unwrap();
    s.create("/f/a", v("x")).await.unwrap();
    let r2 = s.create("/f/a/2", v("2")).await.unwrap();
    let got = take_events(&mut w, 2).await;
    assert_eq!(got[0].kv, kv("/f/a/1", "1", r1, r1));
    assert_eq!(got[1].kv, kv("/f/a/2", "2", r2, r2));
    assert_quiet(&mut w).await;
    let all = take_events(&mut everything, 5).await;
    let keys: Vec<_> = all.iter().map(|e| e.kv.key.as_str()).collect();
    assert_eq!(keys, ["/f/a/1", "/f/b/1", "/f/ab", "/f/a", "/f/a/2"]);
    assert_quiet(&mut everything).await;
}

pub async fn compaction(s: DynStore) {
    assert_eq!(s.compacted_revision().await.unwrap(), 0);
    let r1 = s.create("/k/a", v("1")).await.unwrap();
    let r2 = s.update("/k/a", v("2"), r1).await.unwrap();
    let rb = s.create("/k/b", v("b")).await.unwrap();
    let (rbd, _) = s.delete("/k/b", None).await.unwrap();
    let r3 = s.update("/k/a", v("3"), r2).await.unwrap();
    let r4 = s.update("/k/a", v("4"), r3).await.unwrap();
    let r5 = s.create("/k/c", v("c")).await.unwrap();
    assert!(r1 < r2 && r2 < rb && rb < rbd && rbd < r3 && r3 < r4 && r4 < r5);

    s.compact(r3).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), r3);

    for after in [0, r1, r2] {
        expect_watch_compacted(&s, "/k/", after).await;
    }
    match s.list("/k/", None, 0, Some(r2)).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, r2);
            assert!(compacted >= r3);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // The compacted revision itself and everything after it stay readable.
    let at = s.list("/k/", None, 0, Some(r3)).await.unwrap();
    assert_eq!(at.kvs, vec![kv("/k/a", "3", r1, r3)]);
    let at = s.list("/k/", None, 0, Some(r4)).await.unwrap();
    assert_eq!(at.kvs, vec![kv("/k/a", "4", r1, r4)]);
    let latest = s.list("/k/", None, 0, None).await.unwrap();
    assert_eq!(
        latest.kvs,
        vec![kv("/k/a", "4", r1, r4), kv("/k/c", "c", r5, r5)]
    );
    assert_eq!(s.count("/k/").await.unwrap(), 2);

    let mut w = s.watch("/k/", r3).await.unwrap();
    let got = take_events(&mut w, 2).await;
    assert_eq!(got[0].kv, kv("/k/a", "4", r1, r4));
    assert_eq!(got[0].prev, Some(kv("/k/a", "3", r1, r3)));
    assert_eq!(got[1].kv, kv("/k/c", "c", r5, r5));

    // Older or equal compactions are no-ops; the future is refused.
    s.compact(r2).await.unwrap();
    s.compact(r3).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), r3);
    let head = s.current_revision().await.unwrap();
    match s.compact(head + 10).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, head + 10),
        other => panic!("expected FutureRevision, got {other:?}"),
    }

    // Writes go on after compaction, and deleting a key whose history was compacted still
    // reports its last value.
    let (rd, old) = s.delete("/k/a", Some(r4)).await.unwrap();
    assert_eq!(old, kv("/k/a", "4", r1, r4));
    let e = next_event(&mut w).await;
    assert_eq!(e.kind, EventType::Delete);
    assert_eq!(e.kv, kv("/k/a", "4", r1, rd));

    // Compacting everything keeps the current values.
    s.compact(rd).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), rd);
    assert_eq!(
        s.list("/k/", None, 0, None).await.unwrap().kvs,
        vec![kv("/k/c", "c", r5, r5)]
    );
    assert_eq!(
        s.list("/k/", None, 0, Some(rd)).await.unwrap().kvs,
        vec![kv("/k/c", "c", r5, r5)]
    );
    expect_watch_compacted(&s, "/k/", r4).await;
    let r6 = s.update("/k/c", v("c2"), r5).await.unwrap();
    let mut w = s.watch("/k/", rd).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(e.kv, kv("/k/c", "c2", r5, r6));
    assert_eq!(e.prev, Some(kv("/k/c", "c", r5, r5)));
}

pub async fn revisions_strictly_increasing(s: DynStore) {
    let mut last = s.current_revision().await.unwrap();
    let mut check = |rev: Revision| {
        assert!(rev > last, "revision {rev} after {last}");
        last = rev;
    };
    let mut mods = HashMap::new();
    for i in 0..30 {
        let key = format!("/r/{}", i % 7);
        let rev = match mods.get(&key).copied() {
            None => s.create(&key, v("c")).await.unwrap(),
            Some(m) if i % 4 == 0 => s.delete(&key, Some(m)).await.unwrap().0,
            Some(m) => s.update(&key, v("u"), m).await.unwrap(),
        };
        check(rev);
        if i % 4 == 0 && mods.contains_key(&key) {
            mods.remove(&key);
        } else {
            mods.insert(key, rev);
        }
        assert_eq!(s.current_revision().await.unwrap(), rev);
    }
}

/// Writes `per_writer` creates from each of `writers` tasks and returns the revisions
/// and the wall time they took.
pub async fn concurrent_creates(
    s: &DynStore,
    prefix: &str,
    writers: usize,
    per_writer: usize,
    value: &[u8],
) -> (Vec<(String, Revision)>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let s = s.clone();
            let prefix = prefix.to_owned();
            let value = value.to_vec();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let key = format!("{prefix}{w:02}/{i:04}");
                    let rev = s.create(&key, value.clone()).await.unwrap();
                    out.push((key, rev));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

pub async fn concurrent_writers(s: DynStore) {
    let (acks, elapsed) = concurrent_creates(&s, "/cc/", 16, 100, b"payload").await;
    let revs: BTreeSet<Revision> = acks.iter().map(|(_, r)| *r).collect();
    assert_eq!(revs.len(), 1600, "revisions are not distinct");
    assert_eq!(s.count("/cc/").await.unwrap(), 1600);
    let head = s.current_revision().await.unwrap();
    assert!(revs.last().is_some_and(|max| *max <= head));
    for (key, rev) in acks.iter().step_by(37) {
        let (got, _) = s.get(key).await.unwrap();
        assert_eq!(got.map(|kv| kv.mod_revision), Some(*rev));
    }
    println!(
        "1600 creates from 16 writers in {elapsed:?} ({:.0}/s)",
        1600.0 / elapsed.as_secs_f64()
    );
}

pub async fn concurrent_compare_and_swap(s: DynStore) {
    let key = "/cas/counter";
    s.create(key, v("0")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..20 {
                    loop {
                        let (cur, _) = s.get(key).await.unwrap();
                        let cur = cur.expect("counter exists");
                        let n: u64 = String::from_utf8(cur.value).unwrap().parse().unwrap();
                        match s
                            .update(key, v(&(n + 1).to_string()), cur.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let (cur, _) = s.get(key).await.unwrap();
    assert_eq!(cur.map(|kv| kv.value), Some(v("320")));
    println!("320 increments by 16 racing writers, {conflicts} conflicts retried");
}

pub async fn watcher_sees_every_concurrent_write(s: DynStore) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/ws/", start).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..25 {
                    let key = format!("/ws/{t:02}/{i:02}");
                    let c = s.create(&key, v("c")).await.unwrap();
                    let u = s.update(&key, v("u"), c).await.unwrap();
                    revs.push((key, c, u));
                }
                revs
            })
        })
        .collect();
    let events = take_events(&mut w, 800).await;
    let mut written = BTreeMap::new();
    for t in tasks {
        for (key, c, u) in t.await.unwrap() {
            written.insert(c, (key.clone(), EventType::Create));
            written.insert(u, (key, EventType::Update));
        }
    }
    let mut last = start;
    for e in &events {
        assert!(
            e.revision() > last,
            "out of order: {} after {last}",
            e.revision()
        );
        last = e.revision();
        let (key, kind) = written
            .get(&e.revision())
            .unwrap_or_else(|| panic!("event at {} was never written", e.revision()));
        assert_eq!(&e.kv.key, key);
        assert_eq!(e.kind, *kind);
        if e.kind == EventType::Update {
            let prev = e.prev.as_ref().expect("update has prev");
            assert_eq!(prev.mod_revision, e.kv.create_revision);
        }
    }
    assert_eq!(events.len(), written.len());
    assert_quiet(&mut w).await;
}
