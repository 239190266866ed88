//! The one error type of every handler, rendered as `application/problem+json`
//! (RFC 9457).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ozo_domain::{Finding, Lang, RequestStatus};
use serde_json::json;
use uuid::Uuid;

use crate::i18n::{current_lang, Text};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is missing a field or has an invalid one.
    #[error("bad request: {}", .0.en)]
    BadRequest(Text),
    /// 401: no valid token or session.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: signed in, but the account lacks the role.
    #[error("forbidden: the {role} role is needed")]
    Forbidden { role: &'static str },
    /// 403: a form's CSRF token does not match the session.
    #[error("forbidden: the form's CSRF token does not match the session")]
    CsrfMismatch,
    /// 403: the invitation code is unknown, expired, withdrawn, used or for another
    /// environment.
    #[error("invitation not valid: {}", .0.en)]
    Invitation(Text),
    /// 429: too many requests from this address or for this invitation.
    #[error("rate limited for {retry_after:?}")]
    TooManyRequests { retry_after: std::time::Duration },
    /// 404: no such request or environment.
    #[error("not found: {}", .0.en)]
    NotFound(Text),
    /// 403: the four-eyes rule forbids this operator's approval: they approved already or
    /// created the invitation.
    #[error("the four-eyes rule forbids this approval")]
    FourEyes(Text),
    /// 408: the request's body did not arrive within the client read timeout.
    #[error("request timeout: {}", .0.en)]
    RequestTimeout(Text),
    /// 409: the request is not in a state that allows the action.
    #[error("conflict: the request is {current}")]
    Conflict { current: RequestStatus, text: Text },
    /// 413: the body is larger than any route accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 422: the CSR failed validation. The rejected request was recorded under `request_id`.
    #[error("CSR rejected")]
    Rejected { request_id: Uuid, findings: Vec<Finding> },
    /// 502: the CA refused the call; the text contains its response for the operator.
    #[error("the CA refused the call")]
    CaRefused(Text),
    /// 503: the CA could not be reached, so nothing was changed; the call may be repeated.
    #[error("the CA is unavailable")]
    CaUnavailable(Text),
    /// 500: anything else. The body omits the cause, which is logged.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<ozo_store::StoreError> for ApiError {
    fn from(error: ozo_store::StoreError) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<crate::upload_writer::WriteError> for ApiError {
    fn from(error: crate::upload_writer::WriteError) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<askama::Error> for ApiError {
    fn from(error: askama::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl ApiError {
    /// Returns the 408 of a request whose body did not arrive within `timeout` of its
    /// headers.
    pub fn body_timeout(timeout: std::time::Duration) -> ApiError {
        let seconds = timeout.as_secs();
        ApiError::RequestTimeout(Text::new(
            format!("The request body was not complete {seconds} s after its headers, so the request was not processed. Send it again without pauses; a slow or throttled connection causes this."),
            format!("De body van het verzoek was {seconds} s na de headers nog niet compleet, dus het verzoek is niet verwerkt. Stuur het opnieuw zonder pauzes; een trage of begrensde verbinding veroorzaakt dit."),
        ))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::CsrfMismatch | ApiError::Invitation(_) | ApiError::FourEyes(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::CaRefused(_) => StatusCode::BAD_GATEWAY,
            ApiError::CaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as a page, for browsers.
#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a crate::i18n::PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    title: &'a str,
    detail: String,
}

/// The problem title of a status, in the request's language.
fn title(status: StatusCode, lang: Lang) -> &'static str {
    match (status.as_u16(), lang) {
        (400, Lang::En) => "Bad request",
        (400, Lang::Nl) => "Ongeldig verzoek",
        (401, Lang::En) => "Not signed in",
        (401, Lang::Nl) => "Niet ingelogd",
        (403, Lang::En) => "Not allowed",
        (403, Lang::Nl) => "Niet toegestaan",
        (404, Lang::En) => "Not found",
        (404, Lang::Nl) => "Niet gevonden",
        (408, Lang::En) => "Request timed out",
        (408, Lang::Nl) => "Verzoek verlopen",
        (409, Lang::En) => "Conflict with the current status",
        (409, Lang::Nl) => "Conflict met de huidige status",
        (429, Lang::En) => "Too many requests",
        (429, Lang::Nl) => "Te veel verzoeken",
        (413, Lang::En) => "Upload too large",
        (413, Lang::Nl) => "Upload te groot",
        (422, Lang::En) => "CSR rejected",
        (422, Lang::Nl) => "CSR afgewezen",
        (502, Lang::En) => "The CA refused",
        (502, Lang::Nl) => "De CA weigerde",
        (503, Lang::En) => "The CA is unavailable",
        (503, Lang::Nl) => "De CA is niet bereikbaar",
        (_, Lang::En) => "Internal server error",
        (_, Lang::Nl) => "Interne serverfout",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let lang = current_lang();
        let status = self.status();

        let title = title(status, lang);
        let body = match &self {
            ApiError::BadRequest(text)
            | ApiError::NotFound(text)
            | ApiError::Invitation(text)
            | ApiError::FourEyes(text)
            | ApiError::RequestTimeout(text)
            | ApiError::CaRefused(text)
            | ApiError::CaUnavailable(text) => {
                json!({ "title": title, "status": status.as_u16(), "detail": text.get(lang) })
            }
            ApiError::TooManyRequests { retry_after } => json!({
                "title": title,
                "status": 429,
                "detail": crate::ratelimit::wait_text(*retry_after).get(lang),
            }),
            ApiError::CsrfMismatch => json!({
                "title": title,
                "status": 403,
                "detail": Text::new(
                    "The form is out of date or did not come from this site, so nothing was changed. Go back, reload the page and try again.",
                    "Het formulier is verlopen of kwam niet van deze site, dus er is niets gewijzigd. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
                ).get(lang),
            }),
            ApiError::Unauthorized => json!({
                "title": title,
                "status": 401,
                "detail": Text::new(
                    "Missing or invalid credentials: send Authorization: Bearer TOKEN with a token from ozo-signer token create.",
                    "Ontbrekende of ongeldige inloggegevens: stuur Authorization: Bearer TOKEN met een token van ozo-signer token create.",
                ).get(lang),
            }),
            ApiError::Forbidden { role } => json!({
                "title": title,
                "status": 403,
                "detail": Text::new(
                    format!("This action needs the {role} role, which this account does not have."),
                    format!("Voor deze actie is de rol {role} nodig, die dit account niet heeft."),
                ).get(lang),
            }),
            ApiError::Conflict { current, text } => json!({
                "title": title,
                "status": 409,
                "detail": text.get(lang),
                "current_status": current,
            }),
            ApiError::PayloadTooLarge => {
                let detail = Text::new(
                    format!("The request body is larger than {} bytes. A CSR is about 400 bytes: upload only the file that openssl req -new wrote.", crate::MAX_BODY_BYTES),
                    format!("De body van het verzoek is groter dan {} bytes. Een CSR is ongeveer 400 bytes: upload alleen het bestand dat openssl req -new schreef.", crate::MAX_BODY_BYTES),
                );
                json!({
                    "title": title,
                    "status": 413,
                    "detail": detail.get(lang),
                    "reason": "too-large",
                    "findings": [{ "code": "too-large", "severity": "error", "message": detail.get(lang) }],
                })
            }
            ApiError::Rejected { request_id, findings } => {
                let reason = findings.iter().find(|f| f.is_error()).map(|f| f.code.as_str());
                json!({
                    "title": title,
                    "status": 422,
                    "detail": Text::new(
                        "The CSR does not meet the requirements; every finding below says what to change.",
                        "De CSR voldoet niet aan de eisen; elke bevinding hieronder zegt wat u moet aanpassen.",
                    ).get(lang),
                    "request_id": request_id,
                    "reason": reason,
                    "findings": findings.iter().map(|f| f.to_json(lang)).collect::<Vec<_>>(),
                })
            }
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed with an internal error");
                json!({
                    "title": title,
                    "status": 500,
                    "detail": Text::new(
                        "The service failed to handle the request. Try again later; the error has been logged.",
                        "De service kon het verzoek niet afhandelen. Probeer het later opnieuw; de fout is gelogd.",
                    ).get(lang),
                })
            }
        };

        let mut response = if crate::i18n::wants_html() {
            let page = ErrorPage {
                t: crate::i18n::page_texts(lang),
                user: None,
                csrf: String::new(),
                title,
                detail: body["detail"].as_str().unwrap_or_default().to_owned(),
            };
            match askama::Template::render(&page) {
                Ok(html) => (status, axum::response::Html(html)).into_response(),
                Err(_) => (status, axum::Json(body)).into_response(),
            }
        } else {
            let mut response = (status, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
            response
        };
        if let ApiError::TooManyRequests { retry_after } = &self {
            let seconds = (retry_after.as_secs() + 1).to_string();
            if let Ok(value) = header::HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
