//! The kernel side through iproute2: `ip -json` to read, `ip -force -batch -` and
//! `bridge -force -batch -` to write. The commands run in the calling thread's network
//! namespace (the agent's).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use serde_json::Value;

use super::{NetError, Plan, ROUTE_PROTOCOL, Route, VXLAN_DEVICE, plan::Changes};

/// Runs `tool args`, returning its standard output.
pub fn run(tool: &str, args: &[&str]) -> Result<String, NetError> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetError::Spawn {
            tool: tool.into(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command: format!("{tool} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `tool args` with JSON output, as a list.
pub fn json(tool: &str, args: &[&str]) -> Result<Vec<Value>, NetError> {
    let text = run(tool, args)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| NetError::Output {
        command: format!("{tool} {}", args.join(" ")),
        reason: e.to_string(),
    })
}

/// Runs `lines` through `tool -force -batch -`: every line is tried; the failed ones are
/// returned as (index, error).
pub fn batch(tool: &str, lines: &[String]) -> Result<Vec<(usize, String)>, NetError> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = Command::new(tool)
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetError::Spawn {
            tool: tool.into(),
            source,
        })?;
    let mut input = lines.join("\n");
    input.push('\n');
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| NetError::Spawn {
                tool: tool.into(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| NetError::Spawn {
        tool: tool.into(),
        source,
    })?;
    Ok(failed_lines(&String::from_utf8_lossy(&out.stderr)))
}

/// iproute2 reports a failed batch line as its error message(s), then
/// `Command failed -:N` (N counting from 1).
fn failed_lines(stderr: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in stderr.lines() {
        match line
            .strip_prefix("Command failed -:")
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            Some(n) if n > 0 => out.push((n - 1, std::mem::take(&mut pending).join("; "))),
            _ => pending.push(line.trim()),
        }
    }
    out
}

fn proto() -> String {
    ROUTE_PROTOCOL.to_string()
}

/// An iproute2 address or prefix (`10.244.1.0/24`, or a bare address for a /32).
fn parse_net(s: &str) -> Option<Ipv4Net> {
    if s.contains('/') {
        s.parse().ok()
    } else {
        s.parse::<Ipv4Addr>().ok().map(Ipv4Net::from)
    }
}

/// Whether the VXLAN device exists.
pub fn device_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

/// What the kernel has of this agent's: its routes, and the permanent neighbour and
/// forwarding entries on its VXLAN device.
pub fn read() -> Result<Plan, NetError> {
    let mut plan = Plan::default();
    let p = proto();
    for r in json(
        "ip",
        &["-json", "route", "show", "table", "main", "proto", &p],
    )? {
        let (Some(dst), Some(via)) = (
            r["dst"].as_str().and_then(parse_net),
            r["gateway"].as_str().and_then(|g| g.parse().ok()),
        ) else {
            continue;
        };
        let onlink = r["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "onlink"))
            .then(|| r["dev"].as_str().unwrap_or_default().to_string());
        plan.routes.insert(dst, Route { dst, via, onlink });
    }
    if !device_exists(VXLAN_DEVICE) {
        return Ok(plan);
    }
    for n in json("ip", &["-json", "neigh", "show", "dev", VXLAN_DEVICE])? {
        let permanent = n["state"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "PERMANENT"));
        if let (true, Some(ip), Some(mac)) = (
            permanent,
            n["dst"].as_str().and_then(|d| d.parse().ok()),
            n["lladdr"].as_str(),
        ) {
            plan.neighbours.insert(ip, mac.to_ascii_lowercase());
        }
    }
    for f in json("bridge", &["-json", "fdb", "show", "dev", VXLAN_DEVICE])? {
        if let (Some(mac), Some(dst)) = (
            f["mac"].as_str(),
            f["dst"].as_str().and_then(|d| d.parse().ok()),
        ) {
            plan.fdb.insert(mac.to_ascii_lowercase(), dst);
        }
    }
    Ok(plan)
}

fn route_line(verb: &str, r: &Route) -> String {
    match &r.onlink {
        Some(dev) => format!(
            "route {verb} {} via {} dev {dev} onlink proto {}",
            r.dst,
            r.via,
            proto()
        ),
        None => format!("route {verb} {} via {} proto {}", r.dst, r.via, proto()),
    }
}

/// One change that did not go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub command: String,
    pub error: String,
    /// The route it was about, when it was a route.
    pub route: Option<Route>,
}

/// Makes `changes`: removals first (routes, then neighbours, then forwarding entries),
/// then additions in the other order, so a route never points at a missing neighbour.
/// Every change is tried; those that failed are returned.
pub fn apply(changes: &Changes) -> Result<Vec<Failure>, NetError> {
    let mut failures = Vec::new();
    let mut step = |tool: &str, items: Vec<(String, Option<Route>)>| -> Result<(), NetError> {
        let lines: Vec<String> = items.iter().map(|(l, _)| l.clone()).collect();
        for (i, error) in batch(tool, &lines)? {
            if let Some((command, route)) = items.get(i) {
                failures.push(Failure {
                    command: format!("{tool} {command}"),
                    error,
                    route: route.clone(),
                });
            }
        }
        Ok(())
    };
    let dev = VXLAN_DEVICE;
    let mut removals: Vec<(String, Option<Route>)> = changes
        .del_routes
        .iter()
        .map(|r| {
            (
                format!("route del {} proto {}", r.dst, proto()),
                Some(r.clone()),
            )
        })
        .collect();
    removals.extend(
        changes
            .del_neighbours
            .iter()
            .map(|ip| (format!("neigh del {ip} dev {dev}"), None)),
    );
    step("ip", removals)?;
    let fdb: Vec<(String, Option<Route>)> = changes
        .del_fdb
        .iter()
        .map(|(mac, ip)| (format!("fdb del {mac} dev {dev} dst {ip} self"), None))
        .chain(changes.add_fdb.iter().map(|(mac, ip)| {
            (
                format!("fdb replace {mac} dev {dev} dst {ip} self permanent"),
                None,
            )
        }))
        .collect();
    step("bridge", fdb)?;
    let mut additions: Vec<(String, Option<Route>)> = changes
        .add_neighbours
        .iter()
        .map(|(ip, mac)| {
            (
                format!("neigh replace {ip} lladdr {mac} dev {dev} nud permanent"),
                None,
            )
        })
        .collect();
    additions.extend(
        changes
            .add_routes
            .iter()
            .map(|r| (route_line("replace", r), Some(r.clone()))),
    );
    step("ip", additions)?;
    Ok(failures)
}

/// Removes every route of the agent's protocol.
pub fn flush_routes() -> Result<(), NetError> {
    run(
        "ip",
        &["route", "flush", "table", "main", "proto", &proto()],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_lines_are_mapped() {
        let stderr = "Error: Nexthop has invalid gateway.\nCommand failed -:2\nRTNETLINK answers: No such process\nCommand failed -:5\n";
        assert_eq!(
            failed_lines(stderr),
            [
                (1, "Error: Nexthop has invalid gateway.".to_string()),
                (4, "RTNETLINK answers: No such process".to_string())
            ]
        );
    }

    #[test]
    fn route_lines() {
        let r = Route {
            dst: "10.244.1.0/24".parse().unwrap_or_default(),
            via: Ipv4Addr::new(10, 244, 1, 0),
            onlink: Some(VXLAN_DEVICE.into()),
        };
        assert_eq!(
            route_line("replace", &r),
            "route replace 10.244.1.0/24 via 10.244.1.0 dev skiff.1 onlink proto 83"
        );
    }
}
