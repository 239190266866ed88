//! The HTTP side of ozo-signer: the JSON API for clients and automation, and the
//! server-rendered pages for operators.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use ozo_ca::Signer;
use ozo_domain::{Environment, EnvironmentName};
use sqlx::PgPool;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::ratelimit::RateLimiter;

pub mod admin;
mod api;
mod body_deadline;
pub mod audit;
pub mod auth;
pub mod client_address;
mod client_pages;
mod error;
mod extract;
mod history;
pub mod i18n;
pub mod invitations;
mod issuance;
pub mod ops;
mod pages;
mod ratelimit;
pub mod signing;
mod upload_writer;

pub use error::ApiError;

/// The run-time settings and CA of one environment.
#[derive(Clone)]
pub struct EnvironmentRuntime {
    pub environment: Environment,
    /// The lifetime of the certificates issued in this environment.
    pub lifetime: time::Duration,
    pub signer: Arc<dyn Signer>,
    /// Whether clients may upload without an invitation; such requests are marked
    /// unverified for the operator.
    pub allow_uploads_without_invitation: bool,
    /// The URL a client tests its certificate against, shown on the status page.
    pub test_url: String,
    /// How many operators must approve a request, each a different one.
    pub approvals_required: usize,
}

/// Settings of the web layer.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// Whether cookies get the `Secure` attribute; on when the service is reached over TLS.
    pub secure_cookies: bool,
    /// How long a client may take to send a request's body, counted from the end of its
    /// headers. A request whose body arrives more slowly gets 408.
    pub client_read_timeout: std::time::Duration,
    /// How long a session lasts at most.
    pub session_lifetime: time::Duration,
    /// How long a session lasts without use.
    pub session_idle: time::Duration,
    pub limits: RateLimits,
    /// Whether the main router serves `/metrics`; off when a separate metrics listener
    /// does.
    pub metrics_on_main_listener: bool,
    /// The reverse proxies whose `X-Forwarded-For` names the client, as the module
    /// `client_address` reads it.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Rate limits of the public routes, as a count per window.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub uploads_per_address: u32,
    pub uploads_per_invitation: u32,
    pub upload_window: std::time::Duration,
    pub status_per_address: u32,
    pub status_window: std::time::Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            uploads_per_address: 60,
            uploads_per_invitation: 20,
            upload_window: std::time::Duration::from_secs(600),
            status_per_address: 120,
            status_window: std::time::Duration::from_secs(60),
        }
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            secure_cookies: false,
            client_read_timeout: std::time::Duration::from_secs(30),
            session_lifetime: time::Duration::hours(8),
            session_idle: time::Duration::minutes(30),
            limits: RateLimits::default(),
            metrics_on_main_listener: true,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppStateInner>,
}

struct AppStateInner {
    pool: PgPool,
    /// Records accepted uploads in batches.
    upload_writer: upload_writer::UploadWriter,
    upload_limit_by_address: RateLimiter,
    upload_limit_by_invitation: RateLimiter,
    status_limit_by_address: RateLimiter,
    environments: BTreeMap<EnvironmentName, EnvironmentRuntime>,
    /// The same environments in configuration order, for validation.
    environment_list: Vec<Environment>,
    settings: WebSettings,
    /// Set once the instance shuts down, so that `/readyz` sends traffic elsewhere.
    draining: AtomicBool,
    /// Renders the process's metrics for `/metrics`, when a recorder is installed.
    metrics: Option<MetricsRenderer>,
}

/// Renders every metric of the process in Prometheus' text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

impl AppState {
    /// Builds the state and starts its upload writers, so it must run on a Tokio runtime.
    pub fn new(pool: PgPool, environments: Vec<EnvironmentRuntime>, settings: WebSettings) -> Self {
        let environment_list = environments.iter().map(|runtime| runtime.environment.clone()).collect();
        let environments =
            environments.into_iter().map(|runtime| (runtime.environment.name.clone(), runtime)).collect();
        let limits = &settings.limits;
        AppState {
            inner: Arc::new(AppStateInner {
                upload_writer: upload_writer::UploadWriter::start(&pool),
                pool,
                upload_limit_by_address: RateLimiter::new(
                    "upload-address",
                    limits.uploads_per_address,
                    limits.upload_window,
                ),
                upload_limit_by_invitation: RateLimiter::new(
                    "upload-invitation",
                    limits.uploads_per_invitation,
                    limits.upload_window,
                ),
                status_limit_by_address: RateLimiter::new("status-address", limits.status_per_address, limits.status_window),
                environments,
                environment_list,
                settings,
                draining: AtomicBool::new(false),
                metrics: None,
            }),
        }
    }

    /// Serves `/metrics` with `renderer`, and starts every counter series with a known
    /// label set at zero in the process's recorder. Only a state that is not yet shared
    /// can take it.
    pub fn with_metrics(mut self, renderer: MetricsRenderer) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.metrics = Some(renderer),
            None => tracing::error!("metrics were set on a state already in use; /metrics stays off"),
        }
        ops::start_counters_at_zero(&self);
        self
    }

    fn metrics_renderer(&self) -> Option<&MetricsRenderer> {
        self.inner.metrics.as_ref()
    }

    /// Marks the instance as shutting down: `/readyz` returns 503 from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn upload_writer(&self) -> &upload_writer::UploadWriter {
        &self.inner.upload_writer
    }

    fn environment(&self, name: &str) -> Option<&EnvironmentRuntime> {
        self.inner.environments.values().find(|runtime| runtime.environment.name.as_str() == name)
    }

    fn environments(&self) -> impl Iterator<Item = &EnvironmentRuntime> {
        self.inner.environments.values()
    }

    fn environment_list(&self) -> &[Environment] {
        &self.inner.environment_list
    }

    fn settings(&self) -> &WebSettings {
        &self.inner.settings
    }

    /// Returns the `scope` label of each rate limit.
    fn rate_limit_scopes(&self) -> [&'static str; 3] {
        [
            self.inner.upload_limit_by_address.scope(),
            self.inner.upload_limit_by_invitation.scope(),
            self.inner.status_limit_by_address.scope(),
        ]
    }

    fn environment_names(&self) -> Vec<&str> {
        self.environments().map(|runtime| runtime.environment.name.as_str()).collect()
    }

    /// Counts an upload from `address` on `invitation`, or rejects it with 429.
    async fn limit_upload(&self, address: std::net::IpAddr, invitation: Option<&str>) -> Result<(), ApiError> {
        let pool = self.pool();
        self.inner
            .upload_limit_by_address
            .check(pool, &address.to_string())
            .await?
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
        if let Some(code) = invitation.map(invitations::normalise_code).filter(|code| !code.is_empty()) {
            self.inner
                .upload_limit_by_invitation
                .check(pool, &code)
                .await?
                .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
        }
        Ok(())
    }

    /// Counts a status page view from `address`, or rejects it with 429.
    async fn limit_status(&self, address: std::net::IpAddr) -> Result<(), ApiError> {
        self.inner
            .status_limit_by_address
            .check(self.pool(), &address.to_string())
            .await?
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })
    }
}

/// The largest request body any route reads. The CSR itself is limited to
/// [`ozo_domain::MAX_UPLOAD_BYTES`] by validation; this leaves room for JSON around it.
const MAX_BODY_BYTES: usize = 64 * 1024;

const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Records the revocation of an issued request's certificate for an operator, for the
/// command line. The running service's worker then revokes it at the configured CA.
pub async fn record_revocation(pool: &PgPool, id: uuid::Uuid, operator: &str, reason: &str) -> Result<(), ApiError> {
    issuance::record_revocation(pool, id, operator, reason).await
}

/// Builds the router with every route of the service.
pub fn router(state: AppState) -> Router {
    // Browsers honour HSTS only over HTTPS, so it is sent when the service is reached so.
    let hsts = state.settings().secure_cookies.then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    let metrics = state.settings().metrics_on_main_listener.then(|| Router::new().route("/metrics", get(ops::metrics)));
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(history::routes())
        .merge(client_pages::routes())
        .merge(metrics.unwrap_or_default())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/logout", post(pages::logout))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Inside the language layer, so that its 408 is in the client's language.
        .layer(axum::middleware::from_fn_with_state(state.clone(), body_deadline::limit_body_time))
        .layer(axum::middleware::from_fn(i18n::negotiate_language))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Pages hold session data, one-time tokens and invitation codes: no cache keeps them,
        // so the back button after sign-out shows nothing.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(tower::util::option_layer(hsts))
        .layer(axum::middleware::from_fn(ops::track))
        // Inside the trace layer, so that the line is written in the request's span.
        .layer(axum::middleware::from_fn(log_finished_request))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(())
                // A failed request is logged once, where its error is handled.
                .on_failure(()),
        )
        .layer(axum::middleware::from_fn(ops::assign_request_id))
        .with_state(state)
}

/// The paths that load balancers and Prometheus request every few seconds.
const PROBE_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Logs the one line of every request, when its response is ready. A probe's line is
/// at DEBUG unless its status is 500 or higher, so that a scrape every few seconds does
/// not fill the log at the default level.
async fn log_finished_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_probe = PROBE_PATHS.contains(&request.uri().path());
    let started = std::time::Instant::now();

    let response = next.run(request).await;

    let status = response.status().as_u16();
    let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    if is_probe && !response.status().is_server_error() {
        tracing::debug!(http.status = status, http.latency_ms = latency_ms, "request finished");
    } else {
        tracing::info!(http.status = status, http.latency_ms = latency_ms, "request finished");
    }
    response
}

/// Opens the span of a request with its id, method and a path that names no secret:
/// status page tokens are replaced and the query, which may hold an invitation code, is
/// left out. Handlers record the account and the CSR request in it when they know them.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request.headers().get(ops::REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
    tracing::info_span!(
        "request",
        http.request_id = %id,
        http.method = %request.method(),
        http.path = %loggable_path(request.uri().path()),
        account.name = tracing::field::Empty,
        request.id = tracing::field::Empty,
        environment = tracing::field::Empty,
    )
}

fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/status/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, file)) => format!("/status/…/{file}"),
            None => "/status/…".to_owned(),
        },
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggable_path_hides_status_tokens() {
        assert_eq!(loggable_path("/status/abcDEF123"), "/status/…");
        assert_eq!(loggable_path("/status/abcDEF123/client-cert.pem"), "/status/…/client-cert.pem");
        assert_eq!(loggable_path("/api/v1/requests"), "/api/v1/requests");
    }
}
