//! Extractors whose rejections are problem+json in the request's language.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::i18n::Text;
use crate::ApiError;

/// The `{id}` of a request in the path. It is recorded in the request's log span.
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| not_a_request_id(""))?;
        let id = Uuid::parse_str(&raw).map_err(|_| not_a_request_id(&raw))?;
        tracing::Span::current().record("request.id", tracing::field::display(id));
        Ok(RequestId(id))
    }
}

/// The `{id}` of an invitation in the path.
pub struct InvitationId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for InvitationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| not_a_request_id(""))?;
        Uuid::parse_str(&raw).map(InvitationId).map_err(|_| not_a_request_id(&raw))
    }
}

fn not_a_request_id(raw: &str) -> ApiError {
    ApiError::NotFound(Text::new(
        format!("{raw:?} is not a valid id; expected a UUID such as 0f8e2c4a-5d1b-4c3e-9a7f-2b6d8e0c1a3f."),
        format!("{raw:?} is geen geldige id; verwacht werd een UUID zoals 0f8e2c4a-5d1b-4c3e-9a7f-2b6d8e0c1a3f."),
    ))
}
