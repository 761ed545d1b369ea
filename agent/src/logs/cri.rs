//! One line of a CRI log file.

use jiff::Timestamp;

/// Which stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A parsed log line: `partial` is the `P` tag (the text continues in the next entry and
/// has no newline of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: Timestamp,
    pub stream: Stream,
    pub partial: bool,
    pub text: &'a [u8],
}

/// A timestamp as kubelet prints it: RFC 3339 in UTC with all nine fraction digits, so
/// that lines sort and line up.
pub fn format_time(t: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_nanosecond()
    )
}

/// Appends one line (with its newline) to `out`.
pub fn encode(out: &mut Vec<u8>, time: Timestamp, stream: Stream, partial: bool, text: &[u8]) {
    out.extend_from_slice(format_time(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Parses one line without its newline; `None` for anything that is not a CRI log line.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t: Timestamp = "2025-03-04T05:06:07.5Z".parse().unwrap();
        let mut out = Vec::new();
        encode(&mut out, t, Stream::Stderr, true, b"a b c");
        assert_eq!(
            out,
            b"2025-03-04T05:06:07.500000000Z stderr P a b c\n".to_vec()
        );
        let e = parse(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            e,
            Entry {
                time: t,
                stream: Stream::Stderr,
                partial: true,
                text: b"a b c"
            }
        );
        // Lines other runtimes write: a shorter fraction, an offset, an empty text.
        let e = parse(b"2025-03-04T06:06:07.25+01:00 stdout F").unwrap();
        assert_eq!(e.time, "2025-03-04T05:06:07.25Z".parse().unwrap());
        assert_eq!(e.text, b"");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2025-03-04T05:06:07Z stdin F x").is_none());
    }
}
