//! What the platform requires of a running instance: `/healthz`, `/readyz`, `/metrics`, a
//! request id on every request, and the count and duration of every response.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;

/// The header that carries the id of a request, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long `/readyz` waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `/metrics` waits for the gauges from the database.
const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Days before expiry from which a certificate counts as expiring.
const EXPIRING_DAYS: i64 = 30;

/// Builds the router of a separate metrics listener: `/metrics` and the probes.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the database responds, its schema has every migration this
/// binary carries, every environment has a CA and the instance is not shutting down; 503
/// otherwise. The body names the failed check.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let schema = tokio::time::timeout(READINESS_TIMEOUT, ozo_store::schema_state(state.pool())).await;
    let (database, schema_ready, schema_text) = match schema {
        // A rolling upgrade migrates before the new release's instances start. The old
        // instances keep serving, because a release's migrations must keep the previous
        // release working.
        Ok(Ok(state)) => (
            "ok".to_owned(),
            matches!(state, ozo_store::SchemaState::Current { .. } | ozo_store::SchemaState::Ahead { .. }),
            state.to_string(),
        ),
        Ok(Err(error)) => (format!("unreachable: {error}"), false, "unknown".to_owned()),
        Err(_) => (format!("no answer within {} s", READINESS_TIMEOUT.as_secs()), false, "unknown".to_owned()),
    };
    let environments: serde_json::Map<String, serde_json::Value> = state
        .environments()
        .map(|runtime| (runtime.environment.name.to_string(), runtime.signer.describe().into()))
        .collect();
    let draining = state.is_draining();

    let ready = database == "ok" && schema_ready && !environments.is_empty() && !draining;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "ready": ready,
        "database": database,
        "schema": schema_text,
        "environments": environments,
        "draining": draining,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: every counter and histogram of this instance in Prometheus' text
/// format, with gauges read from the database at the moment of the scrape.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(render) = state.metrics_renderer() else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled in this process\n").into_response();
    };

    // A slow database must not fail the whole scrape: the counters are served anyway,
    // with the gauges of the last scrape that read them.
    match tokio::time::timeout(GAUGE_TIMEOUT, record_gauges(&state)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "failed to read the gauges for /metrics");
            metrics::counter!("ozo_metrics_gauge_errors_total").increment(1);
        }
        Err(_) => {
            tracing::warn!(timeout_ms = GAUGE_TIMEOUT.as_millis() as u64, "the gauges for /metrics timed out");
            metrics::counter!("ozo_metrics_gauge_errors_total").increment(1);
        }
    }

    let mut response = render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// The `environment` label of a rejection whose environment is not known or not
/// configured, so that no client input becomes a label value.
const UNKNOWN_ENVIRONMENT: &str = "unknown";

/// Registers each series of the counters whose label values come from a fixed set, at
/// zero, so that every series exists from the first scrape and `rate()` and
/// `increase()` see its first increment. Counters labelled with a route, an HTTP status
/// or a CA's status code start at their first event.
pub(crate) fn start_counters_at_zero(state: &AppState) {
    use ozo_domain::FindingCode;
    use ozo_store::jobs::JobAction;

    // A validation finding of any code can reject an upload, and a key-reuse finding
    // comes from the store. Uploads rejected with 413 count as too-large, also under
    // the unknown environment.
    for runtime in state.environments() {
        for code in FindingCode::ALL {
            let environment = runtime.environment.name.to_string();
            metrics::counter!("ozo_csr_rejections_total", "environment" => environment, "reason" => code.as_str())
                .increment(0);
        }
    }
    let too_large = FindingCode::TooLarge.as_str();
    metrics::counter!("ozo_csr_rejections_total", "environment" => UNKNOWN_ENVIRONMENT, "reason" => too_large)
        .increment(0);

    for action in JobAction::ALL {
        for outcome in crate::signing::OUTCOME_LABELS {
            metrics::counter!("ozo_signing_attempts_total", "action" => action.as_str(), "outcome" => outcome)
                .increment(0);
        }
    }
    for scope in state.rate_limit_scopes() {
        metrics::counter!("ozo_rate_limited_total", "scope" => scope).increment(0);
    }
    metrics::counter!("ozo_metrics_gauge_errors_total").increment(0);
}

/// Counts an upload rejected with 413 in `ozo_csr_rejections_total` with the reason
/// too-large. `requested_environment` becomes the label only when it names a configured
/// environment. An upload whose environment is in the body that was too large to read
/// counts as unknown.
pub(crate) fn count_oversized_upload(state: &AppState, requested_environment: Option<&str>) {
    let environment = requested_environment
        .and_then(|name| state.environment(name.trim()))
        .map_or(UNKNOWN_ENVIRONMENT, |runtime| runtime.environment.name.as_str());
    tracing::info!(
        environment,
        max_body_bytes = crate::MAX_BODY_BYTES,
        "rejected an upload larger than the body limit"
    );
    let reason = ozo_domain::FindingCode::TooLarge.as_str();
    metrics::counter!("ozo_csr_rejections_total", "environment" => environment.to_owned(), "reason" => reason)
        .increment(1);
}

async fn record_gauges(state: &AppState) -> Result<(), sqlx::Error> {
    let mut conn = state.pool().acquire().await?;
    let gauges = ozo_store::stats::gauges(&mut conn, EXPIRING_DAYS).await?;
    // Every configured environment gets a value, so that a zero is a zero and not a gap.
    for runtime in state.environments() {
        let name = runtime.environment.name.as_str();
        let pending = gauges.pending.get(name).copied().unwrap_or_default();
        let expiring = gauges.expiring.get(name).copied().unwrap_or_default();
        metrics::gauge!("ozo_requests_pending", "environment" => name.to_owned()).set(pending as f64);
        metrics::gauge!("ozo_certificates_expiring_30d", "environment" => name.to_owned()).set(expiring as f64);
    }
    metrics::gauge!("ozo_audit_chain_length").set(gauges.chain_length as f64);
    metrics::gauge!("ozo_audit_events_queued").set(gauges.events_queued as f64);
    Ok(())
}

/// Gives every request a fresh id, in the request's extensions, its headers and the
/// response's headers. An id sent by the client is replaced, so that no client can make
/// its lines look like another request's.
pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let value = HeaderValue::from_str(&id).expect("a UUID in hex is a valid header value");
    request.headers_mut().insert(REQUEST_ID_HEADER, value.clone());

    let mut response = next.run(request).await;

    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// Counts each response by route and status and records its duration. Routes are the
/// patterns, such as `/api/v1/requests/{id}`, so ids do not multiply the series.
pub async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();

    let response = next.run(request).await;

    let status = response.status().as_u16().to_string();
    metrics::histogram!("ozo_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ozo_http_requests_total", "method" => method, "route" => route, "status" => status).increment(1);
    response
}
