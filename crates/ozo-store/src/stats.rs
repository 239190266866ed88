//! Counts for the service's metrics, read from the database so that every instance
//! reports the same figures.

use std::collections::BTreeMap;

use sqlx::PgConnection;

/// Figures that describe the whole service, not one instance.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Requests waiting for a decision, per environment.
    pub pending: BTreeMap<String, i64>,
    /// Certificates neither revoked nor expired that expire within the given days, per
    /// environment.
    pub expiring: BTreeMap<String, i64>,
    /// Events in the audit chain.
    pub chain_length: i64,
    /// Events committed but not yet chained.
    pub events_queued: i64,
}

/// Reads the gauges; `expiring_days` sets the window of the expiring certificates.
#[tracing::instrument(name = "db.gauges", skip(conn))]
pub async fn gauges(conn: &mut PgConnection, expiring_days: i64) -> Result<Gauges, sqlx::Error> {
    let pending = sqlx::query!(
        r#"SELECT environment, count(*) AS "count!" FROM requests WHERE status = 'pending' GROUP BY environment"#
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.environment, row.count))
    .collect();
    let expiring = sqlx::query!(
        r#"SELECT r.environment, count(*) AS "count!"
           FROM certificates c JOIN requests r ON r.id = c.request_id
           WHERE c.revoked_at IS NULL AND c.not_after > now() AND c.not_after <= now() + make_interval(days => $1)
           GROUP BY r.environment"#,
        expiring_days as i32,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.environment, row.count))
    .collect();
    let chain_length =
        sqlx::query_scalar!(r#"SELECT coalesce(max(seq), 0) AS "length!" FROM events"#).fetch_one(&mut *conn).await?;
    let events_queued =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM event_queue"#).fetch_one(&mut *conn).await?;
    Ok(Gauges { pending, expiring, chain_length, events_queued })
}
