//! Passwords, API tokens and sessions. Only hashes are stored: Argon2id for passwords,
//! SHA-256 for tokens and session ids, which are 256-bit random values.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use base64ct::{Base64UrlUnpadded, Encoding};
use ozo_store::accounts::{self, Account};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The prefix of API tokens, so that a leaked token is easy to recognise in a scan.
const TOKEN_PREFIX: &str = "ozo_";
pub(crate) const SESSION_COOKIE: &str = "ozo_session";
pub(crate) const SECURE_SESSION_COOKIE: &str = "__Host-ozo_session";

pub const ROLES: [&str; 3] = ["operator", "auditor", "admin"];

/// Hashes a password with Argon2id and a random salt, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks a password against a PHC hash. An unparsable hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A new random secret of 256 bits, URL-safe.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Base64UrlUnpadded::encode_string(&bytes)
}

/// A new invitation code: 20 characters of Crockford base32 (100 bits) in groups of
/// four, easy to read out and type.
pub fn random_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let characters: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    characters.chunks(4).map(|chunk| chunk.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A new API token. Show it once and store only [`secret_sha256`] of it.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
}

pub fn secret_sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The signed-in account as the navigation shows it: its name and the pages it may use.
pub struct NavUser {
    pub name: String,
    pub reads_requests: bool,
    pub invites: bool,
    pub audits: bool,
    pub administers: bool,
}

impl NavUser {
    pub fn of(account: &Account) -> NavUser {
        NavUser {
            name: account.name.clone(),
            reads_requests: account.has_role("operator") || account.has_role("auditor"),
            invites: account.has_role("operator"),
            audits: account.has_role("auditor"),
            administers: account.has_role("admin"),
        }
    }
}

/// The account behind the `Authorization: Bearer` token of an API request.
pub struct ApiAccount(pub Account);

impl ApiAccount {
    pub fn require(&self, role: &'static str) -> Result<&Account, ApiError> {
        if self.0.has_role(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden { role })
        }
    }
}

impl FromRequestParts<AppState> for ApiAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;

        let mut conn = state.pool().acquire().await?;
        let account = accounts::find_by_token(&mut conn, &secret_sha256(token)).await?.ok_or(ApiError::Unauthorized)?;
        tracing::Span::current().record("account.name", account.name.as_str());
        Ok(ApiAccount(account))
    }
}

/// The operator signed in to the pages, with the CSRF token of the session.
pub struct PageSession {
    pub account: Account,
    pub csrf_token: String,
}

impl PageSession {
    /// Checks the CSRF token of a submitted form in constant time.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageRejection> {
        use subtle::ConstantTimeEq;
        if self.csrf_token.as_bytes().ct_eq(submitted.as_bytes()).into() {
            Ok(())
        } else {
            Err(PageRejection::Error(ApiError::CsrfMismatch))
        }
    }
}

/// The reason a page could not be shown to the visitor.
pub enum PageRejection {
    /// Not signed in: go to the login page, and back to this page after it.
    Login(Option<String>),
    /// Signed in, but the account lacks the operator role.
    Forbidden,
    Error(ApiError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            PageRejection::Login(None) => Redirect::to("/login").into_response(),
            PageRejection::Login(Some(next)) => {
                let encoded: String = next
                    .bytes()
                    .map(|byte| match byte {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                            (byte as char).to_string()
                        }
                        _ => format!("%{byte:02X}"),
                    })
                    .collect();
                Redirect::to(&format!("/login?next={encoded}")).into_response()
            }
            PageRejection::Forbidden => ApiError::Forbidden { role: "operator" }.into_response(),
            PageRejection::Error(error) => error.into_response(),
        }
    }
}

impl<E: Into<ApiError>> From<E> for PageRejection {
    fn from(error: E) -> Self {
        PageRejection::Error(error.into())
    }
}

/// Reads the session id from the request's cookies.
pub(crate) fn session_cookie_value(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE || *name == SECURE_SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Finds the session of the request's cookie, whatever the account's roles.
async fn signed_in(parts: &Parts, state: &AppState) -> Result<PageSession, PageRejection> {
    // A page asked for with GET is where the visitor returns after signing in.
    let back = (parts.method == axum::http::Method::GET)
        .then(|| parts.uri.path_and_query().map(|target| target.as_str().to_owned()))
        .flatten();
    let cookie = session_cookie_value(&parts.headers).ok_or_else(|| PageRejection::Login(back.clone()))?;
    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    let session = accounts::find_session(&mut conn, &secret_sha256(&cookie), state.settings().session_idle)
        .await
        .map_err(ApiError::from)?
        .ok_or(PageRejection::Login(back))?;
    tracing::Span::current().record("account.name", session.account.name.as_str());
    Ok(PageSession { account: session.account, csrf_token: session.csrf_token })
}

impl FromRequestParts<AppState> for PageSession {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = signed_in(parts, state).await?;
        if !session.account.has_role("operator") {
            return Err(PageRejection::Forbidden);
        }
        Ok(session)
    }
}

/// A session of an operator or an auditor, for the pages that only show requests.
pub struct ReaderSession(pub PageSession);

impl FromRequestParts<AppState> for ReaderSession {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = signed_in(parts, state).await?;
        if !session.account.has_role("operator") && !session.account.has_role("auditor") {
            return Err(PageRejection::Forbidden);
        }
        Ok(ReaderSession(session))
    }
}

/// A session of an auditor, for the event log.
pub struct AuditorSession(pub PageSession);

impl FromRequestParts<AppState> for AuditorSession {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = signed_in(parts, state).await?;
        if !session.account.has_role("auditor") {
            return Err(PageRejection::Error(ApiError::Forbidden { role: "auditor" }));
        }
        Ok(AuditorSession(session))
    }
}

/// A session of an admin, for the account pages.
pub struct AdminSession(pub PageSession);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = signed_in(parts, state).await?;
        if !session.account.has_role("admin") {
            return Err(PageRejection::Error(ApiError::Forbidden { role: "admin" }));
        }
        Ok(AdminSession(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_are_distinct_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("ozo_"));
        assert_eq!(a.len(), 4 + 43, "prefix and 32 bytes in unpadded base64url");
    }
}
