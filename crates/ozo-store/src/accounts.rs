//! Accounts, API tokens and web sessions. Only hashes of passwords, tokens and session
//! ids are stored.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{is_unique_violation, StoreError};

#[derive(Clone, Debug)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
}

impl Account {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Creates an account, or sets the password and roles of the existing one with that name
/// when `replace` is true.
#[tracing::instrument(name = "db.upsert_account", skip(conn, password_hash))]
pub async fn upsert(
    conn: &mut PgConnection,
    name: &str,
    password_hash: Option<&str>,
    roles: &[String],
    replace: bool,
) -> Result<Uuid, StoreError> {
    if replace {
        let id = sqlx::query_scalar!(
            r#"INSERT INTO accounts (id, name, password_hash, roles) VALUES ($1, $2, $3, $4)
               ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, roles = EXCLUDED.roles
               RETURNING id"#,
            Uuid::new_v4(),
            name,
            password_hash,
            roles,
        )
        .fetch_one(conn)
        .await?;
        return Ok(id);
    }

    let id = Uuid::new_v4();
    let result = sqlx::query!(
        "INSERT INTO accounts (id, name, password_hash, roles) VALUES ($1, $2, $3, $4)",
        id,
        name,
        password_hash,
        roles,
    )
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(id),
        Err(error) if is_unique_violation(&error, "accounts_name_key") => {
            Err(StoreError::AccountExists(name.to_owned()))
        }
        Err(error) => Err(error.into()),
    }
}

#[tracing::instrument(name = "db.find_account_by_name", skip(conn))]
pub async fn find_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as!(Account, "SELECT id, name, password_hash, roles FROM accounts WHERE name = $1", name)
        .fetch_optional(conn)
        .await
}

/// Stores the hash of a new API token for an account.
#[tracing::instrument(name = "db.insert_token", skip(conn, token_sha256))]
pub async fn insert_token(conn: &mut PgConnection, account_id: Uuid, token_sha256: &[u8]) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO api_tokens (id, account_id, token_sha256) VALUES ($1, $2, $3)",
        id,
        account_id,
        token_sha256,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Finds the account of a token that has not been revoked.
#[tracing::instrument(name = "db.find_account_by_token", skip_all)]
pub async fn find_by_token(conn: &mut PgConnection, token_sha256: &[u8]) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as!(
        Account,
        r#"SELECT a.id, a.name, a.password_hash, a.roles
           FROM api_tokens t JOIN accounts a ON a.id = t.account_id
           WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL"#,
        token_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Lists every account by name.
#[tracing::instrument(name = "db.list_accounts", skip(conn))]
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as!(Account, "SELECT id, name, password_hash, roles FROM accounts ORDER BY name").fetch_all(conn).await
}

/// Replaces the roles of an account. Returns false when there is no such account.
#[tracing::instrument(name = "db.set_account_roles", skip(conn))]
pub async fn set_roles(conn: &mut PgConnection, name: &str, roles: &[String]) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!("UPDATE accounts SET roles = $2 WHERE name = $1", name, roles).execute(conn).await?;
    Ok(updated.rows_affected() == 1)
}

/// An API token as listed: never the token, which only its holder has.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub id: Uuid,
    pub account: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Lists the API tokens of one account, or of all, newest first.
#[tracing::instrument(name = "db.list_tokens", skip(conn))]
pub async fn list_tokens(conn: &mut PgConnection, account: Option<&str>) -> Result<Vec<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT t.id, a.name AS account, t.created_at, t.revoked_at
           FROM api_tokens t JOIN accounts a ON a.id = t.account_id
           WHERE $1::text IS NULL OR a.name = $1
           ORDER BY t.created_at DESC"#,
        account
    )
    .fetch_all(conn)
    .await
}

/// Revokes an API token. Returns the name of its account, or `None` when there is no
/// such token or it was already revoked.
#[tracing::instrument(name = "db.revoke_token", skip(conn))]
pub async fn revoke_token(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE api_tokens t SET revoked_at = now()
           FROM accounts a
           WHERE t.id = $1 AND t.revoked_at IS NULL AND a.id = t.account_id
           RETURNING a.name"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub account: Account,
    pub csrf_token: String,
}

#[tracing::instrument(name = "db.insert_session", skip_all, fields(account.id = %account_id))]
pub async fn insert_session(
    conn: &mut PgConnection,
    id_sha256: &[u8],
    account_id: Uuid,
    csrf_token: &str,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO sessions (id_sha256, account_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        id_sha256,
        account_id,
        csrf_token,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a session that has neither expired nor been idle for longer than `idle`, and
/// marks it as used now.
#[tracing::instrument(name = "db.find_session", skip_all)]
pub async fn find_session(
    conn: &mut PgConnection,
    id_sha256: &[u8],
    idle: time::Duration,
) -> Result<Option<Session>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH touched AS (
               UPDATE sessions SET last_seen_at = now()
               WHERE id_sha256 = $1 AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2::bigint)
               RETURNING account_id, csrf_token
           )
           SELECT a.id, a.name, a.password_hash, a.roles, t.csrf_token
           FROM touched t JOIN accounts a ON a.id = t.account_id"#,
        id_sha256,
        idle.whole_seconds(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Session {
        account: Account { id: row.id, name: row.name, password_hash: row.password_hash, roles: row.roles },
        csrf_token: row.csrf_token,
    }))
}

/// Failed sign-ins within `window`: for the account name, and from the address.
#[tracing::instrument(name = "db.count_login_failures", skip(conn))]
pub async fn login_failures(
    conn: &mut PgConnection,
    account_name: &str,
    address: std::net::IpAddr,
    window: time::Duration,
) -> Result<(i64, i64), sqlx::Error> {
    let address = address.to_string();
    let row = sqlx::query!(
        r#"SELECT
               count(*) FILTER (WHERE account_name = $1) AS "by_account!",
               count(*) FILTER (WHERE address = $2) AS "by_address!"
           FROM login_failures
           WHERE failed_at > now() - make_interval(secs => $3::bigint) AND (account_name = $1 OR address = $2)"#,
        account_name,
        address,
        window.whole_seconds(),
    )
    .fetch_one(conn)
    .await?;
    Ok((row.by_account, row.by_address))
}

/// Records a failed sign-in and prunes failures older than a day.
#[tracing::instrument(name = "db.insert_login_failure", skip(conn))]
pub async fn insert_login_failure(
    conn: &mut PgConnection,
    account_name: &str,
    address: std::net::IpAddr,
) -> Result<(), sqlx::Error> {
    let address = address.to_string();
    sqlx::query!("DELETE FROM login_failures WHERE failed_at < now() - interval '1 day'").execute(&mut *conn).await?;
    sqlx::query!("INSERT INTO login_failures (account_name, address) VALUES ($1, $2)", account_name, address)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes the sign-in attempts for one account name take turns until the transaction ends.
#[tracing::instrument(name = "db.lock_sign_in", skip(conn))]
pub async fn lock_sign_in(conn: &mut PgConnection, account_name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('sign-in:' || $1))", account_name).fetch_one(conn).await?;
    Ok(())
}

/// Ends every session of an account, after its password changed.
#[tracing::instrument(name = "db.delete_sessions_of", skip(conn))]
pub async fn delete_sessions_of(conn: &mut PgConnection, account_name: &str) -> Result<u64, sqlx::Error> {
    let deleted =
        sqlx::query!("DELETE FROM sessions WHERE account_id = (SELECT id FROM accounts WHERE name = $1)", account_name)
            .execute(conn)
            .await?;
    Ok(deleted.rows_affected())
}

/// Forgets the failed sign-ins of an account after a successful one.
#[tracing::instrument(name = "db.clear_login_failures", skip(conn))]
pub async fn clear_login_failures(conn: &mut PgConnection, account_name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM login_failures WHERE account_name = $1", account_name).execute(conn).await?;
    Ok(())
}

#[tracing::instrument(name = "db.delete_session", skip_all)]
pub async fn delete_session(conn: &mut PgConnection, id_sha256: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM sessions WHERE id_sha256 = $1", id_sha256).execute(conn).await?;
    Ok(())
}
