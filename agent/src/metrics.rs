//! The agent's Prometheus metrics, served at `/metrics` on its API port.

/// The metrics in the Prometheus text exposition format.
pub fn render() -> String {
    String::new()
}
