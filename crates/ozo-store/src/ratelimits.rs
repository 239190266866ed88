//! Rate-limit counters in PostgreSQL, so that every instance counts against one limit.

use sqlx::PgConnection;

/// Counts one hit of `key_sha256` in `scope` and returns the hits of its window so far,
/// this one included, with the seconds until the window ends. A window lasts
/// `window_seconds` from the key's first hit; the next hit after it starts a new one.
#[tracing::instrument(name = "db.count_rate_limit_hit", skip(conn, key_sha256))]
pub async fn hit(
    conn: &mut PgConnection,
    scope: &str,
    key_sha256: &[u8],
    window_seconds: i64,
) -> Result<(i32, f64), sqlx::Error> {
    let row = sqlx::query!(
        r#"INSERT INTO rate_limit_hits AS current (scope, key_sha256, window_start, hits)
           VALUES ($1, $2, now(), 1)
           ON CONFLICT (scope, key_sha256) DO UPDATE SET
               window_start = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                                   THEN now() ELSE current.window_start END,
               hits = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                           THEN 1 ELSE current.hits + 1 END
           RETURNING hits,
                     extract(epoch FROM window_start + make_interval(secs => $3) - now())::float8 AS "remaining!""#,
        scope,
        key_sha256,
        window_seconds as f64,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.hits, row.remaining))
}

/// Removes the windows that started more than an hour ago, longer than any limit's
/// window; returns how many.
#[tracing::instrument(name = "db.sweep_rate_limits", skip(conn))]
pub async fn sweep(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM rate_limit_hits WHERE window_start < now() - interval '1 hour'")
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
