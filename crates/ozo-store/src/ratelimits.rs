//! Rate-limit counters in PostgreSQL, so that every instance counts against one limit.

use sqlx::PgConnection;

/// Takes up to `max_hits` hits of `key_sha256` in `scope` for an instance to hand out, and
/// returns how many it got with the seconds until their window ends. None are left once
/// `limit` hits of the window are taken. Near the limit a take gets at most half of what
/// is left, so that other instances still get some. A window lasts `window_seconds` from
/// the key's first take, and the next take after it starts a new one.
#[tracing::instrument(name = "db.take_rate_limit_hits", skip(conn, key_sha256))]
pub async fn take(
    conn: &mut PgConnection,
    scope: &str,
    key_sha256: &[u8],
    window_seconds: i64,
    limit: i32,
    max_hits: i32,
) -> Result<(i32, f64), sqlx::Error> {
    // The window has ended when it started more than $3 seconds ago. A take in a new
    // window counts from zero hits.
    let row = sqlx::query!(
        r#"INSERT INTO rate_limit_hits AS current (scope, key_sha256, window_start, hits, taken)
           VALUES ($1, $2, now(), rate_limit_take_size(0, $4, $5), rate_limit_take_size(0, $4, $5))
           ON CONFLICT (scope, key_sha256) DO UPDATE SET
               window_start = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                                   THEN now() ELSE current.window_start END,
               taken = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                            THEN rate_limit_take_size(0, $4, $5)
                            ELSE rate_limit_take_size(current.hits, $4, $5) END,
               hits = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                           THEN rate_limit_take_size(0, $4, $5)
                           ELSE current.hits + rate_limit_take_size(current.hits, $4, $5) END
           RETURNING taken,
                     extract(epoch FROM window_start + make_interval(secs => $3) - now())::float8 AS "remaining!""#,
        scope,
        key_sha256,
        window_seconds as f64,
        limit,
        max_hits,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.taken, row.remaining))
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
