//! The signing queue: one job per approved request that still needs a certificate.

use sqlx::PgConnection;
use uuid::Uuid;

/// The work a job requests from the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Issue the certificate of an approved request.
    Issue,
    /// Revoke the certificate of a revoked request at the CA.
    Revoke,
}

impl JobAction {
    pub const ALL: [JobAction; 2] = [JobAction::Issue, JobAction::Revoke];

    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Issue => "issue",
            JobAction::Revoke => "revoke",
        }
    }
}

/// A claimed job. Its row stays locked until the claiming transaction ends.
#[derive(Clone, Copy, Debug)]
pub struct ClaimedJob {
    pub request_id: Uuid,
    pub action: JobAction,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// Adds a job for a request; a request has at most one at a time.
#[tracing::instrument(name = "db.enqueue_signing_job", skip(conn))]
pub async fn enqueue(conn: &mut PgConnection, request_id: Uuid, action: JobAction) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO signing_jobs (request_id, action) VALUES ($1, $2) ON CONFLICT (request_id) DO NOTHING",
        request_id,
        action.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Returns the last error of a request's waiting job, or `None` when it has no job or no error.
#[tracing::instrument(name = "db.signing_job_error", skip(conn))]
pub async fn last_error(conn: &mut PgConnection, request_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let error = sqlx::query_scalar!("SELECT last_error FROM signing_jobs WHERE request_id = $1", request_id)
        .fetch_optional(conn)
        .await?;
    Ok(error.flatten())
}

/// Claims a due job, the one of `request_id` when given, skipping jobs that another
/// transaction holds.
#[tracing::instrument(name = "db.claim_signing_job", skip(conn))]
pub async fn claim(conn: &mut PgConnection, request_id: Option<Uuid>) -> Result<Option<ClaimedJob>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT request_id, action, attempts FROM signing_jobs
           WHERE ($1::uuid IS NULL OR request_id = $1) AND run_after <= now()
           ORDER BY run_after
           LIMIT 1
           FOR UPDATE SKIP LOCKED"#,
        request_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| ClaimedJob {
        request_id: row.request_id,
        action: if row.action == "revoke" { JobAction::Revoke } else { JobAction::Issue },
        attempts: row.attempts,
    }))
}

/// Removes a finished job.
#[tracing::instrument(name = "db.complete_signing_job", skip(conn))]
pub async fn complete(conn: &mut PgConnection, request_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM signing_jobs WHERE request_id = $1", request_id).execute(conn).await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
#[tracing::instrument(name = "db.postpone_signing_job", skip(conn, error))]
pub async fn postpone(
    conn: &mut PgConnection,
    request_id: Uuid,
    delay_ms: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE signing_jobs
           SET attempts = attempts + 1, run_after = now() + make_interval(secs => $2::bigint / 1000.0), last_error = $3
           WHERE request_id = $1"#,
        request_id,
        delay_ms,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}
