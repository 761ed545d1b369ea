//! A cache of upstream answers that honours their TTLs.
//!
//! A positive answer lives as long as its shortest answer TTL, a negative one (NXDOMAIN or
//! NODATA) as long as its SOA allows (the smaller of the SOA's TTL and its minimum), both
//! capped; served copies have their TTLs lowered by the time spent in the cache. Answers
//! without a usable TTL (TTL 0, negative without SOA, server failures) are not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// Lowercase name, type, class.
type CacheKey = (Name, RecordType, DNSClass);

struct Entry {
    message: Message,
    stored: Instant,
    ttl: Duration,
}

pub struct Cache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
    max_ttl: Duration,
    capacity: usize,
}

impl Cache {
    pub fn new(max_ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_ttl,
            capacity,
        }
    }

    fn key(name: &Name, qtype: RecordType, class: DNSClass) -> CacheKey {
        (name.to_lowercase(), qtype, class)
    }

    /// A cached answer, its TTLs lowered by its age.
    pub fn get(&self, name: &Name, qtype: RecordType, class: DNSClass) -> Option<Message> {
        self.get_at(name, qtype, class, Instant::now())
    }

    fn get_at(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
        now: Instant,
    ) -> Option<Message> {
        let key = Self::key(name, qtype, class);
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get(&key)?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= entry.ttl {
            entries.remove(&key);
            return None;
        }
        let mut message = entry.message.clone();
        let elapsed = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        let remaining = u32::try_from((entry.ttl - age).as_secs()).unwrap_or(u32::MAX);
        for r in records_mut(&mut message) {
            // Never promise more than the cache will keep it.
            r.ttl = r.ttl.saturating_sub(elapsed).min(remaining);
        }
        Some(message)
    }

    /// Lowers the TTLs of a fresh upstream answer to the cache's cap, as the cached copies
    /// will be, so clients see no jump between the first answer and later ones.
    pub fn cap(&self, message: &mut Message) {
        let max = u32::try_from(self.max_ttl.as_secs()).unwrap_or(u32::MAX);
        for r in records_mut(message) {
            r.ttl = r.ttl.min(max);
        }
    }

    /// Keeps `message` (an upstream answer to name/qtype/class) for as long as its TTLs say.
    pub fn put(&self, name: &Name, qtype: RecordType, class: DNSClass, message: &Message) {
        self.put_at(name, qtype, class, message, Instant::now());
    }

    fn put_at(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
        message: &Message,
        now: Instant,
    ) {
        let Some(ttl) = cache_ttl(message) else {
            return;
        };
        let ttl = ttl.min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now.saturating_duration_since(e.stored) < e.ttl);
            if entries.len() >= self.capacity {
                // Still full of live answers: make room by forgetting an arbitrary half.
                let drop: Vec<CacheKey> = entries
                    .keys()
                    .take(entries.len() / 2 + 1)
                    .cloned()
                    .collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            Self::key(name, qtype, class),
            Entry {
                message: message.clone(),
                stored: now,
                ttl,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn records_mut(message: &mut Message) -> impl Iterator<Item = &mut hickory_proto::rr::Record> {
    message
        .answers
        .iter_mut()
        .chain(message.authorities.iter_mut())
        .chain(message.additionals.iter_mut())
}

/// How long an answer may be kept, or None when it may not.
fn cache_ttl(message: &Message) -> Option<Duration> {
    let code = message.metadata.response_code;
    if message.metadata.truncation {
        return None;
    }
    let secs = match code {
        ResponseCode::NoError if !message.answers.is_empty() => {
            message.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            message.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?
        }
        _ => return None,
    };
    Some(Duration::from_secs(u64::from(secs)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn answer(ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            name("example.org."),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        m
    }

    #[test]
    fn answers_live_as_long_as_their_ttl_and_age() {
        let c = Cache::new(Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        let n = name("Example.ORG.");
        c.put_at(&n, RecordType::A, DNSClass::IN, &answer(10), t0);
        let got = c
            .get_at(
                &name("example.org."),
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(4),
            )
            .unwrap();
        assert_eq!(got.answers[0].ttl, 6);
        assert!(c.get_at(&n, RecordType::AAAA, DNSClass::IN, t0).is_none());
        assert!(
            c.get_at(
                &n,
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(10)
            )
            .is_none()
        );
    }

    #[test]
    fn ttls_are_capped_and_zero_is_not_kept() {
        let c = Cache::new(Duration::from_secs(30), 100);
        let t0 = Instant::now();
        let n = name("example.org.");
        c.put_at(&n, RecordType::A, DNSClass::IN, &answer(3600), t0);
        assert!(
            c.get_at(
                &n,
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(29)
            )
            .is_some()
        );
        assert!(
            c.get_at(
                &n,
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(30)
            )
            .is_none()
        );
        c.put_at(&n, RecordType::A, DNSClass::IN, &answer(0), t0);
        assert!(c.is_empty());
    }

    #[test]
    fn negative_answers_live_as_long_as_their_soa_allows() {
        let c = Cache::new(Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        let n = name("missing.example.org.");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_authority(Record::from_rdata(
            name("example.org."),
            300,
            RData::SOA(SOA::new(
                name("ns.example.org."),
                name("h.example.org."),
                1,
                1,
                1,
                1,
                60,
            )),
        ));
        c.put_at(&n, RecordType::A, DNSClass::IN, &m, t0);
        assert!(
            c.get_at(
                &n,
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(59)
            )
            .is_some()
        );
        assert!(
            c.get_at(
                &n,
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(60)
            )
            .is_none()
        );

        let mut servfail = Message::new(1, MessageType::Response, OpCode::Query);
        servfail.metadata.response_code = ResponseCode::ServFail;
        c.put_at(&name("x.org."), RecordType::A, DNSClass::IN, &servfail, t0);
        assert!(
            c.get_at(&name("x.org."), RecordType::A, DNSClass::IN, t0)
                .is_none()
        );
    }

    #[test]
    fn a_full_cache_makes_room() {
        let c = Cache::new(Duration::from_secs(3600), 4);
        for i in 0..10 {
            c.put(
                &name(&format!("n{i}.org.")),
                RecordType::A,
                DNSClass::IN,
                &answer(60),
            );
        }
        assert!(c.len() <= 4);
        assert!(
            c.get(&name("n9.org."), RecordType::A, DNSClass::IN)
                .is_some()
        );
    }
}
