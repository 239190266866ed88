//! Fixed-window rate limits, counted in PostgreSQL so that every instance of the service
//! counts against the same limit.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// At most `limit` hits per `window` for each key of a scope.
pub struct RateLimiter {
    scope: &'static str,
    limit: u32,
    window: Duration,
}

impl RateLimiter {
    pub fn new(scope: &'static str, limit: u32, window: Duration) -> Self {
        RateLimiter { scope, limit, window }
    }

    /// Returns the `scope` label of `ozo_rate_limited_total`.
    pub fn scope(&self) -> &'static str {
        self.scope
    }

    /// Counts one hit for `key`, and returns how long until the key may act again when it
    /// is over the limit. The key is stored only as its SHA-256.
    pub async fn check(&self, pool: &PgPool, key: &str) -> Result<Result<(), Duration>, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let key_sha256 = Sha256::digest(key.as_bytes());
        let window_seconds = self.window.as_secs().max(1) as i64;
        let (hits, remaining) = ozo_store::ratelimits::hit(&mut conn, self.scope, &key_sha256, window_seconds).await?;
        if hits as u32 > self.limit {
            // The key is not logged: for some scopes it is an invitation code.
            if hits as u32 == self.limit + 1 {
                tracing::info!(rate_limit.scope = self.scope, rate_limit.limit = self.limit, "a rate limit was reached");
            }
            metrics::counter!("ozo_rate_limited_total", "scope" => self.scope).increment(1);
            return Ok(Err(Duration::from_secs_f64(remaining.max(0.0))));
        }
        Ok(Ok(()))
    }
}

/// Tells a client how long to wait, in whole minutes (or seconds under one minute).
pub fn wait_text(retry_after: Duration) -> crate::i18n::Text {
    let seconds = retry_after.as_secs() + 1;
    if seconds < 60 {
        return crate::i18n::Text::new(
            format!("Too many requests from this address or for this invitation; try again in {seconds} seconds."),
            format!("Te veel verzoeken van dit adres of voor deze uitnodiging; probeer het over {seconds} seconden opnieuw."),
        );
    }
    let minutes = seconds.div_ceil(60);
    crate::i18n::Text::new(
        format!("Too many requests from this address or for this invitation; try again in about {minutes} minutes."),
        format!("Te veel verzoeken van dit adres of voor deze uitnodiging; probeer het over ongeveer {minutes} minuten opnieuw."),
    )
}
