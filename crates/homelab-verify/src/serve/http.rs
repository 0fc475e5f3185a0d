//! The endpoints of `serve`, behind hyper (HTTP/1.1; hyper parses, this file only routes):
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 when every check passes, else 503 with the failed checks (plain text) |
//! | `/readyz?probe=P` | the same for one probe |
//! | `/metrics` | Prometheus text format |
//! | `/report.json` | the JSON report |
//!
//! Unknown paths are 404, methods other than GET and HEAD 405, a request with a body 413
//! (none of the endpoints takes one), a bad or missing `probe` 400.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use homelab_probe::{Probe, Status};

use super::state::{ProbeResult, State};
use crate::formats;

const TEXT: &str = "text/plain; charset=utf-8";

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Every answer is about the host now: no cache between the client and us may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    respond(status, TEXT, body)
}

fn probe_names() -> String {
    Probe::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

const INDEX: &str = "homelab-verify serve\n\n\
/healthz           200 when every check passes, else 503 with the failed checks\n\
/readyz?probe=P    the same for one probe (identity, render_node, gpu, mounts, drift)\n\
/metrics           Prometheus text format\n\
/report.json       the JSON report\n";

/// Answers one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(route(&state, &req).await)
}

enum Endpoint {
    Index,
    Health,
    Ready(Probe),
    Metrics,
    Report,
}

async fn route(state: &Arc<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let endpoint = match req.uri().path() {
        "/" => Endpoint::Index,
        "/healthz" => Endpoint::Health,
        "/metrics" => Endpoint::Metrics,
        "/report.json" => Endpoint::Report,
        "/readyz" => {
            let query = req.uri().query().unwrap_or("");
            let asked: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "probe")
                .map(|(_, v)| v.into_owned())
                .collect();
            match asked.as_slice() {
                [one] => match Probe::from_name(one) {
                    Some(p) => Endpoint::Ready(p),
                    None => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            format!("unknown probe `{one}`: expected one of {}\n", probe_names()),
                        );
                    }
                },
                _ => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("/readyz needs one probe: /readyz?probe=P, P one of {}\n", probe_names()),
                    );
                }
            }
        }
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found: the endpoints are /healthz, /readyz?probe=P, /metrics, /report.json\n",
            );
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0));
    if has_body {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "these endpoints take no request body\n");
    }
    match endpoint {
        Endpoint::Index => text(StatusCode::OK, INDEX),
        Endpoint::Health => health(&state.results(&Probe::ALL).await, state.reload_error().as_deref(), true),
        // A broken expectations file does not make one probe unready: it still checks against
        // the last good file, and says so.
        Endpoint::Ready(p) => health(&state.results(&[p]).await, state.reload_error().as_deref(), false),
        Endpoint::Metrics => {
            let run = state.run_of(&state.results(&Probe::ALL).await);
            match formats::prometheus::render(&run) {
                Ok(body) => respond(StatusCode::OK, formats::prometheus::CONTENT_TYPE, body),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the metrics: {e}\n")),
            }
        }
        Endpoint::Report => {
            let run = state.run_of(&state.results(&Probe::ALL).await);
            match serde_json::to_vec_pretty(&run.report) {
                Ok(mut body) => {
                    body.push(b'\n');
                    respond(StatusCode::OK, "application/json", body)
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the report: {e}\n")),
            }
        }
    }
}

/// 200 when every result is in and no check failed, else 503; the body says which checks
/// failed and how to fix them. A failed reload of the expectations file is reported, and
/// makes the answer 503 when `error_fails`.
fn health(
    results: &[(Probe, Option<Arc<ProbeResult>>)],
    reload_error: Option<&str>,
    error_fails: bool,
) -> Response<Full<Bytes>> {
    let mut counts = [0usize; 4];
    let mut out = String::new();
    let mut failures = String::new();
    for (probe, result) in results {
        let Some(r) = result else {
            let _ = writeln!(failures, "PENDING  {probe}: no result yet (its first run has not ended)");
            continue;
        };
        for f in r.findings() {
            counts[match f.status {
                Status::Pass => 0,
                Status::Warn => 1,
                Status::Skip => 2,
                Status::Fail => 3,
            }] += 1;
            if f.status == Status::Fail {
                let _ = writeln!(failures, "FAIL  {}  {}: {}", f.probe, f.subject, f.message);
                if let Some(fix) = &f.remedy {
                    let lead = format!("fix ({}):", fix.kind.label());
                    for (i, line) in fix.text.lines().enumerate() {
                        let lead = if i == 0 { lead.clone() } else { " ".repeat(lead.len()) };
                        let _ = writeln!(failures, "      {lead} {line}");
                    }
                }
            }
        }
    }
    let [pass, warn, skip, fail] = counts;
    let healthy = failures.is_empty() && !(error_fails && reload_error.is_some());
    let verdict = if healthy { "OK" } else { "FAILED" };
    let _ = writeln!(out, "{verdict}: {pass} pass, {warn} warn, {skip} skip, {fail} fail");
    out.push_str(&failures);
    if let Some(e) = reload_error {
        let _ = writeln!(out, "expectations: {e}");
    }
    text(if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, out)
}
