//! `homelab-verify serve`: the checks behind HTTP endpoints, for health checks, readiness
//! gates and Prometheus (docs/serve.md).
//!
//! hyper (HTTP/1.1) on tokio: hyper parses requests with bounded header size and count and
//! closes a connection whose request headers do not arrive within [`HEADER_TIMEOUT`] (also
//! between requests on a kept-alive connection); the number of open connections is bounded by
//! [`MAX_CONNECTIONS`] (more wait in the kernel's accept queue). SIGHUP reloads the
//! expectations file, SIGTERM and SIGINT stop accepting, let open requests finish (at most
//! [`SHUTDOWN_GRACE`]) and exit 0.

mod http;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use homelab_probe::{Expectations, Host};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use state::State;

/// `serve --help`'s exit codes.
pub const EXIT_CODES: &str = "Exit codes: 0 stopped by SIGTERM or SIGINT, 2 bad usage or bad input (an invalid \
expectations file at start, an address that cannot be listened on).";

/// How long a client may take to send a request's headers, and how long a kept-alive
/// connection may stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Request headers larger than this are refused (431).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Open connections at most; further clients wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long open requests may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Keep checking this host and answer over HTTP: /healthz (200 or 503 with the failed
/// checks), /readyz?probe=P (one probe: identity, render_node, gpu, mounts, drift), /metrics
/// (Prometheus) and /report.json.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9723")]
    listen: SocketAddr,
    /// Allow a --listen address other than loopback. The endpoints have no authentication and
    /// tell whoever reaches them about this host's users, disks and GPUs.
    #[arg(long)]
    allow_remote: bool,
    /// Expectations file (`homelab-probe.toml`), re-read on SIGHUP; without it, the built-in
    /// defaults.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Root directory of the host to check: `/` for this machine, or a sysroot.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// How long a probe's result is reused: each probe runs at most once per DURATION however
    /// many requests come, and requests that come while it runs share that run.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    cache: Duration,
    /// How often the drift probe scans its roots. It never runs because of a request (a scan
    /// can take a minute); requests get its latest result.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    drift_interval: Duration,
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "--listen {}: not a loopback address; add --allow-remote to listen there (the endpoints have no authentication)",
            args.listen
        );
    }
    let host = Host::at(&args.root)?;
    let (expectations, source) = match &args.expect {
        Some(file) => (Expectations::load(file)?, file.display().to_string()),
        None => (Expectations::builtin(), "built-in defaults".to_owned()),
    };
    let listener =
        std::net::TcpListener::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let state = Arc::new(State::new(host, expectations, source, args.expect.clone(), args.cache));

    // Two workers answer requests (cached answers take microseconds); probes run on the
    // blocking pool, so a slow one never holds up the workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = runtime.block_on(serve(listener, state, args.drift_interval));
    // A drift scan in progress only reads: it is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result.map(|()| ExitCode::SUCCESS)
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>, drift_interval: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    eprintln!("homelab-verify serve: listening on http://{}", listener.local_addr()?);

    tokio::spawn(state.clone().drift_loop(drift_interval));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(64)
        .keep_alive(true);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit?,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { state.reload(); continue; }
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: say so, and do not spin.
                    eprintln!("homelab-verify serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { state.reload(); continue; }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| http::handle(state.clone(), req));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, malformed): nothing to report.
            let _ = conn.await;
            drop(permit);
        });
    }
    eprintln!("homelab-verify serve: stopping");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        eprintln!("homelab-verify serve: open connections did not finish in {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}
