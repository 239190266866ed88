//! `ozo-signer user`, `token` and `invitation`: the commands of operators and admins.

use std::io::BufRead;

use anyhow::{bail, Context};
use ozo_store::accounts;
use ozo_web::auth;

use crate::config::Config;
use crate::serve::connect_checked as connect;

const MIN_PASSWORD_CHARS: usize = 12;

pub async fn add_user(config: &Config, name: &str, roles: &[String], replace: bool) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("failed to read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!(
            "the password on standard input has {} characters; expected at least {MIN_PASSWORD_CHARS}",
            password.chars().count()
        );
    }

    let hash = auth::hash_password(password).map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))?;
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    accounts::upsert(&mut conn, name, Some(&hash), roles, replace).await.map_err(|error| match error {
        ozo_store::StoreError::AccountExists(name) => {
            anyhow::anyhow!("an account named {name:?} already exists; add --replace to set its password and roles")
        }
        other => other.into(),
    })?;
    if replace {
        // A new password ends the old sessions and lifts a sign-in lock on the name.
        accounts::delete_sessions_of(&mut conn, name).await?;
        accounts::clear_login_failures(&mut conn, name).await?;
    }
    tracing::info!(account.name = name, roles = roles.join(","), "account saved");
    println!("account {name} saved with roles {}", roles.join(", "));
    Ok(())
}

pub async fn create_token(config: &Config, name: &str) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    let account = accounts::find_by_name(&mut conn, name)
        .await?
        .with_context(|| format!("no account named {name:?}; create it with ozo-signer user add"))?;

    let token = auth::new_token();
    accounts::insert_token(&mut conn, account.id, &auth::secret_sha256(&token)).await?;
    tracing::info!(account.name = name, "API token created");
    println!("{token}");
    Ok(())
}

pub async fn unlock_user(config: &Config, name: &str) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    accounts::clear_login_failures(&mut conn, name).await?;
    tracing::info!(account.name = name, "sign-in unlocked");
    println!("failed sign-ins of {name} forgotten; the account can sign in again");
    Ok(())
}

pub async fn list_users(config: &Config) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    for account in accounts::list(&mut conn).await? {
        let sign_in = if account.password_hash.is_some() { "password sign-in" } else { "API tokens only" };
        println!("{}\t{}\t{sign_in}", account.name, account.roles.join(","));
    }
    Ok(())
}

pub async fn list_tokens(config: &Config, name: Option<&str>) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    for token in accounts::list_tokens(&mut conn, name).await? {
        let state = match token.revoked_at {
            Some(at) => format!("revoked {at}"),
            None => "active".to_owned(),
        };
        println!("{}\t{}\tcreated {}\t{state}", token.id, token.account, token.created_at);
    }
    Ok(())
}

pub async fn revoke_token(config: &Config, id: uuid::Uuid) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    let Some(account) = accounts::revoke_token(&mut conn, id).await? else {
        bail!("no active token with id {id}; list them with ozo-signer token list");
    };
    tracing::info!(token.id = %id, account.name = account, "API token revoked");
    println!("token {id} of {account} revoked");
    Ok(())
}

pub async fn verify_audit_log(config: &Config) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    let report = ozo_store::events::verify_chain(&mut conn).await?;
    let head = report.head.map(hex::encode).unwrap_or_else(|| "none".to_owned());
    if let Some(broken) = report.broken {
        bail!("the event chain is broken after {} intact events: {broken}", report.checked);
    }
    println!("the event chain is intact: {} events checked, head hash {head}", report.checked);
    Ok(())
}

pub async fn create_invitation(
    config: &Config,
    organisation: String,
    contact: String,
    environments: Vec<String>,
    days: i64,
) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let known: Vec<String> = config.environments.keys().cloned().collect();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let input = ozo_web::invitations::InvitationInput { organisation, contact, environments, valid_days: Some(days) };
    let (row, code) = ozo_web::invitations::create(&pool, &known, input, "cli").await.map_err(|error| match error {
        ozo_web::ApiError::BadRequest(text) => anyhow::anyhow!("{}", text.en),
        other => anyhow::anyhow!("{other}"),
    })?;
    println!(
        "invitation {} for {} ({}), expires {}",
        row.id,
        row.organisation,
        row.environments.join(", "),
        row.expires_at.date()
    );
    println!("code: {code}");
    println!("upload path: /upload?invitation={code}");
    Ok(())
}

pub async fn list_invitations(config: &Config) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let mut conn = pool.acquire().await?;
    for row in ozo_store::invitations::list(&mut conn, 1000).await? {
        let state = if row.withdrawn_at.is_some() {
            "withdrawn"
        } else if row.expires_at <= time::OffsetDateTime::now_utc() {
            "expired"
        } else {
            "open"
        };
        println!(
            "{}\t{}\t{}\tused: {}\texpires {}\t{state}",
            row.id,
            row.organisation,
            row.environments.join(","),
            if row.used_environments.is_empty() { "-".to_owned() } else { row.used_environments.join(",") },
            row.expires_at.date()
        );
    }
    Ok(())
}

pub async fn withdraw_invitation(config: &Config, id: uuid::Uuid) -> anyhow::Result<()> {
    let pool = connect(config).await?;
    let row = ozo_web::invitations::withdraw(&pool, id, "cli").await.map_err(|error| anyhow::anyhow!("{error}"))?;
    println!("invitation {} for {} withdrawn", row.id, row.organisation);
    Ok(())
}
