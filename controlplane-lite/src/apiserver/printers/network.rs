//! Networking kinds: Service, Endpoints, EndpointSlice, Ingress, IngressClass,
//! NetworkPolicy.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use super::format::{
    age, age_column, col, format_label_selector, format_labels, int, join_host_port, list,
    list_with_more, load_balancer_addresses, name, name_column, opt_int, opt_text, row, text, wide,
};

// ---- Service ----------------------------------------------------------------

pub(super) static SERVICE: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Type",
            "string",
            "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
        ),
        col(
            "Cluster-IP",
            "string",
            "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        ),
        col(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
        ),
        col(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        ),
        age_column(),
        wide(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
        ),
    ],
    cells: service,
};

fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The API server defaults the type to ClusterIP.
    let type_ = match text(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    // v1 clusterIP is authoritative over clusterIPs[0], as in the v1→internal conversion.
    let cluster_ip = match (
        text(obj, "/spec/clusterIP"),
        text(obj, "/spec/clusterIPs/0"),
    ) {
        ("", "") => "<none>",
        ("", ip) | (ip, _) => ip,
    };
    let ports = service_ports(list(obj, "/spec/ports"));
    row![
        name(obj),
        type_,
        cluster_ip,
        service_external_ip(obj, type_),
        if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        },
        age(obj, now),
        format_labels(obj.pointer("/spec/selector")),
    ]
}

fn service_external_ip(obj: &Value, type_: &str) -> String {
    let external: Vec<&str> = list(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match type_ {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            // The table is generated "wide" on the server, so the list is never clipped.
            let lb = load_balancer_addresses(list(obj, "/status/loadBalancer/ingress"));
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// "80/TCP", or "80:30080/TCP" with a node port; comma-joined.
fn service_ports(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            // The API server defaults the protocol to TCP.
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            let port = int(p, "/port");
            match int(p, "/nodePort") {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

// ---- Endpoints --------------------------------------------------------------

pub(super) static ENDPOINTS: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
        ),
        age_column(),
    ],
    cells: endpoints,
};

/// Ready addresses as "ip:port" (or bare IPs for port-less subsets), the first
/// three shown.
fn format_endpoints(obj: &Value) -> String {
    let subsets = list(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses: Vec<&str> = list(subset, "/addresses")
            .iter()
            .map(|a| text(a, "/ip"))
            .collect();
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            total += addresses.len();
            shown.extend(addresses.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports {
            total += addresses.len();
            let port = int(port, "/port");
            shown.extend(addresses.iter().map(|ip| join_host_port(ip, port)));
        }
    }
    shown.truncate(MAX);
    let joined = shown.join(",");
    if total > MAX {
        format!("{joined} + {} more...", total - MAX)
    } else {
        joined
    }
}

fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![name(obj), format_endpoints(obj), age(obj, now)]
}

// ---- EndpointSlice ----------------------------------------------------------

pub(super) static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
        ),
        age_column(),
    ],
    cells: endpoint_slice,
};

fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = list(obj, "/ports");
    let port_names: Vec<String> = ports
        .iter()
        .map(|p| match (opt_int(p, "/port"), opt_text(p, "/name")) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = list(obj, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    row![
        name(obj),
        text(obj, "/addressType"),
        list_with_more(&port_names, port_names.len(), 3),
        list_with_more(&addresses, addresses.len(), 3),
        age(obj, now),
    ]
}

// ---- Ingress, IngressClass --------------------------------------------------

pub(super) static INGRESS: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "string", "Ports of TLS configurations that open"),
        age_column(),
    ],
    cells: ingress,
};

/// The first three rule hosts; "*" when no rule names a host.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        // "More" means a rule follows once three hosts are listed.
        if hosts.len() == MAX {
            more = true;
            break;
        }
        let host = text(rule, "/host");
        if !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more {
        // Kubernetes counts the overflow in rules, not in hosts.
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

fn ingress(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if list(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    row![
        name(obj),
        opt_text(obj, "/spec/ingressClassName").unwrap_or("<none>"),
        ingress_hosts(list(obj, "/spec/rules")),
        load_balancer_addresses(list(obj, "/status/loadBalancer/ingress")),
        ports,
        age(obj, now),
    ]
}

pub(super) static INGRESS_CLASS: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        age_column(),
    ],
    cells: ingress_class,
};

fn ingress_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let kind = match opt_text(p, "/apiGroup") {
                Some(group) => format!("{}.{group}", text(p, "/kind")),
                None => text(p, "/kind").to_string(),
            };
            format!("{kind}/{}", text(p, "/name"))
        }
    };
    row![
        name(obj),
        text(obj, "/spec/controller"),
        parameters,
        age(obj, now)
    ]
}

// ---- NetworkPolicy ----------------------------------------------------------

pub(super) static NETWORK_POLICY: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Pod-Selector",
            "string",
            "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.",
        ),
        age_column(),
    ],
    cells: network_policy,
};

fn network_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a value, not a pointer, in Go: missing means empty.
    let empty = serde_json::json!({});
    let selector = obj.pointer("/spec/podSelector").unwrap_or(&empty);
    row![
        name(obj),
        format_label_selector(Some(selector)),
        age(obj, now)
    ]
}
