//! Rate-limit counters in PostgreSQL, so that every instance counts against one limit.

use sqlx::PgConnection;

/// Takes up to `max_hits` hits of `key_sha256` in `scope` for an instance to hand out, and
/// returns how many it got with the seconds until their window ends. None are left once
/// `limit` hits of the window are taken; near it, a take gets at most half of what is
/// left, so that other instances still get some. A window lasts `window_seconds` from the
/// key's first take; the next take after it starts a new one.
#[tracing::instrument(name = "db.take_rate_limit_hits", skip(conn, key_sha256))]
pub async fn take(
    conn: &mut PgConnection,
    scope: &str,
    key_sha256: &[u8],
    window_seconds: i64,
    limit: i32,
    max_hits: i32,
) -> Result<(i32, f64), sqlx::Error> {
    // $4 is the limit and $5 the maximum to take. Given the hits taken so far, a take gets
    // half of what is left, at least one and at most $5, and none at the limit:
    // greatest(0, least($5, greatest(1, ($4 - hits) / 2), $4 - hits)).
    let row = sqlx::query!(
        r#"INSERT INTO rate_limit_hits AS current (scope, key_sha256, window_start, hits, taken)
           VALUES ($1, $2, now(),
                   greatest(0, least($5, greatest(1, $4 / 2), $4)),
                   greatest(0, least($5, greatest(1, $4 / 2), $4)))
           ON CONFLICT (scope, key_sha256) DO UPDATE SET
               window_start = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                                   THEN now() ELSE current.window_start END,
               taken = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                            THEN greatest(0, least($5, greatest(1, $4 / 2), $4))
                            ELSE greatest(0, least($5, greatest(1, ($4 - current.hits) / 2), $4 - current.hits)) END,
               hits = CASE WHEN current.window_start <= now() - make_interval(secs => $3)
                           THEN greatest(0, least($5, greatest(1, $4 / 2), $4))
                           ELSE current.hits + greatest(0, least($5, greatest(1, ($4 - current.hits) / 2), $4 - current.hits)) END
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
