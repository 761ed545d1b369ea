use super::*;

#[test]
fn counters_gauges_and_histograms_render_in_text_format() {
    let r = Registry::default();
    let c = r.counter("t_requests_total", "Requests.", &["verb", "code"]);
    c.with(&["GET", "200"]).inc();
    c.with(&["GET", "200"]).inc_by(2.0);
    c.with(&["PUT", "409"]).inc();
    let g = r.gauge("t_depth", "Depth.", &[]);
    g.with(&[]).set(3.5);
    let h = r.histogram("t_seconds", "Latency.", &["op"], &[0.1, 1.0]);
    h.with(&["x"]).observe(0.05);
    h.with(&["x"]).observe(0.5);
    h.with(&["x"]).observe(7.0);
    let out = r.render();
    assert!(out.contains("# TYPE t_requests_total counter\n"), "{out}");
    assert!(
        out.contains("t_requests_total{verb=\"GET\",code=\"200\"} 3\n"),
        "{out}"
    );
    assert!(
        out.contains("t_requests_total{verb=\"PUT\",code=\"409\"} 1\n"),
        "{out}"
    );
    assert!(out.contains("t_depth 3.5\n"), "{out}");
    assert!(
        out.contains("t_seconds_bucket{op=\"x\",le=\"0.1\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("t_seconds_bucket{op=\"x\",le=\"1\"} 2\n"),
        "{out}"
    );
    assert!(
        out.contains("t_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"),
        "{out}"
    );
    assert!(out.contains("t_seconds_sum{op=\"x\"} 7.55\n"), "{out}");
    assert!(out.contains("t_seconds_count{op=\"x\"} 3\n"), "{out}");
    assert!(out.contains("process_start_time_seconds "), "{out}");
    assert!(out.contains("process_resident_memory_bytes "), "{out}");
}

#[test]
fn the_same_name_is_the_same_family() {
    let r = Registry::default();
    r.counter("t_total", "x", &["a"]).with(&["1"]).inc();
    r.counter("t_total", "x", &["a"]).with(&["1"]).inc();
    assert_eq!(r.counter("t_total", "x", &["a"]).with(&["1"]).get(), 2.0);
    assert_eq!(r.render().matches("# TYPE t_total").count(), 1);
}

#[test]
fn label_values_are_escaped_and_series_can_be_removed() {
    let r = Registry::default();
    let g = r.gauge("t_g", "help with \\ and\nnewline", &["pod"]);
    g.with(&["a\"b\\c\nd"]).set(1.0);
    g.with(&["gone"]).set(2.0);
    g.remove(&["gone"]);
    let out = r.render();
    assert!(out.contains("t_g{pod=\"a\\\"b\\\\c\\nd\"} 1\n"), "{out}");
    assert!(
        out.contains("# HELP t_g help with \\\\ and\\nnewline\n"),
        "{out}"
    );
    assert!(!out.contains("gone"), "{out}");
}

#[test]
fn exponential_buckets_grow_by_the_factor() {
    assert_eq!(exponential_buckets(0.5, 2.0, 4), vec![0.5, 1.0, 2.0, 4.0]);
}

#[test]
fn series_of_one_label_value_can_be_dropped() {
    let r = Registry::default();
    let c = r.counter("t_probe_total", "x", &["pod", "result"]);
    c.with(&["a", "ok"]).inc();
    c.with(&["a", "failed"]).inc();
    c.with(&["b", "ok"]).inc();
    c.remove_where(&[("pod", "a")]);
    let out = r.render();
    assert!(!out.contains("pod=\"a\""), "{out}");
    assert!(
        out.contains("t_probe_total{pod=\"b\",result=\"ok\"} 1"),
        "{out}"
    );
}
