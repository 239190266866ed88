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

/// Finds a session that has not expired.
#[tracing::instrument(name = "db.find_session", skip_all)]
pub async fn find_session(conn: &mut PgConnection, id_sha256: &[u8]) -> Result<Option<Session>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT a.id, a.name, a.password_hash, a.roles, s.csrf_token
           FROM sessions s JOIN accounts a ON a.id = s.account_id
           WHERE s.id_sha256 = $1 AND s.expires_at > now()"#,
        id_sha256
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Session {
        account: Account { id: row.id, name: row.name, password_hash: row.password_hash, roles: row.roles },
        csrf_token: row.csrf_token,
    }))
}

#[tracing::instrument(name = "db.delete_session", skip_all)]
pub async fn delete_session(conn: &mut PgConnection, id_sha256: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM sessions WHERE id_sha256 = $1", id_sha256).execute(conn).await?;
    Ok(())
}
