//! How metrics-server writes values: quantities in Kubernetes' canonical form, windows as
//! Go durations, times as `metav1.Time`.

use skiff_api::quantity::{Format, Quantity};

/// CPU in nanocores as a quantity (`"123456789n"`, `"500m"`, `"2"`).
pub fn cpu(nano_cores: u64) -> String {
    Quantity::from_nano(i128::from(nano_cores), Format::DecimalSI).canonical()
}

/// Bytes as a binary quantity (`"6789Ki"`, `"12Mi"`, or plain bytes when not a multiple
/// of 1024).
pub fn memory(bytes: u64) -> String {
    Quantity::from_value(i64::try_from(bytes).unwrap_or(i64::MAX), Format::BinarySI).canonical()
}

/// Whole units and a fraction of `unit`, without trailing zeros: `1.25`, `3`.
fn with_fraction(v: u64, unit: u64, digits: usize) -> String {
    let (whole, frac) = (v / unit, v % unit);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// A duration as Go's `time.Duration.String` writes it (`metav1.Duration` in JSON):
/// `"15s"`, `"1.002s"`, `"250ms"`, `"1m30s"`, `"0s"`.
pub fn go_duration_ms(ms: i64) -> String {
    let ns = u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    go_duration_ns(ns)
}

pub fn go_duration_ns(ns: u64) -> String {
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    match ns {
        0 => "0s".to_string(),
        n if n < US => format!("{n}ns"),
        n if n < MS => format!("{}µs", with_fraction(n, US, 3)),
        n if n < S => format!("{}ms", with_fraction(n, MS, 6)),
        n => {
            let (h, rest) = (n / (3600 * S), n % (3600 * S));
            let (m, s) = (rest / (60 * S), rest % (60 * S));
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                out.push_str(&format!("{m}m"));
            }
            out.push_str(&format!("{}s", with_fraction(s, S, 9)));
            out
        }
    }
}

/// Milliseconds since the epoch as `metav1.Time` writes them: RFC 3339, whole seconds.
pub fn time_ms(ms: i64) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The current time as `metav1.Time`.
pub fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_metrics_server_writes_them() {
        assert_eq!(cpu(123_456_789), "123456789n");
        assert_eq!(cpu(500_000_000), "500m");
        assert_eq!(cpu(2_000_000_000), "2");
        assert_eq!(cpu(1_500), "1500n");
        assert_eq!(cpu(0), "0");
        assert_eq!(memory(6_789 * 1024), "6789Ki");
        assert_eq!(memory(12 * 1024 * 1024), "12Mi");
        assert_eq!(memory(1_000), "1k");
        assert_eq!(memory(1_234_567), "1234567");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ms(15_000), "15s");
        assert_eq!(go_duration_ms(1_002), "1.002s");
        assert_eq!(go_duration_ms(250), "250ms");
        assert_eq!(go_duration_ms(90_000), "1m30s");
        assert_eq!(go_duration_ms(120_000), "2m0s");
        assert_eq!(go_duration_ms(3_600_500), "1h0m0.5s");
        assert_eq!(go_duration_ms(0), "0s");
        assert_eq!(go_duration_ns(1_500), "1.5µs");
        assert_eq!(go_duration_ns(999), "999ns");
        assert_eq!(go_duration_ns(1_234_500), "1.2345ms");
    }

    #[test]
    fn times() {
        assert_eq!(time_ms(1_733_400_000_999), "2024-12-05T12:00:00Z");
    }
}
