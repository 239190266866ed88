//! The JSON API under `/api/v1`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ozo_domain::RequestStatus;
use ozo_store::certificates;
use ozo_store::requests;
use serde::Deserialize;

use crate::auth::ApiAccount;
use crate::client_address::ClientAddress;
use crate::extract::RequestId;
use crate::i18n::{RequestLang, Text};
use crate::issuance::{self, findings_of, request_view, Upload};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/requests", post(create_request).get(list_requests))
        .route("/api/v1/requests/{id}", get(get_request))
        .route("/api/v1/requests/{id}/certificate", get(get_certificate))
        .route("/api/v1/requests/{id}/preview", get(preview_request))
        .route("/api/v1/requests/{id}/approve", post(approve_request))
        .route("/api/v1/requests/{id}/deny", post(deny_request))
        .route("/api/v1/requests/{id}/retry", post(retry_request))
        .route("/api/v1/requests/{id}/revoke", post(revoke_request))
        .route("/api/v1/environments/{environment}/ca.pem", get(get_ca_certificate))
        .route("/api/v1/invitations", get(list_invitations).post(create_invitation))
        .route("/api/v1/invitations/{id}/withdraw", post(withdraw_invitation))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    environment: String,
    #[serde(default)]
    invitation: Option<String>,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    contact: String,
    csr: String,
}

#[derive(Deserialize, Default)]
struct UploadQuery {
    #[serde(default)]
    environment: String,
    #[serde(default)]
    invitation: Option<String>,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    contact: String,
}

/// `POST /api/v1/requests`: a JSON body with the CSR as PEM, or the raw PEM or DER as
/// the body with the other fields as query parameters.
async fn create_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    ClientAddress(client): ClientAddress,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            // A raw PEM or DER upload names its environment in the query; a JSON upload
            // names it in the body that was not read.
            crate::ops::count_oversized_upload(&state, Some(&query.environment));
            ApiError::PayloadTooLarge
        }
        _ => ApiError::BadRequest(Text::new(
            format!("The request body could not be read: {rejection}."),
            format!("De body van het verzoek kon niet worden gelezen: {rejection}."),
        )),
    })?;

    // A body that starts with `{` is JSON whatever its Content-Type, because curl sends
    // --data as application/x-www-form-urlencoded unless told otherwise.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
        || body.trim_ascii_start().starts_with(b"{");
    let upload = if is_json {
        let json: UploadJson = serde_json::from_slice(&body).map_err(|error| {
            ApiError::BadRequest(Text::new(
                format!("The JSON body is invalid ({error}); expected {{\"environment\", \"invitation\", \"csr\"}} with the CSR as PEM text."),
                format!("De JSON-body is ongeldig ({error}); verwacht werd {{\"environment\", \"invitation\", \"csr\"}} met de CSR als PEM-tekst."),
            ))
        })?;
        Upload {
            environment: json.environment,
            invitation: json.invitation,
            organisation: json.organisation,
            contact: json.contact,
            csr: json.csr.into_bytes(),
        }
    } else {
        Upload {
            environment: query.environment,
            invitation: query.invitation,
            organisation: query.organisation,
            contact: query.contact,
            csr: body.to_vec(),
        }
    };
    state.limit_upload(client, upload.invitation.as_deref()).await?;

    let uploaded = issuance::upload(&state, upload).await?;

    let findings = findings_of(&uploaded.row);
    let view = request_view(&uploaded.row, &findings, None, lang);
    let location = view.status_url.clone();
    let mut body = serde_json::to_value(&view).map_err(anyhow::Error::from)?;
    body["status_page_url"] = format!("/status/{}", uploaded.status_token).into();
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `GET /api/v1/requests/{id}`: the status of one request. The id is a random UUID, so
/// it works as the client's private link to the request.
async fn get_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    RequestId(id): RequestId,
) -> Result<Response, ApiError> {
    let row = issuance::load_request(&state, id).await?;

    request_response(&state, &row, lang).await
}

/// Builds the JSON response for a request, with its certificate if it has one.
async fn request_response(
    state: &AppState,
    row: &ozo_store::requests::RequestRow,
    lang: ozo_domain::Lang,
) -> Result<Response, ApiError> {
    let mut conn = state.pool().acquire().await?;
    let certificate = certificates::for_request(&mut conn, row.id).await?;
    let approvals = ozo_store::approvals::for_request(&mut conn, row.id).await?;
    let findings = findings_of(row);

    let mut view = request_view(row, &findings, certificate.as_ref(), lang);
    view.approvals = Some(approvals.len());
    view.approvals_required = state.environment(&row.environment).map(|environment| environment.approvals_required);
    Ok(Json(view).into_response())
}

/// `GET /api/v1/requests/{id}/certificate`: the certificate in PEM followed by its chain.
async fn get_certificate(State(state): State<AppState>, RequestId(id): RequestId) -> Result<Response, ApiError> {
    let row = issuance::load_request(&state, id).await?;
    let mut conn = state.pool().acquire().await?;
    let Some(certificate) = certificates::for_request(&mut conn, id).await? else {
        let current = row.status;
        let text = if current.is_final() {
            Text::new(
                format!("Request {id} has no certificate: it is {current} and will not be issued."),
                format!("Aanvraag {id} heeft geen certificaat: de status is {current} en er komt geen certificaat."),
            )
        } else {
            Text::new(
                format!("Request {id} has no certificate yet: it is {current}. Check again when it is issued."),
                format!(
                    "Aanvraag {id} heeft nog geen certificaat: de status is {current}. Kijk opnieuw als die issued is."
                ),
            )
        };
        return Err(ApiError::Conflict { current, text });
    };

    let body = format!("{}{}", certificate.pem, certificate.chain_pem);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"client-cert.pem\"".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/environments/{environment}/ca.pem`: the CA certificate of an environment.
async fn get_ca_certificate(
    State(state): State<AppState>,
    Path(environment): Path<String>,
) -> Result<Response, ApiError> {
    let runtime = state.environment(&environment).ok_or_else(|| {
        let known =
            state.environments().map(|runtime| runtime.environment.name.as_str()).collect::<Vec<_>>().join(", ");
        ApiError::NotFound(Text::new(
            format!("Unknown environment {environment:?}; expected one of: {known}."),
            format!("Onbekende omgeving {environment:?}; verwacht werd een van: {known}."),
        ))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"ca-cert.pem\"".to_owned()),
        ],
        runtime.signer.ca_certificate_pem().to_owned(),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/requests?status=pending`: requests for operators, oldest first.
async fn list_requests(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    account.require("operator")?;

    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<RequestStatus>().map_err(|error| {
            ApiError::BadRequest(Text::new(
                error.to_string(),
                format!("Onbekende status {text:?}; verwacht werd pending, approved, issued, rejected, denied, failed of revoked."),
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);

    let mut conn = state.pool().acquire().await?;
    let rows = requests::list(&mut conn, status, None, None, limit).await?;
    let findings: Vec<_> = rows.iter().map(findings_of).collect();
    let views: Vec<_> =
        rows.iter().zip(&findings).map(|(row, findings)| request_view(row, findings, None, lang)).collect();
    Ok(Json(serde_json::json!({ "requests": views })).into_response())
}

/// `POST /api/v1/requests/{id}/approve`: approves and signs, then returns the request as
/// it is afterwards (`issued`, or `failed` with the reason).
async fn approve_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    RequestId(id): RequestId,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;

    let row = issuance::approve(&state, id, operator).await?;

    request_response(&state, &row, lang).await
}

/// `GET /api/v1/requests/{id}/preview`: the certificate the CA would issue, without
/// issuing it; `supported` is false when the backend cannot tell.
async fn preview_request(
    State(state): State<AppState>,
    account: ApiAccount,
    RequestId(id): RequestId,
) -> Result<Response, ApiError> {
    account.require("operator")?;

    let preview = issuance::preview(&state, id).await?;

    let body = match preview {
        None => serde_json::json!({ "supported": false }),
        Some(preview) => serde_json::json!({
            "supported": true,
            "subject": preview.subject,
            "not_before": preview.not_before.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "not_after": preview.not_after.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "key_usages": preview.key_usages,
            "extended_key_usages": preview.extended_key_usages,
            "is_ca": preview.is_ca,
            "issuing_ca": preview.issuer,
        }),
    };
    Ok(Json(body).into_response())
}

/// `POST /api/v1/requests/{id}/retry`: sends a failed request back to signing.
async fn retry_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    RequestId(id): RequestId,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;

    let row = issuance::retry(&state, id, &operator.name).await?;

    request_response(&state, &row, lang).await
}

/// `POST /api/v1/requests/{id}/revoke` with `{"reason"}`, an RFC 5280 reason name.
async fn revoke_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    RequestId(id): RequestId,
    body: Result<Json<ReasonJson>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;
    let Json(body) = body.map_err(|rejection| {
        ApiError::BadRequest(Text::new(
            format!("Expected a JSON body {{\"reason\": \"keyCompromise\"}} with an RFC 5280 reason: {rejection}"),
            format!(
                "Verwacht werd een JSON-body {{\"reason\": \"keyCompromise\"}} met een reden uit RFC 5280: {rejection}"
            ),
        ))
    })?;

    let row = issuance::revoke(&state, id, &operator.name, &body.reason).await?;

    request_response(&state, &row, lang).await
}

/// The body of a revocation or a denial.
#[derive(Deserialize)]
struct ReasonJson {
    reason: String,
}

/// `POST /api/v1/requests/{id}/deny` with `{"reason"}`.
async fn deny_request(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    RequestId(id): RequestId,
    body: Result<Json<ReasonJson>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;
    let Json(body) = body.map_err(|rejection| {
        ApiError::BadRequest(Text::new(
            format!("Expected a JSON body {{\"reason\": \"...\"}}: {rejection}"),
            format!("Verwacht werd een JSON-body {{\"reason\": \"...\"}}: {rejection}"),
        ))
    })?;

    let row = issuance::deny(&state, id, &operator.name, &body.reason).await?;

    request_response(&state, &row, lang).await
}

/// `GET /api/v1/invitations`: invitations for operators, newest first. Codes are not
/// stored, so they are not listed.
async fn list_invitations(State(state): State<AppState>, account: ApiAccount) -> Result<Response, ApiError> {
    account.require("operator")?;

    let mut conn = state.pool().acquire().await?;
    let rows = ozo_store::invitations::list(&mut conn, 500).await?;
    Ok(Json(serde_json::json!({ "invitations": rows })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationJson {
    organisation: String,
    contact: String,
    environments: Vec<String>,
    valid_days: Option<i64>,
}

/// `POST /api/v1/invitations`: creates an invitation. The response contains the code
/// and the upload link, which are shown only this once.
async fn create_invitation(
    State(state): State<AppState>,
    account: ApiAccount,
    body: Result<Json<InvitationJson>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;
    let Json(body) = body.map_err(|rejection| {
        ApiError::BadRequest(Text::new(
            format!("Expected a JSON body {{\"organisation\", \"contact\", \"environments\": [...], \"valid_days\"}}: {rejection}"),
            format!("Verwacht werd een JSON-body {{\"organisation\", \"contact\", \"environments\": [...], \"valid_days\"}}: {rejection}"),
        ))
    })?;

    let input = crate::invitations::InvitationInput {
        organisation: body.organisation,
        contact: body.contact,
        environments: body.environments,
        valid_days: body.valid_days,
    };
    let (row, code) = crate::invitations::create(
        state.pool(),
        &state.environment_names(),
        input,
        &format!("account:{}", operator.name),
    )
    .await?;

    let mut answer = serde_json::to_value(&row).map_err(anyhow::Error::from)?;
    answer["code"] = code.clone().into();
    answer["upload_url"] = format!("/upload?invitation={code}").into();
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /api/v1/invitations/{id}/withdraw`.
async fn withdraw_invitation(
    State(state): State<AppState>,
    account: ApiAccount,
    crate::extract::InvitationId(id): crate::extract::InvitationId,
) -> Result<Response, ApiError> {
    let operator = account.require("operator")?;

    let row = crate::invitations::withdraw(state.pool(), id, &format!("account:{}", operator.name)).await?;

    Ok(Json(row).into_response())
}
