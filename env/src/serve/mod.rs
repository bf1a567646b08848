//! `toolenv serve`: the environment as an HTTP/1.1 JSON service, so that an RL framework that
//! already runs (verl, VerlTool, TRL, SkyRL, verifiers) can use the sandbox over loopback or a
//! network.
//!
//! Routes are axum handlers ([`api`]) over shared state ([`Server`]); sessions are episodes
//! ([`sessions`]); `/metrics` is Prometheus text ([`metrics`]). Connections are served by hyper
//! directly rather than `axum::serve`, for the header read timeout (a client sending one byte a
//! second cannot hold a connection) and graceful shutdown (in-flight requests finish, idle
//! keep-alive connections close). What the model caused is never an HTTP error: a bad call is a
//! 200 with a typed error, exactly as the rollout loop would show it.

pub mod api;
pub mod metrics;
pub mod sessions;
pub mod wire;

use crate::registry::Registry;
use crate::rollout::{Roller, RolloutConfig};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics::Metrics;
use sessions::Sessions;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How the server runs. Every field has a command-line flag in `toolenv serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Calls running at once (wasm instances busy); the rest wait in the queue.
    pub workers: usize,
    /// Calls that may wait for a worker; beyond it, requests get 429.
    pub max_queue: usize,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most calls in one `/calls` request.
    pub max_calls_per_request: usize,
    /// Live sessions at most (429 beyond).
    pub max_sessions: usize,
    /// Default time to live of a session without use.
    pub session_ttl: Duration,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
    /// Time a request may take in all (408 beyond).
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Bearer token every route but `/health` requires, if set.
    pub token: Option<String>,
    /// Rollout limits for `/step`: turns per episode, calls per turn.
    pub rollout: RolloutConfig,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        ServeOptions {
            workers: cpus,
            max_queue: 4096,
            max_body_bytes: 8 << 20,
            max_calls_per_request: 256,
            max_sessions: 100_000,
            session_ttl: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            token: None,
            rollout: RolloutConfig::default(),
        }
    }
}

/// Everything a request handler reaches: the registry (through the roller), the sessions, the
/// limits and the metrics.
pub struct Server {
    /// The rollout core: `/step` and `/calls` run through it, as local episodes do.
    pub roller: Roller,
    /// Live sessions.
    pub sessions: Sessions,
    /// Counters and gauges.
    pub metrics: Metrics,
    /// The options the server was started with.
    pub options: ServeOptions,
    /// Calls admitted and not yet finished (running or queued).
    admitted: AtomicUsize,
}

impl Server {
    /// A server over `registry`.
    pub fn new(registry: Arc<Registry>, mut options: ServeOptions) -> Arc<Self> {
        options.workers = options.workers.max(1);
        options.rollout.max_calls_in_flight = options.workers;
        let sessions = Sessions::new(registry.clone(), options.session_ttl, options.max_sessions);
        Arc::new(Server {
            roller: Roller::new(registry, options.rollout.clone()),
            sessions,
            metrics: Metrics::default(),
            options,
            admitted: AtomicUsize::new(0),
        })
    }

    /// The registry served.
    pub fn registry(&self) -> &Registry {
        self.roller.registry()
    }

    /// Admits `calls` more calls, or says the queue is full. The returned guard gives them back.
    pub fn admit(self: &Arc<Self>, calls: usize) -> Option<Admission> {
        let capacity = self.options.workers + self.options.max_queue;
        let before = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + calls <= capacity || n == 0).then_some(n + calls)
            })
            .ok()?;
        self.publish_load(before + calls);
        Some(Admission {
            server: self.clone(),
            calls,
        })
    }

    fn publish_load(&self, admitted: usize) {
        let running = admitted.min(self.options.workers);
        self.metrics.running.set(running as i64);
        self.metrics.queued.set((admitted - running) as i64);
    }

    /// Drops expired sessions now.
    pub fn expire_sessions(&self) {
        let gone = self.sessions.expire(Instant::now());
        self.metrics.expired.inc_by(gone as u64);
        self.metrics.sessions.set(self.sessions.len() as i64);
    }
}

/// Calls admitted to run; released when dropped.
pub struct Admission {
    server: Arc<Server>,
    calls: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let before = self.server.admitted.fetch_sub(self.calls, Ordering::AcqRel);
        self.server.publish_load(before - self.calls);
    }
}

/// Serves `server` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (up to the grace period) and returns.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = api::router(server.clone());
    let graceful = GracefulShutdown::new();
    let reaper = tokio::spawn(reap(server.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(server.options.header_timeout)
            .keep_alive(true);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
        });
    }
    drop(listener);
    reaper.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(server.options.shutdown_grace) => {
            tracing::warn!("shutdown: in-flight requests still running after the grace period");
        }
    }
    Ok(())
}

/// Expires sessions about four times per shortest time to live, at least once a second.
async fn reap(server: Arc<Server>) {
    let every =
        (server.options.session_ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        server.expire_sessions();
    }
}
