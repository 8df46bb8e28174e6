//! Prometheus metrics for `/metrics`: requests by API, operation, decision and status, latency
//! histograms, bytes in and out, connections (open, accepted, refused at a limit, closed by a
//! timeout or to make room), accept errors, request bodies that stalled, and the audit sink's
//! queue depth and fsync latency.
//!
//! Counters are atomics, except the labelled request counter, which is a small map behind a
//! mutex (one short lock per request).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A fixed-bucket histogram of durations in seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations in (previous bound, this bound]; rendered cumulatively.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        // One atomic per observation: each bucket counts only its own range, and rendering
        // accumulates them (Prometheus buckets are cumulative).
        let secs = d.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .find(|(bound, _)| secs <= **bound)
            .map(|(_, b)| b)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The audit sink's own numbers, shared with its writer thread.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events handed to the sink and not yet written.
    pub queue_depth: AtomicI64,
    /// Time spent in each fsync of the trail.
    pub fsync: Histogram,
    /// Events written and made durable.
    pub events_written: AtomicU64,
    /// Events that could not be written.
    pub events_failed: AtomicU64,
    /// Signed digests written.
    pub digests_written: AtomicU64,
    /// Events on disk not yet covered by a digest.
    pub unsigned_events: AtomicI64,
    /// Signed discontinuities recorded at start (`--audit-accept-discontinuity`).
    pub discontinuities: AtomicU64,
    /// Times the writer found its trail file or digest log swapped, cut or extended.
    pub tampering: AtomicU64,
    /// Whether the last commit failed for want of space (a full file system): refused writes
    /// are then answered `507 InsufficientStorage` rather than 503.
    pub storage_full: std::sync::atomic::AtomicBool,
}

/// Labels of the request counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    api: &'static str,
    operation: &'static str,
    decision: &'static str,
    status: u16,
}

/// The connection layer's numbers (see `crate::listener`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections accepted and admitted.
    pub accepted: AtomicU64,
    /// Connections closed at once because their source address had `max_connections_per_ip`
    /// busy connections.
    pub refused_per_ip: AtomicU64,
    /// Connections closed at once because `max_connections` were open and busy.
    pub refused_max: AtomicU64,
    /// Connections closed because a request head did not arrive within `header_timeout_secs`.
    pub header_timeouts: AtomicU64,
    /// Keep-alive connections closed after `idle_timeout_secs` without a request.
    pub idle_timeouts: AtomicU64,
    /// Connections between requests closed to make room for new clients (at the per-address cap
    /// or near `max_connections`).
    pub shed: AtomicU64,
    /// Requests refused with `RequestTimeout` because their body did not make progress.
    pub body_timeouts: AtomicU64,
    /// Failed `accept` calls (e.g. out of file descriptors); the loop backs off.
    pub accept_errors: AtomicU64,
}

/// Every metric the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    active_connections: AtomicI64,
    /// Applied changes whose `completed` audit record could not be written.
    unrecorded_outcomes: AtomicU64,
    /// The connection layer's numbers.
    pub connections: ConnectionStats,
    /// The audit sink's numbers.
    pub sink: Arc<SinkStats>,
    /// Active access keys past `max_key_age_days` (`keys::watch_key_age`); -1 until counted
    /// (not exported without the setting).
    keys_over_max_age: KeysOverMaxAge,
}

/// -1 until the gateway counts (only with `max_key_age_days`).
#[derive(Debug)]
struct KeysOverMaxAge(AtomicI64);

impl Default for KeysOverMaxAge {
    fn default() -> Self {
        KeysOverMaxAge(AtomicI64::new(-1))
    }
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone)]
pub struct RequestSample {
    /// `s3`, `ops`, ...
    pub api: &'static str,
    /// The operation name.
    pub operation: &'static str,
    /// `Allow`, `Deny` or `None`.
    pub decision: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Duration.
    pub duration: std::time::Duration,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Body bytes sent.
    pub bytes_out: u64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, s: &RequestSample) {
        self.latency.observe(s.duration);
        self.bytes_in.fetch_add(s.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(s.bytes_out, Ordering::Relaxed);
        let key = RequestKey {
            api: s.api,
            operation: s.operation,
            decision: s.decision,
            status: s.status,
        };
        if let Ok(mut map) = self.requests.lock() {
            *map.entry(key).or_insert(0) += 1;
        }
    }

    /// The number of active access keys past `max_key_age_days`, exported from now on.
    pub fn set_keys_over_max_age(&self, n: usize) {
        self.keys_over_max_age
            .0
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Counts an applied change whose `completed` audit record could not be written.
    pub fn unrecorded_outcome(&self) {
        self.unrecorded_outcomes.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened; the guard counts it closed when dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP keyhole_requests_total Requests by API, operation, decision and HTTP status.\n# TYPE keyhole_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for (k, v) in map.iter() {
                let _ = writeln!(
                    out,
                    "keyhole_requests_total{{api=\"{}\",operation=\"{}\",decision=\"{}\",status=\"{}\"}} {v}",
                    k.api,
                    escape_label(k.operation),
                    k.decision,
                    k.status
                );
            }
        }
        out.push_str("# HELP keyhole_request_duration_seconds Time from request arrival to the end of the response body (to the durable audit record for writes).\n# TYPE keyhole_request_duration_seconds histogram\n");
        self.latency
            .render(&mut out, "keyhole_request_duration_seconds", "");
        let gauges: [(&str, &str, &str, i64); 11] = [
            (
                "keyhole_request_bytes_total",
                "counter",
                "Payload bytes received.",
                clamp(self.bytes_in.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_response_bytes_total",
                "counter",
                "Response body bytes sent.",
                clamp(self.bytes_out.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_active_connections",
                "gauge",
                "Open client connections.",
                self.active_connections.load(Ordering::Relaxed),
            ),
            (
                "keyhole_audit_queue_depth",
                "gauge",
                "Audit events waiting to be written.",
                self.sink.queue_depth.load(Ordering::Relaxed),
            ),
            (
                "keyhole_audit_events_written_total",
                "counter",
                "Audit events written and fsynced.",
                clamp(self.sink.events_written.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_audit_events_failed_total",
                "counter",
                "Audit events the sink could not write.",
                clamp(self.sink.events_failed.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_audit_unrecorded_outcomes_total",
                "counter",
                "Changes applied and answered whose completed audit record could not be written (the trail shows them as authorized, outcome unknown).",
                clamp(self.unrecorded_outcomes.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_audit_digests_written_total",
                "counter",
                "Signed audit digests written.",
                clamp(self.sink.digests_written.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_audit_unsigned_events",
                "gauge",
                "Audit events on disk not yet covered by a signed digest.",
                self.sink.unsigned_events.load(Ordering::Relaxed),
            ),
            (
                "keyhole_audit_discontinuities_total",
                "counter",
                "Signed audit discontinuities recorded at start (the trail did not match its digests and --audit-accept-discontinuity was given).",
                clamp(self.sink.discontinuities.load(Ordering::Relaxed)),
            ),
            (
                "keyhole_audit_tampering_detected_total",
                "counter",
                "Times the audit writer found its trail file or digest log swapped, cut or extended (writes are then refused until restart).",
                clamp(self.sink.tampering.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        self.render_connections(&mut out);
        let over = self.keys_over_max_age.0.load(Ordering::Relaxed);
        if over >= 0 {
            let _ = writeln!(
                out,
                "# HELP keyhole_access_keys_over_max_age Active access keys at least max_key_age_days old.\n# TYPE keyhole_access_keys_over_max_age gauge\nkeyhole_access_keys_over_max_age {over}"
            );
        }
        out.push_str("# HELP keyhole_audit_fsync_seconds Time of each fsync of the audit trail.\n# TYPE keyhole_audit_fsync_seconds histogram\n");
        self.sink
            .fsync
            .render(&mut out, "keyhole_audit_fsync_seconds", "");
        out
    }
}

impl Metrics {
    /// The connection layer's counters.
    fn render_connections(&self, out: &mut String) {
        let c = &self.connections;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP keyhole_connections_accepted_total Connections accepted and admitted.\n# TYPE keyhole_connections_accepted_total counter\nkeyhole_connections_accepted_total {}",
            load(&c.accepted)
        );
        let _ = writeln!(
            out,
            "# HELP keyhole_connections_refused_total Connections closed on arrival at a limit: per_ip (max_connections_per_ip busy connections from that address) or max (max_connections busy).\n# TYPE keyhole_connections_refused_total counter\nkeyhole_connections_refused_total{{limit=\"per_ip\"}} {}\nkeyhole_connections_refused_total{{limit=\"max\"}} {}",
            load(&c.refused_per_ip),
            load(&c.refused_max)
        );
        let _ = writeln!(
            out,
            "# HELP keyhole_connections_closed_total Connections the gateway closed: header_timeout (no complete request head in time), idle_timeout (keep-alive without a request), shed (between requests, to make room for new clients).\n# TYPE keyhole_connections_closed_total counter\nkeyhole_connections_closed_total{{reason=\"header_timeout\"}} {}\nkeyhole_connections_closed_total{{reason=\"idle_timeout\"}} {}\nkeyhole_connections_closed_total{{reason=\"shed\"}} {}",
            load(&c.header_timeouts),
            load(&c.idle_timeouts),
            load(&c.shed)
        );
        let _ = writeln!(
            out,
            "# HELP keyhole_request_body_timeouts_total Requests refused with RequestTimeout because their body stopped making progress.\n# TYPE keyhole_request_body_timeouts_total counter\nkeyhole_request_body_timeouts_total {}",
            load(&c.body_timeouts)
        );
        let _ = writeln!(
            out,
            "# HELP keyhole_accept_errors_total Failed accept calls (e.g. out of file descriptors); accepting backs off after each.\n# TYPE keyhole_accept_errors_total counter\nkeyhole_accept_errors_total {}",
            load(&c.accept_errors)
        );
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Decrements the active-connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.record(&RequestSample {
            api: "s3",
            operation: "GetObject",
            decision: "Allow",
            status: 200,
            duration: Duration::from_millis(3),
            bytes_in: 0,
            bytes_out: 10,
        });
        m.record(&RequestSample {
            api: "s3",
            operation: "GetObject",
            decision: "Allow",
            status: 200,
            duration: Duration::from_millis(30),
            bytes_in: 0,
            bytes_out: 5,
        });
        let g = m.connection_opened();
        m.sink.fsync.observe(Duration::from_micros(800));
        let text = m.render();
        assert!(text.contains(
            "keyhole_requests_total{api=\"s3\",operation=\"GetObject\",decision=\"Allow\",status=\"200\"} 2"
        ), "{text}");
        assert!(text.contains("keyhole_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("keyhole_request_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("keyhole_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("keyhole_request_duration_seconds_count 2"));
        assert!(text.contains("keyhole_response_bytes_total 15"));
        assert!(text.contains("keyhole_active_connections 1"));
        assert!(text.contains("keyhole_audit_fsync_seconds_bucket{le=\"0.001\"} 1"));
        m.connections.refused_per_ip.fetch_add(3, Ordering::Relaxed);
        m.connections
            .header_timeouts
            .fetch_add(1, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("keyhole_connections_refused_total{limit=\"per_ip\"} 3"));
        assert!(text.contains("keyhole_connections_refused_total{limit=\"max\"} 0"));
        assert!(text.contains("keyhole_connections_closed_total{reason=\"header_timeout\"} 1"));
        assert!(text.contains("keyhole_request_body_timeouts_total 0"));
        assert!(text.contains("keyhole_accept_errors_total 0"));
        drop(g);
        assert!(m.render().contains("keyhole_active_connections 0"));
        // Every non-comment line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
