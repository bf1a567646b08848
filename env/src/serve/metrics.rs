//! What `GET /metrics` reports, in Prometheus' text format (prometheus-client): calls by tool and
//! outcome, call latency, requests by route and status, live sessions, calls queued and running.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    /// `ok` or the error's kind (`deadline`, `invalid_arguments`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// The server's counters and gauges.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabel, Histogram>,
    requests: Family<RequestLabels, Counter>,
    /// Live sessions.
    pub sessions: Gauge,
    /// Calls admitted and waiting for a worker.
    pub queued: Gauge,
    /// Calls running.
    pub running: Gauge,
    /// Sessions dropped for lack of use.
    pub expired: Counter,
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~20 s.
    Histogram::new(exponential_buckets(1e-5, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("toolenv");
        let calls = Family::<CallLabels, Counter>::default();
        let latency =
            Family::<ToolLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let requests = Family::<RequestLabels, Counter>::default();
        let (sessions, queued, running) = (Gauge::default(), Gauge::default(), Gauge::default());
        let expired = Counter::default();
        registry.register(
            "calls",
            "Tool calls by tool and outcome (ok or the error kind)",
            calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Time of one tool call in the sandbox",
            latency.clone(),
        );
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register("sessions_live", "Live sessions", sessions.clone());
        registry.register(
            "calls_queued",
            "Calls admitted and waiting for a worker",
            queued.clone(),
        );
        registry.register("calls_running", "Calls running now", running.clone());
        registry.register(
            "sessions_expired",
            "Sessions dropped after their time to live without use",
            expired.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            requests,
            sessions,
            queued,
            running,
            expired,
        }
    }
}

impl Metrics {
    /// Counts one call of `tool` that ended in `outcome` after `elapsed`.
    pub fn call(&self, tool: &str, outcome: &str, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&ToolLabel {
                tool: tool.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
