//! What keeps an HPA from flapping, as kube-controller-manager does it: each raw
//! recommendation is remembered, and the size actually set is stabilized against the
//! recent ones (the highest within the scale-down window, the lowest within the scale-up
//! window) and limited by the rate policies (`behavior`), or, for HPAs without behavior,
//! by the classic rule of at most doubling (at least 4) per sync.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// One raw (unstabilized) recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    pub replicas: i32,
    pub at: Timestamp,
}

/// One rescale, kept while a rate policy's period may still count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// Replicas added (in `ups`) or removed (in `downs`); never negative.
    pub change: i32,
    pub at: Timestamp,
    /// Older than every policy period: its slot may be reused.
    pub outdated: bool,
}

/// Which policy wins when several allow different changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i64,
}

/// One direction's rules with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// An HPA's `behavior`, complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

fn rules(
    given: Option<&HPAScalingRules>,
    default_window: Duration,
    default_policies: &[Policy],
) -> Rules {
    let window = given
        .and_then(|r| r.stabilization_window_seconds)
        .map_or(default_window, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let select = match given.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies = match given.and_then(|r| r.policies.as_ref()) {
        Some(list) => list
            .iter()
            .map(|p| Policy {
                kind: if p.type_ == "Percent" {
                    PolicyKind::Percent
                } else {
                    PolicyKind::Pods
                },
                value: p.value,
                period_seconds: i64::from(p.period_seconds),
            })
            .collect(),
        None => default_policies.to_vec(),
    };
    Rules {
        window,
        select,
        policies,
    }
}

impl Behavior {
    /// The API server fills the defaults in already; they are filled here again so that
    /// an object that never passed through it behaves the same. A scale-down window left
    /// unset is the controller's (`--horizontal-pod-autoscaler-downscale-stabilization`).
    pub fn from_spec(b: &HorizontalPodAutoscalerBehavior, downscale_window: Duration) -> Behavior {
        let up_policies = [
            Policy {
                kind: PolicyKind::Pods,
                value: 4,
                period_seconds: 15,
            },
            Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            },
        ];
        let down_policies = [Policy {
            kind: PolicyKind::Percent,
            value: 100,
            period_seconds: 15,
        }];
        Behavior {
            up: rules(b.scale_up.as_ref(), Duration::ZERO, &up_policies),
            down: rules(b.scale_down.as_ref(), downscale_window, &down_policies),
        }
    }
}

/// A size after limiting, with the ScalingLimited reason and message it earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub replicas: i32,
    pub reason: &'static str,
    pub message: &'static str,
}

const WITHIN: Limited = Limited {
    replicas: 0,
    reason: "DesiredWithinRange",
    message: "the desired count is within the acceptable range",
};

/// One HPA's memory between syncs.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub recommendations: Vec<Recommendation>,
    pub ups: Vec<ScaleEvent>,
    pub downs: Vec<ScaleEvent>,
}

fn before(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

fn changed_within(events: &[ScaleEvent], period_seconds: i64, now: Timestamp) -> i32 {
    let cutoff = before(
        now,
        Duration::from_secs(u64::try_from(period_seconds).unwrap_or(0)),
    );
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .fold(0, i32::saturating_add)
}

impl History {
    /// The first sight of an HPA counts its target's current size as a recommendation,
    /// so it does not shrink before a full window has been observed.
    pub fn record_initial(&mut self, current: i32, now: Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    fn record(&mut self, replicas: i32, old_slot: Option<usize>, now: Timestamp) {
        let rec = Recommendation { replicas, at: now };
        match old_slot.and_then(|i| self.recommendations.get_mut(i)) {
            Some(slot) => *slot = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Without behavior: the highest recommendation within the scale-down window.
    pub fn stabilize(&mut self, desired: i32, window: Duration, now: Timestamp) -> i32 {
        let cutoff = before(now, window);
        let mut highest = desired;
        let mut old_slot = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at < cutoff {
                old_slot = Some(i);
            } else if r.replicas > highest {
                highest = r.replicas;
            }
        }
        self.record(desired, old_slot, now);
        highest
    }

    /// With behavior: kept between the lowest recommendation of the scale-up window and the
    /// highest of the scale-down window. Returns the size and the AbleToScale reason and
    /// message for when it differs from `desired`.
    pub fn stabilize_with(
        &mut self,
        b: &Behavior,
        current: i32,
        desired: i32,
        now: Timestamp,
    ) -> (i32, &'static str, &'static str) {
        let up_cutoff = before(now, b.up.window);
        let down_cutoff = before(now, b.down.window);
        let (mut up, mut down) = (desired, desired);
        let mut old_slot = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at > down_cutoff {
                down = down.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old_slot = Some(i);
            }
        }
        let stabilized = current.max(up).min(down);
        self.record(desired, old_slot, now);
        if desired >= current {
            (
                stabilized,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            (
                stabilized,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        }
    }

    /// With behavior: the rate policies, then minReplicas and maxReplicas.
    pub fn rate_limit(
        &self,
        b: &Behavior,
        min: i32,
        max: i32,
        current: i32,
        desired: i32,
        now: Timestamp,
    ) -> Limited {
        if desired > current {
            let limit = self.scale_up_limit(current, &b.up, now).max(current);
            let (allowed, reason, message) = if max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if desired > allowed {
                return Limited {
                    replicas: allowed,
                    reason,
                    message,
                };
            }
        } else if desired < current {
            let limit = self.scale_down_limit(current, &b.down, now).min(current);
            let (allowed, reason, message) = if min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if desired < allowed {
                return Limited {
                    replicas: allowed,
                    reason,
                    message,
                };
            }
        }
        Limited {
            replicas: desired,
            ..WITHIN
        }
    }

    /// The most replicas the scale-up policies allow now, counted from the size at the
    /// start of each policy's period.
    fn scale_up_limit(&self, current: i32, rules: &Rules, now: Timestamp) -> i32 {
        let pick: fn(i32, i32) -> i32 = match rules.select {
            Select::Disabled => return current,
            Select::Min => i32::min,
            Select::Max => i32::max,
        };
        let mut result = if rules.select == Select::Min {
            i32::MAX
        } else {
            i32::MIN
        };
        for p in &rules.policies {
            let start = current - changed_within(&self.ups, p.period_seconds, now)
                + changed_within(&self.downs, p.period_seconds, now);
            let proposed = match p.kind {
                PolicyKind::Pods => start.saturating_add(p.value),
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
                }
            };
            result = pick(result, proposed);
        }
        result
    }

    /// The fewest replicas the scale-down policies allow now.
    fn scale_down_limit(&self, current: i32, rules: &Rules, now: Timestamp) -> i32 {
        let pick: fn(i32, i32) -> i32 = match rules.select {
            Select::Disabled => return current,
            Select::Min => i32::max,
            Select::Max => i32::min,
        };
        let mut result = if rules.select == Select::Min {
            i32::MIN
        } else {
            i32::MAX
        };
        for p in &rules.policies {
            let start = current - changed_within(&self.ups, p.period_seconds, now)
                + changed_within(&self.downs, p.period_seconds, now);
            let proposed = match p.kind {
                PolicyKind::Pods => start.saturating_sub(p.value),
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
                }
            };
            result = pick(result, proposed);
        }
        result
    }

    /// Remembers a rescale for the rate policies (only HPAs with behavior have them).
    pub fn store_scale_event(&mut self, b: Option<&Behavior>, prev: i32, new: i32, now: Timestamp) {
        let Some(b) = b else {
            return;
        };
        let (events, rules, change) = if new > prev {
            (&mut self.ups, &b.up, new - prev)
        } else {
            (&mut self.downs, &b.down, prev - new)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let cutoff = before(
            now,
            Duration::from_secs(u64::try_from(longest).unwrap_or(0)),
        );
        let mut slot = None;
        for (i, e) in events.iter_mut().enumerate() {
            if e.at < cutoff {
                e.outdated = true;
            }
            if e.outdated {
                slot = Some(i);
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match slot.and_then(|i| events.get_mut(i)) {
            Some(s) => *s = event,
            None => events.push(event),
        }
    }
}

/// Without behavior: between minReplicas and maxReplicas, and at most double (at least 4)
/// the current size, against bogus usage spikes.
pub fn limit_with_rules(current: i32, desired: i32, min: i32, max: i32) -> Limited {
    let scale_up_limit = (2.0 * f64::from(current)).max(4.0) as i32;
    let (allowed, reason, message) = if max > scale_up_limit {
        (
            scale_up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        return Limited {
            replicas: min,
            reason: "TooFewReplicas",
            message: "the desired replica count is less than the minimum replica count",
        };
    }
    if desired > allowed {
        return Limited {
            replicas: allowed,
            reason,
            message,
        };
    }
    Limited {
        replicas: desired,
        ..WITHIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plus_secs(t: Timestamp, secs: u64) -> Timestamp {
        crate::controllers::clock::after(t, Duration::from_secs(secs))
    }

    fn t0() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().expect("time")
    }

    fn behavior(
        up: Vec<Policy>,
        up_select: Select,
        down: Vec<Policy>,
        down_window: u64,
    ) -> Behavior {
        Behavior {
            up: Rules {
                window: Duration::ZERO,
                select: up_select,
                policies: up,
            },
            down: Rules {
                window: Duration::from_secs(down_window),
                select: Select::Max,
                policies: down,
            },
        }
    }

    fn pods(value: i32, period_seconds: i64) -> Policy {
        Policy {
            kind: PolicyKind::Pods,
            value,
            period_seconds,
        }
    }

    fn percent(value: i32, period_seconds: i64) -> Policy {
        Policy {
            kind: PolicyKind::Percent,
            value,
            period_seconds,
        }
    }

    #[test]
    fn classic_stabilization_keeps_the_highest_recent() {
        let mut h = History::default();
        h.record_initial(5, t0());
        let w = Duration::from_secs(300);
        assert_eq!(h.stabilize(2, w, plus_secs(t0(), 15)), 5);
        assert_eq!(h.stabilize(3, w, plus_secs(t0(), 200)), 5);
        // The initial 5 is now out of the window; 3 (at +200 s) is not.
        assert_eq!(h.stabilize(2, w, plus_secs(t0(), 301)), 3);
        assert_eq!(h.stabilize(2, w, plus_secs(t0(), 501)), 2);
    }

    #[test]
    fn classic_limits() {
        assert_eq!(limit_with_rules(1, 10, 1, 20).replicas, 4);
        assert_eq!(limit_with_rules(1, 10, 1, 20).reason, "ScaleUpLimit");
        assert_eq!(limit_with_rules(5, 10, 1, 8).reason, "TooManyReplicas");
        assert_eq!(limit_with_rules(5, 10, 1, 8).replicas, 8);
        assert_eq!(limit_with_rules(5, 1, 2, 8).replicas, 2);
        assert_eq!(limit_with_rules(5, 6, 2, 8).reason, "DesiredWithinRange");
    }

    #[test]
    fn rate_policies_count_recent_changes() {
        let b = behavior(vec![pods(2, 60)], Select::Max, vec![percent(50, 60)], 0);
        let mut h = History::default();
        let now = t0();
        let l = h.rate_limit(&b, 1, 100, 4, 20, now);
        assert_eq!((l.replicas, l.reason), (6, "ScaleUpLimit"));
        h.store_scale_event(Some(&b), 4, 6, now);
        // Within the same minute the period started at 4: still at most 6.
        let l = h.rate_limit(&b, 1, 100, 6, 20, plus_secs(now, 30));
        assert_eq!(l.replicas, 6);
        // A minute later it may add two more.
        let l = h.rate_limit(&b, 1, 100, 6, 20, plus_secs(now, 61));
        assert_eq!(l.replicas, 8);
        // Scaling down by at most half per minute.
        let l = h.rate_limit(&b, 1, 100, 8, 1, plus_secs(now, 61));
        assert_eq!((l.replicas, l.reason), (4, "ScaleDownLimit"));
        let l = h.rate_limit(&b, 6, 100, 8, 1, plus_secs(now, 61));
        assert_eq!((l.replicas, l.reason), (6, "TooFewReplicas"));
    }

    #[test]
    fn select_policy_min_and_disabled() {
        let up = vec![pods(4, 15), percent(100, 15)];
        let max = behavior(up.clone(), Select::Max, vec![percent(100, 15)], 0);
        let min = behavior(up.clone(), Select::Min, vec![percent(100, 15)], 0);
        let off = behavior(up, Select::Disabled, vec![percent(100, 15)], 0);
        let h = History::default();
        assert_eq!(h.rate_limit(&max, 1, 100, 10, 50, t0()).replicas, 20);
        assert_eq!(h.rate_limit(&min, 1, 100, 10, 50, t0()).replicas, 14);
        assert_eq!(h.rate_limit(&off, 1, 100, 10, 50, t0()).replicas, 10);
    }

    #[test]
    fn behavior_windows() {
        let b = behavior(vec![pods(4, 15)], Select::Max, vec![percent(100, 15)], 60);
        let mut h = History::default();
        h.record_initial(5, t0());
        let (r, reason, _) = h.stabilize_with(&b, 5, 2, plus_secs(t0(), 15));
        assert_eq!((r, reason), (5, "ScaleDownStabilized"));
        let (r, _, _) = h.stabilize_with(&b, 5, 2, plus_secs(t0(), 61));
        assert_eq!(r, 2);
        let (r, _, _) = h.stabilize_with(&b, 2, 9, plus_secs(t0(), 62));
        assert_eq!(r, 9, "no scale-up window");
    }
}
