//! Invitations: which organisation may upload for which environments, until when.

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// An invitation to insert.
#[derive(Clone, Debug)]
pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub code_sha256: &'a [u8],
    pub organisation: &'a str,
    pub contact: &'a str,
    pub environments: &'a [String],
    pub created_by: &'a str,
    pub expires_at: OffsetDateTime,
}

/// A stored invitation. The code itself is not stored.
#[derive(Clone, Debug, Serialize)]
pub struct InvitationRow {
    pub id: Uuid,
    pub organisation: String,
    pub contact: String,
    pub environments: Vec<String>,
    pub used_environments: Vec<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
}

#[tracing::instrument(name = "db.insert_invitation", skip_all, fields(invitation.id = %invitation.id))]
pub async fn insert(conn: &mut PgConnection, invitation: &NewInvitation<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO invitations (id, code_sha256, organisation, contact, environments, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        invitation.id,
        invitation.code_sha256,
        invitation.organisation,
        invitation.contact,
        invitation.environments,
        invitation.created_by,
        invitation.expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Lists invitations, newest first.
#[tracing::instrument(name = "db.list_invitations", skip(conn))]
pub async fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<InvitationRow>, sqlx::Error> {
    sqlx::query_as!(
        InvitationRow,
        r#"SELECT id, organisation, contact, environments, used_environments, created_by, created_at, expires_at, withdrawn_at
           FROM invitations ORDER BY created_at DESC, id LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.get_invitation", skip(conn))]
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as!(
        InvitationRow,
        r#"SELECT id, organisation, contact, environments, used_environments, created_by, created_at, expires_at, withdrawn_at
           FROM invitations WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.find_invitation_by_code", skip_all)]
pub async fn find_by_code(conn: &mut PgConnection, code_sha256: &[u8]) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as!(
        InvitationRow,
        r#"SELECT id, organisation, contact, environments, used_environments, created_by, created_at, expires_at, withdrawn_at
           FROM invitations WHERE code_sha256 = $1"#,
        code_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Withdraws an invitation; returns false when it was already withdrawn or does not exist.
#[tracing::instrument(name = "db.withdraw_invitation", skip(conn))]
pub async fn withdraw(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query!("UPDATE invitations SET withdrawn_at = now() WHERE id = $1 AND withdrawn_at IS NULL", id)
            .execute(conn)
            .await?;
    Ok(updated.rows_affected() == 1)
}
