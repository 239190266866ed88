//! Extractors whose rejections are problem+json in the request's language.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::i18n::Text;
use crate::ApiError;

/// The `{id}` of a request or invitation in the path.
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| not_a_request_id(""))?;
        Uuid::parse_str(&raw).map(RequestId).map_err(|_| not_a_request_id(&raw))
    }
}

fn not_a_request_id(raw: &str) -> ApiError {
    ApiError::NotFound(Text::new(
        format!("{raw:?} is not a valid id; expected a UUID such as 0f8e2c4a-5d1b-4c3e-9a7f-2b6d8e0c1a3f."),
        format!("{raw:?} is geen geldige id; verwacht werd een UUID zoals 0f8e2c4a-5d1b-4c3e-9a7f-2b6d8e0c1a3f."),
    ))
}
