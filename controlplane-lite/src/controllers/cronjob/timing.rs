//! When a CronJob should start its next Job: the most recent unmet schedule time since the
//! last one (or the CronJob's creation), within `startingDeadlineSeconds`, and how long to
//! wait for the one after — as kube-controller-manager computes them.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::CronJob;

use super::schedule::Schedule;
use crate::controllers::clock;

/// How many schedule times were missed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: a clock far off, or a controller down for long.
    Many,
}

/// Woken a little after the scheduled time, so that it has surely passed.
const NEXT_DELTA: Duration = Duration::from_millis(100);

pub struct Recent {
    /// The time counting starts from (last schedule, creation, or the starting deadline).
    pub earliest: Timestamp,
    /// The latest schedule time not after now, since `earliest`.
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

fn earliest(cj: &CronJob) -> Timestamp {
    cj.status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

fn starting_deadline(cj: &CronJob) -> Option<i64> {
    cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
}

/// The most recent schedule time at or before `now`.
pub fn most_recent(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    zone: &TimeZone,
    within_deadline: bool,
) -> Result<Recent, String> {
    let mut from = earliest(cj);
    if within_deadline && let Some(sds) = starting_deadline(cj) {
        // Nothing before the deadline will be started anyway.
        let deadline = now
            .checked_sub(SignedDuration::from_secs(sds))
            .unwrap_or(now);
        if deadline > from {
            from = deadline;
        }
    }
    let too_close = || "time difference between two schedules is less than 1 second".to_string();
    let none = |most_recent| Recent {
        earliest: from,
        most_recent,
        missed: Missed::None,
    };
    let Some(t1) = sched.next(from, zone) else {
        return Err(too_close());
    };
    let Some(t2) = sched.next(t1, zone) else {
        return Err(too_close());
    };
    if now < t1 {
        return Ok(none(None));
    }
    if now < t2 {
        return Ok(none(Some(t1)));
    }
    let between = t2.duration_since(t1).as_secs_f64().round() as i64;
    if between < 1 {
        return Err(too_close());
    }
    // An estimate, as upstream makes it: how many intervals fit since the first miss.
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    let start = t1
        .checked_add(SignedDuration::from_secs((missed_count - 2) * between))
        .unwrap_or(t1);
    let mut latest = None;
    let mut t = sched.next(start, zone);
    while let Some(x) = t {
        if x > now {
            break;
        }
        latest = Some(x);
        t = sched.next(x, zone);
    }
    let missed = match missed_count {
        n if n > 100 => Missed::Many,
        n if n > 0 => Missed::Few,
        _ => Missed::None,
    };
    Ok(Recent {
        earliest: from,
        most_recent: latest,
        missed,
    })
}

/// How long until the schedule time after the most recent one (plus a little).
pub fn until_next(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    zone: &TimeZone,
) -> Option<Duration> {
    let base = match most_recent(cj, now, sched, zone, false) {
        Err(_) => now,
        Ok(r) => match (r.most_recent, r.missed) {
            (Some(t), _) => t,
            (None, Missed::None) => r.earliest,
            (None, _) => now,
        },
    };
    let next = sched.next(base, zone)?;
    Some(clock::until(now, next) + NEXT_DELTA)
}

/// `2006-01-02T15:04:05Z07:00` in the zone, as Go's RFC 3339 layout writes it.
pub fn rfc3339_in(t: Timestamp, zone: &TimeZone) -> String {
    let z = t.to_zoned(zone.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// `Mon, 02 Jan 2006 15:04:05 -0700` (Go's RFC 1123 with a numeric zone), in UTC.
pub fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn cj(created: &str, last: Option<&str>) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "creationTimestamp": created},
            "spec": {"schedule": "", "jobTemplate": {}},
            "status": {"lastScheduleTime": last},
        }))
        .unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn most_recent_and_next() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let z = TimeZone::UTC;
        let c = cj("2025-01-01T00:00:00Z", None);
        let r = most_recent(&c, t("2025-01-01T00:05:00Z"), &s, &z, true).unwrap();
        assert_eq!((r.most_recent, r.missed), (None, Missed::None));
        let r = most_recent(&c, t("2025-01-01T00:15:00Z"), &s, &z, true).unwrap();
        assert_eq!(r.most_recent, Some(t("2025-01-01T00:10:00Z")));
        let r = most_recent(&c, t("2025-01-01T01:15:00Z"), &s, &z, true).unwrap();
        assert_eq!(r.most_recent, Some(t("2025-01-01T01:10:00Z")));
        assert_eq!(r.missed, Missed::Few);
        let r = most_recent(&c, t("2025-01-02T00:00:00Z"), &s, &z, true).unwrap();
        assert_eq!(r.missed, Missed::Many);
        assert_eq!(r.most_recent, Some(t("2025-01-02T00:00:00Z")));
        // From the last schedule time, not creation.
        let c = cj("2025-01-01T00:00:00Z", Some("2025-01-01T00:10:00Z"));
        let r = most_recent(&c, t("2025-01-01T00:15:00Z"), &s, &z, true).unwrap();
        assert_eq!(r.most_recent, None);
        assert_eq!(
            until_next(&c, t("2025-01-01T00:15:00Z"), &s, &z),
            Some(Duration::from_millis(300_100))
        );
        // @every counts from the last time.
        let e = Schedule::parse("@every 90s").unwrap();
        let r = most_recent(&c, t("2025-01-01T00:12:00Z"), &e, &z, true).unwrap();
        assert_eq!(r.most_recent, Some(t("2025-01-01T00:11:30Z")));
        // A schedule that never fires is an error.
        let never = Schedule::parse("0 0 30 2 *").unwrap();
        assert!(most_recent(&c, t("2025-01-01T00:12:00Z"), &never, &z, true).is_err());
    }

    #[test]
    fn time_formats() {
        let at = t("2025-01-01T00:00:00Z");
        assert_eq!(rfc3339_in(at, &TimeZone::UTC), "2025-01-01T00:00:00Z");
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(rfc3339_in(at, &tokyo), "2025-01-01T09:00:00+09:00");
        assert_eq!(rfc1123z(at), "Wed, 01 Jan 2025 00:00:00 +0000");
    }
}
