use std::path::Path;

use crate::spec::{Dns, Error};

/// Reads a resolv.conf-style file into the result's `dns`.
pub fn read(path: &Path) -> Result<Dns, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("failed to read resolvConf {}", path.display()), e))?;
    Ok(parse(&text))
}

/// The keywords host-local understands; the rest (sortlist, lookup, ...) are dropped as
/// they are there. A later `domain` wins, as in the resolver.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), rest) = (fields.next(), fields) else {
            continue;
        };
        let rest: Vec<String> = rest.map(str::to_string).collect();
        if rest.is_empty() {
            continue;
        }
        match key {
            "nameserver" => dns.nameservers.push(rest[0].clone()),
            "domain" => dns.domain = Some(rest[0].clone()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_keyword() {
        let dns = parse(
            "# comment\n; also\nnameserver 10.96.0.10\nnameserver fd00::a extra\n\
             domain a.example\ndomain cluster.local\nsearch svc.cluster.local cluster.local\n\
             options ndots:5 edns0\nsortlist 10.0.0.0\nnameserver\n",
        );
        assert_eq!(dns.nameservers, ["10.96.0.10", "fd00::a"]);
        assert_eq!(dns.domain.as_deref(), Some("cluster.local"));
        assert_eq!(dns.search, ["svc.cluster.local", "cluster.local"]);
        assert_eq!(dns.options, ["ndots:5", "edns0"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = read(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert_eq!(e.code, crate::spec::ErrorCode::Io);
    }
}
