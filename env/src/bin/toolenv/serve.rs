//! `toolenv serve`: the environment as an HTTP service (see `toolenv::serve` for the routes).
//! This file turns flags into options, binds, and owns the signals: SIGTERM or Ctrl-C stop
//! accepting, let in-flight requests finish, then exit 0.

use crate::ConfigArg;
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use toolenv::rollout::RolloutConfig;
use toolenv::serve::{self, ServeOptions, Server};

/// Arguments of `toolenv serve`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (loopback by default; give 0.0.0.0:PORT to serve a network).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Serve only these tools (comma-separated names; default: every tool of the config).
    #[arg(long, value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// Calls running at once (default: the number of CPUs).
    #[arg(long)]
    workers: Option<usize>,
    /// Calls that may wait for a worker; beyond it requests get 429 with Retry-After.
    #[arg(long, default_value_t = 4096)]
    max_queue: usize,
    /// Largest request body, in bytes (413 beyond).
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Most live sessions (429 beyond).
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// Seconds a session lives without use (a session's own `ttl_s` wins).
    #[arg(long, default_value_t = 600.0)]
    session_ttl_s: f64,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10.0)]
    header_timeout_s: f64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = 30.0)]
    body_timeout_s: f64,
    /// Seconds a request may take in all (408 beyond).
    #[arg(long, default_value_t = 300.0)]
    request_timeout_s: f64,
    /// Most assistant turns of a `/step` episode (`done` after the last).
    #[arg(long, default_value_t = RolloutConfig::default().max_turns)]
    max_turns: u32,
    /// Most calls one `/step` turn runs (further lines get a `too_many_calls` error).
    #[arg(long, default_value_t = RolloutConfig::default().max_calls_per_turn)]
    max_calls_per_turn: usize,
    /// Name of an environment variable holding a bearer token every route but /health requires.
    #[arg(long)]
    token_env: Option<String>,
}

fn seconds(flag: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag}: must be a positive number of seconds, got {s}"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = match &args.token_env {
        Some(name) => {
            let token = std::env::var(name)
                .with_context(|| format!("--token-env {name}: the variable is not set"))?;
            anyhow::ensure!(
                !token.is_empty(),
                "--token-env {name}: the variable is empty"
            );
            Some(token)
        }
        None => None,
    };
    let defaults = ServeOptions::default();
    let options = ServeOptions {
        workers: args.workers.unwrap_or(defaults.workers),
        max_queue: args.max_queue,
        max_body_bytes: args.max_body_bytes,
        max_sessions: args.max_sessions,
        session_ttl: seconds("session-ttl-s", args.session_ttl_s)?,
        header_timeout: seconds("header-timeout-s", args.header_timeout_s)?,
        body_timeout: seconds("body-timeout-s", args.body_timeout_s)?,
        request_timeout: seconds("request-timeout-s", args.request_timeout_s)?,
        token,
        rollout: RolloutConfig {
            max_turns: args.max_turns,
            max_calls_per_turn: args.max_calls_per_turn,
            ..RolloutConfig::default()
        },
        ..defaults
    };
    let registry = toolenv::Registry::load_selecting(&args.config.config, args.tools.as_deref())?;
    let tools = registry.tools().len();
    let server = Server::new(Arc::new(registry), options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("--addr {}: cannot listen", args.addr))?;
        let addr = listener.local_addr()?;
        // One line on stdout once the socket is bound: scripts and tests wait for it.
        println!("toolenv serve: listening on http://{addr} ({tools} tools)");
        serve::serve(listener, server, shutdown_signal()).await?;
        eprintln!("toolenv serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM (what process managers and Kubernetes send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a handler there is nothing to wait for but SIGTERM.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
