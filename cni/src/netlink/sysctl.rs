//! Kernel parameters under /proc/sys. Keys under `net/` belong to the network
//! namespace of the calling thread, so inside [`super::netns::run_in`] they are the
//! namespace's own.

use std::fs;
use std::path::PathBuf;

use super::NetlinkError;

/// Keys use '/' (e.g. "net/ipv6/conf/eth0.100/accept_dad"): dots are ambiguous
/// because interface names may contain them.
fn path_of(key: &str) -> Result<PathBuf, NetlinkError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(NetlinkError::Invalid {
            what: "sysctl key",
            value: key.to_string(),
            reason: "must be a relative path under /proc/sys like net/ipv4/ip_forward",
        });
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

/// The current value, without the trailing newline.
pub fn read(key: &str) -> Result<String, NetlinkError> {
    let path = path_of(key)?;
    let value = fs::read_to_string(&path).map_err(|error| NetlinkError::Sysctl {
        key: key.to_string(),
        error,
    })?;
    Ok(value.trim_end_matches('\n').to_string())
}

/// Sets a value, skipping the write when it is already set (writes to some keys,
/// e.g. `forwarding`, have side effects even when the value does not change).
pub fn write(key: &str, value: &str) -> Result<(), NetlinkError> {
    let current = read(key)?;
    if current.split_whitespace().eq(value.split_whitespace()) {
        return Ok(());
    }
    fs::write(path_of(key)?, value).map_err(|error| NetlinkError::Sysctl {
        key: key.to_string(),
        error,
    })?;
    tracing::debug!(key, value, "sysctl set");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_proc_sys() {
        assert_eq!(
            path_of("net/ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert!(path_of("net/ipv6/conf/eth0.100/accept_dad").is_ok());
        for bad in ["", "/etc/passwd", "net/../../etc", "net//ipv4", "net/./x"] {
            assert!(path_of(bad).is_err(), "{bad:?}");
        }
    }
}
