//! One request's whole history on one page, for auditors: what was asked and by whom, the
//! findings, each approval with the digest it approved, the certificate with its place at
//! the CA and its revocation, and every event with its place in the chain.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use ozo_domain::Lang;
use ozo_store::approvals::ApprovalRow;
use ozo_store::certificates::{self, CertificateRow};
use ozo_store::events::{self, AuditEvent};
use ozo_store::requests::{self, RecordFilter, RequestRow};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{ApiAccount, AuditorSession, PageRejection};
use crate::extract::RequestId;
use crate::i18n::{page_texts, PageTexts, RequestLang, Text};
use crate::pages::format_time;
use crate::{issuance, ApiError, AppState};

/// Organisation names offered as suggestions on the auditor's search page.
const SUGGESTED_ORGANISATIONS: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit/requests/{id}", get(history_page))
        .route("/audit/certificates/{serial}", get(certificate_page))
        .route("/api/v1/audit/requests/{id}", get(history_api))
        .route("/api/v1/audit/organisations", get(organisations_api))
}

/// Everything recorded about one request.
#[derive(Serialize)]
struct History {
    request: RequestRow,
    findings: Vec<serde_json::Value>,
    approvals: Vec<ApprovalRow>,
    certificate: Option<CertificateView>,
    events: Vec<AuditEvent>,
}

/// A certificate with the names it has at a remote CA, which auditors may read.
#[derive(Serialize)]
struct CertificateView {
    #[serde(flatten)]
    row: CertificateRow,
    ca_certificate_name: Option<String>,
    issuing_ca: Option<String>,
}

async fn load(state: &AppState, id: Uuid, lang: Lang) -> Result<History, ApiError> {
    let request = issuance::load_request(state, id).await?;
    let mut conn = state.pool().acquire().await?;
    let approvals = ozo_store::approvals::for_request(&mut conn, id).await?;
    let certificate = certificates::for_request(&mut conn, id).await?.map(|row| CertificateView {
        ca_certificate_name: row.ca_certificate_name.clone(),
        issuing_ca: row.issuing_ca.clone(),
        row,
    });
    let events = events::history(&mut conn, id).await?;
    let findings = issuance::findings_of(&request).iter().map(|finding| serde_json::json!(finding.to_json(lang))).collect();
    Ok(History { request, findings, approvals, certificate, events })
}

/// `GET /api/v1/audit/requests/{id}`: the whole history of one request.
async fn history_api(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    account: ApiAccount,
    RequestId(id): RequestId,
) -> Result<Response, ApiError> {
    account.require("auditor")?;

    let history = load(&state, id, lang).await?;

    Ok(Json(history).into_response())
}

struct EventLine {
    seq: i64,
    at: String,
    actor: String,
    kind: String,
    detail: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "audit_history.html")]
struct HistoryPage<'a> {
    t: &'a PageTexts,
    user: Option<crate::auth::NavUser>,
    csrf: String,
    row: RequestRow,
    received: String,
    fingerprint: String,
    /// Code, severity and message of each finding.
    findings: Vec<(String, String, String)>,
    /// Account, time and digest of each approval.
    approvals: Vec<(String, String, String)>,
    certificate: Option<CertificateView>,
    valid_from: String,
    valid_until: String,
    certificate_sha256: String,
    revoked_at: String,
    events: Vec<EventLine>,
}

/// `GET /audit/requests/{id}`: the auditor's page of one request and its certificate.
async fn history_page(
    State(state): State<AppState>,
    RequestLang(lang): RequestLang,
    session: AuditorSession,
    RequestId(id): RequestId,
) -> Result<Response, PageRejection> {
    let history = load(&state, id, lang).await?;

    let findings = issuance::findings_of(&history.request)
        .iter()
        .map(|finding| {
            (finding.code.as_str().to_owned(), finding.severity.as_str().to_owned(), finding.message(lang).to_owned())
        })
        .collect();
    let approvals = history
        .approvals
        .iter()
        .map(|approval| (approval.account.clone(), format_time(approval.approved_at), hex::encode(&approval.digest)))
        .collect();
    let certificate = history.certificate.as_ref();
    let events = history
        .events
        .iter()
        .map(|event| EventLine {
            seq: event.seq,
            at: format_time(event.at),
            actor: event.actor.clone(),
            kind: event.kind.clone(),
            detail: event.detail.to_string(),
            hash: hex::encode(&event.hash),
        })
        .collect();
    let page = HistoryPage {
        t: page_texts(lang),
        user: Some(crate::auth::NavUser::of(&session.0.account)),
        csrf: session.0.csrf_token.clone(),
        received: format_time(history.request.created_at),
        fingerprint: history.request.spki_sha256.as_deref().map(hex::encode).unwrap_or_default(),
        findings,
        approvals,
        valid_from: certificate.map(|c| format_time(c.row.not_before)).unwrap_or_default(),
        valid_until: certificate.map(|c| format_time(c.row.not_after)).unwrap_or_default(),
        certificate_sha256: certificate.map(|c| hex::encode(&c.row.sha256)).unwrap_or_default(),
        revoked_at: certificate.and_then(|c| c.row.revoked_at).map(format_time).unwrap_or_default(),
        events,
        row: history.request,
        certificate: history.certificate,
    };
    Ok(axum::response::Html(page.render().map_err(ApiError::from)?).into_response())
}

/// `GET /audit/certificates/{serial}`: the history of the certificate with this serial, or
/// the search for it when several CAs issued the same serial.
async fn certificate_page(
    State(state): State<AppState>,
    _session: AuditorSession,
    Path(serial): Path<String>,
) -> Result<Response, PageRejection> {
    let serial = serial.trim().to_lowercase();
    if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound(Text::new(
            format!("{serial:?} is not a certificate serial; expected hexadecimal digits such as 3f9a01."),
            format!("{serial:?} is geen serienummer van een certificaat; verwacht werden hexadecimale tekens zoals 3f9a01."),
        ))
        .into());
    }

    let filter = RecordFilter { serial_hex: Some(serial.clone()), ..RecordFilter::default() };
    let mut conn = state.pool().acquire().await.map_err(ApiError::from)?;
    let found = requests::search_records(&mut conn, &filter, None, Some(2)).await.map_err(ApiError::from)?;

    match found.as_slice() {
        [] => Err(ApiError::NotFound(Text::new(
            format!("No certificate has serial {serial}."),
            format!("Geen certificaat heeft serienummer {serial}."),
        ))
        .into()),
        [record] => Ok(Redirect::to(&format!("/audit/requests/{}", record.id)).into_response()),
        _ => Ok(Redirect::to(&format!("/audit/requests?serial={serial}")).into_response()),
    }
}

#[derive(Deserialize)]
struct OrganisationQuery {
    #[serde(default)]
    contains: String,
}

/// `GET /api/v1/audit/organisations?contains=`: the organisations that requests name, for
/// the `organisation` filter, which matches a whole name.
async fn organisations_api(
    State(state): State<AppState>,
    account: ApiAccount,
    Query(query): Query<OrganisationQuery>,
) -> Result<Response, ApiError> {
    account.require("auditor")?;

    let part = Some(query.contains.trim()).filter(|part| !part.is_empty());
    let mut conn = state.pool().acquire().await?;
    let names = requests::organisations(&mut conn, part, SUGGESTED_ORGANISATIONS).await?;

    Ok(Json(serde_json::json!({ "organisations": names })).into_response())
}

/// Lists the organisation names that the search page suggests.
pub(crate) async fn suggested_organisations(state: &AppState) -> Result<Vec<String>, ApiError> {
    let mut conn = state.pool().acquire().await?;
    Ok(requests::organisations(&mut conn, None, SUGGESTED_ORGANISATIONS).await?)
}
