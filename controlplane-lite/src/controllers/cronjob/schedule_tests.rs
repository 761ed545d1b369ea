#![allow(clippy::unwrap_used)]

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// The next `n` activations after `from`, as RFC 3339 in `tz`.
fn runs(spec: &str, from: &str, tz: &str, n: usize) -> Vec<String> {
    let s = Schedule::parse(spec).unwrap();
    let z = zone(tz);
    let mut t = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next(t, &z).unwrap();
        let zoned = t.to_zoned(z.clone());
        out.push(zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string());
    }
    out
}

fn error(spec: &str) -> String {
    Schedule::parse(spec).unwrap_err().0
}

#[test]
fn field_errors_are_the_libraries_words() {
    assert_eq!(error(""), "empty spec string");
    assert_eq!(
        error("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(
        error("0 * * * * *"),
        "expected exactly 5 fields, found 6: [0 * * * * *]"
    );
    assert_eq!(error("bad"), "expected exactly 5 fields, found 1: [bad]");
    assert_eq!(
        error("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(
        error("* 24 * * *"),
        "end of range (24) above maximum (23): 24"
    );
    assert_eq!(
        error("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(
        error("* * 32 * *"),
        "end of range (32) above maximum (31): 32"
    );
    assert_eq!(
        error("* * * 13 *"),
        "end of range (13) above maximum (12): 13"
    );
    assert_eq!(error("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(
        error("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        error("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(error("1/2/3 * * * *"), "too many slashes: 1/2/3");
    assert_eq!(
        error("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        error("-1 * * * *"),
        "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
    );
    assert_eq!(
        error("* * * foo *"),
        "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax"
    );
    assert_eq!(
        error("*/x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        error("@fortnightly"),
        "unrecognized descriptor: @fortnightly"
    );
    assert_eq!(
        error("@every x"),
        "failed to parse duration @every x: time: invalid duration \"x\""
    );
    assert_eq!(
        error("@every 5"),
        "failed to parse duration @every 5: time: missing unit in duration \"5\""
    );
    assert_eq!(
        error("@every 5d"),
        "failed to parse duration @every 5d: time: unknown unit \"d\" in duration \"5d\""
    );
    assert_eq!(
        error("TZ=Mars/Olympus * * * * *"),
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
    );
    assert_eq!(
        error("* * * jan-foo *"),
        "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax"
    );
}

#[test]
fn accepted_forms() {
    for ok in [
        "* * * * *",
        "0 0 1 1 *",
        "*/5 * * * *",
        "5/20 * * * *",
        "0-59/10 0-23 1-31 1-12 0-6",
        "1,2,,3 * * * *",
        "0 0 ? * ?",
        "0 9 * JAN,Mar-may MON-fri",
        "0 9 * * SUN",
        "+5 * * * *",
        "  0   12  *  *  *  ",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@every 1h30m",
        "@every 1.5s",
        "TZ=UTC 0 0 * * *",
        "CRON_TZ=Asia/Tokyo @daily",
    ] {
        assert!(
            Schedule::parse(ok).is_ok(),
            "{ok}: {:?}",
            Schedule::parse(ok)
        );
    }
}

#[test]
fn every_minute_and_steps() {
    assert_eq!(
        runs("* * * * *", "2025-01-01T00:00:30Z", "UTC", 3),
        [
            "2025-01-01T00:01:00+00:00",
            "2025-01-01T00:02:00+00:00",
            "2025-01-01T00:03:00+00:00"
        ]
    );
    // Exactly on a boundary: strictly after.
    assert_eq!(
        runs("* * * * *", "2025-01-01T00:01:00Z", "UTC", 1),
        ["2025-01-01T00:02:00+00:00"]
    );
    assert_eq!(
        runs("*/15 * * * *", "2025-01-01T00:00:00Z", "UTC", 5),
        [
            "2025-01-01T00:15:00+00:00",
            "2025-01-01T00:30:00+00:00",
            "2025-01-01T00:45:00+00:00",
            "2025-01-01T01:00:00+00:00",
            "2025-01-01T01:15:00+00:00"
        ]
    );
    assert_eq!(
        runs("5/20 * * * *", "2025-01-01T00:00:00Z", "UTC", 4),
        [
            "2025-01-01T00:05:00+00:00",
            "2025-01-01T00:25:00+00:00",
            "2025-01-01T00:45:00+00:00",
            "2025-01-01T01:05:00+00:00"
        ]
    );
    assert_eq!(
        runs("10-30/10 3 * * *", "2025-01-01T00:00:00Z", "UTC", 4),
        [
            "2025-01-01T03:10:00+00:00",
            "2025-01-01T03:20:00+00:00",
            "2025-01-01T03:30:00+00:00",
            "2025-01-02T03:10:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 8,12-13 * * *", "2025-01-01T09:00:00Z", "UTC", 4),
        [
            "2025-01-01T12:00:00+00:00",
            "2025-01-01T13:00:00+00:00",
            "2025-01-02T08:00:00+00:00",
            "2025-01-02T12:00:00+00:00"
        ]
    );
}

#[test]
fn names_of_months_and_days() {
    // 2025-01-01 is a Wednesday.
    assert_eq!(
        runs("0 9 * * MON-fri", "2025-01-03T10:00:00Z", "UTC", 3),
        [
            "2025-01-06T09:00:00+00:00",
            "2025-01-07T09:00:00+00:00",
            "2025-01-08T09:00:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 0 1 jan,Jul *", "2025-02-01T00:00:00Z", "UTC", 3),
        [
            "2025-07-01T00:00:00+00:00",
            "2026-01-01T00:00:00+00:00",
            "2026-07-01T00:00:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 0 * * sun", "2025-01-01T00:00:00Z", "UTC", 2),
        ["2025-01-05T00:00:00+00:00", "2025-01-12T00:00:00+00:00"]
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    // Both restricted: either matches (13th, or any Friday).
    assert_eq!(
        runs("0 0 13 * fri", "2025-06-01T00:00:00Z", "UTC", 4),
        [
            "2025-06-06T00:00:00+00:00",
            "2025-06-13T00:00:00+00:00",
            "2025-06-20T00:00:00+00:00",
            "2025-06-27T00:00:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 0 13 * fri", "2025-06-28T00:00:00Z", "UTC", 2),
        ["2025-07-04T00:00:00+00:00", "2025-07-11T00:00:00+00:00"]
    );
    // One of them a star: both must match (Fridays only).
    assert_eq!(
        runs("0 0 * * fri", "2025-06-01T00:00:00Z", "UTC", 2),
        ["2025-06-06T00:00:00+00:00", "2025-06-13T00:00:00+00:00"]
    );
    // A stepped star is no longer a star: odd days or Sundays.
    assert_eq!(
        runs("0 0 */2 * sun", "2025-06-01T00:00:00Z", "UTC", 3),
        [
            "2025-06-03T00:00:00+00:00",
            "2025-06-05T00:00:00+00:00",
            "2025-06-07T00:00:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 0 */2 * sun", "2025-06-07T00:00:00Z", "UTC", 2),
        ["2025-06-08T00:00:00+00:00", "2025-06-09T00:00:00+00:00"]
    );
}

#[test]
fn month_ends_and_impossible_dates() {
    assert_eq!(
        runs("0 0 31 * *", "2025-01-31T00:00:00Z", "UTC", 3),
        [
            "2025-03-31T00:00:00+00:00",
            "2025-05-31T00:00:00+00:00",
            "2025-07-31T00:00:00+00:00"
        ]
    );
    assert_eq!(
        runs("0 0 29 2 *", "2025-01-01T00:00:00Z", "UTC", 2),
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
    );
    let never = Schedule::parse("0 0 30 2 *").unwrap();
    assert_eq!(never.next(ts("2025-01-01T00:00:00Z"), &TimeZone::UTC), None);
}

#[test]
fn descriptors() {
    let from = "2025-05-14T10:20:30Z";
    assert_eq!(
        runs("@yearly", from, "UTC", 1),
        ["2026-01-01T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@annually", from, "UTC", 1),
        ["2026-01-01T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@monthly", from, "UTC", 2),
        ["2025-06-01T00:00:00+00:00", "2025-07-01T00:00:00+00:00"]
    );
    // 2025-05-14 is a Wednesday; weeks start on Sunday.
    assert_eq!(
        runs("@weekly", from, "UTC", 2),
        ["2025-05-18T00:00:00+00:00", "2025-05-25T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@daily", from, "UTC", 2),
        ["2025-05-15T00:00:00+00:00", "2025-05-16T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@midnight", from, "UTC", 1),
        ["2025-05-15T00:00:00+00:00"]
    );
    assert_eq!(
        runs("@hourly", from, "UTC", 2),
        ["2025-05-14T11:00:00+00:00", "2025-05-14T12:00:00+00:00"]
    );
    assert_eq!(
        runs("@every 1h30m", from, "UTC", 2),
        ["2025-05-14T11:50:30+00:00", "2025-05-14T13:20:30+00:00"]
    );
    // Less than a second counts as one.
    assert_eq!(
        runs("@every 10ms", from, "UTC", 1),
        ["2025-05-14T10:20:31+00:00"]
    );
}

#[test]
fn time_zones() {
    // 09:00 in Tokyo is 00:00 UTC.
    assert_eq!(
        runs("0 9 * * *", "2025-01-01T12:00:00Z", "Asia/Tokyo", 1),
        ["2025-01-02T09:00:00+09:00"]
    );
    // A TZ= prefix wins over the zone given.
    let s = Schedule::parse("TZ=Asia/Tokyo 0 9 * * *").unwrap();
    let t = s.next(ts("2025-01-01T12:00:00Z"), &TimeZone::UTC).unwrap();
    assert_eq!(t, ts("2025-01-02T00:00:00Z"));
    // A half-hour zone.
    assert_eq!(
        runs("0 0 * * *", "2025-01-01T00:00:00Z", "Asia/Kolkata", 1),
        ["2025-01-02T00:00:00+05:30"]
    );
    assert!(load_zone("Europe/Berlin").is_ok());
    assert!(load_zone("").is_ok());
    assert_eq!(
        load_zone("Nowhere/Atall").unwrap_err().0,
        "unknown time zone Nowhere/Atall"
    );
}

#[test]
fn daylight_saving_gap_skips_the_missing_time() {
    // New York springs forward at 02:00 on 2025-03-09: 02:30 does not exist that day.
    assert_eq!(
        runs("30 2 * * *", "2025-03-08T12:00:00Z", "America/New_York", 3),
        [
            "2025-03-10T02:30:00-04:00",
            "2025-03-11T02:30:00-04:00",
            "2025-03-12T02:30:00-04:00"
        ]
    );
    assert_eq!(
        runs("30 2 * * *", "2025-03-08T05:00:00Z", "America/New_York", 2),
        ["2025-03-08T02:30:00-05:00", "2025-03-10T02:30:00-04:00"]
    );
    // Hourly runs are an hour apart in real time across the jump.
    assert_eq!(
        runs("0 * * * *", "2025-03-09T05:30:00Z", "America/New_York", 3),
        [
            "2025-03-09T01:00:00-05:00",
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T04:00:00-04:00"
        ]
    );
    // A daily 03:00 is unaffected.
    assert_eq!(
        runs("0 3 * * *", "2025-03-08T12:00:00Z", "America/New_York", 2),
        ["2025-03-09T03:00:00-04:00", "2025-03-10T03:00:00-04:00"]
    );
}

#[test]
fn daylight_saving_fold_repeats_the_hour() {
    // New York falls back at 02:00 on 2025-11-02: 01:30 happens twice, and runs twice.
    assert_eq!(
        runs("30 1 * * *", "2025-11-01T12:00:00Z", "America/New_York", 4),
        [
            "2025-11-02T01:30:00-04:00",
            "2025-11-02T01:30:00-05:00",
            "2025-11-03T01:30:00-05:00",
            "2025-11-04T01:30:00-05:00"
        ]
    );
    assert_eq!(
        runs("0 * * * *", "2025-11-02T03:30:00Z", "America/New_York", 4),
        [
            "2025-11-02T00:00:00-04:00",
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T01:00:00-05:00",
            "2025-11-02T02:00:00-05:00"
        ]
    );
    // Europe: the same at 03:00 local on 2025-10-26 in Berlin.
    assert_eq!(
        runs("15 2 * * *", "2025-10-25T12:00:00Z", "Europe/Berlin", 3),
        [
            "2025-10-26T02:15:00+02:00",
            "2025-10-26T02:15:00+01:00",
            "2025-10-27T02:15:00+01:00"
        ]
    );
}

#[test]
fn go_durations() {
    assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
    assert_eq!(go_duration("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(go_duration("300ms"), Ok(300_000_000));
    assert_eq!(go_duration("2us"), Ok(2_000));
    assert_eq!(go_duration("-1s"), Ok(-1_000_000_000));
    assert_eq!(go_duration("0"), Ok(0));
    assert!(go_duration("").is_err());
    assert!(go_duration("h").is_err());
}
