//! Approvals: one operator's yes to one request, with the digest of what was approved.

use sqlx::PgConnection;
use uuid::Uuid;

/// An approval as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApprovalRow {
    pub account: String,
    #[serde(serialize_with = "crate::requests::serialize_hex")]
    pub digest: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: time::OffsetDateTime,
}

/// Records an approval. Returns false when this account had already approved the request.
#[tracing::instrument(name = "db.insert_approval", skip(conn, digest))]
pub async fn insert(
    conn: &mut PgConnection,
    request_id: Uuid,
    account_id: Uuid,
    digest: &[u8],
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO approvals (request_id, account_id, digest) VALUES ($1, $2, $3)
         ON CONFLICT (request_id, account_id) DO NOTHING",
        request_id,
        account_id,
        digest,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Lists the approvals of a request, oldest first.
#[tracing::instrument(name = "db.approvals_for_request", skip(conn))]
pub async fn for_request(conn: &mut PgConnection, request_id: Uuid) -> Result<Vec<ApprovalRow>, sqlx::Error> {
    sqlx::query_as!(
        ApprovalRow,
        r#"SELECT accounts.name AS account, approvals.digest, approvals.approved_at
           FROM approvals JOIN accounts ON accounts.id = approvals.account_id
           WHERE approvals.request_id = $1
           ORDER BY approvals.approved_at, accounts.name"#,
        request_id
    )
    .fetch_all(conn)
    .await
}

/// Counts the approvals of each of `request_ids` that has any.
#[tracing::instrument(name = "db.count_approvals", skip_all)]
pub async fn counts(
    conn: &mut PgConnection,
    request_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT request_id, count(*) AS "approvals!" FROM approvals WHERE request_id = ANY($1) GROUP BY request_id"#,
        request_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.request_id, row.approvals)).collect())
}
