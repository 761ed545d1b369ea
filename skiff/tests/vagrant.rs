//! The multi-node set-up without booting anything: `vagrant validate` on vagrant/Vagrantfile,
//! the scripts it runs (`bash -n`, shellcheck), the systemd units those scripts write, and
//! the `skiff` flags the units use. Every tool is required: a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("running {what} (is it installed? scripts/install-deps.sh installs it): {e}")
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `vagrant validate --ignore-provider` in vagrant/, with its state in a temporary
/// directory (nothing under ~/.vagrant.d or in the repository) and no version check over
/// the network.
fn vagrant_validate(env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new("vagrant");
    cmd.args(["validate", "--ignore-provider"])
        .current_dir(repo().join("vagrant"))
        .env("VAGRANT_HOME", home.path().join("home"))
        .env("VAGRANT_DOTFILE_PATH", home.path().join("dot"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1");
    for var in [
        "SKIFF_CP_CPUS",
        "SKIFF_CP_MEMORY",
        "SKIFF_WORKER_CPUS",
        "SKIFF_WORKER_MEMORY",
        "SKIFF_WORKERS",
        "SKIFF_BOX",
        "SKIFF_SYNC_TYPE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    run(&mut cmd, "vagrant")
}

#[test]
fn vagrantfile_validates() {
    let out = vagrant_validate(&[]);
    let said = text(&out);
    assert!(out.status.success(), "vagrant validate failed:\n{said}");
    assert!(
        said.contains("Vagrantfile validated successfully"),
        "{said}"
    );
    for machine in ["cp", "w1", "w2"] {
        assert!(
            said.contains(&format!("==> {machine}:")),
            "no {machine}:\n{said}"
        );
    }
    assert!(!said.contains("==> w3:"), "{said}");
}

#[test]
fn vagrantfile_settings_come_from_the_environment() {
    let out = vagrant_validate(&[
        ("SKIFF_WORKERS", "3"),
        ("SKIFF_CP_CPUS", "4"),
        ("SKIFF_CP_MEMORY", "8192"),
        ("SKIFF_WORKER_MEMORY", "2048"),
        ("SKIFF_SYNC_TYPE", "virtualbox"),
    ]);
    let said = text(&out);
    assert!(out.status.success(), "vagrant validate failed:\n{said}");
    assert!(said.contains("==> w3:"), "{said}");

    for (var, value, expected) in [
        (
            "SKIFF_CP_MEMORY",
            "lots",
            "SKIFF_CP_MEMORY=\"lots\": expected a whole number",
        ),
        (
            "SKIFF_WORKER_CPUS",
            "0",
            "SKIFF_WORKER_CPUS=\"0\": expected a whole number of at least 1",
        ),
        ("SKIFF_WORKERS", "10", "at most 9 workers"),
    ] {
        let out = vagrant_validate(&[(var, value)]);
        let said = text(&out);
        assert!(!out.status.success(), "{var}={value} was accepted:\n{said}");
        assert!(said.contains(expected), "{var}={value}:\n{said}");
    }
}

fn scripts() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(repo().join("scripts"))
        .expect("reading scripts/")
        .map(|e| e.expect("reading scripts/").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    all.sort();
    for needed in [
        "install.sh",
        "install-deps.sh",
        "control-plane.sh",
        "join-node.sh",
    ] {
        assert!(
            all.iter().any(|p| p.ends_with(needed)),
            "scripts/{needed} is missing"
        );
    }
    all
}

#[test]
fn scripts_are_valid_bash() {
    for script in scripts() {
        let out = run(Command::new("bash").arg("-n").arg(&script), "bash");
        assert!(out.status.success(), "{}: {}", script.display(), text(&out));
    }
}

#[test]
fn scripts_pass_shellcheck() {
    let out = run(
        Command::new("shellcheck")
            .arg("--external-sources")
            .args(scripts())
            .current_dir(repo()),
        "shellcheck",
    );
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

fn script(name: &str, args: &[&str]) -> Output {
    run(
        Command::new(repo().join("scripts").join(name))
            .args(args)
            .env("SKIFF_BIN", "/usr/local/bin/skiff"),
        name,
    )
}

fn exec_start(out: &Output) -> String {
    let said = text(out);
    assert!(out.status.success(), "{said}");
    said.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart:\n{said}"))
        .to_string()
}

#[test]
fn join_node_writes_a_unit_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let join = dir.path().join("join");
    let token = "abcdef.0123456789abcdef";
    // What `skiff token create` prints: the token, then the command.
    std::fs::write(
        &join,
        format!(
            "{token}\nskiff join --server https://192.168.56.10:6443 --token {token} --ca-cert-hash sha256:00ff\n"
        ),
    )
    .unwrap();
    let out = script(
        "join-node.sh",
        &[
            "--join-file",
            join.to_str().unwrap(),
            "--node-ip",
            "192.168.56.11",
            "--print",
        ],
    );
    assert_eq!(
        exec_start(&out),
        "/usr/local/bin/skiff join --server https://192.168.56.10:6443 --data-dir /var/lib/skiff --ca-cert-hash sha256:00ff --node-ip 192.168.56.11"
    );
    let said = text(&out);
    assert!(!said.contains(token), "the token is in the unit:\n{said}");
    assert!(
        said.contains("EnvironmentFile=/etc/skiff/skiff-node.env"),
        "{said}"
    );
    assert!(said.contains("KillMode=process"), "{said}");

    let out = script(
        "join-node.sh",
        &[
            "--server",
            "https://10.0.0.1:6443",
            "--token",
            token,
            "--ca-cert-hash",
            "sha256:aa",
            "--ca-cert-hash",
            "sha256:bb",
            "--node-name",
            "n1",
            "--print",
        ],
    );
    assert_eq!(
        exec_start(&out),
        "/usr/local/bin/skiff join --server https://10.0.0.1:6443 --data-dir /var/lib/skiff --ca-cert-hash sha256:aa --ca-cert-hash sha256:bb --node-name n1"
    );

    std::fs::write(&join, "no command here\n").unwrap();
    let out = script(
        "join-node.sh",
        &["--join-file", join.to_str().unwrap(), "--print"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no 'skiff join ...' line"),
        "{}",
        text(&out)
    );
    let out = script("join-node.sh", &["--server", "https://x:6443", "--print"]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn control_plane_writes_a_unit_for_skiff_up() {
    let out = script(
        "control-plane.sh",
        &["--advertise-address", "192.168.56.10", "--print"],
    );
    assert_eq!(
        exec_start(&out),
        "/usr/local/bin/skiff up --data-dir /var/lib/skiff --port 6443 --advertise-address 192.168.56.10"
    );
    let out = script("control-plane.sh", &["--bogus"]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = script(
        "control-plane.sh",
        &["--join-file", "/tmp/x", "--no-wait", "--print"],
    );
    assert!(!out.status.success(), "{}", text(&out));
}

/// The flags the units pass are ones `skiff` accepts.
#[test]
fn skiff_takes_the_flags_the_units_use() {
    let help = |args: &[&str]| {
        let out = run(Command::new(SKIFF).args(args).arg("--help"), "skiff");
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let up = help(&["up"]);
    for flag in ["--data-dir", "--port", "--advertise-address", "--node-ip"] {
        assert!(up.contains(flag), "skiff up has no {flag}:\n{up}");
    }
    let join = help(&["join"]);
    for flag in [
        "--server",
        "--token",
        "--ca-cert-hash",
        "--data-dir",
        "--node-ip",
        "--node-name",
    ] {
        assert!(join.contains(flag), "skiff join has no {flag}:\n{join}");
    }
    let token = help(&["token", "create"]);
    for flag in ["--data-dir", "--ttl", "--description"] {
        assert!(
            token.contains(flag),
            "skiff token create has no {flag}:\n{token}"
        );
    }
    // An address that is not one is refused before anything starts.
    let out = run(
        Command::new(SKIFF).args(["up", "--advertise-address", "cp.example"]),
        "skiff",
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--advertise-address"), "{}", text(&out));
}
