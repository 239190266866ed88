//! Fixed-window rate limits, kept in this process's memory.
//!
//! NOTE: each instance counts on its own, so N instances allow N times the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` for each key.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before expired windows are swept out.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter { limit, window, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one event for `key`, or returns how long until the key may act again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, (started, _)| now.duration_since(*started) < self.window);
        }

        let (started, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*started) >= self.window {
            *started = now;
            *count = 0;
        }
        if *count >= self.limit {
            return Err(self.window - now.duration_since(*started));
        }
        *count += 1;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_applies_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let retry_after = limiter.check("a").unwrap_err();
        assert!(retry_after <= Duration::from_secs(60));
        assert!(retry_after > Duration::from_secs(58));
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn window_resets() {
        let limiter = RateLimiter::new(1, Duration::from_millis(20));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limiter.check("a").is_ok());
    }
}
