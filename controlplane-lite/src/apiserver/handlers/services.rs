//! Service address and port allocation around writes.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::apiserver::alloc::{self, ServiceAllocator};
use crate::apiserver::object;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::status::{ApiError, Cause};

fn invalid(info: &ResourceInfo, svc: &Value, cause: Cause) -> ApiError {
    ApiError::invalid(info, object::name(svc), vec![cause])
}

/// Gives `new` its ClusterIP and NodePorts (keeping those of `old` on update). Whatever it
/// allocates is held in `alloc`; the caller calls [`commit`] or [`undo`] after the write.
pub fn allocate(
    info: &ResourceInfo,
    alloc: &mut ServiceAllocator,
    new: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let ty = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let spec = object::entry(new, &["spec"]);
    if ty == "ExternalName" {
        if let Some(o) = spec.as_object_mut() {
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                o.remove(k);
            }
        }
    } else {
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ip = if !old_ip.is_empty() {
            if !requested.is_empty() && requested != old_ip {
                return Err(invalid(
                    info,
                    new,
                    Cause::invalid(
                        "spec.clusterIPs[0]",
                        &json!(requested),
                        "may not change once set",
                    ),
                ));
            }
            old_ip
        } else if requested == "None" {
            "None".to_string()
        } else {
            let wanted = if requested.is_empty() {
                None
            } else {
                Some(requested.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(
                        info,
                        new,
                        Cause::invalid(
                            "spec.clusterIPs[0]",
                            &json!(requested),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ),
                    )
                })?)
            };
            alloc
                .allocate_ip(wanted)
                .map_err(|e| {
                    invalid(
                        info,
                        new,
                        Cause::invalid("spec.clusterIPs", &json!([requested]), e.to_string()),
                    )
                })?
                .to_string()
        };
        let spec = object::entry(new, &["spec"]);
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        if spec.get("ipFamilies").is_none_or(Value::is_null) {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let old_ports = old.map(alloc::node_ports).unwrap_or_default();
    let n_ports = new
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut taken_now: Vec<u16> = Vec::new();
    for i in 0..n_ports {
        let ptr = format!("/spec/ports/{i}");
        let Some(port) = new.pointer_mut(&ptr) else {
            continue;
        };
        if !wants_node_ports {
            if let Some(o) = port.as_object_mut() {
                o.remove("nodePort");
            }
            continue;
        }
        let requested = port
            .get("nodePort")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let chosen = match requested {
            Some(p) if old_ports.contains(&p) => p,
            Some(p) => match alloc.allocate_port(Some(p)) {
                Ok(p) => {
                    taken_now.push(p);
                    p
                }
                Err(e) => {
                    for t in taken_now {
                        alloc.free_port(t);
                    }
                    return Err(invalid(
                        info,
                        new,
                        Cause::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            &json!(p),
                            e.to_string(),
                        ),
                    ));
                }
            },
            None => {
                // On update, the same service port keeps the node port it had.
                let port_no = port.get("port").cloned();
                let kept = old
                    .and_then(|o| o.pointer("/spec/ports"))
                    .and_then(Value::as_array)
                    .and_then(|ps| ps.iter().find(|p| p.get("port").cloned() == port_no))
                    .and_then(|p| p.get("nodePort"))
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
                match kept {
                    Some(p) => p,
                    None => match alloc.allocate_port(None) {
                        Ok(p) => {
                            taken_now.push(p);
                            p
                        }
                        Err(e) => {
                            for t in taken_now {
                                alloc.free_port(t);
                            }
                            return Err(invalid(
                                info,
                                new,
                                Cause::invalid(
                                    format!("spec.ports[{i}].nodePort"),
                                    &json!(0),
                                    e.to_string(),
                                ),
                            ));
                        }
                    },
                }
            }
        };
        if let Some(p) = new.pointer_mut(&ptr) {
            p["nodePort"] = json!(chosen);
        }
    }
    Ok(())
}

/// After a successful update: frees what `old` held and `new` no longer does.
pub fn commit(alloc: &mut ServiceAllocator, new: &Value, old: &Value) {
    let keep_ips = alloc::cluster_ips(new);
    for ip in alloc::cluster_ips(old) {
        if !keep_ips.contains(&ip) {
            alloc.free_ip(ip);
        }
    }
    let keep_ports = alloc::node_ports(new);
    for p in alloc::node_ports(old) {
        if !keep_ports.contains(&p) {
            alloc.free_port(p);
        }
    }
}

/// After a failed update: frees what `new` took that `old` did not hold.
pub fn undo(alloc: &mut ServiceAllocator, new: &Value, old: &Value) {
    commit(alloc, old, new);
}
