//! skiff-ipam through its binary and the CNI protocol, and side by side with the
//! reference host-local plugin on the same data directory.
// The helpers below are test code too; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff-ipam");
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// One invocation of an IPAM plugin.
struct Call<'a> {
    bin: &'a str,
    command: &'a str,
    container: &'a str,
    ifname: &'a str,
    args: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(bin: &'a str, command: &'a str, container: &'a str) -> Call<'a> {
        Call {
            bin,
            command,
            container,
            ifname: "eth0",
            args: None,
        }
    }

    fn ifname(mut self, ifname: &'a str) -> Call<'a> {
        self.ifname = ifname;
        self
    }

    fn args(mut self, args: &'a str) -> Call<'a> {
        self.args = Some(args);
        self
    }

    fn spawn(&self, conf: &Value) -> Child {
        let mut cmd = Command::new(self.bin);
        cmd.env_clear()
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // DEL must work without a namespace, so it gets none.
        if self.command != "DEL" {
            cmd.env("CNI_NETNS", format!("/var/run/netns/{}", self.container));
        }
        if let Some(args) = self.args {
            cmd.env("CNI_ARGS", args);
        }
        let mut child = cmd.spawn().expect("spawn plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        child
    }

    /// Exit status and the JSON printed (Null when nothing was).
    fn run(&self, conf: &Value) -> (i32, Value) {
        finish(self.spawn(conf))
    }

    fn ok(&self, conf: &Value) -> Value {
        let (code, out) = self.run(conf);
        assert_eq!(code, 0, "{} {} failed: {out}", self.bin, self.command);
        out
    }

    fn err(&self, conf: &Value) -> Value {
        let (code, out) = self.run(conf);
        assert_ne!(code, 0, "{} {} succeeded: {out}", self.bin, self.command);
        out
    }
}

fn finish(child: Child) -> (i32, Value) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
    };
    (out.status.code().unwrap_or(-1), value)
}

fn add(conf: &Value, container: &str) -> Value {
    Call::new(SKIFF, "ADD", container).ok(conf)
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|ip| ip["address"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn first_address(result: &Value) -> String {
    addresses(result).remove(0)
}

fn network(version: &str, name: &str, data_dir: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("skiff-ipam");
    ipam["dataDir"] = json!(data_dir);
    json!({"cniVersion": version, "name": name, "type": "skiff-bridge", "ipam": ipam})
}

fn v4(data_dir: &Path, subnet: &str) -> Value {
    network("1.0.0", "net", data_dir, json!({"subnet": subnet}))
}

/// The address files of a network: (file name, contents).
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name != "lock" && !name.starts_with("last_reserved_ip")
        })
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn net_dir(tmp: &TempDir) -> PathBuf {
    tmp.path().join("net")
}

#[test]
fn allocates_in_order_and_wraps_around() {
    let tmp = TempDir::new().unwrap();
    let conf = v4(tmp.path(), "10.10.0.0/29");
    let got: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|c| first_address(&add(&conf, c)))
        .collect();
    assert_eq!(
        got,
        [
            "10.10.0.2/29",
            "10.10.0.3/29",
            "10.10.0.4/29",
            "10.10.0.5/29",
            "10.10.0.6/29"
        ]
    );
    let first = add(&conf, "a");
    assert_eq!(first_address(&first), "10.10.0.2/29", "ADD is idempotent");
    assert_eq!(first["ips"][0]["gateway"], "10.10.0.1");
    assert!(first["ips"][0].get("interface").is_none());
    let full = Call::new(SKIFF, "ADD", "f").err(&conf);
    assert_eq!(full["code"], 100);
    assert_eq!(
        full["msg"],
        "no IP addresses available in range set: 10.10.0.1-10.10.0.6"
    );
    Call::new(SKIFF, "DEL", "c").ok(&conf);
    Call::new(SKIFF, "DEL", "b").ok(&conf);
    // The last address handed out was .6, so the search wraps to the start: .3 before .4.
    assert_eq!(first_address(&add(&conf, "f")), "10.10.0.3/29");
    assert_eq!(first_address(&add(&conf, "g")), "10.10.0.4/29");
    assert_eq!(
        fs::read_to_string(net_dir(&tmp).join("last_reserved_ip.0")).unwrap(),
        "10.10.0.4"
    );
    let held = files(&net_dir(&tmp));
    assert_eq!(held.len(), 5);
    assert!(held.contains(&("10.10.0.4".into(), "g\r\neth0".into())));
}

#[test]
fn dual_stack_gives_one_address_per_range_set() {
    let tmp = TempDir::new().unwrap();
    let conf = network(
        "1.1.0",
        "net",
        tmp.path(),
        json!({
            "ranges": [
                [{"subnet": "10.20.0.0/24", "rangeStart": "10.20.0.100", "rangeEnd": "10.20.0.110"}],
                [{"subnet": "fd00:20::/64"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
        }),
    );
    let out = add(&conf, "a");
    assert_eq!(out["cniVersion"], "1.1.0");
    assert_eq!(addresses(&out), ["10.20.0.100/24", "fd00:20::2/64"]);
    assert_eq!(out["ips"][1]["gateway"], "fd00:20::1");
    assert_eq!(
        out["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    );
    assert_eq!(
        addresses(&add(&conf, "b")),
        ["10.20.0.101/24", "fd00:20::3/64"]
    );
    assert_eq!(files(&net_dir(&tmp)).len(), 4);
    assert!(net_dir(&tmp).join("last_reserved_ip.1").exists());
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    let left = files(&net_dir(&tmp));
    assert_eq!(
        left.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["10.20.0.101", "fd00:20::3"]
    );
    // 0.3.x results tag every address with its family.
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.3.1");
    let out = add(&old, "c");
    assert_eq!(out["ips"][0]["version"], "4");
    assert_eq!(out["ips"][1]["version"], "6");
}

#[test]
fn requested_addresses_in_each_of_the_three_ways() {
    let tmp = TempDir::new().unwrap();
    let mut conf = network(
        "1.0.0",
        "net",
        tmp.path(),
        json!({"ranges": [[{"subnet": "10.30.0.0/24"}], [{"subnet": "fd00:30::/64"}]]}),
    );
    let base = conf.clone();
    conf["runtimeConfig"] = json!({"ips": ["10.30.0.50/24", "fd00:30::50/64"]});
    assert_eq!(
        addresses(&add(&conf, "a")),
        ["10.30.0.50/24", "fd00:30::50/64"]
    );
    let mut conf = base.clone();
    conf["args"] = json!({"cni": {"ips": ["10.30.0.51"]}});
    // The v6 address is the next after the last one handed out, the requested ::50.
    assert_eq!(
        addresses(&add(&conf, "b")),
        ["10.30.0.51/24", "fd00:30::51/64"]
    );
    let out = Call::new(SKIFF, "ADD", "c")
        .args("K8S_POD_NAME=p;IP=10.30.0.52,fd00:30::52")
        .ok(&base);
    assert_eq!(addresses(&out), ["10.30.0.52/24", "fd00:30::52/64"]);

    let taken = Call::new(SKIFF, "ADD", "d")
        .args("IP=10.30.0.50")
        .err(&base);
    assert_eq!(taken["code"], 100);
    assert_eq!(
        taken["msg"],
        "requested IP address 10.30.0.50 is not available in range set 10.30.0.1-10.30.0.254: held by container a (eth0)"
    );
    let outside = Call::new(SKIFF, "ADD", "d").args("IP=10.31.0.5").err(&base);
    assert_eq!(outside["code"], 7);
    assert!(
        outside["msg"]
            .as_str()
            .unwrap()
            .contains("10.31.0.5 is not in any range"),
        "{outside}"
    );
    let gateway = Call::new(SKIFF, "ADD", "d").args("IP=10.30.0.1").err(&base);
    assert!(
        gateway["msg"].as_str().unwrap().contains("gateway"),
        "{gateway}"
    );
    let garbage = Call::new(SKIFF, "ADD", "d").args("IP=banana").err(&base);
    assert_eq!(garbage["code"], 4);
    // A failed ADD leaves nothing behind: the v6 address of the second set was undone.
    let two = Call::new(SKIFF, "ADD", "d")
        .args("IP=fd00:30::50")
        .err(&base);
    assert_eq!(two["code"], 100);
    assert_eq!(files(&net_dir(&tmp)).len(), 6);
    // The plugin accepts IP in CNI_ARGS but still refuses keys it does not know.
    let unknown = Call::new(SKIFF, "ADD", "d").args("FOO=1").err(&base);
    assert_eq!(unknown["code"], 4);
}

#[test]
fn del_is_idempotent_and_needs_no_namespace() {
    let tmp = TempDir::new().unwrap();
    let conf = v4(tmp.path(), "10.40.0.0/24");
    // Nothing ever allocated: no directory, and DEL must not create one.
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    assert!(!net_dir(&tmp).exists());
    add(&conf, "a");
    add(&conf, "b");
    let eth1 = Call::new(SKIFF, "ADD", "a").ifname("eth1").ok(&conf);
    assert_eq!(first_address(&eth1), "10.40.0.4/24");
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    Call::new(SKIFF, "DEL", "never-added").ok(&conf);
    let left = files(&net_dir(&tmp));
    assert_eq!(
        left,
        [
            ("10.40.0.3".to_string(), "b\r\neth0".to_string()),
            ("10.40.0.4".to_string(), "a\r\neth1".to_string())
        ]
    );
    // An old-format file (container ID only) is released by its container's DEL.
    fs::write(net_dir(&tmp).join("10.40.0.9"), "old\n").unwrap();
    Call::new(SKIFF, "DEL", "old").ok(&conf);
    assert!(!net_dir(&tmp).join("10.40.0.9").exists());
    // DEL works even when the ranges no longer parse.
    let mut broken = conf.clone();
    broken["ipam"]["subnet"] = json!("not a subnet");
    Call::new(SKIFF, "DEL", "b").ok(&broken);
    assert_eq!(files(&net_dir(&tmp)).len(), 1);
}

#[test]
fn gc_releases_what_no_valid_attachment_holds() {
    let tmp = TempDir::new().unwrap();
    let mut conf = v4(tmp.path(), "10.50.0.0/24");
    conf["cniVersion"] = json!("1.1.0");
    for c in ["keep", "gone1", "gone2"] {
        add(&conf, c);
    }
    Call::new(SKIFF, "ADD", "keep").ifname("eth1").ok(&conf);
    fs::write(net_dir(&tmp).join("10.50.0.100"), "oldkeep").unwrap();
    fs::write(net_dir(&tmp).join("10.50.0.101"), "oldgone").unwrap();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "keep", "ifname": "eth0"},
        {"containerID": "oldkeep", "ifname": "eth0"}
    ]);
    let (code, out) = Call::new(SKIFF, "GC", "").run(&gc);
    assert_eq!(code, 0, "{out}");
    let left: Vec<String> = files(&net_dir(&tmp)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["10.50.0.100", "10.50.0.2"]);
    let mut no_list = conf.clone();
    no_list["cniVersion"] = json!("1.1.0");
    assert_eq!(Call::new(SKIFF, "GC", "").err(&no_list)["code"], 7);
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(Call::new(SKIFF, "GC", "").err(&old)["code"], 1);
}

#[test]
fn status_reports_exhaustion_as_code_50() {
    let tmp = TempDir::new().unwrap();
    let mut conf = network(
        "1.1.0",
        "net",
        tmp.path(),
        json!({"ranges": [
            [{"subnet": "10.60.0.0/24", "rangeStart": "10.60.0.10", "rangeEnd": "10.60.0.11"}],
            [{"subnet": "fd00:60::/64"}]
        ]}),
    );
    conf["cniVersion"] = json!("1.1.0");
    let status = Call::new(SKIFF, "STATUS", "");
    assert_eq!(status.run(&conf), (0, Value::Null));
    add(&conf, "a");
    assert_eq!(status.run(&conf).0, 0);
    add(&conf, "b");
    let out = status.err(&conf);
    assert_eq!(out["code"], 50);
    assert_eq!(
        out["msg"],
        "no IP addresses available in range set: 10.60.0.10-10.60.0.11"
    );
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    assert_eq!(status.run(&conf).0, 0);
}

#[test]
fn check_compares_prev_result_with_the_files() {
    let tmp = TempDir::new().unwrap();
    let conf = network(
        "1.0.0",
        "net",
        tmp.path(),
        json!({"ranges": [[{"subnet": "10.70.0.0/24"}], [{"subnet": "fd00:70::/64"}]]}),
    );
    let result = add(&conf, "a");
    add(&conf, "b");
    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    Call::new(SKIFF, "CHECK", "a").ok(&check);
    let wrong = Call::new(SKIFF, "CHECK", "b").err(&check);
    assert!(
        wrong["msg"].as_str().unwrap().contains("does not hold"),
        "{wrong}"
    );
    let mut partial = check.clone();
    partial["prevResult"]["ips"] = json!([result["ips"][0]]);
    let missing = Call::new(SKIFF, "CHECK", "a").err(&partial);
    assert!(
        missing["msg"]
            .as_str()
            .unwrap()
            .contains("prevResult does not list it"),
        "{missing}"
    );
    Call::new(SKIFF, "DEL", "a").ok(&conf);
    let gone = Call::new(SKIFF, "CHECK", "a").err(&check);
    assert!(
        gone["msg"].as_str().unwrap().contains("holds no address"),
        "{gone}"
    );
}

#[test]
fn bad_configurations_name_the_field() {
    let tmp = TempDir::new().unwrap();
    let cases = [
        (
            json!({"subnet": "10.80.0.0/24", "rangeEnd": "10.81.0.1"}),
            7,
            "rangeEnd 10.81.0.1 is not in subnet 10.80.0.0/24",
        ),
        (json!({"subnet": "10.80.0.1/24"}), 7, "host bits"),
        (
            json!({"subnet": "10.80.0.0/24", "rangeStart": "10.80.0.9", "rangeEnd": "10.80.0.8"}),
            7,
            "rangeStart 10.80.0.9 is after rangeEnd 10.80.0.8",
        ),
        (
            json!({"ranges": [[{"subnet": "10.80.0.0/24"}, {"subnet": "10.80.0.0/25"}]]}),
            7,
            "overlap",
        ),
        (
            json!({"subnet": "10.80.0.0/24", "gatway": "10.80.0.1"}),
            2,
            "did you mean \"gateway\"?",
        ),
        (json!({}), 7, "no IP ranges"),
    ];
    for (ipam, code, text) in cases {
        let conf = network("1.0.0", "net", tmp.path(), ipam);
        let out = Call::new(SKIFF, "ADD", "a").err(&conf);
        assert_eq!(out["code"], code, "{out}");
        assert!(out["msg"].as_str().unwrap().contains(text), "{out}");
    }
}

#[test]
fn fifty_parallel_adds_get_fifty_addresses() {
    let tmp = TempDir::new().unwrap();
    let conf = v4(tmp.path(), "10.90.0.0/24");
    let ids: Vec<String> = (0..50).map(|i| format!("container-{i}")).collect();
    let children: Vec<Child> = ids
        .iter()
        .map(|id| Call::new(SKIFF, "ADD", id).spawn(&conf))
        .collect();
    let mut got: Vec<String> = children
        .into_iter()
        .map(|c| {
            let (code, out) = finish(c);
            assert_eq!(code, 0, "{out}");
            first_address(&out)
        })
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 50);
    let held = files(&net_dir(&tmp));
    assert_eq!(held.len(), 50);
    let mut owners: Vec<String> = held
        .iter()
        .map(|(_, body)| body.split("\r\n").next().unwrap().to_string())
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(owners.len(), 50);
}

/// The same configuration for both plugins.
fn shared(data_dir: &Path, ipam: Value) -> Value {
    let mut conf = network("1.0.0", "shared", data_dir, ipam);
    conf["ipam"]["type"] = json!("host-local");
    conf
}

#[test]
fn host_local_and_skiff_share_a_data_dir() {
    let tmp = TempDir::new().unwrap();
    let conf = shared(tmp.path(), json!({"subnet": "10.100.0.0/24"}));
    let dir = tmp.path().join("shared");
    let hl = Call::new(HOST_LOCAL, "ADD", "hl-1").ok(&conf);
    assert_eq!(first_address(&hl), "10.100.0.2/24");
    assert_eq!(first_address(&add(&conf, "sk-1")), "10.100.0.3/24");
    // host-local resumes after skiff's last address, from skiff's files.
    assert_eq!(
        first_address(&Call::new(HOST_LOCAL, "ADD", "hl-2").ok(&conf)),
        "10.100.0.4/24"
    );
    // skiff reads host-local's files: an ADD for its container is idempotent.
    assert_eq!(first_address(&add(&conf, "hl-2")), "10.100.0.4/24");
    assert_eq!(first_address(&add(&conf, "sk-2")), "10.100.0.5/24");
    // host-local refuses a second ADD for a container skiff allocated: it sees the file.
    let dup = Call::new(HOST_LOCAL, "ADD", "sk-1").err(&conf);
    assert!(dup["msg"].as_str().unwrap().contains("10.100.0.3"), "{dup}");
    // host-local's CHECK finds skiff's allocation.
    let mut check = conf.clone();
    check["prevResult"] = hl.clone();
    Call::new(HOST_LOCAL, "CHECK", "sk-2").ok(&check);
    check["prevResult"]["ips"][0]["address"] = json!("10.100.0.4/24");
    Call::new(SKIFF, "CHECK", "hl-2").ok(&check);
    // Each DELs the other's container.
    Call::new(HOST_LOCAL, "DEL", "hl-1").ok(&conf);
    Call::new(HOST_LOCAL, "DEL", "sk-1").ok(&conf);
    Call::new(SKIFF, "DEL", "hl-2").ok(&conf);
    let left: Vec<String> = files(&dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["10.100.0.5"]);
    // Round-robin continues after .5 whoever allocates, then wraps to the freed ones.
    assert_eq!(
        first_address(&Call::new(HOST_LOCAL, "ADD", "hl-3").ok(&conf)),
        "10.100.0.6/24"
    );
    assert_eq!(first_address(&add(&conf, "sk-3")), "10.100.0.7/24");
}

#[test]
fn host_local_and_skiff_give_the_same_results() {
    let tmp = TempDir::new().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    fs::write(
        &resolv,
        "# generated\nnameserver 10.96.0.10\nnameserver fd00::10\ndomain cluster.local\n\
         search default.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:2\n",
    )
    .unwrap();
    let configs = [
        json!({"subnet": "10.110.0.0/24"}),
        json!({
            "subnet": "10.111.0.0/16", "rangeStart": "10.111.3.250", "rangeEnd": "10.111.4.2",
            "gateway": "10.111.4.0",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.111.0.9"}],
            "resolvConf": resolv
        }),
        json!({"subnet": "10.112.0.0/24", "gateway": "10.112.0.254"}),
        json!({
            "ranges": [
                [{"subnet": "10.113.0.0/28"}, {"subnet": "10.113.1.0/28", "gateway": "10.113.1.14"}],
                [{"subnet": "fd00:113::/120", "rangeStart": "fd00:113::10"}]
            ],
            "routes": [{"dst": "::/0", "gw": "fd00:113::1"}]
        }),
    ];
    for (i, ipam) in configs.into_iter().enumerate() {
        let hl_dir = tmp.path().join(format!("hl-{i}"));
        let sk_dir = tmp.path().join(format!("sk-{i}"));
        let hl_conf = shared(&hl_dir, ipam.clone());
        let sk_conf = shared(&sk_dir, ipam);
        // Enough ADDs to cross from one range into the next where a config has several.
        for c in [
            "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o",
        ] {
            let (hl_code, hl) = Call::new(HOST_LOCAL, "ADD", c).run(&hl_conf);
            let (sk_code, sk) = Call::new(SKIFF, "ADD", c).run(&sk_conf);
            assert_eq!(hl_code, sk_code, "config {i} container {c}: {hl} vs {sk}");
            if hl_code != 0 {
                break;
            }
            for key in ["cniVersion", "ips", "routes", "dns"] {
                assert_eq!(hl[key], sk[key], "config {i} container {c} {key}");
            }
        }
        assert_eq!(
            files(&hl_dir.join("shared")),
            files(&sk_dir.join("shared")),
            "config {i}"
        );
        assert_eq!(
            fs::read_to_string(hl_dir.join("shared/last_reserved_ip.0")).unwrap(),
            fs::read_to_string(sk_dir.join("shared/last_reserved_ip.0")).unwrap()
        );
    }
}
