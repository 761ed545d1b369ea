//! Cron schedules as Kubernetes reads them: the "standard" grammar of the cron library
//! kube-controller-manager uses (five fields — minute, hour, day of month, month, day of
//! week — with lists, ranges, steps, `*`/`?`, month and weekday names; the `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`
//! descriptors; an optional `TZ=`/`CRON_TZ=` prefix), with the same error texts, since those
//! reach users in `422` answers and events.
//!
//! [`Schedule::next`] walks the calendar the way that library does, in the schedule's time
//! zone: a time that falls in a daylight-saving gap is skipped for that day, and a time in
//! a repeated hour matches in both of its occurrences.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

/// Why a schedule was refused, in the cron library's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

fn err(msg: impl Into<String>) -> ScheduleError {
    ScheduleError(msg.into())
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    /// From a `TZ=` prefix; otherwise the zone given to [`Schedule::next`].
    zone: Option<TimeZone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    /// `@every <duration>`: a fixed delay, whole seconds, at least one.
    Every(Duration),
}

/// One bit per allowed value; [`STAR`] marks a field written as `*` or `?` (it changes how
/// day of month and day of week combine).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    second: u64,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Loads an IANA zone as Go's `time.LoadLocation` does: `""` and `UTC` are UTC, `Local` is
/// the system's zone.
pub fn load_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| err(format!("unknown time zone {name}"))),
    }
}

impl Schedule {
    /// Parses a schedule in the standard grammar.
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        if spec.is_empty() {
            return Err(err("empty spec string"));
        }
        let mut spec = spec;
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(space) = spec.find(' ') else {
                return Err(err(format!(
                    "provided bad location {}: unknown time zone {}",
                    &spec[eq + 1..],
                    &spec[eq + 1..]
                )));
            };
            let name = &spec[eq + 1..space];
            zone = Some(
                load_zone(name).map_err(|e| err(format!("provided bad location {name}: {e}")))?,
            );
            spec = spec[space..].trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: descriptor(spec)?,
                zone,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
        Ok(Schedule {
            kind: Kind::Fields(Fields {
                second: 1,
                minute: field(fields[0], &MINUTES)?,
                hour: field(fields[1], &HOURS)?,
                dom: field(fields[2], &DOM)?,
                month: field(fields[3], &MONTHS)?,
                dow: field(fields[4], &DOW)?,
            }),
            zone,
        })
    }

    /// The first activation strictly after `t`, in the schedule's zone (its `TZ=` prefix,
    /// else `zone`); `None` when there is none within five years.
    pub fn next(&self, t: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let zone = self.zone.as_ref().unwrap_or(zone);
        match &self.kind {
            Kind::Every(d) => {
                let nanos = i64::from(t.subsec_nanosecond());
                let d = SignedDuration::try_from(*d).ok()?;
                t.checked_add(d - SignedDuration::from_nanos(nanos)).ok()
            }
            Kind::Fields(f) => f.next(t, zone),
        }
    }
}

fn descriptor(spec: &str) -> Result<Kind, ScheduleError> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    let fixed = |minute, hour, dom, month, dow| {
        Kind::Fields(Fields {
            second: 1,
            minute,
            hour,
            dom,
            month,
            dow,
        })
    };
    Ok(match spec {
        "@yearly" | "@annually" => fixed(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => fixed(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => fixed(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => fixed(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => fixed(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(rest) = spec.strip_prefix("@every ") else {
                return Err(err(format!("unrecognized descriptor: {spec}")));
            };
            let d = go_duration(rest)
                .map_err(|e| err(format!("failed to parse duration {spec}: {e}")))?;
            // Less than a second is a second; fractions of a second are dropped.
            let secs = if d < 1_000_000_000 {
                1
            } else {
                d / 1_000_000_000
            };
            Kind::Every(Duration::from_secs(secs.unsigned_abs()))
        }
    })
}

/// A comma-separated list of ranges (empty items are skipped, as the library does).
fn field(text: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let mut out = 0;
    for expr in text.split(',').filter(|s| !s.is_empty()) {
        out |= range(expr, b)?;
    }
    Ok(out)
}

/// `*`, `?`, `N`, `N-M`, each optionally `/step` (`N/step` meaning `N-max/step`).
fn range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut extra);
    if low_high[0] == "*" || low_high[0] == "?" {
        start = i64::from(b.min);
        end = i64::from(b.max);
        extra = STAR;
    } else {
        start = int_or_name(low_high[0], b)?;
        end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(err(format!("too many hyphens: {expr}"))),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            if single {
                end = i64::from(b.max);
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(err(format!("too many slashes: {expr}"))),
    };
    if start < i64::from(b.min) {
        return Err(err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        )));
    }
    if end > i64::from(b.max) {
        return Err(err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        )));
    }
    if start > end {
        return Err(err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(err(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    // In range: start and end lie within the field's bounds (at most 59).
    Ok(bits(start as u32, end as u32, step as u32) | extra)
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<i64, ScheduleError> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(i64::from(*v));
    }
    int(expr)
}

/// A non-negative integer as Go's `strconv.Atoi` reads it (an optional sign, digits).
fn int(expr: &str) -> Result<i64, ScheduleError> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    let syntax = || {
        err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(syntax());
    }
    let n: i64 = expr.parse().map_err(|_| {
        err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        ))
    })?;
    if n < 0 {
        return Err(err(format!("negative number ({n}) not allowed: {expr}")));
    }
    Ok(n)
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step.max(1) as usize)
        .fold(0, |acc, i| acc | (1u64 << i))
}

fn has(set: u64, v: i8) -> bool {
    (0..63).contains(&v) && set & (1u64 << v) != 0
}

/// A Go duration (`1h30m`, `90s`, `1.5h`, `300ms`), in nanoseconds.
fn go_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let n = total as i64;
    Ok(if neg { -n } else { n })
}

/// A civil time resolved as Go's `time.Date` does: in a gap or a fold, the earlier instant.
fn civil(dt: DateTime, zone: &TimeZone) -> Option<Zoned> {
    zone.to_ambiguous_zoned(dt).earlier().ok()
}

fn at(date: Date, h: i8, m: i8, s: i8, zone: &TimeZone) -> Option<Zoned> {
    civil(date.at(h, m, s, 0), zone)
}

fn plus(z: &Zoned, d: SignedDuration) -> Option<Zoned> {
    z.checked_add(d).ok()
}

impl Fields {
    fn day_matches(&self, z: &Zoned) -> bool {
        let dom = has(self.dom, z.day());
        let dow = has(self.dow, z.weekday().to_sunday_zero_offset());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, t: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        // The earliest candidate is the next whole second.
        let nanos = i64::from(t.subsec_nanosecond());
        let t = t
            .checked_add(SignedDuration::from_secs(1) - SignedDuration::from_nanos(nanos))
            .ok()?;
        let mut z = t.to_zoned(zone.clone());
        let mut added = false;
        let year_limit = z.year() + 5;
        'wrap: loop {
            if z.year() > year_limit {
                return None;
            }
            while !has(self.month, z.month()) {
                if !added {
                    added = true;
                    z = at(z.date().first_of_month(), 0, 0, 0, zone)?;
                }
                let date = z.date().checked_add(1.month()).ok()?;
                z = at(date, z.hour(), z.minute(), z.second(), zone)?;
                if z.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&z) {
                if !added {
                    added = true;
                    z = at(z.date(), 0, 0, 0, zone)?;
                }
                let date = z.date().checked_add(1.day()).ok()?;
                z = at(date, z.hour(), z.minute(), z.second(), zone)?;
                // Where midnight does not exist the day starts at another hour: move to
                // the nearest midnight.
                if z.hour() != 0 {
                    let h = i64::from(z.hour());
                    let shift = if h > 12 { 24 - h } else { -h };
                    z = plus(&z, SignedDuration::from_hours(shift))?;
                }
                if z.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(self.hour, z.hour()) {
                if !added {
                    added = true;
                    z = at(z.date(), z.hour(), 0, 0, zone)?;
                }
                z = plus(&z, SignedDuration::from_hours(1))?;
                if z.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.minute, z.minute()) {
                if !added {
                    added = true;
                    z = truncate(&z, 60)?;
                }
                z = plus(&z, SignedDuration::from_mins(1))?;
                if z.minute() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.second, z.second()) {
                if !added {
                    added = true;
                    z = truncate(&z, 1)?;
                }
                z = plus(&z, SignedDuration::from_secs(1))?;
                if z.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(z.timestamp());
        }
    }
}

/// Absolute truncation to a multiple of `secs` seconds.
fn truncate(z: &Zoned, secs: i64) -> Option<Zoned> {
    let s = z.timestamp().as_second();
    let t = Timestamp::from_second(s - s.rem_euclid(secs)).ok()?;
    Some(t.to_zoned(z.time_zone().clone()))
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
