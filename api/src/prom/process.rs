//! The standard `process_*` metrics of the running process, read from `/proc/self` at
//! render time.

use std::fmt::Write;
use std::sync::LazyLock;

use super::render::number;

/// Names of the families this module writes.
pub const PROCESS_FAMILIES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

static START: LazyLock<f64> = LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
});

/// Marks the process start; call early in `main` so `process_start_time_seconds` is
/// accurate (otherwise it is the first render).
pub fn mark_start() {
    LazyLock::force(&START);
}

struct Stat {
    cpu_seconds: f64,
    vsize: f64,
    rss_bytes: f64,
}

fn stat() -> Option<Stat> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields start after its closing parenthesis.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers (1-based, man 5 proc) minus 3 for pid, comm and the shift.
    let ticks = 100.0; // USER_HZ is 100 on every Linux target skiff runs on.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let vsize: f64 = f.get(20)?.parse().ok()?;
    let rss_pages: f64 = f.get(21)?.parse().ok()?;
    Some(Stat {
        cpu_seconds: (utime + stime) / ticks,
        vsize,
        rss_bytes: rss_pages * 4096.0,
    })
}

pub(super) fn render(out: &mut String) {
    let start = *START;
    let mut one = |name: &str, help: &str, kind: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", number(v));
    };
    if let Some(s) = stat() {
        one(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            s.cpu_seconds,
        );
        one(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            s.rss_bytes,
        );
        one(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            s.vsize,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        one(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds.count() as f64,
        );
    }
    one(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        start,
    );
}
