//! Go's ways of printing strings, durations and socket errors. Probe and hook messages end up
//! in events that people (and their tooling) compare with what kubelet writes, so they are
//! spelled the way Go spells them.

use std::fmt::Write;
use std::time::Duration;

/// Go's `%q` (`strconv.Quote`) of raw bytes: printable text as is, the usual escapes, `\x`
/// for bytes that are not valid UTF-8 and for ASCII control characters.
pub(crate) fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a string.
pub(crate) fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// Go's `%v` of a `[]string`: `[sh -c exit 3]`.
pub(crate) fn list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration` `String()`: `1s`, `1m30s`, `1h0m0s`, `500ms`, `1.5s`.
pub(crate) fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = fraction(
        u128::from(s) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `value / unit` with the fractional digits Go prints (no trailing zeros).
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's text for an errno (`connection refused`), or Rust's for anything else.
pub(crate) fn io_error(err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::TimedOut && err.raw_os_error().is_none() {
        return "i/o timeout".to_string();
    }
    match err.raw_os_error() {
        Some(code) => {
            // strerror's text is Go's, but for the capital letter and the suffix Rust adds.
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = match text.find(" (os error") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text.to_string(),
            }
        }
        None => err.to_string(),
    }
}

/// Go's `net.JoinHostPort`: brackets around IPv6 literals.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote("a \"b\"\n\tc\\"), r#""a \"b\"\n\tc\\""#);
        assert_eq!(quote("\u{1b}[0m\u{0}"), r#""\x1b[0m\x00""#);
        assert_eq!(quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(quote_bytes(b"ok\xff"), r#""ok\xff""#);
        assert_eq!(quote("\u{85}"), r#""\u0085""#);
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration(Duration::from_secs(1)), "1s");
        assert_eq!(duration(Duration::from_secs(59)), "59s");
        assert_eq!(duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(duration(Duration::ZERO), "0s");
    }

    #[test]
    fn errno_text_like_go() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_error(&refused), "connection refused");
        let unreachable = std::io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(io_error(&unreachable), "no route to host");
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline");
        assert_eq!(io_error(&timeout), "i/o timeout");
    }

    #[test]
    fn host_port() {
        assert_eq!(join_host_port("10.0.0.5", 80), "10.0.0.5:80");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("example.com", 443), "example.com:443");
    }

    #[test]
    fn lists() {
        let cmd = ["sh", "-c", "exit 3"].map(String::from);
        assert_eq!(list(&cmd), "[sh -c exit 3]");
    }
}
