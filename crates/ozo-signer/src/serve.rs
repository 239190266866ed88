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

/// Connects and applies pending migrations, so that the commands work on a new database
/// as `serve` does.
pub async fn connect_migrated(config: &Config) -> anyhow::Result<PgPool> {
    let pool = connect(config).await?;
    ozo_store::migrate(&pool).await.context("failed to apply the database migrations")?;
    Ok(pool)
}

pub async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    ozo_store::migrate(&pool).await.context("failed to apply the database migrations")?;
    println!("migrations applied");
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
    let pool = connect(&config).await?;
    ozo_store::migrate(&pool).await.context("failed to apply the database migrations")?;
    let listen =
        listen.or(config.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
    run_server(&config, pool, listen).await
}

async fn run_server(config: &Config, pool: PgPool, listen: SocketAddr) -> anyhow::Result<()> {
    let environments = environments(config).await?;
    let settings = WebSettings {
        secure_cookies: config.secure_cookies,
        limits: config.rate_limits.to_limits(),
        ..WebSettings::default()
    };
    let state = AppState::new(pool, environments, settings);
    let worker = tokio::spawn(ozo_web::signing::worker(state.clone(), shutdown_signal()));
    tokio::spawn(log_chain_head(state.pool().clone()));
    let app = ozo_web::router(state);

    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("failed to listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(listen = %address, "serving");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    // The worker finishes the job it holds; an unfinished one stays queued for the
    // next instance.
    worker.await?;
    tracing::info!("stopped");
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
    let pool = connect(&config).await?;
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
