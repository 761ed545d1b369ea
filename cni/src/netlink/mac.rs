use super::NetlinkError;

/// "aa:bb:cc:dd:ee:ff", lower case, as `ip link` prints it and CNI results carry it.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parses six two-digit hex octets separated by ':' or '-' (either case).
pub fn parse_mac(s: &str) -> Result<[u8; 6], NetlinkError> {
    let invalid = |reason| NetlinkError::Invalid {
        what: "MAC address",
        value: s.to_string(),
        reason,
    };
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for octet in mac.iter_mut() {
        let part = parts.next().ok_or_else(|| invalid("expected six octets"))?;
        // from_str_radix alone would also take "+a".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("each octet is two hex digits"));
        }
        *octet = u8::from_str_radix(part, 16).map_err(|_| invalid("not a hex number"))?;
    }
    if parts.next().is_some() {
        return Err(invalid("expected six octets"));
    }
    Ok(mac)
}

/// Turns a kernel hardware-address attribute into a MAC when it is Ethernet-sized.
pub(super) fn mac_from_bytes(bytes: &[u8]) -> Option<[u8; 6]> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mac = [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0xff];
        assert_eq!(format_mac(mac), "0a:58:0a:f4:00:ff");
        assert_eq!(parse_mac("0a:58:0a:f4:00:ff").unwrap(), mac);
        assert_eq!(parse_mac("0A-58-0A-F4-00-FF").unwrap(), mac);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "0a:58:0a:f4:00",
            "0a:58:0a:f4:00:ff:01",
            "0a:58:0a:f4:00:f",
            "0a:58:0a:f4:00:fff",
            "0a:58:0a:f4:00:gg",
            "+a:58:0a:f4:00:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
