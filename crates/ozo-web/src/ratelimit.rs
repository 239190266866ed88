//! Fixed-window rate limits, counted in PostgreSQL so that every instance of the service
//! counts against the same limit.
//!
//! An instance does not ask the database for every hit. It takes up to [`MAX_HITS_PER_TAKE`]
//! hits of a key at once and hands them out itself until they run out or their window
//! ends. Near the limit a take gets at most half of what is left, so the last hits go one
//! at a time. The hits taken, used or not, count against the limit, so the instances
//! together never let more through than it. Hits one instance took but did not use are
//! not available to the others until the window ends. Once the limit is reached, an
//! instance rejects the key until the window ends without another take, because no take
//! can succeed before then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The maximum number of hits one take gets.
const MAX_HITS_PER_TAKE: i32 = 64;

/// The maximum number of keys an instance keeps a state of. At this size, keys whose
/// window has ended are dropped. If none has ended, a take gets a single hit and the key's
/// state is not kept.
const MAX_KEYS: usize = 10_000;

/// At most `limit` hits per `window` for each key of a scope.
pub struct RateLimiter {
    scope: &'static str,
    limit: u32,
    window: Duration,
    /// The state of each key with hits held or at its limit, by the key's SHA-256.
    keys: Mutex<HashMap<[u8; 32], KeyState>>,
}

/// The state of one key in an instance until `until`: the hits the instance holds, or
/// that the key was at its limit at the last take.
struct KeyState {
    left: u32,
    limited: bool,
    until: Instant,
}

impl RateLimiter {
    pub fn new(scope: &'static str, limit: u32, window: Duration) -> Self {
        RateLimiter { scope, limit, window, keys: Mutex::new(HashMap::new()) }
    }

    /// Returns the `scope` label of `ozo_rate_limited_total`.
    pub fn scope(&self) -> &'static str {
        self.scope
    }

    /// Counts one hit for `key`, and returns how long until the key may act again when it
    /// is over the limit. The key is kept only as its SHA-256.
    pub async fn check(&self, pool: &PgPool, key: &str) -> Result<Result<(), Duration>, sqlx::Error> {
        let key_sha256: [u8; 32] = Sha256::digest(key.as_bytes()).into();

        let now = Instant::now();
        let keep = match self.hand_out(&key_sha256, now) {
            Lookup::Allowed => return Ok(Ok(())),
            Lookup::Limited(until) => return Ok(Err(self.count_rejection(until - now))),
            Lookup::Ask { keep } => keep,
        };

        let max_hits = if keep { MAX_HITS_PER_TAKE } else { 1 };
        let window_seconds = self.window.as_secs().max(1) as i64;
        let limit = i32::try_from(self.limit).unwrap_or(i32::MAX);
        let mut conn = pool.acquire().await?;
        let (taken, remaining) =
            ozo_store::ratelimits::take(&mut conn, self.scope, &key_sha256, window_seconds, limit, max_hits).await?;
        drop(conn);

        let remaining = Duration::from_secs_f64(remaining.max(0.0));
        if keep {
            self.keep(key_sha256, taken, now + remaining);
        }
        if taken < 1 {
            // The key is not logged: for some scopes it is an invitation code.
            tracing::info!(rate_limit.scope = self.scope, rate_limit.limit = self.limit, "a rate limit was reached");
            return Ok(Err(self.count_rejection(remaining)));
        }
        Ok(Ok(()))
    }

    /// Hands out a held hit of the key, or returns what to do instead.
    fn hand_out(&self, key_sha256: &[u8; 32], now: Instant) -> Lookup {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(hits) = keys.get_mut(key_sha256) {
            if hits.until > now && hits.limited {
                return Lookup::Limited(hits.until);
            }
            if hits.until > now && hits.left > 0 {
                hits.left -= 1;
                return Lookup::Allowed;
            }
            keys.remove(key_sha256);
        }
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, hits| hits.until > now);
        }
        Lookup::Ask { keep: keys.len() < MAX_KEYS }
    }

    /// Records the outcome of a take of `taken` hits, one of them used at once, until
    /// `until`.
    fn keep(&self, key_sha256: [u8; 32], taken: i32, until: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = keys.get_mut(&key_sha256);
        if taken < 1 {
            // Hits that another request of the key took meanwhile are still handed out.
            match current {
                Some(hits) if !hits.limited && hits.left > 0 => {}
                _ => {
                    keys.insert(key_sha256, KeyState { left: 0, limited: true, until });
                }
            }
            return;
        }
        let left = u32::try_from(taken - 1).unwrap_or(0);
        if left == 0 {
            return;
        }
        match current {
            Some(hits) if !hits.limited => {
                hits.left += left;
                hits.until = hits.until.min(until);
            }
            _ => {
                keys.insert(key_sha256, KeyState { left, limited: false, until });
            }
        }
    }

    /// Counts a rejection in `ozo_rate_limited_total` and returns `retry_after`.
    fn count_rejection(&self, retry_after: Duration) -> Duration {
        metrics::counter!("ozo_rate_limited_total", "scope" => self.scope).increment(1);
        retry_after
    }
}

enum Lookup {
    /// A held hit was handed out.
    Allowed,
    /// The key is at its limit until then.
    Limited(Instant),
    /// Take hits from the database, and hold the rest when `keep` is true.
    Ask { keep: bool },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new("upload-address", 100, Duration::from_secs(600))
    }

    fn allowed(lookup: Lookup) -> bool {
        matches!(lookup, Lookup::Allowed)
    }

    #[test]
    fn held_hits_run_out() {
        let limiter = limiter();
        let key = [1; 32];
        let now = Instant::now();
        assert!(matches!(limiter.hand_out(&key, now), Lookup::Ask { keep: true }));

        // A take of 4: one for the request that asked, three held.
        limiter.keep(key, 4, now + Duration::from_secs(600));
        let handed: Vec<bool> = (0..4).map(|_| allowed(limiter.hand_out(&key, now))).collect();
        assert_eq!(handed, [true, true, true, false]);
        assert!(matches!(limiter.hand_out(&key, now), Lookup::Ask { keep: true }));

        // A take that meets hits taken meanwhile adds to them and keeps the earlier end.
        limiter.keep(key, 3, now + Duration::from_secs(10));
        limiter.keep(key, 2, now + Duration::from_secs(20));
        let later = now + Duration::from_secs(5);
        let handed: Vec<bool> = (0..4).map(|_| allowed(limiter.hand_out(&key, later))).collect();
        assert_eq!(handed, [true, true, true, false]);
        limiter.keep(key, 5, now + Duration::from_secs(10));
        assert!(!allowed(limiter.hand_out(&key, now + Duration::from_secs(10))), "held hits end with their window");
    }

    #[test]
    fn limited_key_waits_for_window_end() {
        let limiter = limiter();
        let key = [2; 32];
        let now = Instant::now();
        let end = now + Duration::from_secs(30);

        // A take of one keeps nothing; a take of none limits the key until the end.
        limiter.keep(key, 1, end);
        assert!(matches!(limiter.hand_out(&key, now), Lookup::Ask { keep: true }));
        limiter.keep(key, 0, end);
        assert!(matches!(limiter.hand_out(&key, now), Lookup::Limited(until) if until == end));
        assert!(matches!(limiter.hand_out(&key, end), Lookup::Ask { keep: true }));

        // Hits another request took meanwhile are handed out before the limit applies.
        limiter.keep(key, 3, end);
        limiter.keep(key, 0, end);
        assert!(allowed(limiter.hand_out(&key, now)));
        assert!(allowed(limiter.hand_out(&key, now)));
        assert!(matches!(limiter.hand_out(&key, now), Lookup::Ask { .. }));
    }

    #[test]
    fn keys_beyond_maximum_not_held() {
        let limiter = limiter();
        let now = Instant::now();
        for n in 0..MAX_KEYS {
            let key: [u8; 32] = Sha256::digest(n.to_string().as_bytes()).into();
            limiter.keep(key, 2, now + Duration::from_secs(60));
        }
        let new = [3; 32];
        assert!(matches!(limiter.hand_out(&new, now), Lookup::Ask { keep: false }));

        // Once their windows have ended, the keys make room.
        assert!(matches!(limiter.hand_out(&new, now + Duration::from_secs(60)), Lookup::Ask { keep: true }));
        assert_eq!(limiter.keys.lock().unwrap().len(), 0);
    }
}
