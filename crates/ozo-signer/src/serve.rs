//! `ozo-signer serve`, `dev` and `migrate`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use ozo_ca::{CasClients, GoogleCas, LocalCa, Signer};
use ozo_store::accounts;
use ozo_web::{auth, AppState, EnvironmentRuntime, WebSettings};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::config::{CaConfig, Config, DEFAULT_LISTEN};

/// The database URL: `DATABASE_URL` first, then the config's `database_url`.
fn database_url(config: &Config) -> anyhow::Result<SecretString> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(SecretString::from(url));
    }
    config
        .database_url
        .clone()
        .context("DATABASE_URL is not set and the config has no database_url; set one, or run ozo-signer dev")
}

pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let url = database_url(config)?;
    ozo_store::connect(url.expose_secret(), 20).await.context("failed to connect to PostgreSQL")
}

/// Connects and checks that the schema is the one this binary carries, for `serve` and the
/// commands that read or write data.
pub async fn connect_checked(config: &Config) -> anyhow::Result<PgPool> {
    let pool = connect(config).await?;
    require_current_schema(&pool).await?;
    Ok(pool)
}

/// Fails unless every migration this binary carries is applied, and no other.
async fn require_current_schema(pool: &PgPool) -> anyhow::Result<()> {
    let state = ozo_store::schema_state(pool).await.context("failed to read the database's migrations")?;
    match state {
        ozo_store::SchemaState::Current { .. } => Ok(()),
        other => anyhow::bail!("{other}"),
    }
}

/// `ozo-signer migrate`: applies the pending migrations and prints the schema state.
pub async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    if let ozo_store::SchemaState::Ahead { .. } = ozo_store::schema_state(&pool).await? {
        require_current_schema(&pool).await?;
    }
    if let Err(error) = ozo_store::migrate(&pool).await {
        let hint = if error.to_string().contains("permission denied") {
            "; run `ozo-signer migrate` as the database owner, the role that owns the tables, not as the service's role"
        } else {
            ""
        };
        anyhow::bail!("failed to apply the database migrations: {error}{hint}");
    }
    let state = ozo_store::schema_state(&pool).await?;
    println!("{state}");
    Ok(())
}

/// Opens or creates each environment's CA.
pub async fn environments(config: &Config) -> anyhow::Result<Vec<EnvironmentRuntime>> {
    let mut runtimes = Vec::new();
    let mut cas_clients = CasClients::default();
    for environment in config.domain_environments() {
        let section = &config.environments[environment.name.as_str()];
        let signer: Arc<dyn Signer> = match &section.ca {
            CaConfig::Local { directory } => {
                let directory =
                    directory.clone().unwrap_or_else(|| config.data_dir.join("ca").join(environment.name.as_str()));
                let common_name = format!("ozo-signer {} CA", environment.name);
                let ca = LocalCa::open_or_create(&directory, &common_name, &environment.subject.organization)
                    .with_context(|| format!("environments.{}.ca: failed to open the local CA", environment.name))?;
                Arc::new(ca)
            }
            CaConfig::GoogleCas(cas) => {
                let settings = cas.settings(environment.name.as_str())?;
                let ca = GoogleCas::connect(settings, &mut cas_clients).await.with_context(|| {
                    format!("environments.{}.ca: failed to set up the CAS client", environment.name)
                })?;
                Arc::new(ca)
            }
        };
        tracing::info!(environment = %environment.name, ca = signer.describe(), "environment ready");
        runtimes.push(EnvironmentRuntime {
            lifetime: time::Duration::days(section.certificate_lifetime_days.into()),
            allow_uploads_without_invitation: section.allow_uploads_without_invitation,
            test_url: section.test_url.clone().unwrap_or_default(),
            approvals_required: section.approvals_required(environment.name.as_str()) as usize,
            environment,
            signer,
        });
    }
    Ok(runtimes)
}

pub async fn serve(config: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let pool = connect_checked(&config).await?;
    let listen =
        listen.or(config.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
    run_server(&config, pool, listen).await
}

async fn run_server(config: &Config, pool: PgPool, listen: SocketAddr) -> anyhow::Result<()> {
    let environments = environments(config).await?;
    let tls = match &config.tls {
        Some(tls) => Some(load_tls(tls).await?),
        None => None,
    };
    // The sockets are bound before any work starts, so that an address in use fails the start with a
    // message instead of leaving a process that serves nothing.
    let listener = bind(listen)?;
    let address = listener.local_addr()?;
    let metrics_listener = config.metrics_listen.map(bind).transpose()?;

    let metrics = install_metrics_recorder()?;
    let settings = WebSettings {
        secure_cookies: config.secure_cookies,
        client_read_timeout: std::time::Duration::from_secs(config.client_read_timeout_seconds),
        limits: config.rate_limits.to_limits(),
        metrics_on_main_listener: config.metrics_listen.is_none(),
        trusted_proxies: config.trusted_proxies(),
        ..WebSettings::default()
    };
    let state = AppState::new(pool, environments, settings).with_metrics(metrics);
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let worker = tokio::spawn(ozo_web::signing::worker(state.clone(), stopped(stop.clone())));
    tokio::spawn(log_chain_head(state.pool().clone()));
    tokio::spawn(sweep_rate_limits(state.pool().clone()));
    let chainer = tokio::spawn(chain_queued_events(state.pool().clone(), stopped(stop.clone())));

    let read_timeout = std::time::Duration::from_secs(config.client_read_timeout_seconds);
    let handle = axum_server::Handle::new();
    let app = ozo_web::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = match tls {
        Some(tls) => {
            let server = axum_server::from_tcp_rustls(listener, tls)
                .handle(handle.clone())
                .map(|acceptor| acceptor.handshake_timeout(read_timeout));
            tokio::spawn(limit_slow_clients(server, read_timeout).serve(app))
        }
        None => {
            let server = axum_server::from_tcp(listener).handle(handle.clone());
            tokio::spawn(limit_slow_clients(server, read_timeout).serve(app))
        }
    };
    let metrics_handle = axum_server::Handle::new();
    let metrics_server = match metrics_listener {
        Some(listener) => {
            tracing::info!(metrics_listen = %listener.local_addr()?, "serving metrics");
            let app = ozo_web::ops::metrics_router(state.clone()).into_make_service();
            let server = axum_server::from_tcp(listener).handle(metrics_handle.clone());
            Some(tokio::spawn(limit_slow_clients(server, read_timeout).serve(app)))
        }
        None => None,
    };
    tracing::info!(listen = %address, tls = config.tls.is_some(), "serving");

    shutdown_signal().await;

    // Readiness fails first, so that the platform sends no new requests. Requests in
    // flight and the worker's current signing job may finish within the grace period. A
    // job still claimed when the process exits returns to the queue with its
    // transaction, and another instance takes it.
    let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
    state.start_draining();
    let _ = stop_sender.send(true);
    handle.graceful_shutdown(Some(grace));
    metrics_handle.graceful_shutdown(Some(grace));
    let finished = tokio::time::timeout(grace, async {
        let _ = server.await;
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        let _ = worker.await;
        let _ = chainer.await;
    })
    .await;
    match finished {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!(grace_seconds = grace.as_secs(), "stopped with work unfinished after the grace period"),
    }
    Ok(())
}

/// Closes the server's connections that send nothing within `timeout`, those whose
/// request headers take longer, and those kept alive without a new request for that
/// long. hyper applies its header read timeout only with a timer, which axum-server does
/// not set. The acceptor also closes connections that open with HTTP/2's preface,
/// because hyper has no such timeouts for HTTP/2.
fn limit_slow_clients<A>(
    mut server: axum_server::Server<A>,
    timeout: std::time::Duration,
) -> axum_server::Server<crate::slow_clients::FirstByteAcceptor<A>> {
    server.http_builder().http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout);
    server.map(|acceptor| crate::slow_clients::FirstByteAcceptor::new(acceptor, timeout))
}

/// Binds a listening socket for the server, or fails naming the address.
fn bind(address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).with_context(|| format!("failed to listen on {address}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Buckets of the duration histograms, in seconds: from a fast page to a slow CA call.
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Buckets of the upload batch sizes, up to the largest batch the writers make.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the process's metrics recorder and returns what renders it for `/metrics`.
fn install_metrics_recorder() -> anyhow::Result<ozo_web::MetricsRenderer> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS)
        .context("failed to set the metrics' histogram buckets")?
        .set_buckets_for_metric(Matcher::Full("ozo_upload_batch_size".to_owned()), &BATCH_BUCKETS)
        .context("failed to set the buckets of ozo_upload_batch_size")?
        .install_recorder()
        .context("failed to install the metrics recorder")?;
    describe_metrics();
    let upkeep = handle.clone();
    // Histograms keep their samples until upkeep folds them in.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(std::sync::Arc::new(move || handle.render()))
}

/// Gives each series its `# HELP` line.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    describe_counter!("ozo_http_requests_total", "HTTP responses by method, route pattern and status.");
    describe_histogram!(
        "ozo_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route pattern."
    );
    describe_counter!(
        "ozo_csr_rejections_total",
        "Uploaded CSRs that validation rejected, by environment and finding code, and uploads rejected with 413 \
         as too-large, with environment unknown when the unread body named it."
    );
    describe_gauge!("ozo_requests_pending", "Requests waiting for approval, by environment.");
    describe_gauge!(
        "ozo_certificates_expiring_30d",
        "Certificates neither revoked nor expired that expire within 30 days, by environment."
    );
    describe_counter!(
        "ozo_signing_attempts_total",
        "Signing jobs run at the CA, by action (issue, revoke) and outcome (done, retry, failed, gone)."
    );
    describe_histogram!(
        "ozo_ca_call_duration_seconds",
        Unit::Seconds,
        "Duration of Google CA Service calls, by pool and operation."
    );
    describe_counter!("ozo_ca_calls_total", "Google CA Service calls by pool, operation and outcome (OK or the status code).");
    describe_histogram!(
        "ozo_upload_batch_size",
        "Accepted uploads written to the database in one statement and one commit."
    );
    describe_gauge!("ozo_audit_chain_length", "Events in the audit hash chain.");
    describe_gauge!("ozo_audit_events_queued", "Events committed but not yet in the audit hash chain.");
    describe_counter!("ozo_rate_limited_total", "Requests refused with 429, by limit (upload-address, upload-invitation, status-address).");
    describe_gauge!("ozo_build_info", "Always 1, with the version of the running binary as a label.");
    metrics::gauge!("ozo_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    describe_counter!("ozo_metrics_gauge_errors_total", "Scrapes whose gauges could not be read from the database in time.");
    describe_counter!(
        "ozo_connections_closed_total",
        "Connections closed before a request, by reason (no-first-byte within the client read timeout, http2)."
    );
    for reason in crate::slow_clients::CLOSE_REASONS {
        metrics::counter!("ozo_connections_closed_total", "reason" => reason).increment(0);
    }
}

/// Reads the TLS certificate chain and key. Errors name the config key and the file, and
/// what is wrong with it.
async fn load_tls(tls: &crate::config::TlsConfig) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    let read = |key: &str, path: &std::path::Path, label: &str, expected: &str| -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{key}: cannot read {}", path.display()))?;
        if !text.contains(label) {
            anyhow::bail!("{key}: {} contains no {label} block; expected {expected}", path.display());
        }
        Ok(())
    };
    read(
        "tls.certificate_chain",
        &tls.certificate_chain,
        "-----BEGIN CERTIFICATE-----",
        "the server certificate in PEM, then its intermediates",
    )?;
    read("tls.private_key", &tls.private_key, "PRIVATE KEY-----", "the certificate's private key in PEM (PKCS#8 or SEC1)")?;

    let loaded = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.certificate_chain, &tls.private_key).await;
    let config = loaded.map_err(|error| {
        let text = error.to_string();
        if text.contains("KeyMismatch") || text.contains("not be consistent") {
            anyhow::anyhow!(
                "tls.private_key: {} is not the private key of the certificate in {}",
                tls.private_key.display(),
                tls.certificate_chain.display()
            )
        } else if text.contains("key") {
            anyhow::anyhow!(
                "tls.private_key: {} is not a PEM private key (PKCS#8 or SEC1) of P-256, P-384 or RSA: {text}",
                tls.private_key.display()
            )
        } else {
            anyhow::anyhow!(
                "tls: {} and {} are not a PEM certificate chain and its private key: {text}",
                tls.certificate_chain.display(),
                tls.private_key.display()
            )
        }
    })?;

    // The server speaks HTTP/1.1 only (see `limit_slow_clients`), so TLS offers no other.
    let mut server_config = (*config.get_inner()).clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.reload_from_config(std::sync::Arc::new(server_config));
    Ok(config)
}

/// `ozo-signer config check`: everything `serve` reads before it connects, without
/// connecting to the database or a CA.
pub async fn check_config(config: &Config) -> anyhow::Result<()> {
    // The summary is printed only when every check passed.
    let mut summary = Vec::new();
    for environment in config.domain_environments() {
        let section = &config.environments[environment.name.as_str()];
        let ca = match &section.ca {
            CaConfig::Local { directory } => {
                let directory =
                    directory.clone().unwrap_or_else(|| config.data_dir.join("ca").join(environment.name.as_str()));
                if directory.exists() && !directory.is_dir() {
                    anyhow::bail!(
                        "environments.{}.ca: the local CA's directory {} is a file; set data_dir (or the CA's directory) to a directory",
                        environment.name,
                        directory.display()
                    );
                }
                format!("local CA in {}", directory.display())
            }
            CaConfig::GoogleCas(cas) => {
                let settings = cas.settings(environment.name.as_str())?;
                format!(
                    "Google CA Service pool projects/{}/locations/{}/caPools/{}",
                    settings.project, settings.location, settings.ca_pool
                )
            }
        };
        summary.push(format!(
            "environment {}: CN={}, O={}; {} approval(s); {ca}",
            environment.name,
            environment.subject.common_name,
            environment.subject.organization,
            section.approvals_required(environment.name.as_str()),
        ));
    }
    if let Some(tls) = &config.tls {
        load_tls(tls).await?;
        summary.push(format!("tls: {} with {}", tls.certificate_chain.display(), tls.private_key.display()));
    }
    let listen = config.listen.map_or_else(|| DEFAULT_LISTEN.to_owned(), |listen| listen.to_string());
    let metrics = config.metrics_listen.map_or_else(|| format!("{listen} (with the service)"), |listen| listen.to_string());
    summary.push(format!(
        "listen: {listen}; metrics: {metrics}; shutdown grace: {} s; client read timeout: {} s",
        config.shutdown_grace_seconds, config.client_read_timeout_seconds
    ));
    summary.push("the configuration is valid".to_owned());
    println!("{}", summary.join("\n"));
    Ok(())
}

/// How often the head of the event chain is logged.
const CHAIN_HEAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Logs the head of the event chain at start and then every ten minutes, so that the log
/// contains copies of it to compare with `ozo-signer audit verify` later.
async fn log_chain_head(pool: PgPool) {
    loop {
        let head = match pool.acquire().await {
            Ok(mut conn) => ozo_store::events::head(&mut conn).await,
            Err(error) => Err(error),
        };
        match head {
            Ok(Some((seq, hash))) => {
                tracing::info!(events.seq = seq, events.head_hash = %hex::encode(hash), "event chain head")
            }
            Ok(None) => tracing::info!("the event chain is empty"),
            Err(error) => tracing::warn!(error = %error, "failed to read the event chain head"),
        }
        tokio::time::sleep(CHAIN_HEAD_INTERVAL).await;
    }
}

/// How often queued events are moved into the chain.
const CHAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Moves queued events into the chain every [`CHAIN_INTERVAL`], and once more on the way
/// out. Every instance runs it, and the chain's lock makes them take turns. A pass that
/// finds nothing new reads a few index entries. A failure is logged once, and again only
/// after a success.
async fn chain_queued_events(pool: PgPool, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(CHAIN_INTERVAL) => false,
        };
        let chained = match pool.acquire().await {
            Ok(mut conn) => ozo_store::events::chain_queued(&mut conn).await,
            Err(error) => Err(error),
        };
        match chained {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                tracing::warn!(error = %error, "failed to move queued events into the chain; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}

/// Removes ended rate-limit windows every ten minutes. Every instance does it; the
/// deletes do not conflict.
async fn sweep_rate_limits(pool: PgPool) {
    loop {
        tokio::time::sleep(CHAIN_HEAD_INTERVAL).await;
        let swept = match pool.acquire().await {
            Ok(mut conn) => ozo_store::ratelimits::sweep(&mut conn).await,
            Err(error) => Err(error),
        };
        if let Err(error) = swept {
            tracing::warn!(error = %error, "failed to remove ended rate-limit windows");
        }
    }
}

/// Waits for SIGTERM, which the platform sends to stop an instance, or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds on Unix");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Records a revocation from the command line. The running service's worker calls the
/// CA, which has the configured CAs and retries until the CA confirms, so this
/// command needs no CA of its own and cannot revoke at the wrong one.
pub async fn revoke(config: Config, request_id: uuid::Uuid, reason: &str, operator: &str) -> anyhow::Result<()> {
    let pool = connect_checked(&config).await?;
    let mut conn = pool.acquire().await?;
    let account = accounts::find_by_name(&mut conn, operator)
        .await?
        .with_context(|| format!("no account named {operator:?}; --operator names an existing operator account"))?;
    if !account.has_role("operator") {
        anyhow::bail!("the account {operator:?} does not have the operator role");
    }
    drop(conn);

    ozo_web::record_revocation(&pool, request_id, operator, reason).await.map_err(|error| match error {
        ozo_web::ApiError::BadRequest(text)
        | ozo_web::ApiError::Conflict { text, .. }
        | ozo_web::ApiError::NotFound(text) => {
            anyhow::anyhow!("{}", text.en)
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    println!(
        "request {request_id} is revoked ({reason}); the running service now asks the CA to revoke the certificate \
         and retries until the CA confirms"
    );
    Ok(())
}

const DEV_DATABASE: &str = "ozo_signer_dev";
const DEV_OPERATOR: &str = "operator";
const DEV_SECOND_OPERATOR: &str = "operator2";

pub async fn dev(config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    if std::env::var_os("DATABASE_URL").is_none() && config.database_url.is_none() {
        let cluster = tokio::task::spawn_blocking(|| ozo_devdb::ensure_running(&ozo_devdb::default_directory()))
            .await?
            .context("failed to start a private PostgreSQL cluster")?;
        create_database_if_missing(&cluster.url("postgres"), DEV_DATABASE).await?;
        let url = cluster.url(DEV_DATABASE);
        tracing::info!(cluster = %cluster.directory.display(), "using the private PostgreSQL cluster");
        // SAFETY: set before any other thread of this process reads the environment.
        unsafe { std::env::set_var("DATABASE_URL", &url) };
    }

    let pool = connect(&config).await?;
    ozo_store::migrate(&pool).await.context("failed to apply the database migrations")?;

    let password = auth::random_secret();
    let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))?;
    let mut conn = pool.acquire().await?;
    // Production needs two different operators' approvals, so dev mode makes two.
    for name in [DEV_OPERATOR, DEV_SECOND_OPERATOR] {
        accounts::upsert(&mut conn, name, Some(&hash), &["operator".to_owned()], true).await?;
    }
    drop(conn);

    let environment_names: Vec<String> = config.environments.keys().cloned().collect();
    let known: Vec<&str> = environment_names.iter().map(String::as_str).collect();
    let input = ozo_web::invitations::InvitationInput {
        organisation: "Dev organisation".to_owned(),
        contact: "dev@localhost".to_owned(),
        environments: environment_names.clone(),
        valid_days: None,
    };
    let (_, code) = ozo_web::invitations::create(&pool, &known, input, "cli")
        .await
        .map_err(|error| anyhow::anyhow!("failed to create the dev invitation: {error}"))?;

    println!();
    println!("ozo-signer dev is starting on http://{listen}/");
    println!("  operator accounts: {DEV_OPERATOR} and {DEV_SECOND_OPERATOR} (production needs both to approve)");
    println!("  password (shown once, new at every start): {password}");
    let url = database_url(&config)?;
    println!("  database: DATABASE_URL={}", redact_password(url.expose_secret()));
    println!("  API token: DATABASE_URL=… ozo-signer token create {DEV_OPERATOR}");
    println!("  client upload page: http://{listen}/upload?invitation={code}");
    println!();

    run_server(&config, pool, listen).await
}

/// Replaces the password of a database URL, if it has one, with `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = ozo_store::connect(admin_url, 1).await.context("failed to connect to the private cluster")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await?;
    }
    Ok(())
}
